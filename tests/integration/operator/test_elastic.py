"""An elastic run on the real control plane starts with the nodes that are free.

A fixed run first takes 6 of the 12 V100 nodes of the test cluster; an elastic run of 1 to 8
nodes (batch 64, 8 GPUs a node: 8, 4, 2 or 1 nodes divide it) then gets a Job of 4 pods, all
scheduled, instead of asking for 8 and waiting for nodes that are busy.
"""

from __future__ import annotations

import pytest

from stylegan_operator.reconcile.capacity import free_nodes
from tests.integration.operator.conftest import OperatorProcess, Runs, gpu_run
from tests.support import Kubectl

pytestmark = pytest.mark.cluster


def cluster_free_v100_nodes(kubectl: Kubectl) -> int:
    nodes = kubectl.json("nodes")["items"]
    pods = kubectl.json("pods", "--all-namespaces")["items"]
    return free_nodes(nodes, pods, "nvidia-tesla-v100", 8)


def test_an_elastic_run_starts_on_the_nodes_that_are_free(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess, runs: Runs
) -> None:
    runs.apply(gpu_run("busy", namespace, resources={"nodes": 6}, training={"batchSize": 48}))
    runs.running_pods("busy", 1, 6)
    free = cluster_free_v100_nodes(kubectl)
    assert 4 <= free <= 6, f"{free} V100 nodes free: the cluster is not as this test expects"

    runs.apply(gpu_run("stretchy", namespace,
                       resources={"nodes": None, "minNodes": 1, "maxNodes": 8}))
    pods = runs.running_pods("stretchy", 1, 4)
    assert all(p["spec"].get("nodeName") for p in pods)
    (job,) = runs.jobs("stretchy")
    assert job["spec"]["completions"] == 4
    (container,) = [c for c in job["spec"]["template"]["spec"]["containers"]
                    if c["name"] == "trainer"]
    command = " ".join(container.get("command", []) + container.get("args", []))
    assert "--nnodes 4" in command or "--nnodes=4" in command, command
    status = runs.wait_status("stretchy", lambda s: s.get("shape") == "4x8", "shape 4x8")
    assert status["phase"] in ("Running", "Pending")
