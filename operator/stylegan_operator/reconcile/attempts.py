"""How one attempt of a run is driven: its Job created, watched, restarted, suspended, ended.

``decide`` hands the newest attempt to :func:`_drive_attempt`, which reads its Job and pods
(``observe``), moves the run's phase and writes what to create, patch and delete into the
draft (``plan``). A new attempt is a new Job ``<run>-a<N>`` with its own ConfigMap, and,
when the trainer reports progress, its ServiceAccount and Role (``children``).

Phases (``status.phase``) and what moves a run between them:

* **Pending**: the attempt's Job exists but not every pod runs yet; the ``Pending``
  condition gives the reason: ``PodsNotCreated``, ``PodsStarting``, ``Unschedulable`` (with
  the scheduler's message: no node has the GPU type, or none has room), ``ImagePullBackOff``,
  or ``QueuedInKueue`` (``spec.queueName``: the Job is created suspended and Kueue, never the
  operator, unsuspends it).
* **Running**: every pod of the attempt runs (or has finished).
* **Restarting**: a new attempt is starting after a failure or a preemption.
* **Suspended**: ``spec.suspend: true``, or the budget ran out with ``budgetAction:
  Suspend``. The Job is suspended (its pods get SIGTERM and the trainer checkpoints); a run
  with ``queueName`` has its Job deleted instead, because Kueue owns that Job's ``suspend``.
  Resuming (``suspend: false``, or a budget raised above the spend) starts a **new attempt**
  ``<run>-a<N+1>`` rather than unsuspending the old Job, so every attempt's Job and
  immutable ConfigMap match the spec of its time. Resumes count neither as restarts nor as
  preemptions.
* **Succeeded** / **Failed**: final. A finished run never recreates its Job; only its cost
  (pods still terminating) and ``runPolicy.ttlSecondsAfterFinished`` are still handled.

Failures (see ``jobs``' docstring for the Job's ``podFailurePolicy``):

* exit code 64 of the trainer (bad configuration): the Job fails with reason
  ``PodFailurePolicy`` and the run fails at once with the trainer's termination message;
* any other failure of an attempt deletes its Job and starts ``<run>-a<N+1>``, at most
  ``spec.runPolicy.backoffLimit`` times (default 3, as Kubeflow's PyTorchJob); then the run
  fails with ``BackoffLimitExceeded``;
* a pod of the attempt with the ``DisruptionTarget`` condition (eviction, preemption, node
  drain) restarts the whole group **at once**, counted in ``status.preemptions`` and not
  against the limit: torchrun's store lives on pod 0 and ``--max-restarts 0`` makes every
  survivor fail anyway, so waiting would only pay for GPUs stuck in a collective;
* a lost node: its pods are evicted (``DisruptionTarget``) 60 s after the node is marked
  NotReady or unreachable (``pods``' tolerations), which restarts the group as above. When
  the attempt fails first (its peers give up on the lost pod before the eviction), a pod
  the node lifecycle controller marked (``observe.is_node_lost``: ``NodeLost``, or ``Ready``
  False behind containers that still say ready) makes the failure a preemption too, not a
  counted restart. A failure that comes before the node is marked at all
  (``node-monitor-grace-period``, 40-50 s) still counts: nothing yet tells it from a crash;
* ``runPolicy.activeDeadlineSeconds`` is wall-clock time from ``status.startTime`` over
  every attempt, time suspended or queued included (each Job gets what is left), and
  fails the run with ``DeadlineExceeded``;
* image pull errors (``ErrImagePull``, ``ImagePullBackOff``) keep the run Pending with the
  ``ImagePullBackOff`` reason while the kubelet retries, and the run goes on by itself once
  the image arrives; it fails with ``ImagePullFailed`` only when a pod has waited longer
  than :attr:`LifecycleConfig.image_pull_grace_seconds` (``--image-pull-grace``, 30 min),
  and at once for an invalid image name;
* a spec that slipped past the API server's schema fails the run with ``InvalidSpec``
  naming the field (and ``handlers`` raises ``kopf.PermanentError``); a later spec
  generation is looked at again.

Both kinds of restart post a ``WorkLost`` Warning Event naming the kimg trained since the
last checkpoint (thrown away: the next attempt resumes from that checkpoint) and what that
training cost; the cost adds up in ``status.lostWorkCostUsd``.

Where a new attempt resumes from (every kind above: resume, restart, preemption, Kueue
re-admission) is decided by the trainer when its pods start, never by the operator when it
writes the attempt: the ConfigMap says ``resume: latest`` (``render.trainer_options``), so the
trainer reads the newest verified checkpoint ``latest.json`` names in ``spec.checkpoints.uri``
at that moment, and ``spec.checkpoints.resumeFrom`` (``resume_fallback``) only while that folder
holds none. A checkpoint written after the Job was made (the old pods' SIGTERM checkpoint, an
attempt queued for hours) is thus never skipped. The Job's ``stylegan.dev/resume-from``
annotation records what the operator knew (``status.lastCheckpoint.uri``, else
``resumeFrom``), for people reading it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from stylegan_operator.api.spec import RunSpec
from stylegan_operator.cost.metering import parse_time
from stylegan_operator.cost.spend import RunPricing
from stylegan_operator.reconcile import render
from stylegan_operator.reconcile.children import ANNOTATION_REASON, _create_attempt, _ensure_support
from stylegan_operator.reconcile.conditions import (
    BUDGET_EXCEEDED,
    CREATED,
    FAILED,
    PENDING,
    REASON_ALL_PODS_RUNNING,
    REASON_ATTEMPT_FAILED,
    REASON_BACKOFF_LIMIT,
    REASON_BAD_CONFIGURATION,
    REASON_COMPLETED,
    REASON_DEADLINE,
    REASON_IMAGE_PULL_BACKOFF,
    REASON_IMAGE_PULL_FAILED,
    REASON_INITIAL,
    REASON_JOB_CREATED,
    REASON_JOB_DELETED,
    REASON_PODS_NOT_CREATED,
    REASON_PODS_STARTING,
    REASON_PREEMPTED,
    REASON_QUEUED,
    REASON_RESUMED,
    REASON_SUSPENDED_BY_USER,
    REASON_UNSCHEDULABLE,
    REASON_WORK_LOST,
    RESTARTING,
    RUNNING,
    SUCCEEDED,
    SUSPENDED,
    _is_true,
    _iso,
    condition,
)
from stylegan_operator.reconcile.observe import (
    IMAGE_NEVER_PULLABLE,
    IMAGE_PULL_WAITING,
    JobOutcome,
    _attempt_of,
    _int,
    _is_deleting,
    _job_name,
    _phase_of,
    _pod_name,
    _scheduled_at,
    _terminated,
    _true_conditions,
    _unschedulable_message,
    _waiting,
    is_disrupted,
    is_node_lost,
    job_outcome,
)
from stylegan_operator.reconcile.plan import _Decision
from stylegan_operator.reconcile.spend import _lost_work_usd, _work_lost_message


# --------------------------------------------------------------------------- attempts
def _drive_attempt(
    d: _Decision,
    spec: RunSpec,
    attempt: int,
    desired_suspend: bool,
    start: datetime,
    progress: Mapping[str, Any],
    pricing: RunPricing | None,
) -> None:
    job = d.observed.jobs.get(attempt)
    name = render.job_name(d.name, attempt)
    if job is not None and _is_deleting(job):
        job = None  # being deleted (a Kueue suspension, or by hand): as good as gone

    if job is None:
        existed = d.old.get("activeJob") == name and _int(d.old.get("attempt")) == attempt
        if desired_suspend:
            _enter_suspended(d, spec, attempt, name if existed else d.old.get("activeJob"))
            return
        if existed:
            # Our Job of this attempt is gone: deleted for a Kueue suspension, or by hand.
            was_suspended = _is_true(d.old, SUSPENDED)
            reason = REASON_RESUMED if was_suspended else REASON_JOB_DELETED
            _new_attempt(d, spec, attempt + 1, reason, start, progress, pricing)
        else:
            _create_attempt(d, spec, attempt, REASON_INITIAL, start, progress)
            d.set_phase(PENDING, REASON_PODS_NOT_CREATED, f"created Job {name}")
        return

    d.status.update(attempt=attempt, activeJob=name)
    d.cond(CREATED, True, REASON_JOB_CREATED, f"Job {name} created")
    _ensure_support(d, spec, attempt, job)
    outcome = job_outcome(job)
    pods = [p for p in d.observed.pods if _attempt_of(p) == attempt]

    if outcome.state == "succeeded":
        d.set_phase(SUCCEEDED, REASON_COMPLETED, f"Job {name} completed: training reached "
                    f"{spec.training.kimg} kimg")
        completion = parse_time((job.get("status") or {}).get("completionTime"))
        d.status["completionTime"] = _iso(completion or d.now)
        return
    if outcome.state == "failed":
        _attempt_failed(d, spec, attempt, job, outcome, pods, start, progress, pricing)
        return
    if outcome.state == "suspended":
        if desired_suspend:
            _enter_suspended(d, spec, attempt, name)
        elif spec.queue_name:
            text = f"Job {name} waits in Kueue queue {spec.queue_name!r} for admission"
            if (condition(d.old, PENDING) or {}).get("reason") != REASON_QUEUED:
                d.event("Normal", REASON_QUEUED, text)
            d.set_phase(PENDING, REASON_QUEUED, text)
        else:
            # Resume: a fresh attempt from the newest checkpoint (module docstring).
            _new_attempt(d, spec, attempt + 1, REASON_RESUMED, start, progress, pricing)
        return

    # The Job is active.
    if desired_suspend:
        if spec.queue_name:
            d.plan.deletes.append(("Job", name))
        else:
            d.plan.job_patches.append((name, {"spec": {"suspend": True}}))
        _enter_suspended(d, spec, attempt, name)
        return
    disrupted = [p for p in pods if is_disrupted(p)]
    if disrupted:
        _restart(d, spec, attempt, REASON_PREEMPTED,
                 f"pod {_pod_name(disrupted[0])} of Job {name} was disrupted "
                 f"({_disruption_message(disrupted[0])})", start, progress, pricing)
        return
    pull = _image_pull_failure(d, pods)
    if pull is not None:
        _fail(d, REASON_IMAGE_PULL_FAILED, pull)
        _stop_job(d, job, spec)
        return
    _pending_or_running(d, spec, attempt, job, pods)


def _reason_of(d: _Decision, attempt: int) -> str:
    """Why the attempt's Job was created (its annotation)."""
    job = d.observed.jobs.get(attempt) or {}
    annotations = (job.get("metadata") or {}).get("annotations") or {}
    return str(annotations.get(ANNOTATION_REASON) or REASON_INITIAL)


