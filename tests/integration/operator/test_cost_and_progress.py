"""Money and progress in the run's status, on the real control plane.

* Cost: pods with known lifetimes (bound by the scheduler, ended by the test through kwok)
  must come out in ``status.cost`` as lifetime x GPUs x price, computed here independently
  from the pods' own timestamps: no less (1%), and no more than up to when the test saw
  the run finished (the ledger never prices an ended pod below its last running estimate).
* Budget: a price so high that a few seconds cost more than the budget suspends the run
  with the ``BudgetExceeded`` condition; raising the budget resumes it.
* Progress: the trainer's report (a merge patch of ``status.progress`` made with the run's
  own ServiceAccount token, exactly the rights the trainer gets) reaches the top-level
  fields and the projection; the same token may not touch another run or the spec.
* The operator's /metrics endpoint serves the run's cost and its last checkpoint's time
  (the time the checkpoint was first reported, however often the trainer reports it).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.operator.conftest import OperatorProcess, Runs, gpu_run
from tests.support import Kubectl, wait_for

pytestmark = pytest.mark.cluster


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def bound_at(pod: dict[str, Any]) -> datetime:
    """When the pod was bound to its node (PodScheduled, else startTime)."""
    status = pod["status"]
    return parse(next((c["lastTransitionTime"] for c in status.get("conditions", [])
                       if c["type"] == "PodScheduled" and c["status"] == "True"),
                      status["startTime"]))


def lifetime_seconds(pod: dict[str, Any]) -> float:
    """From binding to the container's finishedAt."""
    ends = [cs["state"]["terminated"]["finishedAt"] for cs in pod["status"]["containerStatuses"]]
    return (max(parse(e) for e in ends) - bound_at(pod)).total_seconds()


def test_cost_of_pods_with_known_lifetimes_is_exact_within_one_percent(
    namespace: str, operator: OperatorProcess, runs: Runs
) -> None:
    price = 3600.0  # 1 USD per GPU-second, so seconds of pod life are real money
    runs.apply(gpu_run("meter", namespace, resources={"nodes": 1, "gpusPerNode": 8},
                       training={"batchSize": 64}, cost={"pricePerGpuHour": price}))
    pods = runs.running_pods("meter", 1, 1)
    runs.wait_phase("meter", "Running")
    # Two seconds of life at least, so that the whole-second timestamps the test prices
    # below (bound, finishedAt) cannot fall in the same second.
    runs.wait_status("meter", lambda s: (s.get("cost") or 0) >= 2 * 8 * price / 3600,
                     "two seconds of cost while running")
    runs.exit_pods(pods, 0)
    runs.wait_phase("meter", "Succeeded")
    seen_finished = datetime.now(UTC)
    ended = runs.pods("meter")
    expected = sum(lifetime_seconds(p) * 8 * price / 3600 for p in ended)
    assert expected > 0
    # The ledger closes a pod at its finishedAt (whole seconds) or, when later, at the last
    # reconcile that priced it running, so the cost never drops when a pod ends; that
    # reconcile came before this test saw the run finished.
    latest = sum((seen_finished - bound_at(p)).total_seconds() * 8 * price / 3600
                 for p in ended)
    status = runs.wait_status(
        "meter", lambda s: 0.99 * expected <= s["cost"] <= 1.01 * latest,
        f"status.cost between {expected:.2f} (finishedAt) and {latest:.2f} (seen finished)")
    assert status["gpuHours"] == pytest.approx(status["cost"] / price, rel=0.01, abs=5e-5)
    assert status["projectedCost"] == status["cost"]  # finished: nothing left to spend
    assert 'run="meter"' in operator.metrics()


def test_a_run_failed_on_its_budget_deletes_its_job_and_stops_paying(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess, runs: Runs
) -> None:
    """A finished run's Job is deleted (foreground), not suspended: with Kueue a suspended
    Job of a queue would be admitted again and the GPUs would run for a failed run."""
    runs.apply(gpu_run("broke", namespace, resources={"nodes": 1, "gpusPerNode": 8},
                       training={"batchSize": 64},
                       cost={"pricePerGpuHour": 360000.0, "budget": 1000.0,
                             "budgetAction": "Fail"}))  # 800 USD a second
    runs.running_pods("broke", 1, 1)
    runs.wait_phase("broke", "Failed")
    assert runs.condition("broke", "Failed")["reason"] == "BudgetExceeded"
    wait_for(lambda: not runs.jobs("broke") and not runs.pods("broke"), timeout=60,
             what="the failed run's Job and pods deleted")
    status = runs.wait_status("broke", lambda s: not s["costLedger"].get("open"),
                              "the ended pods closed in the ledger")
    assert status["phase"] == "Failed" and status["attempt"] == 1


