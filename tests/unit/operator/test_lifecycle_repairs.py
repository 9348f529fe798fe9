"""The lifecycle under the faults of issue 14 (items 6 and 7), as pure decisions: a lost node,
a registry that comes back, the trainer's account deleted, the spec changed mid-run.

Uses the in-memory :class:`World` of test_lifecycle, which applies plans as ``kube.apply``.
"""

from __future__ import annotations

import json
from datetime import timedelta

from tests.unit.operator.test_lifecycle import (
    T0,
    World,
    cond,
    fail_attempt,
    make_pod,
    make_run,
    reasons,
    running_world,
)

from stylegan_operator.api.validation import validate_spec
from stylegan_operator.reconcile.conditions import FAILED, PENDING, RESTARTING, RUNNING
from stylegan_operator.reconcile.decide import decide
from stylegan_operator.reconcile.observe import LifecycleConfig, is_node_lost
from stylegan_operator.reconcile.spec_changes import (
    ANNOTATION_SPEC_DIGESTS,
    changed_fields,
    spec_digests,
)


def kinds(plan) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(o["kind"] for o in plan.creates)


# --------------------------------------------------------------------------- 7a accounts
def test_a_deleted_role_binding_and_account_are_made_again_while_the_run_lives() -> None:
    world = running_world()
    world.others.pop(("RoleBinding", "faces-status"))
    world.others.pop(("ServiceAccount", "faces-trainer"))
    plan = world.step(T0 + timedelta(minutes=1))
    assert kinds(plan) == ["RoleBinding", "ServiceAccount"]
    binding = plan.created("RoleBinding")[0]
    assert binding["subjects"][0]["name"] == "faces-trainer"
    assert binding["metadata"]["ownerReferences"][0]["blockOwnerDeletion"] is True
    assert reasons(plan) == ["Recreated"]
    assert "RoleBinding faces-status" in plan.events[0].message
    assert world.step(T0 + timedelta(minutes=2)).creates == []  # there again: nothing to do


def test_a_deleted_role_is_made_again_but_never_the_account_the_spec_names() -> None:
    world = running_world({"resources": {"serviceAccountName": "gcs-writer"}})
    world.others.pop(("Role", "faces-status"))
    world.others.pop(("RoleBinding", "faces-status"))
    plan = world.step(T0 + timedelta(minutes=1))
    assert kinds(plan) == ["Role", "RoleBinding"]
    assert plan.created("RoleBinding")[0]["subjects"][0]["name"] == "gcs-writer"


def test_nothing_is_made_again_for_a_finished_run_or_without_status_reports() -> None:
    world = running_world()
    world.finish_pods(1, 0, T0 + timedelta(minutes=5))
    world.set_job_condition(1, "Complete", completion=T0 + timedelta(minutes=5))
    world.step(T0 + timedelta(minutes=5))
    world.others.clear()
    assert world.step(T0 + timedelta(minutes=6)).creates == []

    quiet = running_world(report_status=False)
    assert quiet.step(T0 + timedelta(minutes=1)).creates == []


def test_accounts_that_were_not_read_are_not_made_again() -> None:
    world = running_world()
    observed = world.observed()
    unread = type(observed)(observed.jobs, observed.pods, observed.config_maps,
                            observed.service, None)
    assert decide(world.run, unread, T0 + timedelta(minutes=1)).creates == []


# --------------------------------------------------------------------------- 7b spec changes
def pending(world: World) -> dict | None:
    return world.condition("SpecChangePending")


def test_a_change_for_the_next_attempt_is_pending_and_names_its_fields() -> None:
    world = running_world()
    world.run["spec"]["training"]["kimg"] = 2000
    world.run["spec"]["resources"]["image"] = "reg/trainer:2"
    world.run["metadata"]["generation"] = 2
    plan = world.step(T0 + timedelta(minutes=1))
    assert plan.creates == [] and plan.phase == RUNNING  # the attempt goes on as it was
    cond_ = pending(world)
    assert cond_["status"] == "True" and cond_["reason"] == "AppliesAtNextAttempt"
    assert cond_["message"].startswith(
        "spec.resources.image, spec.training.kimg changed since Job faces-a1 was made "
        "(generation 1)")
    assert "delete Job faces-a1" in cond_["message"]
    assert cond_["observedGeneration"] == 2 and world.status["observedGeneration"] == 2

    # The next attempt is made from the current spec: nothing is pending any more.
    fail_attempt(world, 1, T0 + timedelta(minutes=2))
    assert world.status["phase"] == RESTARTING
    assert pending(world)["status"] == "False" and pending(world)["reason"] == "SpecApplied"
    job = world.job(2)
    assert json.loads(job["metadata"]["annotations"][ANNOTATION_SPEC_DIGESTS]) == spec_digests(
        validate_spec(world.run["spec"]))


def test_changes_that_apply_at_once_are_never_pending() -> None:
    world = running_world()
    world.run["spec"]["cost"]["budget"] = 1000.0
    world.run["spec"]["runPolicy"]["backoffLimit"] = 5
    world.step(T0 + timedelta(minutes=1))
    assert pending(world) is None


def test_spelling_a_default_out_is_no_change() -> None:
    world = running_world()
    job = world.job(1)
    world.run["spec"]["distributed"] = {"rendezvousTimeoutSeconds": 1800}
    world.run["spec"]["resources"]["shmSize"] = "2Gi"
    assert changed_fields(job, validate_spec(world.run["spec"])) == []


