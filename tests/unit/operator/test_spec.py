"""The StyleGANRun models: defaults, camelCase, derived values and refused specs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from tests.unit.operator.invalid_specs import BASE_SPEC, INVALID_SPECS, apply_patch, manifest

from stylegan_operator.api.spec import RunSpec
from stylegan_operator.api.status import RunStatus
from stylegan_operator.api.validation import SpecError, validate_spec

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((REPO / "manifests" / "examples").glob("*.yaml"))

MINIMAL = {"dataset": {"uri": "builtin:lfw"}, "resources": {"gpuType": "cpu"}}


def test_minimal_spec_gets_the_documented_defaults() -> None:
    spec = validate_spec(MINIMAL)
    assert spec.model.resolution == 256
    assert spec.model.preset == "auto"
    assert spec.model.augment == "ada"
    assert spec.training.kimg == 25000
    assert spec.training.batch_size == 32
    assert spec.training.mixed_precision == "auto"  # the trainer picks bf16 or fp16 by GPU
    assert spec.resources.gpus_per_node == 1
    assert spec.resources.shm_size == "2Gi"
    assert spec.cost.currency == "USD"
    assert spec.cost.budget_action == "Suspend"
    assert spec.run_policy.backoff_limit == 3
    assert spec.checkpoints is None
    assert spec.suspend is False
    assert spec.node_count == 1 and spec.min_node_count == 1
    assert spec.is_cpu and not spec.is_elastic


def test_wire_format_is_camel_case_and_round_trips() -> None:
    spec = validate_spec(BASE_SPEC)
    wire = spec.model_dump(by_alias=True, exclude_none=True)
    assert wire["training"]["batchSize"] == 32
    assert wire["resources"]["gpusPerNode"] == 4
    assert "batch_size" not in wire["training"]
    assert validate_spec(wire) == spec


def test_python_names_are_accepted_too() -> None:
    spec = RunSpec.model_validate(
        {"dataset": {"uri": "builtin:lfw"}, "resources": {"gpu_type": "cpu", "gpus_per_node": 2}}
    )
    assert spec.resources.gpus_per_node == 2


def test_whole_resource_is_accepted() -> None:
    spec = validate_spec(manifest("x", BASE_SPEC))
    assert spec.resources.nodes == 2


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_is_valid(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    assert doc["kind"] == "StyleGANRun"
    validate_spec(doc["spec"])


def test_examples_cover_cpu_a100_and_v100() -> None:
    assert {p.stem for p in EXAMPLES} >= {"cpu-lfw", "ffhq256-a100", "ffhq1024-v100"}


def test_base_spec_of_the_invalid_list_is_valid() -> None:
    validate_spec(BASE_SPEC)


def test_there_are_at_least_fifteen_invalid_specs_with_unique_names() -> None:
    names = [name for name, _, _ in INVALID_SPECS]
    assert len(names) >= 15
    assert len(set(names)) == len(names)


@pytest.mark.parametrize(
    ("name", "patch", "field"), INVALID_SPECS, ids=[n for n, _, _ in INVALID_SPECS]
)
def test_invalid_spec_is_refused_naming_the_field(name: str, patch: dict, field: str) -> None:
    with pytest.raises(SpecError) as info:
        validate_spec(apply_patch(BASE_SPEC, patch))
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert field in str(info.value)


def test_range_errors_say_what_was_given() -> None:
    with pytest.raises(SpecError, match=r"less than or equal to 16 \(got 32\)"):
        validate_spec(apply_patch(BASE_SPEC, {"resources": {"gpusPerNode": 32}}))


def test_cross_field_error_says_what_would_be_valid() -> None:
    with pytest.raises(SpecError, match="minNodes and maxNodes for an elastic run"):
        validate_spec(apply_patch(BASE_SPEC, {"resources": {"minNodes": 1, "maxNodes": 2}}))


def test_not_an_object_is_refused() -> None:
    with pytest.raises(SpecError, match="^spec: must be an object"):
        validate_spec(["not", "a", "spec"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "uri", ["gs://b/ffhq.zip", "/images/ffhq", "builtin:lfw"], ids=["gcs", "path", "builtin"]
)
def test_dataset_uri_schemes_accepted(uri: str) -> None:
    validate_spec(apply_patch(BASE_SPEC, {"dataset": {"uri": uri}}))


def test_claims_need_paths_under_their_mounts() -> None:
    spec = validate_spec(
        apply_patch(
            BASE_SPEC,
            {
                "dataset": {"uri": "/datasets/ffhq.zip", "claimName": "ffhq"},
                "checkpoints": {"uri": "/checkpoints/run-1", "claimName": "ckpt"},
            },
        )
    )
    assert spec.dataset.claim_name == "ffhq"
    assert spec.checkpoints is not None and spec.checkpoints.claim_name == "ckpt"


def test_fixed_augment_with_probability_is_valid() -> None:
    spec = validate_spec(apply_patch(BASE_SPEC, {"model": {"augment": "fixed", "augmentP": 0.3}}))
    assert spec.model.augment_p == 0.3


def test_bf16_is_allowed_on_gpus_only() -> None:
    patch = {"training": {"mixedPrecision": "bf16"}}
    assert validate_spec(apply_patch(BASE_SPEC, patch)).training.mixed_precision == "bf16"
    patch["resources"] = {"gpuType": "cpu"}
    with pytest.raises(SpecError, match="^spec.training.mixedPrecision: .*use auto or none"):
        validate_spec(apply_patch(BASE_SPEC, patch))
    patch["training"] = {"mixedPrecision": "auto"}  # the default: fp32 on a CPU
    assert validate_spec(apply_patch(BASE_SPEC, patch)).training.mixed_precision == "auto"


def test_quantities_accept_integers_and_strings_but_not_nonsense() -> None:
    ok = {"resources": {"resources": {"requests": {"cpu": 4, "memory": "16Gi"}}, "shmSize": "1Gi"}}
    validate_spec(apply_patch(BASE_SPEC, ok))
    with pytest.raises(SpecError, match=r"^spec\.resources\.shmSize: .*quantity"):
        validate_spec(apply_patch(BASE_SPEC, {"resources": {"shmSize": "lots"}}))


def test_elastic_run_node_counts_keep_the_batch_divisible() -> None:
    patch = {
        "resources": {"nodes": None, "minNodes": 1, "maxNodes": 8, "gpusPerNode": 2},
        "training": {"batchSize": 16},
    }
    spec = validate_spec(apply_patch(BASE_SPEC, patch))
    assert spec.is_elastic
    assert spec.node_count == 8 and spec.min_node_count == 1
    # 16 images over 2 GPUs a node: 8, 4, 2 or 1 nodes; 3, 5, 6, 7 would split it unevenly.
    assert spec.feasible_node_counts() == [8, 4, 2, 1]


def test_batch_per_gpu_is_spelt_as_the_official_batch_gpu_and_may_be_left_out() -> None:
    spec = validate_spec(apply_patch(BASE_SPEC, {"training": {"batchPerGPU": 2}}))
    assert spec.training.batch_per_gpu == 2
    assert spec.model_dump(by_alias=True)["training"]["batchPerGPU"] == 2
    assert validate_spec(BASE_SPEC).training.batch_per_gpu is None


def test_fixed_run_has_one_feasible_node_count() -> None:
    assert validate_spec(BASE_SPEC).feasible_node_counts() == [2]


def test_status_model_dumps_camel_case_with_iso_times() -> None:
    status = RunStatus.model_validate(
        {
            "phase": "Running",
            "kimg": 12.5,
            "secPerKimg": 30.2,
            "lastCheckpoint": {"uri": "gs://c/x", "kimg": 12, "time": "2025-01-02T03:04:05Z"},
            "conditions": [{"type": "Running", "status": "True", "reason": "PodsRunning"}],
        }
    )
    wire = status.model_dump(by_alias=True, exclude_none=True, mode="json")
    assert wire["secPerKimg"] == 30.2
    assert wire["lastCheckpoint"]["time"].startswith("2025-01-02T03:04:05")
    assert wire["conditions"][0]["status"] == "True"


def test_status_refuses_an_unknown_phase() -> None:
    with pytest.raises(ValueError, match="phase"):
        RunStatus.model_validate({"phase": "Sleeping"})