def test_a_run_over_its_budget_is_suspended_and_resumes_when_the_budget_rises(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess, runs: Runs
) -> None:
    runs.apply(gpu_run("pricey", namespace, resources={"nodes": 1, "gpusPerNode": 8},
                       training={"batchSize": 64},
                       cost={"pricePerGpuHour": 360000.0, "budget": 1000.0,
                             "budgetAction": "Suspend"}))  # 800 USD a second
    runs.running_pods("pricey", 1, 1)
    status = runs.wait_phase("pricey", "Suspended")
    assert status["budgetExceededAt"] == 1000.0
    exceeded = runs.condition("pricey", "BudgetExceeded")
    assert exceeded is not None and exceeded["status"] == "True"
    assert runs.condition("pricey", "Suspended")["reason"] == "BudgetExceeded"
    assert kubectl.json("job", "pricey-a1", namespace=namespace)["spec"]["suspend"] is True
    (event,) = [e for e in runs.events("pricey") if e["reason"] == "BudgetExceeded"]
    spent = float(event["message"].split("spent ")[1].split(" USD")[0].replace(",", ""))
    assert spent >= 1000.0, event["message"]
    # Once the pods ended the ledger closes them, never below the running estimate that
    # crossed the budget; the run stays suspended.
    wait_for(lambda: not [p for p in runs.pods("pricey", 1)
                          if p["status"].get("phase") == "Running"], timeout=60,
             what="the suspended attempt's pods to end")
    status = runs.wait_status("pricey", lambda s: not s["costLedger"].get("open"),
                              "the ended pods closed in the ledger")
    assert status["phase"] == "Suspended" and status["attempt"] == 1
    metrics = operator.metrics()
    line = next(m for m in metrics.splitlines()
                if m.startswith("stylegan_run_cost_total") and 'run="pricey"' in m)
    assert float(line.rsplit(" ", 1)[1]) >= 1000.0

    kubectl("patch", "styleganrun", "pricey", "--type=merge",
            "-p", '{"spec":{"cost":{"budget":1000000000}}}', namespace=namespace)
    runs.running_pods("pricey", 2, 1)
    status = runs.wait_phase("pricey", "Running")
    assert status["attempt"] == 2
    assert runs.condition("pricey", "BudgetExceeded")["status"] == "False"


def checkpoint_timestamp(operator: OperatorProcess, namespace: str, run: str) -> float | None:
    """The run's ``stylegan_run_last_checkpoint_timestamp_seconds`` on /metrics, if any."""
    for family in text_string_to_metric_families(operator.metrics()):
        for sample in family.samples:
            if (sample.name == "stylegan_run_last_checkpoint_timestamp_seconds"
                    and sample.labels == {"namespace": namespace, "run": run}):
                return sample.value
    return None


def trainer_token(kubectl: Kubectl, namespace: str, account: str) -> str:
    return kubectl("create", "token", account, "--duration=10m",
                   namespace=namespace).stdout.strip()


def test_progress_patched_with_the_runs_own_token_reaches_the_status(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess, runs: Runs
) -> None:
    runs.apply(gpu_run("reporting", namespace, checkpoints={"uri": "gs://ckpt/reporting"}))
    runs.apply(gpu_run("neighbour", namespace, suspend=True))
    runs.running_pods("reporting", 1, 2)
    runs.wait_phase("reporting", "Running")
    token = trainer_token(kubectl, namespace, "reporting-trainer")
    ckpt = "gs://ckpt/reporting/checkpoints/ckpt-000012000.pt"
    progress = {"status": {"progress": {
        "kimg": 12.5, "totalKimg": 1000, "secPerKimg": 36.0, "updatedAt": "2026-05-01T12:00:00Z",
        "lastCheckpoint": {"uri": ckpt, "kimg": 12.0, "time": "2026-05-01T12:00:00Z"}}}}
    as_trainer = ("--token", token)
    kubectl(*as_trainer, "patch", "styleganrun", "reporting", "--subresource=status",
            "--type=merge", "-p", json.dumps(progress), namespace=namespace)

    status = runs.wait_status("reporting", lambda s: s.get("kimg") == 12.5,
                              "status.kimg from the trainer's report")
    assert status["secPerKimg"] == 36.0
    assert status["lastCheckpoint"]["uri"] == ckpt
    assert status["eta"] == "9h 53m"  # (1000 - 12.5) kimg x 36 s
    assert status["projectedCost"] > status["cost"]
    assert status["progressText"] == f"{12.5 / 1000 * 100:.1f}%"
    assert status["costText"] == f"{status['cost']:,.2f} USD"

    # The operator exports when the checkpoint was written. The trainer stamps every
    # report's time on the same checkpoint; that must not make it look newer.
    written = parse("2026-05-01T12:00:00Z").timestamp()
    wait_for(lambda: checkpoint_timestamp(operator, namespace, "reporting") == written,
             timeout=30, what="stylegan_run_last_checkpoint_timestamp_seconds on /metrics")
    progress["status"]["progress"].update(kimg=13.0, updatedAt="2026-05-01T12:10:00Z")
    progress["status"]["progress"]["lastCheckpoint"]["time"] = "2026-05-01T12:10:00Z"
    kubectl(*as_trainer, "patch", "styleganrun", "reporting", "--subresource=status",
            "--type=merge", "-p", json.dumps(progress), namespace=namespace)
    status = runs.wait_status("reporting", lambda s: s.get("kimg") == 13.0,
                              "status.kimg from the second report")
    assert parse(status["lastCheckpoint"]["time"]).timestamp() == written
    assert checkpoint_timestamp(operator, namespace, "reporting") == written

    # The token is good for this run's status and nothing else.
    for args in (
        ("patch", "styleganrun", "neighbour", "--subresource=status", "--type=merge",
         "-p", json.dumps(progress)),
        ("patch", "styleganrun", "reporting", "--type=merge", "-p", '{"spec":{"suspend":true}}'),
        ("get", "pods"),
    ):
        denied = kubectl(*as_trainer, *args, namespace=namespace, check=False)
        assert denied.returncode != 0 and "forbidden" in denied.stderr.lower(), args
    wait_for(lambda: runs.status("neighbour").get("phase") == "Suspended", timeout=30,
             what="the neighbour left alone")