def _pending_or_running(
    d: _Decision, spec: RunSpec, attempt: int, job: Mapping[str, Any],
    pods: Sequence[Mapping[str, Any]],
) -> None:
    name = _job_name(job)
    want = _int((job.get("spec") or {}).get("parallelism"), spec.node_count)
    live = [p for p in pods if not _is_deleting(p)]
    running = [p for p in live if _phase_of(p) == "Running"]
    done = [p for p in live if _phase_of(p) == "Succeeded"]
    pending = [p for p in live if _phase_of(p) == "Pending"]
    restarting = _reason_of(d, attempt) in (REASON_ATTEMPT_FAILED, REASON_PREEMPTED)
    waiting_phase = RESTARTING if restarting and d.phase != RUNNING else PENDING

    if running and not pending and len(running) + len(done) >= want:
        d.set_phase(RUNNING, REASON_ALL_PODS_RUNNING,
                    f"{len(running)} of {want} pods of Job {name} running")
        return
    if not live:
        if d.phase == RUNNING:
            return  # between a pod ending and the Job's verdict: keep the phase
        d.set_phase(waiting_phase, REASON_PODS_NOT_CREATED,
                    f"waiting for the Job controller to create the pods of {name} "
                    f"(kubectl describe job {name})")
        return
    unschedulable = [(p, m) for p in pending if (m := _unschedulable_message(p))]
    pulling = [(p, w) for p in pending for w in _waiting(p)
               if w.get("reason") in IMAGE_PULL_WAITING]
    if unschedulable:
        pod, message = unschedulable[0]
        reason, text = REASON_UNSCHEDULABLE, (
            f"{len(unschedulable)} of {want} pods cannot be scheduled: {message}"
        )
    elif pulling:
        pod, waiting = pulling[0]
        reason, text = REASON_IMAGE_PULL_BACKOFF, (
            f"pod {_pod_name(pod)} cannot pull {waiting.get('image')}: "
            f"{waiting.get('message') or waiting.get('reason')} (the kubelet retries; the run "
            f"fails after {d.config.image_pull_grace_seconds:g} s of this)"
        )
    else:
        reason, text = REASON_PODS_STARTING, (
            f"{len(running)} of {want} pods of Job {name} running"
        )
    old_reason = (condition(d.old, waiting_phase) or {}).get("reason")
    d.set_phase(waiting_phase, reason, text)
    if reason in (REASON_UNSCHEDULABLE, REASON_IMAGE_PULL_BACKOFF) and old_reason != reason:
        d.event("Warning", reason, text)


