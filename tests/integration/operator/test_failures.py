"""Failures on the real control plane: a crashed attempt, an eviction, exit 64, no GPUs.

kwok plays the kubelet: a test ends a pod's container with an exit code by annotating the
pod, and an eviction through the Eviction API gives the pod the ``DisruptionTarget``
condition, as on a real node.
"""

from __future__ import annotations

import json

import pytest

from tests.integration.operator.conftest import OperatorProcess, Runs, gpu_run
from tests.support import Kubectl, wait_for

pytestmark = pytest.mark.cluster


def test_a_failed_pod_restarts_the_group_as_the_next_attempt(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess, runs: Runs
) -> None:
    runs.apply(gpu_run("crash", namespace))
    pods = runs.running_pods("crash", 1, 2)
    runs.wait_phase("crash", "Running")
    # The trainer's report (as its rank 0 would patch it): half a kimg past a checkpoint.
    progress = {"status": {"progress": {
        "kimg": 12.5, "totalKimg": 1000, "secPerKimg": 36.0,
        "lastCheckpoint": {"uri": "gs://ckpt/crash/checkpoints/ckpt-000012000.pt",
                           "kimg": 12.0}}}}  # fmt: skip
    kubectl("patch", "styleganrun", "crash", "--subresource=status", "--type=merge",
            "-p", json.dumps(progress), namespace=namespace)
    runs.wait_status("crash", lambda s: s.get("kimg") == 12.5, "status.kimg from the report")
    runs.exit_pods(pods[:1], 1)

    status = runs.wait_status("crash", lambda s: s.get("attempt") == 2, "attempt 2")
    assert status["restarts"] == 1 and status["preemptions"] == 0
    wait_for(lambda: runs.job_names("crash") == ["crash-a2"], timeout=60,
             what="a1 deleted and a2 created")
    runs.running_pods("crash", 2, 2)
    status = runs.wait_phase("crash", "Running")
    assert status["activeJob"] == "crash-a2"
    events = runs.events("crash")
    assert any(e["reason"] == "AttemptFailed" and "exited with 1" in e["message"]
               for e in events)
    # 0.5 kimg x 36 s/kimg = 18 s of 16 GPUs at 2.48 USD/GPU-hour. Events are posted in the
    # background, so wait for this one rather than read it once.
    def work_lost() -> list[dict]:
        return [e for e in runs.events("crash") if e["reason"] == "WorkLost"]

    wait_for(work_lost, timeout=30, what="the WorkLost event")
    (lost,) = work_lost()
    assert lost["type"] == "Warning"
    assert lost["message"] == ("attempt 1 lost 0.5 kimg of training (reported kimg 12.5, "
                               "last checkpoint at kimg 12), costing 0.20 USD")


def test_an_eviction_restarts_the_group_without_using_the_backoff_limit(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess, runs: Runs
) -> None:
    runs.apply(gpu_run("evicted", namespace, runPolicy={"backoffLimit": 0}))
    pods = runs.running_pods("evicted", 1, 2)
    runs.wait_phase("evicted", "Running")
    victim = pods[1]["metadata"]["name"]
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction",
                "metadata": {"name": victim, "namespace": namespace}}
    kubectl("create", "--raw", f"/api/v1/namespaces/{namespace}/pods/{victim}/eviction",
            "-f", "-", input=json.dumps(eviction))

    status = runs.wait_status("evicted", lambda s: s.get("attempt") == 2, "attempt 2")
    assert status["preemptions"] == 1 and status["restarts"] == 0
    runs.running_pods("evicted", 2, 2)
    status = runs.wait_phase("evicted", "Running")
    assert status["preemptions"] == 1 and status["restarts"] == 0
    assert any(e["reason"] == "Preempted" for e in runs.events("evicted"))


def test_exit_64_fails_the_run_at_once_with_the_message(
    namespace: str, operator: OperatorProcess, runs: Runs
) -> None:
    runs.apply(gpu_run("badconfig", namespace))
    pods = runs.running_pods("badconfig", 1, 2)
    runs.exit_pods(pods[:1], 64)
    status = runs.wait_phase("badconfig", "Failed")
    failed = runs.condition("badconfig", "Failed")
    assert failed is not None and failed["reason"] == "BadConfiguration"
    assert "64" in failed["message"]
    assert status["restarts"] == 0 and status["attempt"] == 1
    assert runs.job_names("badconfig") == ["badconfig-a1"]  # nothing restarted


def test_a_gpu_type_no_node_has_leaves_the_run_pending_with_the_schedulers_reason(
    namespace: str, operator: OperatorProcess, runs: Runs
) -> None:
    runs.apply(gpu_run("nol4", namespace, resources={"gpuType": "nvidia-l4"}))
    status = runs.wait_status(
        "nol4",
        lambda s: any(c["type"] == "Pending" and c.get("reason") == "Unschedulable"
                      for c in s.get("conditions", [])),
        "condition Pending/Unschedulable")
    assert status["phase"] == "Pending"
    pending = runs.condition("nol4", "Pending")
    assert pending is not None and "nodes are available" in pending["message"]
    assert any(e["reason"] == "Unschedulable" for e in runs.events("nol4"))
