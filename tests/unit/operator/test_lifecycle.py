"""The run lifecycle as pure decisions: observed state and time in, a plan out.

A small in-memory :class:`World` applies each plan the way ``kube.apply`` would (creates,
Job patches, deletions, the status merge patch), so sequences of reconciles can be played:
create, run, fail, restart, suspend, resume, finish. Pods are made by hand with the states
the kubelet (kwok in the cluster tests) would give them.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from tests.unit.operator.invalid_specs import apply_patch

from stylegan_operator.cost.pricing import PriceCatalog
from stylegan_operator.reconcile import render
from stylegan_operator.reconcile.children import (
    ANNOTATION_PREEMPTIONS,
    ANNOTATION_REASON,
    ANNOTATION_RESTARTS,
)
from stylegan_operator.reconcile.conditions import (
    FAILED,
    PENDING,
    RESTARTING,
    RUNNING,
    SUCCEEDED,
    SUSPENDED,
    condition,
    set_condition,
)
from stylegan_operator.reconcile.decide import decide, wants_timer
from stylegan_operator.reconcile.observe import LifecycleConfig, Observed, _attempt_of
from stylegan_operator.reconcile.plan import Plan, diff_status

T0 = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
UID = "6f1c2e7a-0000-4000-8000-000000000001"

# A GPU run: 2 nodes x 4 V100, 1000 kimg, checkpoints on GCS, priced at 2.00 USD/GPU-hour.
SPEC: dict[str, Any] = {
    "model": {"resolution": 256, "preset": "paper256"},
    "training": {"kimg": 1000, "batchSize": 32, "snapshotKimg": 50},
    "dataset": {"uri": "gs://datasets/ffhq256.zip"},
    "resources": {"nodes": 2, "gpusPerNode": 4, "gpuType": "nvidia-tesla-v100"},
    "checkpoints": {"uri": "gs://ckpt/faces"},
    "cost": {"pricePerGpuHour": 2.0, "currency": "USD"},
    "runPolicy": {"backoffLimit": 2},
}


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def make_run(patch: dict[str, Any] | None = None, status: dict[str, Any] | None = None,
             name: str = "faces") -> dict[str, Any]:
    return {
        "apiVersion": "stylegan.dev/v1alpha1",
        "kind": "StyleGANRun",
        "metadata": {"name": name, "namespace": "ml", "uid": UID, "generation": 1,
                     "creationTimestamp": iso(T0)},
        "spec": apply_patch(SPEC, patch or {}),
        "status": copy.deepcopy(status or {}),
    }


def cond(type_: str, status: str = "True", reason: str = "", message: str = "") -> dict:
    return {"type": type_, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": iso(T0)}


def make_pod(job: dict[str, Any], index: int, phase: str = "Running", *,
             start: datetime = T0, end: datetime | None = None, exit_code: int | None = None,
             message: str | None = None, conditions: list[dict] | None = None,
             waiting: dict | None = None, scheduled: bool = True, uid: str | None = None,
             deleting: bool = False) -> dict[str, Any]:
    """A trainer pod of ``job`` in the state the kubelet would report."""
    template = job["spec"]["template"]
    name = f"{job['metadata']['name']}-{index}-x"
    state: dict[str, Any] = {"running": {"startedAt": iso(start)}}
    if exit_code is not None:
        state = {"terminated": {"exitCode": exit_code, "finishedAt": iso(end or start),
                                "reason": "Completed" if exit_code == 0 else "Error"}}
        if message:
            state["terminated"]["message"] = message
    if waiting is not None:
        state = {"waiting": waiting}
    conds = [cond("PodScheduled", "True" if scheduled else "False")]
    conds[0]["lastTransitionTime"] = iso(start)
    conds += conditions or []
    meta: dict[str, Any] = {
        "name": name, "namespace": "ml", "uid": uid or f"uid-{name}",
        "labels": dict(template["metadata"]["labels"]),
        "annotations": dict(template["metadata"]["annotations"]),
        "ownerReferences": [{"kind": "Job", "name": job["metadata"]["name"],
                             "uid": job["metadata"]["uid"], "controller": True}],
        "creationTimestamp": iso(start),
    }
    if deleting:
        meta["deletionTimestamp"] = iso(start + timedelta(seconds=30))
    statuses = [{"name": "trainer", "image": template["spec"]["containers"][0]["image"],
                 "state": state}]
    return {
        "metadata": meta,
        "spec": {**copy.deepcopy(template["spec"]),
                 **({"nodeName": f"v100-{index}"} if scheduled else {})},
        "status": {"phase": phase, "conditions": conds,
                   **({"containerStatuses": statuses} if scheduled else {}),
                   **({"startTime": iso(start)} if scheduled else {})},
    }


class World:
    """A run, the objects it owns, and plans applied to them as kube.apply would."""

    def __init__(self, run: dict[str, Any], config: LifecycleConfig | None = None) -> None:
        self.run = run
        self.jobs: dict[str, dict[str, Any]] = {}
        self.pods: list[dict[str, Any]] = []
        self.config_maps: dict[str, dict[str, Any]] = {}
        self.others: dict[tuple[str, str], dict[str, Any]] = {}
        self.config = config or LifecycleConfig()
        self.plans: list[Plan] = []
        self.run_deleted = False

    def observed(self) -> Observed:
        service = self.others.get(("Service", render.service_name(self.run["metadata"]["name"])))
        accounts = [o for (kind, _), o in self.others.items()
                    if kind in ("ServiceAccount", "Role", "RoleBinding")]
        return Observed.from_api(self.run, self.jobs.values(), self.pods,
                                 self.config_maps.values(), service, accounts)

    def step(self, now: datetime) -> Plan:
        plan = decide(self.run, self.observed(), now, self.config)
        self.plans.append(plan)
        for obj in plan.creates:
            name = obj["metadata"]["name"]
            if obj["kind"] == "Job":
                if name not in self.jobs:
                    job = copy.deepcopy(obj)
                    job["metadata"]["uid"] = f"job-uid-{name}"
                    job["status"] = {}
                    self.jobs[name] = job
            elif obj["kind"] == "ConfigMap":
                self.config_maps.setdefault(name, copy.deepcopy(obj))
            else:
                self.others.setdefault((obj["kind"], name), copy.deepcopy(obj))
        for name, patch in plan.job_patches:
            if name in self.jobs:
                self.jobs[name]["spec"].update(patch["spec"])
        for kind, name in plan.deletes:
            assert kind == "Job"
            self.jobs.pop(name, None)
        for name in plan.job_stops:  # foreground deletion: terminating until its pods end
            if name in self.jobs:
                self.jobs[name]["metadata"]["deletionTimestamp"] = "2026-05-01T00:00:00Z"
        status = self.run["status"]
        for key, value in plan.status.items():
            if value is None:
                status.pop(key, None)
            else:
                status[key] = copy.deepcopy(value)
        self.run_deleted = self.run_deleted or plan.delete_run
        return plan

    # -- what the Job controller and kubelet would do -----------------------------------
    def job(self, attempt: int) -> dict[str, Any]:
        return self.jobs[render.job_name(self.run["metadata"]["name"], attempt)]

    def start_pods(self, attempt: int, start: datetime = T0, **kw: Any) -> list[dict]:
        job = self.job(attempt)
        pods = [make_pod(job, i, start=start, **kw) for i in range(job["spec"]["parallelism"])]
        self.pods += pods
        return pods

    def set_job_condition(self, attempt: int, type_: str, reason: str = "",
                          message: str = "", completion: datetime | None = None) -> None:
        job = self.job(attempt)
        job["status"].setdefault("conditions", []).append(cond(type_, "True", reason, message))
        if completion:
            job["status"]["completionTime"] = iso(completion)

    def finish_pods(self, attempt: int, exit_code: int, end: datetime,
                    message: str | None = None) -> None:
        for i, pod in enumerate(self.pods):
            if _attempt_of(pod) == attempt and pod["status"]["phase"] == "Running":
                job = self.job(attempt)
                self.pods[i] = make_pod(
                    job, int(pod["metadata"]["name"].split("-")[-2]),
                    "Succeeded" if exit_code == 0 else "Failed",
                    start=T0, end=end, exit_code=exit_code, message=message,
                    uid=pod["metadata"]["uid"])

    @property
    def status(self) -> dict[str, Any]:
        return self.run["status"]

    def condition(self, type_: str) -> dict[str, Any] | None:
        return condition(self.status, type_)  # type: ignore[return-value]


def reasons(plan: Plan) -> list[str]:
    return [e.reason for e in plan.events]


def running_world(patch: dict | None = None, **config: Any) -> World:
    """A run whose attempt 1 runs with every pod up."""
    world = World(make_run(patch), LifecycleConfig(**config))
    world.step(T0)
    world.start_pods(1)
    world.step(T0 + timedelta(seconds=5))
    assert world.status["phase"] == RUNNING
    return world


# --------------------------------------------------------------------------- creation
def test_a_new_run_creates_its_service_config_job_and_status_account() -> None:
    world = World(make_run())
    plan = world.step(T0)
    kinds = [o["kind"] for o in plan.creates]
    assert kinds == ["ServiceAccount", "Role", "RoleBinding", "Service", "ConfigMap", "Job"]
    job = plan.created("Job")[0]
    assert job["metadata"]["name"] == "faces-a1"
    assert job["metadata"]["annotations"][ANNOTATION_REASON] == "Initial"
    assert job["metadata"]["annotations"][ANNOTATION_RESTARTS] == "0"
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "faces-trainer"
    assert pod["automountServiceAccountToken"] is True
    assert job["spec"]["suspend"] is False
    role = plan.created("Role")[0]
    assert role["rules"] == [{"apiGroups": ["stylegan.dev"], "resources": ["styleganruns/status"],
                              "resourceNames": ["faces"], "verbs": ["get", "patch"]}]
    binding = plan.created("RoleBinding")[0]
    assert binding["subjects"][0]["name"] == "faces-trainer"
    for obj in plan.creates:
        assert obj["metadata"]["ownerReferences"][0]["uid"] == UID
    assert plan.phase == PENDING
    assert plan.status["attempt"] == 1 and plan.status["activeJob"] == "faces-a1"
    assert plan.status["startTime"] == iso(T0)
    assert plan.status["shape"] == "2x4" and plan.status["totalKimg"] == 1000
    assert reasons(plan) == ["Created"]
    assert world.condition("Created")["status"] == "True"


def test_deciding_twice_on_the_same_state_creates_the_same_names() -> None:
    run = make_run()
    first = decide(run, Observed(), T0)
    second = decide(run, Observed(), T0 + timedelta(seconds=1))
    names = [(o["kind"], o["metadata"]["name"]) for o in first.creates]
    assert names == [(o["kind"], o["metadata"]["name"]) for o in second.creates]


def test_a_run_that_names_its_own_service_account_gets_the_role_bound_to_it() -> None:
    plan = decide(make_run({"resources": {"serviceAccountName": "gcs-writer"}}), Observed(), T0)
    assert "ServiceAccount" not in [o["kind"] for o in plan.creates]
    assert plan.created("RoleBinding")[0]["subjects"][0]["name"] == "gcs-writer"
    assert plan.created("Job")[0]["spec"]["template"]["spec"]["serviceAccountName"] == "gcs-writer"


def test_without_status_reports_no_token_is_mounted() -> None:
    plan = decide(make_run(), Observed(), T0, LifecycleConfig(report_status=False))
    assert [o["kind"] for o in plan.creates] == ["Service", "ConfigMap", "Job"]
    pod = plan.created("Job")[0]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False and "serviceAccountName" not in pod


def test_the_configured_trainer_image_is_used_when_the_spec_names_none() -> None:
    plan = decide(make_run(), Observed(), T0, LifecycleConfig(trainer_image="reg/trainer:9"))
    assert plan.created("Job")[0]["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "reg/trainer:9")


# --------------------------------------------------------------------------- running
def test_pods_all_running_make_the_run_running_once() -> None:
    world = World(make_run())
    world.step(T0)
    world.start_pods(1)
    plan = world.step(T0 + timedelta(seconds=5))
    assert plan.phase == RUNNING and plan.creates == []
    assert reasons(plan) == ["Running"]
    assert world.condition("Running")["status"] == "True"
    assert world.condition("Pending")["status"] == "False"
    again = world.step(T0 + timedelta(seconds=10))
    assert again.events == [] and again.creates == []


def test_unschedulable_pods_keep_the_run_pending_with_the_schedulers_message() -> None:
    world = World(make_run({"resources": {"gpuType": "nvidia-l4"}}))
    world.step(T0)
    message = "0/10 nodes are available: 10 node(s) didn't match Pod's node affinity/selector."
    unscheduled = cond("PodScheduled", "False", "Unschedulable", message)
    for i in range(2):
        pod = make_pod(world.job(1), i, "Pending", scheduled=False)
        pod["status"]["conditions"] = [unscheduled]
        world.pods.append(pod)
    plan = world.step(T0 + timedelta(seconds=5))
    assert plan.phase == PENDING
    pending = world.condition("Pending")
    assert pending["reason"] == "Unschedulable" and message in pending["message"]
    assert reasons(plan) == ["Unschedulable"]
    assert world.step(T0 + timedelta(seconds=10)).events == []  # said once


def test_a_job_without_pods_is_pending_with_a_hint() -> None:
    world = World(make_run())
    world.step(T0)
    plan = world.step(T0 + timedelta(seconds=1))
    assert plan.phase == PENDING and world.condition("Pending")["reason"] == "PodsNotCreated"
    assert "kubectl describe job faces-a1" in plan.status["message"]


def test_image_pull_errors_fail_the_run_after_the_grace_period() -> None:
    world = World(make_run(), LifecycleConfig(image_pull_grace_seconds=120))
    world.step(T0)
    waiting = {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}
    world.start_pods(1, phase="Pending", waiting=waiting)
    early = world.step(T0 + timedelta(seconds=60))
    assert early.phase == PENDING and world.condition("Pending")["reason"] == "ImagePullBackOff"
    late = world.step(T0 + timedelta(seconds=121))
    assert late.phase == FAILED
    assert world.condition("Failed")["reason"] == "ImagePullFailed"
    # Stop paying: the Job is deleted, not suspended (Kueue would unsuspend a queued one).
    assert late.job_stops == ["faces-a1"] and late.job_patches == []
    assert world.step(T0 + timedelta(seconds=130)).job_stops == []  # asked once


def test_an_invalid_image_name_fails_at_once() -> None:
    world = World(make_run())
    world.step(T0)
    world.start_pods(1, phase="Pending", waiting={"reason": "InvalidImageName", "message": "x"})
    assert world.step(T0 + timedelta(seconds=1)).phase == FAILED


# --------------------------------------------------------------------------- finishing
def test_a_completed_job_makes_the_run_succeed_and_it_never_recreates_its_job() -> None:
    world = running_world()
    end = T0 + timedelta(minutes=30)
    world.finish_pods(1, 0, end)
    world.set_job_condition(1, "Complete", completion=end)
    plan = world.step(end + timedelta(seconds=1))
    assert plan.phase == SUCCEEDED and reasons(plan) == ["Succeeded"]
    assert plan.status["completionTime"] == iso(end)
    world.jobs.clear()  # even if someone deletes the Job
    later = world.step(end + timedelta(minutes=5))
    assert later.creates == [] and later.phase == SUCCEEDED


def test_ttl_deletes_a_finished_run_only_when_it_is_due() -> None:
    world = running_world({"runPolicy": {"ttlSecondsAfterFinished": 600}})
    end = T0 + timedelta(minutes=30)
    world.finish_pods(1, 0, end)
    world.set_job_condition(1, "Complete", completion=end)
    assert not world.step(end + timedelta(seconds=1)).delete_run
    assert wants_timer(world.run)  # the timer still has the TTL to watch
    assert not world.step(end + timedelta(seconds=599)).delete_run
    assert world.step(end + timedelta(seconds=600)).delete_run


def test_a_finished_run_without_ttl_needs_no_timer() -> None:
    run = make_run(status={"phase": SUCCEEDED})
    assert not wants_timer(run)
    assert wants_timer(make_run(status={"phase": RUNNING}))
    deleting = make_run()
    deleting["metadata"]["deletionTimestamp"] = iso(T0)
    assert not wants_timer(deleting)


def test_exit_64_fails_the_run_at_once_with_the_trainers_message() -> None:
    world = running_world()
    end = T0 + timedelta(minutes=1)
    words = "dataset: gs://datasets/ffhq256.zip holds 64x64 images, not 256x256"
    world.finish_pods(1, 64, end, message=words)
    world.set_job_condition(1, "Failed", "PodFailurePolicy",
                            "Container trainer for pod ml/faces-a1-0 failed with exit code 64")
    plan = world.step(end)
    assert plan.phase == FAILED and plan.creates == []
    failed = world.condition("Failed")
    assert failed["reason"] == "BadConfiguration" and words in failed["message"]
    assert reasons(plan) == ["BadConfiguration"]
    assert world.status["restarts"] == 0


def test_exit_64_without_a_termination_message_quotes_the_job() -> None:
    world = running_world()
    world.finish_pods(1, 64, T0)
    world.set_job_condition(1, "Failed", "PodFailurePolicy", "failed with exit code 64")
    world.step(T0 + timedelta(seconds=30))
    assert "exit code 64" in world.condition("Failed")["message"]


# --------------------------------------------------------------------------- restarts
def fail_attempt(world: World, attempt: int, when: datetime, code: int = 1) -> Plan:
    world.finish_pods(attempt, code, when)
    world.set_job_condition(attempt, "Failed", "BackoffLimitExceeded",
                            "Job has reached the specified backoff limit")
    return world.step(when)


def test_a_failed_attempt_restarts_the_whole_group_from_the_newest_checkpoint() -> None:
    world = running_world()
    ckpt = "gs://ckpt/faces/network-snapshot-000120.pt"
    world.status["progress"] = {"kimg": 130.0, "secPerKimg": 10.0,
                                "lastCheckpoint": {"uri": ckpt, "kimg": 120.0}}
    plan = fail_attempt(world, 1, T0 + timedelta(minutes=10))
    assert plan.phase == RESTARTING
    assert ("Job", "faces-a1") in plan.deletes
    job = plan.created("Job")[0]
    assert job["metadata"]["name"] == "faces-a2"
    assert job["metadata"]["annotations"][render.ANNOTATION_RESUME] == ckpt
    assert job["metadata"]["annotations"][ANNOTATION_RESTARTS] == "1"
    config = plan.created("ConfigMap")[0]
    # The annotation is what the operator knew; the trainer reads latest.json at start-up.
    assert "resume: latest\n" in config["data"]["train.yaml"]
    assert ckpt not in config["data"]["train.yaml"]
    assert world.status["restarts"] == 1 and world.status["preemptions"] == 0
    assert world.status["attempt"] == 2 and world.status["activeJob"] == "faces-a2"
    assert reasons(plan) == ["AttemptFailed", "WorkLost"]
    assert "exited with 1" in plan.events[0].message
    # 10 kimg lost at 10 s/kimg on 8 GPUs at 2 USD/GPU-hour
    assert world.status["lostWorkCostUsd"] == pytest.approx(10 * 10 / 3600 * 8 * 2.0)
    lost = plan.events[1]
    assert lost.type == "Warning"
    assert lost.message == ("attempt 1 lost 10 kimg of training (reported kimg 130, "
                            "last checkpoint at kimg 120), costing 0.44 USD")
    world.start_pods(2)
    again = world.step(T0 + timedelta(minutes=11))
    assert again.phase == RUNNING and world.condition("Restarting")["status"] == "False"


def test_restarts_stop_at_the_backoff_limit() -> None:
    world = running_world()  # backoffLimit 2
    for attempt in (1, 2):
        assert fail_attempt(world, attempt, T0 + timedelta(minutes=attempt)).phase == RESTARTING
        world.start_pods(attempt + 1)
    plan = fail_attempt(world, 3, T0 + timedelta(minutes=5))
    assert plan.phase == FAILED and plan.creates == []
    assert world.condition("Failed")["reason"] == "BackoffLimitExceeded"
    assert world.status["restarts"] == 2


def test_without_durable_checkpoints_a_restart_resumes_from_latest_in_scratch() -> None:
    world = running_world({"checkpoints": None})
    world.status["progress"] = {"lastCheckpoint": {"uri": "/tmp/stylegan/run/x.pt"}}
    plan = fail_attempt(world, 1, T0 + timedelta(minutes=1))
    assert "resume: latest" in plan.created("ConfigMap")[0]["data"]["train.yaml"]


def test_a_disrupted_pod_restarts_the_group_as_a_preemption_that_does_not_count() -> None:
    world = running_world({"runPolicy": {"backoffLimit": 0}})
    evicted = make_pod(world.job(1), 1, "Failed", exit_code=137, end=T0, conditions=[
        cond("DisruptionTarget", "True", "EvictionByEvictionAPI", "Eviction API: evicting")])
    world.pods[1] = evicted
    plan = world.step(T0 + timedelta(minutes=1))
    assert plan.phase == RESTARTING and reasons(plan) == ["Preempted"]
    assert world.status["preemptions"] == 1 and world.status["restarts"] == 0
    assert plan.created("Job")[0]["metadata"]["annotations"][ANNOTATION_PREEMPTIONS] == "1"
    assert ("Job", "faces-a1") in plan.deletes


def test_a_preemption_reports_the_work_lost_in_the_runs_currency() -> None:
    world = running_world({"cost": {"currency": "JPY", "pricePerGpuHour": 218.0}})
    world.status["progress"] = {"kimg": 48.25, "secPerKimg": 36.0,
                                "lastCheckpoint": {"uri": "gs://ckpt/faces/c.pt", "kimg": 40.0}}
    world.pods[1] = make_pod(world.job(1), 1, "Failed", exit_code=137, end=T0, conditions=[
        cond("DisruptionTarget", "True", "PreemptionByScheduler")])
    plan = world.step(T0 + timedelta(minutes=1))
    assert reasons(plan) == ["Preempted", "WorkLost"]
    # 8.25 kimg x 36 s/kimg = 297 s of 8 GPUs at 218 JPY/GPU-hour = 143.88 JPY
    assert plan.events[1].message == ("attempt 1 lost 8.25 kimg of training (reported kimg "
                                      "48.25, last checkpoint at kimg 40), costing 144 JPY")
    assert world.status["lostWorkCostUsd"] == pytest.approx(297 / 3600 * 8 * 2.0)


def test_work_lost_before_any_checkpoint_is_the_whole_attempt() -> None:
    world = running_world()
    world.status["progress"] = {"kimg": 3.5, "secPerKimg": 10.0}
    plan = fail_attempt(world, 1, T0 + timedelta(minutes=2))
    (lost,) = [e for e in plan.events if e.reason == "WorkLost"]
    assert "lost 3.5 kimg" in lost.message and "no checkpoint yet" in lost.message


def test_work_lost_without_a_measured_speed_has_no_cost() -> None:
    world = running_world()
    world.status["progress"] = {"kimg": 0.012}
    plan = fail_attempt(world, 1, T0 + timedelta(minutes=2))
    (lost,) = [e for e in plan.events if e.reason == "WorkLost"]
    assert "lost 0.012 kimg" in lost.message and "cost not known" in lost.message
    assert "lostWorkCostUsd" not in world.status


def test_no_work_lost_event_before_the_trainer_reports_progress() -> None:
    world = running_world()
    plan = fail_attempt(world, 1, T0 + timedelta(minutes=1))
    assert plan.phase == RESTARTING and reasons(plan) == ["AttemptFailed"]


def test_a_failed_job_with_a_disrupted_pod_counts_as_a_preemption() -> None:
    world = running_world({"runPolicy": {"backoffLimit": 0}})
    world.pods[0] = make_pod(world.job(1), 0, "Failed", exit_code=137, conditions=[
        cond("DisruptionTarget", "True", "PreemptionByScheduler")])
    world.set_job_condition(1, "Failed", "BackoffLimitExceeded")
    plan = world.step(T0 + timedelta(minutes=1))
    assert plan.phase == RESTARTING and world.status["preemptions"] == 1


def test_a_crash_between_creating_the_next_job_and_writing_the_status_loses_no_count() -> None:
    world = running_world()
    status_before = copy.deepcopy(world.status)
    fail_attempt(world, 1, T0 + timedelta(minutes=1))
    world.run["status"] = status_before  # the status write never happened
    plan = world.step(T0 + timedelta(minutes=2))
    assert plan.created("Job") == []  # a2 exists: nothing is created twice
    assert world.status["attempt"] == 2 and world.status["restarts"] == 1


def test_a_stale_job_left_by_a_crash_is_deleted() -> None:
    world = running_world()
    fail_attempt(world, 1, T0 + timedelta(minutes=1))
    old = make_run(status=world.status)
    world.jobs["faces-a1"] = copy.deepcopy(world.jobs["faces-a2"])
    world.jobs["faces-a1"]["metadata"]["name"] = "faces-a1"
    world.jobs["faces-a1"]["metadata"]["labels"][render.LABEL_ATTEMPT] = "1"
    plan = decide(old, world.observed(), T0 + timedelta(minutes=2))
    assert ("Job", "faces-a1") in plan.deletes and plan.created("Job") == []


def test_a_job_deleted_by_hand_is_replaced_by_the_next_attempt_without_counting() -> None:
    world = running_world()
    world.jobs.clear()
    world.pods.clear()
    plan = world.step(T0 + timedelta(minutes=1))
    assert plan.created("Job")[0]["metadata"]["name"] == "faces-a2"
    assert reasons(plan) == ["JobDeleted"]
    assert world.status["restarts"] == 0 and world.status["preemptions"] == 0


def test_missing_service_and_config_map_are_recreated_for_a_live_attempt() -> None:
    world = running_world()
    world.others.pop(("Service", "faces-workers"))
    world.config_maps.clear()
    plan = world.step(T0 + timedelta(minutes=1))
    assert sorted(o["kind"] for o in plan.creates) == ["ConfigMap", "Service"]


# --------------------------------------------------------------------------- suspend
def test_suspend_suspends_the_job_and_resume_starts_a_new_attempt() -> None:
    world = running_world()
    world.run["spec"]["suspend"] = True
    plan = world.step(T0 + timedelta(minutes=1))
    assert plan.job_patches == [("faces-a1", {"spec": {"suspend": True}})]
    assert plan.phase == SUSPENDED and reasons(plan) == ["Suspended"]
    assert world.condition("Suspended")["reason"] == "SuspendedBySpec"
    world.job(1)["status"]["conditions"] = [cond("Suspended")]
    world.pods.clear()  # the Job controller deleted them
    assert world.step(T0 + timedelta(minutes=2)).events == []
    world.run["spec"]["suspend"] = False
    resumed = world.step(T0 + timedelta(minutes=3))
    assert resumed.created("Job")[0]["metadata"]["name"] == "faces-a2"
    assert ("Job", "faces-a1") in resumed.deletes
    assert resumed.phase == PENDING and reasons(resumed) == ["Resumed"]
    assert world.status["restarts"] == 0 and world.status["preemptions"] == 0


def test_a_resumed_attempt_pins_no_checkpoint_and_takes_the_current_resume_from() -> None:
    """Issue 14: the attempt's immutable ConfigMap must not fix the checkpoint it starts from."""
    world = running_world({"checkpoints": {"resumeFrom": "gs://pretrained/ffhq.pt"}})
    known = "gs://ckpt/faces/checkpoints/ckpt-000120000.pt"
    world.status["progress"] = {"kimg": 125.0, "lastCheckpoint": {"uri": known, "kimg": 120.0}}
    world.run["spec"]["suspend"] = True
    world.step(T0 + timedelta(minutes=1))
    world.job(1)["status"]["conditions"] = [cond("Suspended")]
    world.pods.clear()  # meanwhile the stopping pods wrote a SIGTERM checkpoint at kimg 125
    world.run["spec"]["suspend"] = False
    world.run["spec"]["checkpoints"]["resumeFrom"] = "gs://pretrained/ffhq-v2.pt"
    resumed = world.step(T0 + timedelta(minutes=3))
    job = resumed.created("Job")[0]
    assert job["metadata"]["annotations"][render.ANNOTATION_RESUME] == known
    options = yaml.safe_load(resumed.created("ConfigMap")[0]["data"]["train.yaml"])
    assert options["resume"] == "latest" and options["checkpoint_uri"] == "gs://ckpt/faces"
    assert options["resume_fallback"] == "gs://pretrained/ffhq-v2.pt"
    # A ConfigMap someone deleted comes back the same: it never held a checkpoint to restore.
    world.config_maps.clear()
    again = world.step(T0 + timedelta(minutes=4))
    assert yaml.safe_load(again.created("ConfigMap")[0]["data"]["train.yaml"]) == options