def _image_pull_failure(d: _Decision, pods: Sequence[Mapping[str, Any]]) -> str | None:
    for pod in pods:
        if _phase_of(pod) != "Pending":
            continue
        for waiting in _waiting(pod):
            reason = waiting.get("reason")
            detail = (f"pod {_pod_name(pod)} cannot pull image {waiting.get('image')!r}: "
                      f"{reason}: {waiting.get('message') or ''}").rstrip(": ")
            if reason in IMAGE_NEVER_PULLABLE:
                return detail
            if reason in IMAGE_PULL_WAITING:
                since = _scheduled_at(pod)
                grace = d.config.image_pull_grace_seconds
                if since is not None and (d.now - since).total_seconds() >= grace:
                    return f"{detail} (for more than {grace:g} s)"
    return None


def _disruption_message(pod: Mapping[str, Any]) -> str:
    cond = _true_conditions(pod).get("DisruptionTarget") or {}
    return str(cond.get("message") or cond.get("reason") or "DisruptionTarget")


def _attempt_failed(
    d: _Decision, spec: RunSpec, attempt: int, job: Mapping[str, Any], outcome: JobOutcome,
    pods: Sequence[Mapping[str, Any]], start: datetime, progress: Mapping[str, Any],
    pricing: RunPricing | None,
) -> None:
    name = _job_name(job)
    if outcome.reason == "PodFailurePolicy":
        _fail(d, REASON_BAD_CONFIGURATION,
              f"the trainer refused its configuration (exit {render.EXIT_BAD_CONFIG}, "
              f"not retried): {_termination_message(pods, outcome)}")
        return
    if outcome.reason == "DeadlineExceeded":
        _fail(d, REASON_DEADLINE, f"Job {name} passed what was left of "
              f"spec.runPolicy.activeDeadlineSeconds: {outcome.message or ''}".rstrip(": "))
        return
    why = f"Job {name} failed ({outcome.reason or 'Failed'}): {_failure_detail(pods, outcome)}"
    disrupted = [p for p in pods if is_disrupted(p)]
    lost = [p for p in pods if is_node_lost(p) and not is_disrupted(p)]
    if disrupted:
        _restart(d, spec, attempt, REASON_PREEMPTED, why, start, progress, pricing)
    elif lost:
        _restart(d, spec, attempt, REASON_PREEMPTED, f"{why}; pod {_pod_name(lost[0])} lost "
                 f"its node {(lost[0].get('spec') or {}).get('nodeName') or '?'} (not counted "
                 "against spec.runPolicy.backoffLimit)", start, progress, pricing)
    elif d.restarts < spec.run_policy.backoff_limit:
        _restart(d, spec, attempt, REASON_ATTEMPT_FAILED, why, start, progress, pricing)
    else:
        _fail(d, REASON_BACKOFF_LIMIT, f"{why}; spec.runPolicy.backoffLimit "
              f"({spec.run_policy.backoff_limit}) restarts used")


