"""The generated CRD: committed copy in sync, structural, documented, CEL that compiles sanely."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from stylegan_operator.api.crd import build_crd, crd_yaml
from stylegan_operator.cli.resource_commands import crd_cmd

REPO = Path(__file__).resolve().parents[3]
COMMITTED = REPO / "manifests" / "crd" / "stylegan.dev_styleganruns.yaml"
REGENERATE = "stylegan crd -f manifests/crd/stylegan.dev_styleganruns.yaml"


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    return build_crd()


@pytest.fixture(scope="module")
def root(crd: dict[str, Any]) -> dict[str, Any]:
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def walk(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its dotted path (``[]`` for list items, ``{}`` for map values)."""
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}" if path else name)
    if isinstance(schema.get("items"), dict):
        yield from walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk(schema["additionalProperties"], f"{path}{{}}")


def test_committed_crd_matches_the_models() -> None:
    assert COMMITTED.exists(), f"missing {COMMITTED}: run `{REGENERATE}`"
    assert COMMITTED.read_text(encoding="utf-8") == crd_yaml(), (
        f"{COMMITTED} drifted from operator/stylegan_operator/api/spec.py: run `{REGENERATE}`"
    )


def test_crd_command_prints_exactly_the_committed_text(tmp_path: Path) -> None:
    result = CliRunner().invoke(crd_cmd, [])
    assert result.exit_code == 0, result.output
    assert result.output == crd_yaml()
    out = tmp_path / "crd.yaml"
    assert CliRunner().invoke(crd_cmd, ["-f", str(out)]).exit_code == 0
    assert out.read_text() == crd_yaml()
    assert CliRunner().invoke(crd_cmd, ["--output-file", str(out), "-o", "json"]).exit_code == 0
    assert json.loads(out.read_text()) == build_crd()


def test_crd_output_is_a_format_not_a_file(tmp_path: Path) -> None:
    """``-o`` is kubectl's output format; a file name there is refused (64), not written."""
    result = CliRunner().invoke(crd_cmd, ["-o", str(tmp_path / "crd.yaml")])
    assert result.exit_code != 0
    assert "is not one of 'yaml', 'json'" in result.output
    assert not (tmp_path / "crd.yaml").exists()


def test_stylegan_crd_through_the_main_cli() -> None:
    from stylegan_operator.cli.main import main

    result = CliRunner().invoke(main, ["crd"])
    assert result.exit_code == 0, result.output
    assert result.output == crd_yaml()


def test_generation_is_deterministic() -> None:
    assert crd_yaml() == crd_yaml()
    assert yaml.safe_load(crd_yaml()) == build_crd()


def test_names_scope_and_subresources(crd: dict[str, Any]) -> None:
    spec = crd["spec"]
    assert crd["metadata"]["name"] == "styleganruns.stylegan.dev"
    assert spec["group"] == "stylegan.dev"
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "StyleGANRun",
        "listKind": "StyleGANRunList",
        "plural": "styleganruns",
        "singular": "styleganrun",
        "shortNames": ["sgrun"],
        "categories": ["stylegan"],
    }
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}


def resolve(root: dict[str, Any], json_path: str) -> dict[str, Any] | None:
    node: dict[str, Any] | None = root
    for part in json_path.strip(".").split("."):
        node = (node or {}).get("properties", {}).get(part)
    return node


def test_printer_columns_point_at_real_fields(crd: dict[str, Any], root: dict[str, Any]) -> None:
    columns = crd["spec"]["versions"][0]["additionalPrinterColumns"]
    names = [c["name"] for c in columns if c.get("priority", 0) == 0]
    assert names == ["Phase", "Shape", "Progress", "Cost", "ETA", "Age"]
    for column in columns:
        if column["jsonPath"] == ".metadata.creationTimestamp":
            continue
        field = resolve(root, column["jsonPath"])
        assert field is not None, f"column {column['name']}: {column['jsonPath']} not in schema"
        want = {"string": "string", "number": "number", "integer": "integer"}[column["type"]]
        assert field["type"] == want, column


def test_schema_is_structural(root: dict[str, Any]) -> None:
    for path, node in walk(root):
        assert "$ref" not in node and "$defs" not in node, path
        assert "title" not in node, path
        assert node.get("additionalProperties") is not False, path
        assert node.get("type") != "null", path
        if "anyOf" in node:  # only int-or-string may use anyOf, without a type of its own
            assert node.get("x-kubernetes-int-or-string") is True, path
            assert "type" not in node, path
        elif path != "metadata":
            assert "type" in node, path
        if isinstance(node.get("exclusiveMinimum"), bool):
            assert "minimum" in node, path