def test_a_run_created_suspended_creates_no_job_until_resumed() -> None:
    world = World(make_run({"suspend": True}))
    plan = world.step(T0)
    assert plan.created("Job") == [] and plan.phase == SUSPENDED
    world.run["spec"]["suspend"] = False
    resumed = world.step(T0 + timedelta(seconds=1))
    assert resumed.created("Job")[0]["metadata"]["name"] == "faces-a1"


def test_kueue_runs_wait_in_the_queue_and_the_operator_never_unsuspends_them() -> None:
    world = World(make_run({"queueName": "team-a"}))
    plan = world.step(T0)
    job = plan.created("Job")[0]
    assert job["spec"]["suspend"] is True
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    queued = world.step(T0 + timedelta(seconds=1))
    assert queued.phase == PENDING and world.condition("Pending")["reason"] == "QueuedInKueue"
    assert queued.job_patches == [] and reasons(queued) == ["QueuedInKueue"]
    assert world.step(T0 + timedelta(seconds=2)).events == []
    world.job(1)["spec"]["suspend"] = False  # Kueue admits it
    world.start_pods(1)
    assert world.step(T0 + timedelta(seconds=3)).phase == RUNNING


def test_suspending_a_kueue_run_deletes_its_job_and_resume_makes_the_next() -> None:
    world = World(make_run({"queueName": "team-a"}))
    world.step(T0)
    world.job(1)["spec"]["suspend"] = False
    world.start_pods(1)
    world.step(T0 + timedelta(seconds=1))
    world.run["spec"]["suspend"] = True
    plan = world.step(T0 + timedelta(seconds=2))
    assert plan.deletes == [("Job", "faces-a1")] and plan.phase == SUSPENDED
    world.pods.clear()
    world.run["spec"]["suspend"] = False
    resumed = world.step(T0 + timedelta(seconds=3))
    assert resumed.created("Job")[0]["metadata"]["name"] == "faces-a2"
    assert reasons(resumed) == ["Resumed"]