def test_adding_checkpoints_is_named_once() -> None:
    world = running_world()
    del world.run["spec"]["checkpoints"]
    assert changed_fields(world.job(1), validate_spec(world.run["spec"])) == ["spec.checkpoints"]


def test_a_field_the_job_never_knew_is_not_judged() -> None:
    world = running_world()
    annotations = world.job(1)["metadata"]["annotations"]
    digests = json.loads(annotations[ANNOTATION_SPEC_DIGESTS])
    del digests["distributed.socketInterface"]  # as if the field came with a newer operator
    annotations[ANNOTATION_SPEC_DIGESTS] = json.dumps(digests)
    world.run["spec"]["distributed"] = {"socketInterface": "ens5"}
    world.run["spec"]["training"]["seed"] = 7
    assert changed_fields(world.job(1), validate_spec(world.run["spec"])) == [
        "spec.training.seed"]


def test_a_job_of_an_older_operator_is_not_judged() -> None:
    world = running_world()
    del world.job(1)["metadata"]["annotations"][ANNOTATION_SPEC_DIGESTS]
    world.run["spec"]["training"]["kimg"] = 2000
    world.step(T0 + timedelta(minutes=1))
    assert pending(world) is None


# --------------------------------------------------------------------------- 6b node loss
def lost_pod(world: World, index: int) -> dict:
    """A pod whose node stopped answering: the node controller flipped only ``Ready``."""
    pod = make_pod(world.job(1), index, conditions=[cond("Ready", "False")])
    pod["status"]["containerStatuses"][0]["ready"] = True
    return pod


def test_the_node_controllers_mark_is_told_from_a_kubelets() -> None:
    world = running_world()
    assert is_node_lost(lost_pod(world, 0))
    by_kubelet = make_pod(world.job(1), 0, "Failed", exit_code=1, conditions=[
        cond("Ready", "False", "PodFailed")])
    assert not is_node_lost(by_kubelet)
    deleted_on_lost_node = make_pod(world.job(1), 0)
    deleted_on_lost_node["status"]["reason"] = "NodeLost"
    assert is_node_lost(deleted_on_lost_node)
    assert not is_node_lost(make_pod(world.job(1), 0))  # running and ready


def test_an_attempt_that_fails_on_a_lost_node_is_a_preemption_not_a_restart() -> None:
    world = running_world({"runPolicy": {"backoffLimit": 0}})
    # Pod 0 (the rendezvous host) lost its node; its peer gave up on it and exited 1.
    world.pods[0] = lost_pod(world, 0)
    world.pods[1] = make_pod(world.job(1), 1, "Failed", exit_code=1)
    world.set_job_condition(1, "Failed", "BackoffLimitExceeded")
    plan = world.step(T0 + timedelta(minutes=1))
    assert plan.phase == RESTARTING and plan.created("Job")[0]["metadata"]["name"] == "faces-a2"
    assert world.status["preemptions"] == 1 and world.status["restarts"] == 0
    assert reasons(plan)[0] == "Preempted"
    assert "lost its node v100-0" in plan.events[0].message


def test_a_lost_node_does_not_restart_a_live_attempt_before_its_eviction() -> None:
    world = running_world()
    world.pods[0] = lost_pod(world, 0)  # a blip shorter than the 60 s toleration heals
    plan = world.step(T0 + timedelta(minutes=1))
    assert plan.creates == [] and plan.phase == RUNNING


def test_an_ordinary_crash_still_counts() -> None:
    world = running_world({"runPolicy": {"backoffLimit": 0}})
    world.pods[1] = make_pod(world.job(1), 1, "Failed", exit_code=1, conditions=[
        cond("Ready", "False", "PodFailed")])
    world.set_job_condition(1, "Failed", "BackoffLimitExceeded")
    plan = world.step(T0 + timedelta(minutes=1))
    assert plan.phase == FAILED and world.condition("Failed")["reason"] == "BackoffLimitExceeded"


# --------------------------------------------------------------------------- 7d image pulls
def test_a_registry_that_comes_back_within_the_limit_loses_the_run_nothing() -> None:
    world = World(make_run())  # the default limit: 30 min
    assert LifecycleConfig().image_pull_grace_seconds == 1800
    world.step(T0)
    waiting = {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}
    world.start_pods(1, phase="Pending", waiting=waiting)
    plan = world.step(T0 + timedelta(minutes=29))
    assert plan.phase == PENDING and world.condition("Pending")["reason"] == "ImagePullBackOff"
    assert "fails after 1800 s" in world.condition("Pending")["message"]
    assert plan.job_stops == []
    # The registry is back: the kubelet pulls, the pods run, the run goes on.
    world.pods.clear()
    world.start_pods(1, start=T0 + timedelta(minutes=29, seconds=30))
    plan = world.step(T0 + timedelta(minutes=30))
    assert plan.phase == RUNNING and world.status["attempt"] == 1
    assert world.status["restarts"] == 0


def test_a_pull_that_never_succeeds_fails_after_the_limit() -> None:
    world = World(make_run())
    world.step(T0)
    world.start_pods(1, phase="Pending", waiting={"reason": "ErrImagePull", "message": "503"})
    plan = world.step(T0 + timedelta(minutes=30, seconds=1))
    assert plan.phase == FAILED and world.condition("Failed")["reason"] == "ImagePullFailed"
    assert "for more than 1800 s" in world.condition("Failed")["message"]
