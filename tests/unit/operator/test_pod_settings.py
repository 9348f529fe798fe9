"""The trainer pod's settings for real clusters: rendezvous and NCCL timeouts, the graceful
stop, node-loss tolerations and the GPU type's node affinity (``reconcile.pods``), and the
spec fields that set them."""

from __future__ import annotations

from typing import Any

import pytest
from tests.unit.operator.invalid_specs import BASE_SPEC, apply_patch

from stylegan_operator.api.crd import build_crd
from stylegan_operator.api.names import GPU_PRODUCT_LABEL, GPU_PRODUCTS, GPU_TYPE_LABEL
from stylegan_operator.api.spec import RunSpec
from stylegan_operator.api.validation import SpecError, validate_spec
from stylegan_operator.reconcile.jobs import build_job

META = {"name": "faces", "namespace": "ml", "uid": "0d9a6c1e-1111-2222-3333-444455556666",
        "generation": 1}


def spec_with(patch: dict[str, Any] | None = None) -> RunSpec:
    return validate_spec(apply_patch(BASE_SPEC, patch or {}))


def pod(spec: RunSpec, **kw: Any) -> dict[str, Any]:
    return build_job(META, spec, 1, **kw)["spec"]["template"]["spec"]


def env_of(spec: RunSpec) -> dict[str, str]:
    (container,) = pod(spec)["containers"]
    return {e["name"]: e.get("value") for e in container["env"]}


def rdzv_conf(spec: RunSpec) -> dict[str, str]:
    (container,) = pod(spec)["containers"]
    args = container["args"]
    text = args[args.index("--rdzv-conf") + 1]
    return dict(item.split("=", 1) for item in text.split(","))


def affinity_terms(pod_spec: dict[str, Any]) -> list[tuple[str, list[str]]]:
    terms = pod_spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"]
    out = []
    for term in terms:
        (expr,) = term["matchExpressions"]  # one label per term: the terms are OR'ed
        assert expr["operator"] == "In"
        out.append((expr["key"], expr["values"]))
    return out


# --------------------------------------------------------------------------- rendezvous
def test_the_rendezvous_waits_long_enough_for_a_pod_0_that_starts_late() -> None:
    conf = rdzv_conf(spec_with())
    # torchrun's own 60 s read_timeout is the first connection to pod 0's store.
    assert conf == {"join_timeout": "1800", "read_timeout": "1800"}
    conf = rdzv_conf(spec_with({"distributed": {"rendezvousTimeoutSeconds": 900}}))
    assert conf == {"join_timeout": "900", "read_timeout": "900"}


def test_rendezvous_and_collective_timeouts_are_bounded() -> None:
    with pytest.raises(SpecError, match=r"spec\.distributed\.rendezvousTimeoutSeconds"):
        spec_with({"distributed": {"rendezvousTimeoutSeconds": 30}})
    with pytest.raises(SpecError, match=r"spec\.distributed\.collectiveTimeoutSeconds"):
        spec_with({"distributed": {"collectiveTimeoutSeconds": 0}})


# --------------------------------------------------------------------------- NCCL
def test_gpu_pods_get_the_nccl_settings_and_the_collective_timeout() -> None:
    env = env_of(spec_with({"distributed": {"collectiveTimeoutSeconds": 900}}))
    assert env["NCCL_SOCKET_IFNAME"] == "eth0"
    assert env["TORCH_NCCL_ASYNC_ERROR_HANDLING"] == "1"
    assert "TORCH_NCCL_BLOCKING_WAIT" not in env and "NCCL_ASYNC_ERROR_HANDLING" not in env
    assert env["STYLEGAN_DIST_TIMEOUT_S"] == "900"


def test_the_socket_interface_can_be_changed_left_to_nccl_or_overridden_by_env() -> None:
    env = env_of(spec_with({"distributed": {"socketInterface": "^lo,docker"}}))
    assert env["NCCL_SOCKET_IFNAME"] == "^lo,docker"
    assert "NCCL_SOCKET_IFNAME" not in env_of(spec_with({"distributed": {"socketInterface": ""}}))
    env = env_of(spec_with({"resources": {"env": [{"name": "NCCL_SOCKET_IFNAME",
                                                    "value": "ens5"}]}}))
    assert env["NCCL_SOCKET_IFNAME"] == "ens5"
    with pytest.raises(SpecError, match=r"spec\.distributed\.socketInterface"):
        spec_with({"distributed": {"socketInterface": "eth0; rm -rf"}})


def test_cpu_pods_get_no_nccl_settings_but_the_timeouts() -> None:
    env = env_of(spec_with({"resources": {"gpuType": "cpu"},
                            "training": {"mixedPrecision": "none"}}))
    assert not [k for k in env if k.startswith(("NCCL_", "TORCH_NCCL_"))]
    assert env["STYLEGAN_DIST_TIMEOUT_S"] == "1800"