# --------------------------------------------------------------------------- deadline
def test_the_run_deadline_counts_every_attempt_and_fails_the_run() -> None:
    world = running_world({"runPolicy": {"activeDeadlineSeconds": 3600}})
    assert world.job(1)["spec"]["activeDeadlineSeconds"] == 3600
    fail_attempt(world, 1, T0 + timedelta(minutes=40))
    assert world.job(2)["spec"]["activeDeadlineSeconds"] == 1200  # what is left
    world.start_pods(2, start=T0 + timedelta(minutes=41))
    plan = world.step(T0 + timedelta(minutes=60))
    assert plan.phase == FAILED and world.condition("Failed")["reason"] == "DeadlineExceeded"
    assert plan.job_stops == ["faces-a2"] and plan.job_patches == []


def test_a_job_that_passed_its_deadline_fails_the_run() -> None:
    world = running_world({"runPolicy": {"activeDeadlineSeconds": 3600}})
    world.set_job_condition(1, "Failed", "DeadlineExceeded", "Job was active longer than ...")
    assert world.step(T0 + timedelta(minutes=5)).phase == FAILED
    assert world.condition("Failed")["reason"] == "DeadlineExceeded"


# --------------------------------------------------------------------------- bad specs
def test_a_spec_that_slipped_past_the_schema_fails_the_run_naming_the_field() -> None:
    run = make_run({"training": {"batchSize": 12}})  # 12 does not divide by 8 GPUs
    plan = decide(run, Observed(), T0)
    assert plan.phase == FAILED and plan.creates == []
    assert plan.permanent_error is not None and "spec.training.batchSize" in plan.permanent_error
    assert condition(plan.status, "Failed")["reason"] == "InvalidSpec"
    assert reasons(plan) == ["InvalidSpec"]


