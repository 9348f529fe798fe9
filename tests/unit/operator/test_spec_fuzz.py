"""Fuzzing the spec: hypothesis generates StyleGANRun specs around a valid one (see
``spec_fuzz``). Each must either be refused with a :class:`SpecError` that names a real field
of the CRD, or render an attempt whose trainer options the trainer accepts: the operator
never crashes on what the API server let through, and never hands the trainer options it
would refuse (that would fail a run, on GPUs, after admission).

The cluster half, the API server deciding as :func:`validate_spec` does, is
tests/integration/operator/test_spec_fuzz.py.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from tests.unit.operator.invalid_specs import BASE_SPEC, apply_patch, manifest
from tests.unit.operator.spec_fuzz import patched_paths, spec_patches

from stylegan_operator.api.crd import build_crd
from stylegan_operator.api.validation import SpecError, validate_spec
from stylegan_operator.reconcile.manifest import render_run


def schema_fields(schema: dict[str, Any], prefix: str = "spec") -> set[str]:
    """Every field path of an OpenAPI schema, ``spec.model.resolution`` style."""
    paths = {prefix}
    for name, sub in (schema.get("properties") or {}).items():
        paths |= schema_fields(sub, f"{prefix}.{name}")
    if isinstance(schema.get("additionalProperties"), dict):
        paths |= schema_fields(schema["additionalProperties"], f"{prefix}[*]")
    return paths


CRD_SCHEMA = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
FIELDS = schema_fields(CRD_SCHEMA["properties"]["spec"])


@settings(max_examples=300, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(patch=spec_patches())
def test_a_generated_spec_is_refused_by_field_or_renders_what_the_trainer_accepts(
    patch: dict[str, Any],
) -> None:
    spec = apply_patch(BASE_SPEC, patch)
    try:
        validate_spec(spec)
    except SpecError as exc:
        # A field of the schema, or an unknown key named as the user wrote it.
        assert exc.field in FIELDS or exc.field in patched_paths(patch), (exc.field, patch)
        return
    _, config_map, job = render_run(manifest("fuzz", spec))
    assert job["kind"] == "Job" and job["spec"]["completions"] >= 1
    from stylegan_trainer.cli.train_commands import build_options

    with tempfile.TemporaryDirectory(prefix="spec-fuzz-") as scratch:
        path = Path(scratch) / "train.yaml"
        path.write_text(config_map["data"]["train.yaml"])
        options = build_options(str(path), {})  # ConfigError (a failed run) if refused
    assert options.batch == spec["training"]["batchSize"]
    assert options.resolution == spec["model"]["resolution"]
    assert yaml.safe_load(config_map["data"]["train.yaml"])["dataset"] == spec["dataset"]["uri"]