def _termination_message(pods: Sequence[Mapping[str, Any]], outcome: JobOutcome) -> str:
    """The trainer's own words for exit 64, else the Job controller's."""
    for pod in pods:
        for term in _terminated(pod):
            if term.get("exitCode") == render.EXIT_BAD_CONFIG and term.get("message"):
                return str(term["message"]).strip()
    return outcome.message or "no message"


def _failure_detail(pods: Sequence[Mapping[str, Any]], outcome: JobOutcome) -> str:
    for pod in pods:
        for term in _terminated(pod):
            code = term.get("exitCode")
            if code not in (None, 0):
                text = f"pod {_pod_name(pod)} exited with {code}"
                if term.get("reason"):
                    text += f" ({term['reason']})"
                if term.get("message"):
                    text += f": {str(term['message']).strip()}"
                return text
    return outcome.message or "no pod reported why"


def _restart(
    d: _Decision, spec: RunSpec, attempt: int, reason: str, why: str, start: datetime,
    progress: Mapping[str, Any], pricing: RunPricing | None,
) -> None:
    if reason == REASON_PREEMPTED:
        d.preemptions += 1
    else:
        d.restarts += 1
    lost_usd = _lost_work_usd(spec, progress, pricing, d.now)
    d.lost_work_usd += lost_usd
    d.event("Warning", reason, f"{why}; starting attempt {attempt + 1}")
    lost = _work_lost_message(attempt, progress, lost_usd, pricing)
    if lost is not None:
        d.event("Warning", REASON_WORK_LOST, lost)
    _new_attempt(d, spec, attempt + 1, reason, start, progress, pricing, why=why)


