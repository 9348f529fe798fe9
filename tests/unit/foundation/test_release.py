"""The release files agree: one version everywhere, and a bake file that builds the
Dockerfile's real stages into the image repositories the chart pulls, with SBOM and
provenance attestations (docs/releasing.md).

No Docker engine runs here, so docker-bake.hcl is read as text: its blocks are simple enough
(``target "name" { key = value }``) that a small reader of them is a fair check, and a
misspelt stage or tag shows up as a failure here rather than at release time.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

import yaml

import stylegan_operator
from tests.support import ROOT

BAKE = ROOT / "docker-bake.hcl"
CHART = ROOT / "charts" / "stylegan-operator"


def bake_blocks() -> dict[tuple[str, str], str]:
    """``{("target", "operator"): body, ("variable", "VERSION"): body, ...}``."""
    text = "\n".join(line.split("#", 1)[0] for line in BAKE.read_text().splitlines())
    blocks: dict[tuple[str, str], str] = {}
    for match in re.finditer(r'^(\w+) "([\w-]+)" \{\n(.*?)^\}', text, re.S | re.M):
        blocks[(match[1], match[2])] = match[3]
    return blocks


def setting(body: str, key: str) -> str | None:
    match = re.search(rf"^\s*{key}\s*=\s*(.+?)\s*$", body, re.M)
    return match[1] if match else None


def variable_default(name: str) -> str:
    default = setting(bake_blocks()[("variable", name)], "default")
    assert default and default.startswith('"'), f"variable {name} has no string default"
    return default.strip('"')


def resolved(target: str, key: str) -> str | None:
    """A target's setting, following ``inherits`` (the first parent that sets it)."""
    blocks = bake_blocks()
    body = blocks[("target", target)]
    value = setting(body, key)
    if value is None and (parents := setting(body, "inherits")):
        for parent in re.findall(r'"([\w-]+)"', parents):
            if (value := resolved(parent, key)) is not None:
                break
    return value


def chart() -> dict[str, Any]:
    return yaml.safe_load((CHART / "Chart.yaml").read_text())


def test_one_version_everywhere() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    versions = {
        "pyproject.toml": pyproject,
        "stylegan_operator.__version__": stylegan_operator.__version__,
        "Chart.yaml version": str(chart()["version"]),
        "Chart.yaml appVersion": str(chart()["appVersion"]),
        "docker-bake.hcl VERSION": variable_default("VERSION"),
    }
    assert len(set(versions.values())) == 1, versions


def test_bake_builds_the_dockerfiles_stages_with_sbom_and_provenance() -> None:
    stages = set(re.findall(r"^FROM \S+ AS ([\w-]+)", (ROOT / "Dockerfile").read_text(), re.M))
    group = bake_blocks()[("group", "default")]
    targets = re.findall(r'"([\w-]+)"', setting(group, "targets") or "")
    assert sorted(targets) == ["operator", "trainer"]
    for name in targets:
        stage = (resolved(name, "target") or "").strip('"')
        assert stage in stages, f"bake target {name} builds {stage!r}, not one of {stages}"
        assert (resolved(name, "dockerfile") or "").strip('"') == "Dockerfile"
    attest = re.search(r"attest\s*=\s*\[(.*?)\]", bake_blocks()[("target", "_release")], re.S)
    assert attest, "the release targets attach no attestations"
    assert '"type=sbom"' in attest[1] and '"type=provenance,mode=max"' in attest[1]


def test_bake_tags_are_the_images_the_chart_pulls() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    registry, version = variable_default("REGISTRY"), variable_default("VERSION")
    repositories = {"operator": values["image"]["repository"],
                    "trainer": values["trainerImage"]["repository"]}
    for name, repository in repositories.items():
        tags = resolved(name, "tags") or ""
        tag = tags.strip("[]").strip('"').replace("${REGISTRY}", registry).replace(
            "${VERSION}", version)
        assert tag == f"{repository}:{chart()['appVersion']}", (name, tag)