def test_a_run_failed_for_its_spec_is_looked_at_again_after_a_fix() -> None:
    world = World(make_run({"training": {"batchSize": 12}}))
    world.step(T0)
    world.run["spec"]["training"]["batchSize"] = 32
    world.run["metadata"]["generation"] = 2
    plan = world.step(T0 + timedelta(seconds=5))
    assert plan.created("Job") and plan.phase == PENDING


def test_a_run_being_deleted_is_left_to_the_garbage_collector() -> None:
    run = make_run()
    run["metadata"]["deletionTimestamp"] = iso(T0)
    plan = decide(run, Observed(), T0)
    assert plan.creates == [] and plan.status == {} and plan.sample is None


# --------------------------------------------------------------------------- cost
def test_cost_is_measured_from_pod_lifetimes_and_kept_in_the_ledger() -> None:
    world = running_world()
    end = T0 + timedelta(minutes=30)
    world.finish_pods(1, 0, end)
    world.set_job_condition(1, "Complete", completion=end)
    plan = world.step(end + timedelta(seconds=5))
    expected = 2 * 4 * 0.5 * 2.0  # 2 pods x 4 GPUs x 0.5 h x 2 USD
    assert plan.status["cost"] == pytest.approx(expected)
    assert plan.status["gpuHours"] == pytest.approx(4.0)
    assert plan.status["currency"] == "USD"
    assert plan.status["costText"] == "8.00 USD"  # the COST column: the money and its currency
    assert plan.sample is not None and plan.sample.spend.cost_usd == pytest.approx(expected)
    world.pods.clear()  # pods are gone: the ledger remembers them
    later = world.step(end + timedelta(minutes=5))
    assert world.status["cost"] == pytest.approx(expected)
    assert later.status["projectedCost"] == pytest.approx(expected)


