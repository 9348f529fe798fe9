"""Suspend and resume, deletion, and an operator killed in the middle of its work.

The operator runs as a subprocess, so the kill is a real SIGKILL: no clean-up, no last
status patch. What must hold afterwards: nothing was created twice (one Job per attempt),
no run was lost, and the run still goes on to Succeeded.
"""

from __future__ import annotations

import pytest

from tests.integration.operator.conftest import OperatorProcess, Runs, gpu_run
from tests.support import Kubectl, wait_for

pytestmark = pytest.mark.cluster

OWNED = ("jobs", "services", "configmaps", "serviceaccounts", "roles", "rolebindings")


def owned(kubectl: Kubectl, namespace: str, run: str) -> dict[str, list[str]]:
    out = {}
    for kind in OWNED:
        items = kubectl.json(kind, "-l", f"stylegan.dev/run={run}", namespace=namespace)["items"]
        out[kind] = sorted(i["metadata"]["name"] for i in items)
    return out


def test_suspend_stops_the_pods_and_resume_starts_the_next_attempt(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess, runs: Runs
) -> None:
    runs.apply(gpu_run("pause", namespace))
    runs.running_pods("pause", 1, 2)
    runs.wait_phase("pause", "Running")

    kubectl("patch", "styleganrun", "pause", "--type=merge", "-p", '{"spec":{"suspend":true}}',
            namespace=namespace)
    status = runs.wait_phase("pause", "Suspended")
    assert runs.condition("pause", "Suspended")["reason"] == "SuspendedBySpec"
    job = kubectl.json("job", "pause-a1", namespace=namespace)
    assert job["spec"]["suspend"] is True
    wait_for(lambda: not [p for p in runs.pods("pause", 1)
                          if p["status"].get("phase") == "Running"],
             timeout=60, what="the suspended attempt's pods to stop")

    kubectl("patch", "styleganrun", "pause", "--type=merge", "-p", '{"spec":{"suspend":false}}',
            namespace=namespace)
    runs.running_pods("pause", 2, 2)
    status = runs.wait_phase("pause", "Running")
    assert status["attempt"] == 2 and status["restarts"] == 0 and status["preemptions"] == 0
    wait_for(lambda: runs.job_names("pause") == ["pause-a2"], timeout=60,
             what="the suspended Job replaced")
    reasons = [e["reason"] for e in runs.events("pause")]
    assert "Suspended" in reasons and "Resumed" in reasons


def test_deleting_a_run_removes_everything_it_made(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess, runs: Runs
) -> None:
    runs.apply(gpu_run("gone", namespace))
    runs.running_pods("gone", 1, 2)
    made = owned(kubectl, namespace, "gone")
    assert made == {
        "jobs": ["gone-a1"], "services": ["gone-workers"], "configmaps": ["gone-a1-config"],
        "serviceaccounts": ["gone-trainer"], "roles": ["gone-status"],
        "rolebindings": ["gone-status"],
    }
    kubectl("delete", "styleganrun", "gone", "--wait=false", namespace=namespace)
    wait_for(lambda: not any(owned(kubectl, namespace, "gone").values())
             and not runs.pods("gone"),
             timeout=90, what="the garbage collector to delete what the run made")
    wait_for(lambda: kubectl("get", "styleganrun", "gone", namespace=namespace,
                             check=False).returncode != 0, timeout=30, what="the run gone")


def test_an_operator_killed_mid_reconcile_creates_nothing_twice_and_loses_no_run(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess, runs: Runs
) -> None:
    # 1. Killed as soon as the first Job exists: its status may or may not be written.
    runs.apply(gpu_run("phoenix", namespace))
    wait_for(lambda: runs.job_names("phoenix"), timeout=60, interval=0.05,
             what="the first Job")
    operator.kill()
    operator.start()
    pods = runs.running_pods("phoenix", 1, 2)
    runs.wait_phase("phoenix", "Running")
    assert runs.job_names("phoenix") == ["phoenix-a1"]

    # 2. Killed as soon as a failure's next attempt exists: counted once, created once.
    runs.exit_pods(pods[:1], 1)
    wait_for(lambda: "phoenix-a2" in runs.job_names("phoenix"), timeout=60, interval=0.05,
             what="the second Job")
    operator.kill()
    assert kubectl.json("styleganrun", "phoenix", namespace=namespace)  # the run is there
    operator.start()
    pods = runs.running_pods("phoenix", 2, 2)
    status = runs.wait_phase("phoenix", "Running")
    assert status["attempt"] == 2 and status["restarts"] == 1
    assert runs.job_names("phoenix") == ["phoenix-a2"]
    assert len(kubectl.json("configmaps", "-l", "stylegan.dev/run=phoenix",
                            namespace=namespace)["items"]) == 2  # a1 and a2, once each

    runs.exit_pods(pods, 0)
    status = runs.wait_phase("phoenix", "Succeeded")
    assert status["restarts"] == 1 and operator.starts == 3