def test_every_field_has_a_description(root: dict[str, Any]) -> None:
    missing = [
        path
        for path, node in walk(root)
        if path and not path.endswith(("[]", "{}")) and not node.get("description")
        and path != "metadata"  # the API server refuses anything but its type there
    ]
    assert missing == []


def test_spec_strings_lists_and_maps_are_bounded_for_cel_cost(root: dict[str, Any]) -> None:
    for path, node in walk(root["properties"]["spec"], "spec"):
        kind = node.get("type")
        if kind == "string":
            assert "maxLength" in node or "enum" in node, f"{path}: unbounded string"
        elif kind == "array":
            assert "maxItems" in node, f"{path}: unbounded list"
        elif kind == "object" and "additionalProperties" in node:
            assert "maxProperties" in node, f"{path}: unbounded map"


def test_defaults_enums_and_bounds(root: dict[str, Any]) -> None:
    spec = root["properties"]["spec"]
    model = spec["properties"]["model"]
    assert model["default"] == {}
    assert model["properties"]["resolution"]["default"] == 256
    assert model["properties"]["preset"]["enum"] == [
        "stylegan2",
        "paper256",
        "paper512",
        "paper1024",
        "cifar",
        "auto",
        "cpu",
    ]
    gpus = spec["properties"]["resources"]["properties"]["gpusPerNode"]
    assert (gpus["minimum"], gpus["maximum"]) == (1, 16)
    budget = spec["properties"]["cost"]["properties"]["budget"]
    assert budget["minimum"] == 0 and budget["exclusiveMinimum"] is True
    assert spec["required"] == ["dataset", "resources"]
    assert root["required"] == ["spec"]


def test_status_keeps_unknown_fields_and_conditions_are_a_map(root: dict[str, Any]) -> None:
    status = root["properties"]["status"]
    assert status["x-kubernetes-preserve-unknown-fields"] is True
    conditions = status["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert "type" in conditions["items"]["required"]
    assert {"phase", "kimg", "cost", "projectedCost", "eta", "lastCheckpoint", "shape"} <= set(
        status["properties"]
    )


def rules(root: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    for path, node in walk(root):
        for rule in node.get("x-kubernetes-validations", []):
            yield path, node, rule


def test_cross_field_rules_exist_where_expected(root: dict[str, Any]) -> None:
    where = {path for path, _, _ in rules(root)}
    assert {
        "spec",
        "spec.model",
        "spec.model.resolution",
        "spec.resources",
        "spec.dataset.uri",
        "spec.checkpoints.uri",
    } <= where


def test_rule_messages_name_a_field(root: dict[str, Any]) -> None:
    for path, _, rule in rules(root):
        assert rule["message"].startswith("spec."), (path, rule["message"])


def field_refs(cel: str) -> set[str]:
    """Dotted field paths a CEL rule reads from ``self`` (method calls dropped)."""
    refs = (re.sub(r"\.startsWith$", "", r) for r in re.findall(r"self((?:\.[A-Za-z]+)+)", cel))
    return {r for r in refs if r}


def test_rule_field_paths_and_references_exist(root: dict[str, Any]) -> None:
    """The API server refuses a CRD whose CEL or fieldPath names a field it lacks."""
    for path, node, rule in rules(root):
        if "fieldPath" in rule:
            assert resolve(node, rule["fieldPath"]) is not None, (path, rule["fieldPath"])
        for ref in field_refs(rule["rule"]):
            assert resolve(node, ref) is not None, (path, rule["rule"], ref)


def test_rules_reading_optional_fields_guard_with_has(root: dict[str, Any]) -> None:
    """Reading an absent optional field is a CEL runtime error, not a false."""
    for path, node, rule in rules(root):
        for ref in field_refs(rule["rule"]):
            parts = ref.strip(".").split(".")
            parent = node
            for depth, leaf in enumerate(parts):
                sub = parent["properties"][leaf]
                always_there = leaf in parent.get("required", []) or "default" in sub
                prefix = "self." + ".".join(parts[: depth + 1])
                if not always_there:
                    assert f"has({prefix})" in rule["rule"], (path, rule["rule"], prefix)
                parent = sub