def test_cost_counts_every_attempt_including_failed_ones() -> None:
    world = running_world()
    fail_attempt(world, 1, T0 + timedelta(minutes=30))
    world.start_pods(2, start=T0 + timedelta(minutes=31))
    world.step(T0 + timedelta(minutes=61))
    assert world.status["cost"] == pytest.approx(2 * 4 * 2.0 * (0.5 + 0.5))


def test_progress_from_the_trainer_reaches_the_status_and_the_projection() -> None:
    world = running_world()
    world.status["progress"] = {
        "kimg": 100.0, "totalKimg": 1000, "secPerKimg": 36.0, "updatedAt": iso(T0),
        "lastCheckpoint": {"uri": "gs://ckpt/faces/c.pt", "kimg": 100.0, "time": iso(T0)},
    }
    plan = world.step(T0 + timedelta(hours=1))
    assert plan.status["kimg"] == 100.0 and plan.status["secPerKimg"] == 36.0
    assert plan.status["lastCheckpoint"]["uri"] == "gs://ckpt/faces/c.pt"
    remaining = 900 * 36.0  # 9 hours
    assert plan.status["eta"] == "9h 00m"
    spent = 2 * 4 * 1.0 * 2.0
    assert plan.status["projectedCost"] == pytest.approx(spent + remaining / 3600 * 8 * 2.0)
    # What kubectl's PROGRESS, COST and PROJECTED columns show (jsonPath, no arithmetic).
    assert plan.status["progressText"] == "10.0%"
    assert plan.status["costText"] == "16.00 USD"
    assert plan.status["projectedCostText"] == "160.00 USD"