def _new_attempt(
    d: _Decision, spec: RunSpec, attempt: int, reason: str, start: datetime,
    progress: Mapping[str, Any], pricing: RunPricing | None, why: str | None = None,
) -> None:
    old = d.observed.jobs.get(attempt - 1)
    if old is not None and not _is_deleting(old):
        d.plan.deletes.append(("Job", _job_name(old)))
    _create_attempt(d, spec, attempt, reason, start, progress)
    name = render.job_name(d.name, attempt)
    if reason == REASON_RESUMED:
        d.event("Normal", REASON_RESUMED, f"resuming as attempt {attempt} (Job {name})")
        d.set_phase(PENDING, REASON_RESUMED, f"resumed: created Job {name}")
    elif reason == REASON_JOB_DELETED:
        d.event("Warning", REASON_JOB_DELETED, f"Job {render.job_name(d.name, attempt - 1)} "
                f"was deleted outside the operator; starting attempt {attempt}")
        d.set_phase(PENDING, REASON_JOB_DELETED, f"created Job {name}")
    else:
        d.set_phase(RESTARTING, reason, f"{why}; created Job {name}")


def _enter_suspended(d: _Decision, spec: RunSpec, attempt: int, job: str | None) -> None:
    d.status.update(attempt=attempt, activeJob=job)
    budget = _is_true({"conditions": d.conditions}, BUDGET_EXCEEDED) and not spec.suspend
    reason = BUDGET_EXCEEDED if budget else REASON_SUSPENDED_BY_USER
    text = (
        "suspended: spend reached spec.cost.budget (raise it to resume)"
        if budget
        else "suspended by spec.suspend (set it to false to resume)"
    )
    if job:
        text += f"; Job {job} " + ("deleted (Kueue)" if spec.queue_name else "suspended")
    if d.phase != SUSPENDED:
        d.event("Normal", SUSPENDED, text)
    d.set_phase(SUSPENDED, reason, text)


def _stop_job(d: _Decision, job: Mapping[str, Any] | None, spec: RunSpec) -> None:
    """Stop what a failed run still pays for: delete its active Job (``Plan.job_stops``).

    Deleted, not suspended: Kueue owns a queued Job's ``suspend`` and would start it again.
    The run's status keeps why it failed; the pods' logs go either way.
    """
    if job is None or job_outcome(job).state != "active" or _is_deleting(job):
        return
    d.plan.job_stops.append(_job_name(job))


def _stop_leftovers(d: _Decision) -> None:
    """A finished run's Jobs that still run (an operator restarted after the end)."""
    for job in d.observed.jobs.values():
        if job_outcome(job).state == "active" and not _is_deleting(job):
            d.plan.job_stops.append(_job_name(job))


def _fail(d: _Decision, reason: str, message: str) -> None:
    if d.phase != FAILED:
        d.event("Warning", reason, message)
    d.set_phase(FAILED, reason, message)


def _ttl(d: _Decision, spec: RunSpec | None) -> None:
    if spec is None or spec.run_policy.ttl_seconds_after_finished is None:
        return
    done = parse_time(d.status.get("completionTime") or d.old.get("completionTime"))
    if done is None:
        return
    if d.now >= done + timedelta(seconds=spec.run_policy.ttl_seconds_after_finished):
        d.plan.delete_run = True
