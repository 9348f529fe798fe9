"""A run that is tampered with while it lives, on the real control plane: the trainer's
account deleted, the spec changed, the checkpoint folder moved.

The API server runs with ``OwnerReferencesPermissionEnforcement`` (hack/localcluster.py), so
every child the operator makes here (each names the run with ``blockOwnerDeletion``) also
proves that manifests/rbac grants ``styleganruns/finalizers``.
"""

from __future__ import annotations

import json

import pytest
import yaml

from tests.integration.operator.conftest import OperatorProcess, Runs, gpu_run
from tests.support import Kubectl, wait_for

pytestmark = pytest.mark.cluster

ACCOUNT_KINDS = (("serviceaccount", "tidy-trainer"), ("role", "tidy-status"),
                 ("rolebinding", "tidy-status"))


def uid_of(kubectl: Kubectl, namespace: str, kind: str, name: str) -> str | None:
    found = kubectl("get", kind, name, "-o", "jsonpath={.metadata.uid}", namespace=namespace,
                    check=False)
    return found.stdout.strip() or None if found.returncode == 0 else None


def test_a_deleted_account_role_and_binding_are_made_again_while_the_run_lives(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess, runs: Runs
) -> None:
    runs.apply(gpu_run("tidy", namespace))
    runs.running_pods("tidy", 1, 2)
    runs.wait_phase("tidy", "Running")
    run_uid = runs.get("tidy")["metadata"]["uid"]
    before = {(kind, name): uid_of(kubectl, namespace, kind, name) for kind, name in ACCOUNT_KINDS}
    assert all(before.values()), before

    for kind, name in ACCOUNT_KINDS:
        kubectl("delete", kind, name, "--wait=true", namespace=namespace)

    def all_back() -> bool:
        now = {k: uid_of(kubectl, namespace, *k) for k in before}
        return all(now.values()) and all(now[k] != before[k] for k in before)

    # The operator watches none of these kinds: its periodic reconcile (2 s here) sees them gone.
    wait_for(all_back, timeout=60, what="the trainer's account, Role and RoleBinding re-made")
    binding = kubectl.json("rolebinding", "tidy-status", namespace=namespace)
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "tidy-trainer",
                                    "namespace": namespace}]
    (owner,) = binding["metadata"]["ownerReferences"]
    assert owner["uid"] == run_uid and owner["blockOwnerDeletion"] is True
    role = kubectl.json("role", "tidy-status", namespace=namespace)
    assert role["rules"][0]["resourceNames"] == ["tidy"]
    wait_for(lambda: any(e["reason"] == "Recreated" for e in runs.events("tidy")), timeout=30,
             what="the Recreated event")
    # Nothing else moved: the same attempt goes on.
    status = runs.wait_phase("tidy", "Running")
    assert status["attempt"] == 1 and status.get("restarts", 0) == 0
    assert runs.job_names("tidy") == ["tidy-a1"]


def pending_condition(runs: Runs, name: str) -> dict | None:
    return runs.condition(name, "SpecChangePending")


def test_a_spec_change_mid_run_is_pending_until_the_next_attempt(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess, runs: Runs
) -> None:
    runs.apply(gpu_run("shift", namespace))
    runs.running_pods("shift", 1, 2)
    runs.wait_phase("shift", "Running")
    kubectl("patch", "styleganrun", "shift", "--type=merge", "-p",
            json.dumps({"spec": {"training": {"kimg": 2000},
                                 "cost": {"pricePerGpuHour": 3.0}}}), namespace=namespace)
    generation = runs.get("shift")["metadata"]["generation"]

    status = runs.wait_status(
        "shift", lambda s: s.get("observedGeneration") == generation
        and any(c["type"] == "SpecChangePending" and c["status"] == "True"
                for c in s.get("conditions", [])),
        what="condition SpecChangePending=True for the new generation")
    cond = pending_condition(runs, "shift")
    assert cond["reason"] == "AppliesAtNextAttempt"
    # The price applies at once, so only the kimg waits for the next attempt.
    assert cond["message"].startswith("spec.training.kimg changed since Job shift-a1 was made")
    assert runs.job_names("shift") == ["shift-a1"] and status["attempt"] == 1
    options = yaml.safe_load(kubectl.json("configmap", "shift-a1-config", namespace=namespace)[
        "data"]["train.yaml"])
    assert options["kimg"] == 1000  # the running attempt keeps what it started with

    # As the message says: deleting the Job starts the next attempt, from the current spec.
    kubectl("delete", "job", "shift-a1", "--wait=false", namespace=namespace)
    runs.running_pods("shift", 2, 2)
    runs.wait_status("shift", lambda s: any(
        c["type"] == "SpecChangePending" and c["status"] == "False"
        and c["reason"] == "SpecApplied" for c in s.get("conditions", [])),
        what="condition SpecChangePending=False once attempt 2 runs the new spec")
    options = yaml.safe_load(kubectl.json("configmap", "shift-a2-config", namespace=namespace)[
        "data"]["train.yaml"])
    assert options["kimg"] == 2000
    assert runs.status("shift").get("restarts", 0) == 0  # a deleted Job is no failure


def test_the_api_server_refuses_moving_the_checkpoints_of_a_run(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess, runs: Runs
) -> None:
    runs.apply(gpu_run("anchored", namespace, checkpoints={"uri": "gs://ckpt/anchored"}))
    moved = kubectl("patch", "styleganrun", "anchored", "--type=merge", "-p",
                    '{"spec":{"checkpoints":{"uri":"gs://ckpt/elsewhere"}}}',
                    namespace=namespace, check=False)
    assert moved.returncode != 0
    assert "spec.checkpoints.uri is immutable once set" in moved.stderr
    kept = kubectl("patch", "styleganrun", "anchored", "--type=merge", "-p",
                   '{"spec":{"checkpoints":{"keep":5}}}', namespace=namespace, check=False)
    assert kept.returncode == 0, kept.stderr  # the other checkpoint fields may change