def test_a_checkpoint_keeps_the_time_it_was_first_reported_and_reaches_the_metrics() -> None:
    world = running_world()
    plan = world.step(T0 + timedelta(minutes=10))
    assert plan.sample is not None and plan.sample.last_checkpoint_time is None
    first = {"uri": "gs://ckpt/faces/c1.pt", "kimg": 50.0, "time": iso(T0 + timedelta(minutes=20))}
    world.status["progress"] = {"kimg": 50.0, "secPerKimg": 36.0, "lastCheckpoint": first}
    plan = world.step(T0 + timedelta(minutes=21))
    assert plan.sample is not None
    assert plan.sample.last_checkpoint_time == T0 + timedelta(minutes=20)
    # The trainer stamps every progress report's time on the same checkpoint: kept as was.
    world.status["progress"]["lastCheckpoint"] = {**first, "time": iso(T0 + timedelta(hours=2))}
    plan = world.step(T0 + timedelta(hours=2))
    assert world.status["lastCheckpoint"]["time"] == first["time"]
    assert plan.sample is not None
    assert plan.sample.last_checkpoint_time == T0 + timedelta(minutes=20)
    # A new checkpoint brings its own time.
    second = {"uri": "gs://ckpt/faces/c2.pt", "kimg": 100.0,
              "time": iso(T0 + timedelta(hours=2, minutes=5))}
    world.status["progress"]["lastCheckpoint"] = second
    plan = world.step(T0 + timedelta(hours=2, minutes=6))
    assert world.status["lastCheckpoint"] == second
    assert plan.sample is not None
    assert plan.sample.last_checkpoint_time == T0 + timedelta(hours=2, minutes=5)
    # Without the trainer's report (a new attempt not yet reporting) the status still says.
    del world.status["progress"]
    plan = world.step(T0 + timedelta(hours=2, minutes=7))
    assert plan.sample is not None
    assert plan.sample.last_checkpoint_time == T0 + timedelta(hours=2, minutes=5)


