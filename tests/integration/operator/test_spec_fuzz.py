"""The API server and :func:`validate_spec` decide alike on generated specs.

The CRD's schema and CEL rules are generated from the same pydantic models the operator
validates with; this holds the two to each other on specs drawn by ``spec_fuzz`` (a fixed
seed, so a failure names the same spec on every run): whatever one accepts the other accepts,
and when both refuse, the API server's message names the field the operator names. A spec
the API server admits but the operator refuses would sit in the cluster as a run that never
starts; the reverse, a rule the server does not enforce, shows here first.
"""

from __future__ import annotations

import json

import pytest

from stylegan_operator.api.validation import SpecError, validate_spec
from tests.support import Kubectl
from tests.unit.operator.invalid_specs import BASE_SPEC, apply_patch, manifest
from tests.unit.operator.spec_fuzz import sample_patches

pytestmark = pytest.mark.cluster

SEED = 20261207
COUNT = 60


def test_the_api_server_and_the_operator_agree_on_generated_specs(
    kubectl: Kubectl, crd: str, namespace: str
) -> None:
    disagreements, accepted, refused = [], 0, 0
    for index, patch in enumerate(sample_patches(COUNT, SEED)):
        spec = apply_patch(BASE_SPEC, patch)
        try:
            validate_spec(spec)
            operator_field = None
        except SpecError as exc:
            operator_field = exc.field
        doc = manifest(f"fuzz-{index}", spec, namespace=namespace)
        result = kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(doc),
                         namespace=namespace, check=False)
        server_accepts = result.returncode == 0
        if server_accepts != (operator_field is None):
            disagreements.append((patch, operator_field, result.stderr.strip()[-300:]))
        elif operator_field is not None and operator_field not in result.stderr:
            # The server may name its first problem of several; the operator's field must
            # at least be one the server also calls wrong when checked alone.
            parent = operator_field.rsplit(".", 1)[0]
            if parent not in result.stderr:
                disagreements.append((patch, operator_field, result.stderr.strip()[-300:]))
        accepted += server_accepts
        refused += not server_accepts
    assert not disagreements, "\n".join(map(repr, disagreements))
    assert accepted >= 5 and refused >= 5, (accepted, refused)  # both sides were exercised
