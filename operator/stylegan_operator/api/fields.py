"""The value types of the spec's fields: enums, patterns and constrained strings.

Literal enums, the Kubernetes name and quantity patterns, and the annotated types
(``Uri``, ``Resolution``, ``Quantity`` and the URIs of datasets and checkpoints) that carry
their per-value rules into both the CRD schema and Python validation.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from stylegan_operator.api.names import RESOLUTIONS
from stylegan_operator.api.rules import FieldRules, Rule

Preset = Literal["stylegan2", "paper256", "paper512", "paper1024", "cifar", "auto", "cpu"]
Augment = Literal["ada", "noaug", "fixed"]
MixedPrecision = Literal["auto", "none", "fp16", "bf16"]
Currency = Literal["USD", "EUR", "JPY", "GBP"]
BudgetAction = Literal["Suspend", "Fail", "Warn"]

# A DNS-1123 label (queue names, claim names, label values of gpuType).
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# A DNS-1123 subdomain (priority classes, service accounts).
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# The pattern Kubernetes itself publishes for resource.Quantity strings.
_DECIMAL = r"(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
QUANTITY = rf"^(\+|-)?{_DECIMAL}(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?{_DECIMAL}))?$"
ENV_NAME = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"


def _uri_rule(field: str, schemes: tuple[str, ...], hint: str) -> Rule:
    cel = " || ".join(f"self.startsWith('{s}')" for s in schemes)
    return Rule(
        cel=cel,
        message=f"{field} must start with {', '.join(schemes)} ({hint})",
        check=lambda v: isinstance(v, str) and v.startswith(schemes),
    )


_RESOLUTION_RULE = Rule(
    cel=f"self in [{', '.join(str(r) for r in RESOLUTIONS)}]",
    message="spec.model.resolution must be a power of two from 4 to 1024",
    check=lambda v: v in RESOLUTIONS,
)
_DATASET_URI_RULES = (
    _uri_rule(
        "spec.dataset.uri",
        ("gs://", "/", "builtin:"),
        "a GCS object or folder, a path in the container, or builtin:lfw",
    ),
    Rule(
        cel="!self.startsWith('builtin:') || self == 'builtin:lfw'",
        message="spec.dataset.uri: the only built-in dataset is builtin:lfw",
        check=lambda v: not v.startswith("builtin:") or v == "builtin:lfw",
    ),
)
_CHECKPOINT_URI_RULE = _uri_rule(
    "spec.checkpoints.uri", ("gs://", "/"), "a GCS prefix or a path on spec.checkpoints.claimName"
)
_RESUME_URI_RULE = _uri_rule(
    "spec.checkpoints.resumeFrom", ("gs://", "/"), "a checkpoint object or a run folder"
)
_INIT_URI_RULE = _uri_rule(
    "spec.initFrom", ("gs://", "/"),
    "a checkpoint, a run folder or a StyleGAN2-ADA network pickle (.pkl)",
)  # fmt: skip

# Bounded string/list/map sizes keep the API server's CEL cost estimate low.
Uri = Annotated[str, Field(min_length=1, max_length=1024)]
Resolution = Annotated[int, FieldRules((_RESOLUTION_RULE,))]
DatasetUri = Annotated[Uri, FieldRules(_DATASET_URI_RULES)]
CheckpointUri = Annotated[Uri, FieldRules((_CHECKPOINT_URI_RULE,))]
ResumeUri = Annotated[Uri, FieldRules((_RESUME_URI_RULE,))]
InitUri = Annotated[Uri, FieldRules((_INIT_URI_RULE,))]


def _check_quantity(value: int | str) -> int | str:
    if isinstance(value, str) and not re.match(QUANTITY, value):
        raise PydanticCustomError(
            "quantity", "must be a Kubernetes quantity such as 500m, 4 or 16Gi"
        )
    return value


Quantity = Annotated[
    int | str,
    AfterValidator(_check_quantity),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY,
            "x-kubernetes-int-or-string": True,
        }
    ),
]