def test_spend_over_budget_suspends_the_run_and_raising_the_budget_resumes_it() -> None:
    world = running_world({"cost": {"budget": 10.0, "budgetAction": "Suspend"}})
    plan = world.step(T0 + timedelta(hours=1))  # 16 USD spent
    assert plan.phase == SUSPENDED
    assert plan.job_patches == [("faces-a1", {"spec": {"suspend": True}})]
    assert world.condition("BudgetExceeded")["status"] == "True"
    assert world.condition("Suspended")["reason"] == "BudgetExceeded"
    assert "BudgetExceeded" in reasons(plan)
    world.pods.clear()
    world.job(1)["status"]["conditions"] = [cond("Suspended")]
    world.run["spec"]["cost"]["budget"] = 100.0
    resumed = world.step(T0 + timedelta(hours=1, minutes=1))
    assert resumed.created("Job")[0]["metadata"]["name"] == "faces-a2"
    assert world.condition("BudgetExceeded")["status"] == "False"


def test_spend_over_budget_with_fail_fails_the_run() -> None:
    world = running_world({"cost": {"budget": 10.0, "budgetAction": "Fail"}})
    plan = world.step(T0 + timedelta(hours=1))
    assert plan.phase == FAILED and world.condition("Failed")["reason"] == "BudgetExceeded"
    assert plan.job_stops == ["faces-a1"] and plan.job_patches == []


def test_a_failed_kueue_run_deletes_its_job_so_kueue_cannot_start_it_again() -> None:
    world = World(make_run({"queueName": "gpus",
                            "cost": {"budget": 10.0, "budgetAction": "Fail"}}))
    world.step(T0)
    world.job(1)["spec"]["suspend"] = False  # Kueue admits it
    world.start_pods(1)
    assert world.step(T0 + timedelta(seconds=5)).phase == RUNNING
    plan = world.step(T0 + timedelta(hours=1))
    assert plan.phase == FAILED
    assert plan.job_stops == ["faces-a1"]
    assert not any("suspend" in patch.get("spec", {}) for _, patch in plan.job_patches)
    later = world.step(T0 + timedelta(hours=1, minutes=1))
    assert later.phase == FAILED and later.job_stops == [] and not later.created("Job")


