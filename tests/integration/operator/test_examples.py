"""The shipped examples on the real control plane, and the specs the API server refuses.

Each example is applied as a user would (``kubectl apply``), moved into the test's
namespace: the operator creates its Service and Job, the pods land on nodes of the GPU type
the run asks for (kwok runs them), and the run goes Pending -> Running -> Succeeded as the
test makes every pod exit 0. The local cluster has 12 V100 nodes, so the FFHQ 1024 example
runs as shipped, on 8 nodes x 8 V100.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.operator.conftest import OperatorProcess, Runs, example
from tests.support import Kubectl, wait_for
from tests.unit.operator.invalid_specs import BASE_SPEC, INVALID_SPECS, apply_patch, manifest

pytestmark = pytest.mark.cluster

GPU_LABEL = "cloud.google.com/gke-accelerator"


def prepare(name: str, doc: dict[str, Any], kubectl: Kubectl, namespace: str) -> None:
    """What the examples expect to exist: their ServiceAccount and PriorityClass."""
    resources = doc["spec"]["resources"]
    if resources.get("serviceAccountName"):
        kubectl("create", "serviceaccount", resources["serviceAccountName"], namespace=namespace)
    if resources.get("priorityClassName"):
        kubectl.apply({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                       "metadata": {"name": resources["priorityClassName"]}, "value": 1000})


@pytest.mark.parametrize("name", ["cpu-lfw", "ffhq256-a100", "ffhq1024-v100"])
def test_example_runs_to_success(name: str, kubectl: Kubectl, namespace: str,
                                 operator: OperatorProcess, runs: Runs) -> None:
    doc = example(name, namespace)
    prepare(name, doc, kubectl, namespace)
    runs.apply(doc)
    nodes = doc["spec"]["resources"]["nodes"]
    gpu_type = doc["spec"]["resources"]["gpuType"]

    wait_for(lambda: runs.job_names(name) == [f"{name}-a1"], timeout=60, what="the Job")
    service = kubectl.json("service", f"{name}-workers", namespace=namespace)
    assert service["spec"]["clusterIP"] == "None"
    pods = runs.running_pods(name, 1, nodes)
    node_labels = {n["metadata"]["name"]: n["metadata"].get("labels", {})
                   for n in kubectl.json("nodes")["items"]}
    for pod in pods:
        labels = node_labels[pod["spec"]["nodeName"]]
        if gpu_type == "cpu":
            assert GPU_LABEL not in labels, pod["spec"]["nodeName"]
        else:
            assert labels[GPU_LABEL] == gpu_type, pod["spec"]["nodeName"]

    status = runs.wait_phase(name, "Running")
    assert status["attempt"] == 1 and status["activeJob"] == f"{name}-a1"
    assert any(c["type"] == "Pending" for c in status["conditions"])  # it was Pending first
    if gpu_type != "cpu":
        # Pod lifetimes are priced from whole-second timestamps and cost is shown in cents:
        # ended within the second they were bound, they would cost 0.00. Wait for a cent.
        runs.wait_status(name, lambda s: (s.get("cost") or 0) > 0, "cost while running")
    runs.exit_pods(pods, 0)
    status = runs.wait_phase(name, "Succeeded")
    assert status["completionTime"] and status["restarts"] == 0
    assert status["currency"] == "USD"
    if gpu_type != "cpu":  # CPU pods cost cents an hour: seconds of them round to 0.00
        assert status["cost"] > 0 and status["gpuHours"] > 0
    reasons = {e["reason"] for e in runs.events(name)}
    assert {"Created", "Running", "Succeeded"} <= reasons


@pytest.mark.parametrize(("case", "patch", "field"), INVALID_SPECS,
                         ids=[c[0] for c in INVALID_SPECS])
def test_the_api_server_refuses_invalid_specs(case: str, patch: dict, field: str,
                                              kubectl: Kubectl, crd: str,
                                              namespace: str) -> None:
    doc = manifest(case, apply_patch(BASE_SPEC, patch), namespace=namespace)
    result = kubectl.apply(doc, namespace=namespace, check=False)
    assert result.returncode != 0, f"{case} was accepted"
    assert field in result.stderr, result.stderr