def test_a_finished_run_is_deleted_after_its_ttl(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess, runs: Runs
) -> None:
    runs.apply(gpu_run("brief", namespace, runPolicy={"ttlSecondsAfterFinished": 3}))
    pods = runs.running_pods("brief", 1, 2)
    runs.exit_pods(pods, 0)
    runs.wait_phase("brief", "Succeeded")
    wait_for(lambda: kubectl("get", "styleganrun", "brief", namespace=namespace,
                             check=False).returncode != 0,
             timeout=60, what="the run deleted after ttlSecondsAfterFinished")
    wait_for(lambda: not runs.job_names("brief"), timeout=60, what="its Job collected")


def test_a_kueue_run_waits_for_admission_and_is_never_unsuspended_by_the_operator(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess, runs: Runs
) -> None:
    runs.apply(gpu_run("queued", namespace, queueName="team-a"))
    runs.wait_status("queued", lambda s: any(
        c["type"] == "Pending" and c.get("reason") == "QueuedInKueue"
        for c in s.get("conditions", [])), "condition Pending/QueuedInKueue")
    job = kubectl.json("job", "queued-a1", namespace=namespace)
    assert job["spec"]["suspend"] is True
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    assert not runs.pods("queued")
    # Kueue admits the workload: it unsuspends the Job, the operator only follows.
    kubectl("patch", "job", "queued-a1", "--type=merge", "-p", '{"spec":{"suspend":false}}',
            namespace=namespace)
    runs.running_pods("queued", 1, 2)
    status = runs.wait_phase("queued", "Running")
    assert status["attempt"] == 1


def test_the_run_deadline_fails_the_run(
    namespace: str, operator: OperatorProcess, runs: Runs
) -> None:
    runs.apply(gpu_run("hurry", namespace, runPolicy={"activeDeadlineSeconds": 3}))
    runs.running_pods("hurry", 1, 2)
    runs.wait_phase("hurry", "Failed", timeout=60)
    failed = runs.condition("hurry", "Failed")
    assert failed is not None and failed["reason"] == "DeadlineExceeded"


HOLD = "stylegan.dev/test-hold"
"""A finalizer of the test's own: keeps a deleted pod terminating, as a slow kubelet does."""


def test_a_run_recreated_under_its_old_name_adopts_none_of_the_old_pods(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess, runs: Runs
) -> None:
    runs.apply(gpu_run("twin", namespace))
    held = runs.running_pods("twin", 1, 2)[0]["metadata"]
    old_uid = runs.get("twin")["metadata"]["uid"]
    kubectl("patch", "pod", held["name"], "--type=merge",
            "-p", f'{{"metadata":{{"finalizers":["{HOLD}"]}}}}', namespace=namespace)
    try:
        kubectl("delete", "styleganrun", "twin", "--wait=false", namespace=namespace)

        def old_job_gone_and_pod_held() -> bool:
            pod = kubectl.json("pod", held["name"], namespace=namespace)
            return (not runs.jobs("twin") and bool(pod["metadata"].get("deletionTimestamp"))
                    and kubectl("get", "styleganrun", "twin", namespace=namespace,
                                check=False).returncode != 0)

        wait_for(old_job_gone_and_pod_held, timeout=90,
                 what="the old run and its Job gone, one of its pods still terminating")

        runs.apply(gpu_run("twin", namespace))
        assert runs.get("twin")["metadata"]["uid"] != old_uid
        new_pods = {p["metadata"]["uid"] for p in runs.running_pods("twin", 1, 2)}
        assert held["uid"] not in new_pods
        status = runs.wait_status(
            "twin", lambda s: set((s.get("costLedger") or {}).get("open") or {}) >= new_pods,
            what="the new run's ledger to count its own two pods")
        ledger = status["costLedger"]
        # Adopted, the old pod (killed, exit 137) would be priced here and read as a failed
        # pod of attempt 1: a restart and lost work for a run that lost nothing.
        assert held["uid"] not in set(ledger.get("open") or {}) | set(ledger.get("counted") or [])
        status = runs.wait_phase("twin", "Running")
        assert status["attempt"] == 1 and status.get("restarts", 0) == 0
    finally:
        kubectl("patch", "pod", held["name"], "--type=merge",
                "-p", '{"metadata":{"finalizers":null}}', namespace=namespace, check=False)