def test_spend_over_budget_with_warn_only_warns() -> None:
    world = running_world({"cost": {"budget": 10.0, "budgetAction": "Warn"}})
    plan = world.step(T0 + timedelta(hours=1))
    assert plan.phase == RUNNING and plan.job_patches == []
    assert world.condition("BudgetExceeded")["status"] == "True"


def test_a_projection_over_budget_sets_budget_at_risk_without_acting() -> None:
    world = running_world({"cost": {"budget": 100.0}})
    world.status["progress"] = {"kimg": 10.0, "secPerKimg": 36.0}
    plan = world.step(T0 + timedelta(minutes=6))
    assert plan.phase == RUNNING and plan.job_patches == []
    assert world.condition("BudgetAtRisk")["status"] == "True"
    assert reasons(plan) == ["BudgetAtRisk"]


def test_budgets_in_another_currency_are_compared_in_usd() -> None:
    world = running_world({"cost": {"currency": "JPY", "pricePerGpuHour": 218.0,
                                    "budget": 1744.0}})  # 2 USD/GPU-hour; budget 16 USD
    plan = world.step(T0 + timedelta(minutes=59))
    assert plan.phase == RUNNING and plan.status["currency"] == "JPY"
    assert world.step(T0 + timedelta(minutes=61)).phase == SUSPENDED


def test_a_gpu_type_without_a_price_runs_with_a_warning_and_no_cost() -> None:
    catalog = PriceCatalog()
    world = World(make_run({"resources": {"gpuType": "nvidia-h200-141gb"},
                            "cost": {"pricePerGpuHour": None}}), LifecycleConfig(catalog=catalog))
    plan = world.step(T0)
    assert plan.created("Job") and "NoPrice" in reasons(plan)
    assert "cost" not in plan.status and plan.sample is None


# --------------------------------------------------------------------------- helpers
def test_observed_ignores_jobs_and_pods_of_an_older_run_with_the_same_name() -> None:
    run = make_run()
    plan = decide(run, Observed(), T0)
    job = copy.deepcopy(plan.created("Job")[0])
    job["metadata"]["uid"] = "old-job"
    job["metadata"]["ownerReferences"][0]["uid"] = "another-run"
    job["spec"]["template"]["metadata"]["labels"][render.LABEL_RUN_UID] = "another-run"
    job["status"] = {}
    pod = make_pod(job, 0)
    observed = Observed.from_api(run, [job], [pod], [], None)
    assert observed.jobs == {} and observed.pods == []


def test_terminating_pods_of_an_older_run_are_not_adopted_once_their_job_is_gone() -> None:
    """The old run's Job is collected before its pods finish terminating: only the run-uid
    label tells them apart from this run's own pods of a deleted attempt."""
    run = make_run()
    plan = decide(run, Observed(), T0)
    job = copy.deepcopy(plan.created("Job")[0])
    job["metadata"]["uid"] = "job-a1"
    job["status"] = {}
    own = make_pod(job, 0)
    stale = make_pod(job, 1, uid="old-pod")
    stale["metadata"]["labels"][render.LABEL_RUN_UID] = "uid-of-the-deleted-run"
    stale["metadata"]["ownerReferences"][0]["uid"] = "job-of-the-deleted-run"
    observed = Observed.from_api(run, [], [own, stale], [], None)  # neither Job is listed
    assert [p["metadata"]["uid"] for p in observed.pods] == [own["metadata"]["uid"]]
    assert own["metadata"]["labels"][render.LABEL_RUN_UID] == UID


def test_diff_status_writes_only_what_changed() -> None:
    old = {"phase": "Running", "cost": 1.0, "eta": "1h"}
    assert diff_status(old, {"phase": "Running", "cost": 2.0, "kimg": None}) == {"cost": 2.0}
    assert diff_status(old, {"eta": None}) == {"eta": None}


def test_conditions_keep_their_transition_time_while_unchanged() -> None:
    conditions: list[dict[str, Any]] = []
    assert set_condition(conditions, "Running", True, "A", "m", T0, 1)
    later = T0 + timedelta(minutes=1)
    assert not set_condition(conditions, "Running", True, "B", "m2", later, 2)
    assert conditions[0]["lastTransitionTime"] == iso(T0) and conditions[0]["reason"] == "B"
    assert set_condition(conditions, "Running", False, "C", "", later, 2)
    assert conditions[0]["lastTransitionTime"] == iso(later)


def test_a_run_suspended_at_its_budget_stays_suspended_until_the_budget_rises() -> None:
    world = running_world({"cost": {"budget": 16.0, "budgetAction": "Suspend"}})
    assert world.step(T0 + timedelta(hours=1, seconds=1)).phase == SUSPENDED
    # The pods end, reported with a finishedAt before the last reconcile saw them running:
    # that alone no longer lowers the spend (the ledger closes them at the last sighting),
    # but a price cut applied as they close does: spend dips under 16.
    end = T0 + timedelta(minutes=59)
    world.finish_pods(1, 137, end)
    world.job(1)["status"]["conditions"] = [cond("Suspended")]
    world.run["spec"]["cost"]["pricePerGpuHour"] = 1.9
    plan = world.step(T0 + timedelta(hours=1, minutes=1))
    assert world.status["cost"] < 16.0
    assert plan.phase == SUSPENDED and plan.creates == []
    world.run["spec"]["cost"]["budget"] = 17.0
    assert world.step(T0 + timedelta(hours=1, minutes=2)).created("Job")


def test_diff_status_removes_keys_an_object_lost() -> None:
    old = {"costLedger": {"open": {"a": {"units": 1}, "b": {"units": 2}}, "v": 1}}
    new = {"costLedger": {"open": {"b": {"units": 2}}, "v": 1}}
    assert diff_status(old, new) == {"costLedger": {"open": {"b": {"units": 2}, "a": None},
                                                    "v": 1}}
