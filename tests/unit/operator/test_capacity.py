"""Free capacity and the node count of an elastic attempt (reconcile/capacity.py)."""

from __future__ import annotations

from typing import Any

import pytest
from tests.unit.operator.invalid_specs import BASE_SPEC, apply_patch

from stylegan_operator.api.validation import validate_spec
from stylegan_operator.reconcile.capacity import elastic_node_count, free_nodes, node_has_gpu_type


def node(name: str, gpus: str | None = "8", labels: dict[str, str] | None = None,
         ready: bool = True, unschedulable: bool = False) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels if labels is not None else
                     {"cloud.google.com/gke-accelerator": "nvidia-tesla-v100"}},
        "spec": {"unschedulable": unschedulable},
        "status": {"allocatable": {"nvidia.com/gpu": gpus} if gpus else {},
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def pod(node_name: str, gpus: str, phase: str = "Running") -> dict[str, Any]:
    return {"spec": {"nodeName": node_name, "containers": [
                {"resources": {"limits": {"nvidia.com/gpu": gpus}}}]},
            "status": {"phase": phase}}


def test_a_node_counts_when_ready_schedulable_of_the_type_and_with_gpus_left() -> None:
    nodes = [
        node("free"),
        node("half-used"),
        node("full"),
        node("not-ready", ready=False),
        node("cordoned", unschedulable=True),
        node("other-type", labels={"cloud.google.com/gke-accelerator": "nvidia-tesla-a100"}),
        node("done-pods"),
    ]
    pods = [pod("half-used", "4"), pod("full", "8"), pod("done-pods", "8", phase="Succeeded"),
            pod("done-pods", "8", phase="Failed")]
    assert free_nodes(nodes, pods, "nvidia-tesla-v100", 8) == 2  # free, done-pods
    assert free_nodes(nodes, pods, "nvidia-tesla-v100", 4) == 3  # and half-used


def test_the_gpu_operators_product_label_and_the_clusters_own_label_count() -> None:
    assert node_has_gpu_type({"nvidia.com/gpu.product": "Tesla-V100-SXM2-16GB"},
                             "nvidia-tesla-v100")
    assert node_has_gpu_type({"team.example/gpu": "nvidia-tesla-v100"}, "nvidia-tesla-v100",
                             "team.example/gpu")
    assert not node_has_gpu_type({"team.example/gpu": "nvidia-tesla-v100"},
                                 "nvidia-tesla-v100", None)


def test_an_unreadable_quantity_counts_as_no_gpu() -> None:
    assert free_nodes([node("odd", gpus="lots")], [], "nvidia-tesla-v100", 1) == 0


ELASTIC = apply_patch(BASE_SPEC, {
    "resources": {"nodes": None, "minNodes": 1, "maxNodes": 8, "gpusPerNode": 4},
    "training": {"batchSize": 32},
})  # 32 images over 4 GPUs a node: 8, 4, 2 and 1 nodes all divide it


@pytest.mark.parametrize(("free", "expected"), [
    (None, 8),  # unknown: maxNodes, as before
    (12, 8), (8, 8), (7, 4), (3, 2), (1, 1),
    (0, 1),  # nothing free: the fewest allowed, and the attempt waits for them
])
def test_an_elastic_attempt_takes_the_most_nodes_that_fit(free: int | None, expected: int) -> None:
    spec = validate_spec(ELASTIC)
    assert spec.feasible_node_counts() == [8, 4, 2, 1]
    assert elastic_node_count(spec, free) == expected


def test_decide_starts_an_elastic_attempt_on_the_free_nodes_and_reports_that_shape() -> None:
    from tests.unit.operator.test_lifecycle import T0, make_run

    from stylegan_operator.reconcile.decide import decide
    from stylegan_operator.reconcile.observe import Observed

    run = make_run({"resources": {"nodes": None, "minNodes": 1, "maxNodes": 8},
                    "training": {"batchSize": 32}})  # 4 GPUs a node
    plan = decide(run, Observed(free_nodes=3), T0)
    (job,) = [o for o in plan.creates if o["kind"] == "Job"]
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 2
    assert plan.status["shape"] == "2x4"
    unknown = decide(run, Observed(), T0)
    (job,) = [o for o in unknown.creates if o["kind"] == "Job"]
    assert job["spec"]["completions"] == 8 and unknown.status["shape"] == "8x4"
