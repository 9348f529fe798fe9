"""The StyleGANRun CustomResourceDefinition, generated from the models (``stylegan crd``).

pydantic's JSON schema of :class:`RunSpec` and :class:`RunStatus` becomes a Kubernetes
structural OpenAPI v3 schema (every ``$ref`` inlined, ``null`` branches dropped), wrapped in
the CRD with its names, printer columns and status subresource.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel

from stylegan_operator.api.names import (
    CATEGORIES,
    CRD_NAME,
    GROUP,
    KIND,
    PLURAL,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
)
from stylegan_operator.api.spec import RunSpec
from stylegan_operator.api.status import RunStatus


def _structural(node: Any, defs: dict[str, Any]) -> Any:
    """Turn pydantic's JSON schema into a Kubernetes structural schema.

    Inlines ``$ref`` (CRDs cannot refer), drops ``null`` branches (an omitted field is
    what optional means to the API server), titles and ``additionalProperties: false``
    (unknown fields are pruned or refused by kubectl), and spells exclusive bounds the
    OpenAPI v3.0 way.
    """
    if isinstance(node, list):
        return [_structural(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        node = {**target, **node}  # the field's own description/default win
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b != {"type": "null"}]
        if len(branches) == 1:
            del node["anyOf"]
            node = {**_structural(branches[0], defs), **node}
            if node.get("default", 0) is None:
                del node["default"]
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("title", "$defs") or (key == "additionalProperties" and value is False):
            continue
        if key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        elif key == "properties":
            out[key] = {k: _structural(v, defs) for k, v in value.items()}
        elif key == "const":
            out["enum"] = [value]
        elif key == "default" and value is None:
            continue
        else:
            out[key] = _structural(value, defs)
    if "properties" in out:
        out.setdefault("type", "object")
    return _ordered(out)


_KEY_ORDER = ("description", "type", "format", "default", "enum")


def _ordered(schema: dict[str, Any]) -> dict[str, Any]:
    """Stable, readable key order: description and type first, then the rest sorted."""
    head = [k for k in _KEY_ORDER if k in schema]
    tail = sorted(k for k in schema if k not in _KEY_ORDER)
    return {k: schema[k] for k in head + tail}


def openapi_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of ``model`` (camelCase, every ``$ref`` inlined)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return _structural(raw, raw.get("$defs", {}))


def _status_schema() -> dict[str, Any]:
    schema = openapi_schema(RunStatus)
    # kopf keeps its own progress under status; the operator owns the rest.
    schema["x-kubernetes-preserve-unknown-fields"] = True
    conditions = schema["properties"]["conditions"]
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    return schema


PRINTER_COLUMNS: list[dict[str, Any]] = [
    # jsonPath only (no arithmetic in a printer column): the operator writes the percentage
    # and the money with its currency into the status as text for these columns.
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {
        "name": "Shape",
        "type": "string",
        "jsonPath": ".status.shape",
        "description": "Nodes x GPUs per node of the active attempt",
    },
    {
        "name": "Progress",
        "type": "string",
        "jsonPath": ".status.progressText",
        "description": "kimg shown so far as a share of spec.training.kimg",
    },
    {
        "name": "Cost",
        "type": "string",
        "jsonPath": ".status.costText",
        "description": "Spent so far, every attempt included, with its currency",
    },
    {"name": "ETA", "type": "string", "jsonPath": ".status.eta"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "Kimg", "type": "number", "jsonPath": ".status.kimg", "priority": 1},
    {"name": "Target", "type": "integer", "jsonPath": ".spec.training.kimg", "priority": 1},
    {"name": "GPU", "type": "string", "jsonPath": ".spec.resources.gpuType", "priority": 1},
    {
        "name": "Projected",
        "type": "string",
        "jsonPath": ".status.projectedCostText",
        "priority": 1,
        "description": "The cost at the end at the current speed and price",
    },
    {"name": "Restarts", "type": "integer", "jsonPath": ".status.restarts", "priority": 1},
]


def build_crd() -> dict[str, Any]:
    """The StyleGANRun CustomResourceDefinition (apiextensions.k8s.io/v1) as a dict."""
    spec_schema = openapi_schema(RunSpec)
    spec_schema["description"] = (RunSpec.__doc__ or "").strip()
    root = {
        "description": "StyleGANRun trains a StyleGAN2 generator on Kubernetes GPU nodes and "
        "accounts for what it costs.",
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {
                "description": "Versioned schema of this object (stylegan.dev/v1alpha1).",
                "type": "string",
            },
            "kind": {"description": "StyleGANRun.", "type": "string"},
            "metadata": {"type": "object"},  # the API server allows nothing more here
            "spec": spec_schema,
            "status": _status_schema(),
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": CRD_NAME,
            "labels": {"app.kubernetes.io/part-of": "stylegan-operator"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
                "categories": list(CATEGORIES),
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [dict(c) for c in PRINTER_COLUMNS],
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


CRD_HEADER = (
    "# Generated by `stylegan crd` from operator/stylegan_operator/api/spec.py: do not edit.\n"
    "# tests/unit/operator/test_crd.py fails when this copy drifts from the models.\n"
)


def crd_yaml() -> str:
    """The CRD as YAML, byte-for-byte what ``stylegan crd`` prints and the repo commits."""
    return CRD_HEADER + yaml.safe_dump(build_crd(), sort_keys=False, width=100)
