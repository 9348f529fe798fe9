"""The run's lifecycle as pure decisions: what was observed, and the time -> a :class:`Plan`.

:func:`decide` is the whole of the operator's judgement. It reads a StyleGANRun (the dict
the API returns), what the run owns now (:class:`Observed`: its Jobs by attempt, its pods,
ConfigMaps and Service) and ``now``, and returns what to create, patch and delete, the
status to write, the Events to post and the metrics sample to publish. It does no I/O:
``kube`` applies a plan, ``handlers`` calls the two. Every reconcile recomputes the plan
from scratch (level-triggered), so running it twice, or after a crash half-way through
applying a plan, creates nothing twice: names are deterministic and a create that finds
the object there already is a success.

It runs along observe -> decide -> plan: ``observe`` reads what the run owns from the
API's objects; this module judges, with ``attempts`` driving the newest attempt's Job and
``spend`` pricing the run and holding it to its budget, ``spec_changes`` saying which
spec changes wait for the next attempt, and ``serving`` running the server of
``spec.serve``; ``plan`` holds the draft they write into and the Plan, status patch and
metrics sample it becomes. ``conditions`` names the
phases, conditions and reasons. The phases a run moves through and the failures it can meet
are described in ``attempts``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from stylegan_operator.api.validation import SpecError, validate_spec
from stylegan_operator.cost.budget import BUDGET_OVER
from stylegan_operator.cost.metering import parse_time
from stylegan_operator.reconcile.attempts import (
    _drive_attempt,
    _fail,
    _stop_job,
    _stop_leftovers,
    _ttl,
)
from stylegan_operator.reconcile.children import ANNOTATION_PREEMPTIONS, ANNOTATION_RESTARTS
from stylegan_operator.reconcile.conditions import (
    BUDGET_EXCEEDED,
    FAILED,
    FINISHED,
    REASON_DEADLINE,
    REASON_INVALID_SPEC,
    _iso,
    condition,
)
from stylegan_operator.reconcile.observe import (
    LifecycleConfig,
    Observed,
    _int,
    _is_deleting,
    _job_name,
)
from stylegan_operator.reconcile.plan import Plan, _Decision, _finish
from stylegan_operator.reconcile.serving import drive_serving
from stylegan_operator.reconcile.spec_changes import note_spec_changes
from stylegan_operator.reconcile.spend import (
    _budget,
    _observe_cost,
    _pricing,
    _progress,
    _projection,
)


def wants_timer(run: Mapping[str, Any]) -> bool:
    """Whether the periodic reconcile (cost, deadline, TTL) still has work on this run.

    Runs that finished without a TTL need none, so kopf drops its finalizer from them.
    """
    meta = run.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return False
    phase = (run.get("status") or {}).get("phase")
    if phase not in FINISHED:
        return True
    policy = ((run.get("spec") or {}).get("runPolicy")) or {}
    return policy.get("ttlSecondsAfterFinished") is not None


def decide(
    run: Mapping[str, Any],
    observed: Observed,
    now: datetime,
    config: LifecycleConfig | None = None,
) -> Plan:
    """The plan that brings ``run`` one step closer to what its spec asks (see module doc)."""
    config = config or LifecycleConfig()
    d = _Decision(run, observed, now, config)
    if d.meta.get("deletionTimestamp"):
        return d.plan  # ownerReferences and the garbage collector do the rest

    finished = d.phase in FINISHED and not _invalid_spec_may_retry(d)
    try:
        spec = validate_spec(dict(run.get("spec") or {}))
    except SpecError as exc:
        if not finished:
            _fail(d, REASON_INVALID_SPEC, f"invalid spec: {exc}")
            d.plan.permanent_error = str(exc)
        return _finish(d, None, None, None)

    pricing = _pricing(d, spec)
    snapshot = _observe_cost(d, spec, pricing) if pricing is not None else None
    progress = _progress(d, spec)
    projection = _projection(d, spec, pricing, snapshot, progress) if not finished else None
    budget = _budget(d, spec, pricing, snapshot, projection)

    if finished:
        _stop_leftovers(d)
        _ttl(d, spec)
        drive_serving(d, spec, progress)
        return _finish(d, spec, snapshot, projection, pricing, budget, progress)

    attempt = max(_int(d.old.get("attempt")), max(observed.jobs, default=0), 1)
    # Counters written on the newest Job survive a crash before the status was written.
    newest = observed.jobs.get(attempt)
    if newest is not None:
        annotations = (newest.get("metadata") or {}).get("annotations") or {}
        d.restarts = max(d.restarts, _int(annotations.get(ANNOTATION_RESTARTS)))
        d.preemptions = max(d.preemptions, _int(annotations.get(ANNOTATION_PREEMPTIONS)))
    for stale, job in sorted(observed.jobs.items()):
        if stale < attempt and not _is_deleting(job):
            d.plan.deletes.append(("Job", _job_name(job)))

    start = parse_time(d.old.get("startTime")) or now
    d.status["startTime"] = _iso(start)
    deadline = spec.run_policy.active_deadline_seconds
    desired_suspend = spec.suspend or (
        budget == BUDGET_OVER and spec.cost.budget_action == "Suspend"
    )

    if deadline is not None and now >= start + timedelta(seconds=deadline):
        _fail(d, REASON_DEADLINE, f"the run passed spec.runPolicy.activeDeadlineSeconds "
              f"({deadline} s since {_iso(start)})")
        _stop_job(d, observed.jobs.get(attempt), spec)
    elif budget == BUDGET_OVER and spec.cost.budget_action == "Fail":
        _fail(d, BUDGET_EXCEEDED, d.budget_message)
        _stop_job(d, observed.jobs.get(attempt), spec)
    else:
        _drive_attempt(d, spec, attempt, desired_suspend, start, progress, pricing)
    note_spec_changes(d, spec)
    drive_serving(d, spec, progress)

    if d.phase in FINISHED:
        d.status["completionTime"] = d.status.get("completionTime") or _iso(now)
        _ttl(d, spec)
        projection = None
    return _finish(d, spec, snapshot, projection, pricing, budget, progress)


def _invalid_spec_may_retry(d: _Decision) -> bool:
    """A run failed for its spec is looked at again once the spec changed."""
    failed = condition(d.old, FAILED)
    return (
        failed is not None
        and failed.get("reason") == REASON_INVALID_SPEC
        and d.generation is not None
        and _int(d.old.get("observedGeneration"), -1) < _int(d.generation)
    )