# --------------------------------------------------------------------------- graceful stop
@pytest.mark.parametrize(("resolution", "grace"), [(64, 60), (128, 60), (256, 120), (512, 180),
                                                   (1024, 300)])
def test_the_grace_period_grows_with_the_checkpoint(resolution: int, grace: int) -> None:
    spec = spec_with({"model": {"resolution": resolution}})
    assert pod(spec)["terminationGracePeriodSeconds"] == grace
    # torchrun would SIGKILL the workers after its own 30 s, mid-checkpoint.
    assert env_of(spec)["TORCH_ELASTIC_SHUTDOWN_TIMEOUT"] == str(grace - 10)


def test_the_grace_period_can_be_set() -> None:
    spec = spec_with({"resources": {"terminationGracePeriodSeconds": 900}})
    assert pod(spec)["terminationGracePeriodSeconds"] == 900
    assert env_of(spec)["TORCH_ELASTIC_SHUTDOWN_TIMEOUT"] == "890"
    with pytest.raises(SpecError, match=r"spec\.resources\.terminationGracePeriodSeconds"):
        spec_with({"resources": {"terminationGracePeriodSeconds": 5}})


# --------------------------------------------------------------------------- node loss
def test_pods_leave_a_lost_node_after_a_minute_not_five() -> None:
    tolerations = pod(spec_with())["tolerations"]
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        assert {"key": key, "operator": "Exists", "effect": "NoExecute",
                "tolerationSeconds": 60} in tolerations


def test_a_toleration_of_the_spec_for_a_node_loss_taint_wins() -> None:
    own = {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
           "effect": "NoExecute", "tolerationSeconds": 600}
    tolerations = pod(spec_with({"resources": {"tolerations": [own]}}))["tolerations"]
    unreachable = [t for t in tolerations if t.get("key") == "node.kubernetes.io/unreachable"]
    assert unreachable == [own]
    assert any(t.get("key") == "node.kubernetes.io/not-ready" for t in tolerations)


# --------------------------------------------------------------------------- GPU type
def test_the_gpu_type_selects_nodes_by_gke_gpu_operator_or_the_clusters_own_label() -> None:
    terms = affinity_terms(pod(spec_with()))  # nvidia-tesla-v100
    assert terms == [
        (GPU_TYPE_LABEL, ["nvidia-tesla-v100"]),
        (GPU_PRODUCT_LABEL, list(GPU_PRODUCTS["nvidia-tesla-v100"])),
        ("stylegan.dev/gpu-type", ["nvidia-tesla-v100"]),
    ]
    assert "Tesla-V100-SXM2-16GB" in terms[1][1]


def test_the_operators_label_is_configurable_and_never_repeats_a_known_one() -> None:
    spec = spec_with({"resources": {"gpuType": "nvidia-a100-80gb"}})
    terms = affinity_terms(pod(spec, gpu_type_label="example.com/accelerator"))
    assert terms[1] == (GPU_PRODUCT_LABEL, ["NVIDIA-A100-SXM4-80GB", "NVIDIA-A100-80GB-PCIe"])
    assert terms[2] == ("example.com/accelerator", ["nvidia-a100-80gb"])
    assert [k for k, _ in affinity_terms(pod(spec, gpu_type_label=None))] == [
        GPU_TYPE_LABEL, GPU_PRODUCT_LABEL]
    assert [k for k, _ in affinity_terms(pod(spec, gpu_type_label=GPU_TYPE_LABEL))] == [
        GPU_TYPE_LABEL, GPU_PRODUCT_LABEL]


def test_a_gpu_type_without_a_known_product_matches_by_name_only() -> None:
    spec = spec_with({"resources": {"gpuType": "amd-mi300x"}})
    assert affinity_terms(pod(spec)) == [(GPU_TYPE_LABEL, ["amd-mi300x"]),
                                         ("stylegan.dev/gpu-type", ["amd-mi300x"])]


def test_every_known_gpu_type_has_products() -> None:
    from stylegan_operator.api.names import CPU, KNOWN_GPU_TYPES

    assert {t for t in KNOWN_GPU_TYPES if t != CPU} == set(GPU_PRODUCTS)


# --------------------------------------------------------------------------- immutability
def test_the_crd_refuses_moving_the_checkpoints() -> None:
    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    rules = {r["rule"]: r for r in schema["x-kubernetes-validations"]}
    rule = next(r for text, r in rules.items() if "oldSelf.checkpoints" in text)
    assert rule["fieldPath"] == ".checkpoints.uri"
    assert "spec.checkpoints.uri is immutable" in rule["message"]
