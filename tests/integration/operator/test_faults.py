"""Real faults of the control plane under a running run: the kube-apiserver and etcd
SIGKILLed and started again (same ports, same data), and a node deleted from under the
run's pods. The operator runs throughout as its own process.

After each: the operator never restarted, there is no second Job for the attempt that was
running, the run keeps its status, and the operator still acts on what happens next (a pod
that fails after the fault starts the next attempt), which it can only do if its watches
came back.
"""

from __future__ import annotations

import time

import localcluster
import pytest

from tests.integration.operator.conftest import OperatorProcess, Runs, gpu_run
from tests.support import Kubectl, wait_for

pytestmark = pytest.mark.cluster


def still_in_charge(name: str, runs: Runs, operator: OperatorProcess) -> None:
    """The operator lived through the fault, made nothing twice and still reacts."""
    assert operator.starts == 1 and operator.process is not None
    assert operator.process.poll() is None, operator.log_tail(40)
    assert runs.job_names(name) == [f"{name}-a1"]
    status = runs.wait_phase(name, "Running")
    assert status["attempt"] == 1 and status["restarts"] == 0
    pods = runs.running_pods(name, 1, 2)
    runs.exit_pods(pods[:1], 1)
    status = runs.wait_status(name, lambda s: s.get("attempt") == 2, "attempt 2 after the fault")
    assert status["restarts"] == 1
    wait_for(lambda: runs.job_names(name) == [f"{name}-a2"], timeout=60,
             what="a1 replaced by a2, once")
    runs.running_pods(name, 2, 2)


@pytest.mark.parametrize("component", ["kube-apiserver", "etcd"])
def test_a_killed_control_plane_component_costs_a_running_run_nothing(
    component: str, cluster: localcluster.LocalCluster, namespace: str,
    operator: OperatorProcess, runs: Runs,
) -> None:
    name = "apisurvivor" if component == "kube-apiserver" else "etcdsurvivor"
    runs.apply(gpu_run(name, namespace))
    runs.running_pods(name, 1, 2)
    runs.wait_phase(name, "Running")
    began = time.monotonic()
    cluster.restart(component, kill=True)
    print(f"{component} back in {time.monotonic() - began:.1f} s")
    still_in_charge(name, runs, operator)


def test_a_deleted_node_restarts_the_group_as_a_preemption(
    cluster: localcluster.LocalCluster, kubectl: Kubectl, namespace: str,
    operator: OperatorProcess, runs: Runs,
) -> None:
    runs.apply(gpu_run("nodeless", namespace, runPolicy={"backoffLimit": 0}))
    pods = runs.running_pods("nodeless", 1, 2)
    runs.wait_phase("nodeless", "Running")
    node = pods[0]["spec"]["nodeName"]
    kubectl("delete", "node", node, "--wait=false")
    began = time.monotonic()
    try:
        # The pod garbage collector deletes pods bound to a node that no longer exists
        # (after its 40 s quarantine), marking them DisruptionTarget: a lost node, not a
        # failure of the run, so a backoffLimit of 0 does not end it.
        status = runs.wait_status("nodeless", lambda s: s.get("attempt") == 2,
                                  "attempt 2 after the node went", timeout=180)
        print(f"attempt 2 {time.monotonic() - began:.1f} s after the node was deleted")
        assert status["preemptions"] == 1 and status["restarts"] == 0
        assert status["phase"] != "Failed"
        wait_for(lambda: runs.job_names("nodeless") == ["nodeless-a2"], timeout=60,
                 what="a1 replaced by a2")
    finally:
        cluster.restore_node(node)
    pods = runs.running_pods("nodeless", 2, 2, timeout=120)
    assert all(p["spec"]["nodeName"] for p in pods)
