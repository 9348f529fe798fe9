"""The run's lifecycle as pure decisions: what was observed, and the time -> a :class:`Plan`.

:func:`decide` is the whole of the operator's judgement. It reads a StyleGANRun (the dict
the API returns), what the run owns now (:class:`Observed`: its Jobs by attempt, its pods,
ConfigMaps and Service) and ``now``, and returns what to create, patch and delete, the
status to write, the Events to post and the metrics sample to publish. It does no I/O:
``kube`` applies a plan, ``handlers`` calls the two. Every reconcile recomputes the plan
from scratch (level-triggered), so running it twice, or after a crash half-way through
applying a plan, creates nothing twice: names are deterministic and a create that finds
the object there already is a success.

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
  ``<run>-a<N+1>`` rather than unsuspending the old Job: the old attempt's ConfigMap names
  the checkpoint it started from, and the new one resumes from the newest. Resumes count
  neither as restarts nor as preemptions.
* **Succeeded** / **Failed**: final. A finished run never recreates its Job; only its cost
  (pods still terminating) and ``runPolicy.ttlSecondsAfterFinished`` are still handled.

Failures (see ``render``'s docstring for the Job's ``podFailurePolicy``):

* exit code 64 of the trainer (bad configuration): the Job fails with reason
  ``PodFailurePolicy`` and the run fails at once with the trainer's termination message;
* any other failure of an attempt deletes its Job and starts ``<run>-a<N+1>`` resuming from
  the newest checkpoint (``status.lastCheckpoint.uri``, else ``spec.checkpoints.resumeFrom``,
  else the trainer's ``latest``), at most ``spec.runPolicy.backoffLimit`` times (default 3,
  as Kubeflow's PyTorchJob); then the run fails with ``BackoffLimitExceeded``;
* a pod of the attempt with the ``DisruptionTarget`` condition (eviction, preemption, node
  drain) restarts the whole group **at once**, counted in ``status.preemptions`` and not
  against the limit: torchrun's store lives on pod 0 and ``--max-restarts 0`` makes every
  survivor fail anyway, so waiting would only pay for GPUs stuck in a collective;
* ``runPolicy.activeDeadlineSeconds`` is wall-clock time from ``status.startTime`` over
  every attempt, time suspended or queued included (each Job gets what is left), and
  fails the run with ``DeadlineExceeded``;
* image pull errors fail the run with ``ImagePullFailed`` after a grace period
  (:attr:`LifecycleConfig.image_pull_grace_seconds`), at once for an invalid image name;
* a spec that slipped past the API server's schema fails the run with ``InvalidSpec``
  naming the field (and ``handlers`` raises ``kopf.PermanentError``); a later spec
  generation is looked at again.

Both kinds of restart post a ``WorkLost`` Warning Event naming the kimg trained since the
last checkpoint (thrown away: the next attempt resumes from that checkpoint) and what that
training cost; the cost adds up in ``status.lostWorkCostUsd``.

Each new Job carries annotations with the counters it was created with
(:data:`ANNOTATION_RESTARTS`, :data:`ANNOTATION_PREEMPTIONS`, :data:`ANNOTATION_REASON`),
so a crash between creating it and writing the status loses no count.

Cost: the run's pods are folded into a :class:`~stylegan_operator.cost.ledger.SpendLedger` kept in
``status.costLedger``; the status gets ``gpuHours``, ``cost``, ``projectedCost`` and
``eta``. ``spec.cost.budget`` is compared in USD: spend at or over it sets
``BudgetExceeded`` and applies ``budgetAction``; a projection over it sets ``BudgetAtRisk``
(a warning only: projections move).

Progress: rank 0 of the trainer merge-patches ``status.progress`` (``status_report`` in the
trainer); the operator copies ``kimg``, ``secPerKimg`` and ``lastCheckpoint`` to the
top-level fields the printer columns show, and projects from them. A checkpoint keeps the
time it was first reported (``_checkpoint_ref``); the metrics sample exports it as
``stylegan_run_last_checkpoint_timestamp_seconds``, which the checkpoint-age alert watches.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from stylegan_operator.api.names import API_VERSION, GROUP, PLURAL
from stylegan_operator.api.spec import RunSpec
from stylegan_operator.api.validation import SpecError, validate_spec
from stylegan_operator.cost.budget import (
    BUDGET_OVER,
    BUDGET_PROJECTED_OVER,
    Projection,
    budget_state,
    lost_work_cost,
    project,
)
from stylegan_operator.cost.ledger import SpendLedger
from stylegan_operator.cost.metering import parse_time, pod_usage
from stylegan_operator.cost.pricing import (
    DEFAULT_CATALOG,
    USD,
    CostError,
    PriceCatalog,
    currency_decimals,
    format_duration,
    format_money,
)
from stylegan_operator.cost.spend import RunPricing, SpendSnapshot
from stylegan_operator.reconcile import render


@dataclass(frozen=True)
class RunSample:
    """One run's numbers at one reconcile. Money is in USD; ``exchange_rate`` converts
    it to ``currency`` (units per USD)."""

    namespace: str
    run: str
    phase: str
    spend: SpendSnapshot
    currency: str = USD
    exchange_rate: float = 1.0
    projection: Projection | None = None
    budget_usd: float | None = None
    kimg: float | None = None
    target_kimg: float | None = None
    restarts: int = 0
    preemptions: int = 0
    lost_work_cost_usd: float = 0.0
    """Cumulative cost of work lost to failures (see cost.lost_work_cost)."""
    price_per_gpu_hour_usd: Mapping[str, float] = field(default_factory=dict)
    """Per GPU type; defaults to the prices the spend snapshot applied."""
    last_checkpoint_time: datetime | None = None
    """When the run's newest checkpoint was written (``status.lastCheckpoint.time``);
    None before the first one, and then the series is absent rather than 0."""


# --------------------------------------------------------------------------- vocabulary
PENDING: Final = "Pending"
RUNNING: Final = "Running"
RESTARTING: Final = "Restarting"
SUSPENDED: Final = "Suspended"
SUCCEEDED: Final = "Succeeded"
FAILED: Final = "Failed"
FINISHED: Final = (SUCCEEDED, FAILED)

CREATED: Final = "Created"
BUDGET_EXCEEDED: Final = "BudgetExceeded"
BUDGET_AT_RISK: Final = "BudgetAtRisk"
PRICED: Final = "Priced"
PHASE_CONDITIONS: Final = (PENDING, RUNNING, RESTARTING, SUSPENDED, SUCCEEDED, FAILED)

# Reasons (CamelCase, as Kubernetes writes them).
REASON_INVALID_SPEC: Final = "InvalidSpec"
REASON_BAD_CONFIGURATION: Final = "BadConfiguration"
REASON_BACKOFF_LIMIT: Final = "BackoffLimitExceeded"
REASON_DEADLINE: Final = "DeadlineExceeded"
REASON_IMAGE_PULL_FAILED: Final = "ImagePullFailed"
REASON_IMAGE_PULL_BACKOFF: Final = "ImagePullBackOff"
REASON_UNSCHEDULABLE: Final = "Unschedulable"
REASON_QUEUED: Final = "QueuedInKueue"
REASON_PODS_NOT_CREATED: Final = "PodsNotCreated"
REASON_PODS_STARTING: Final = "PodsStarting"
REASON_ATTEMPT_FAILED: Final = "AttemptFailed"
REASON_PREEMPTED: Final = "Preempted"
REASON_RESUMED: Final = "Resumed"
REASON_JOB_DELETED: Final = "JobDeleted"
REASON_INITIAL: Final = "Initial"
REASON_SUSPENDED_BY_USER: Final = "SuspendedBySpec"
REASON_JOB_CREATED: Final = "JobCreated"
REASON_ALL_PODS_RUNNING: Final = "AllPodsRunning"
REASON_COMPLETED: Final = "Completed"
REASON_NO_PRICE: Final = "NoPrice"
REASON_WORK_LOST: Final = "WorkLost"

ANNOTATION_REASON: Final = "stylegan.dev/attempt-reason"
ANNOTATION_RESTARTS: Final = "stylegan.dev/restarts"
ANNOTATION_PREEMPTIONS: Final = "stylegan.dev/preemptions"

IMAGE_PULL_WAITING: Final = ("ErrImagePull", "ImagePullBackOff")
IMAGE_NEVER_PULLABLE: Final = ("InvalidImageName", "ErrImageNeverPull")
MESSAGE_LIMIT: Final = 1024  # condition messages stay short; the pod keeps the rest

# Status fields this module owns; anything else under status (the trainer's ``progress``,
# kopf's own keys) is left alone by the merge patch.
STATUS_FIELDS: Final = (
    "phase", "conditions", "shape", "kimg", "totalKimg", "secPerKimg", "gpuHours", "cost",
    "projectedCost", "currency", "eta", "lastCheckpoint", "restarts", "preemptions",
    "attempt", "activeJob", "observedGeneration", "startTime", "completionTime", "message",
    "costLedger", "lostWorkCostUsd", "budgetExceededAt",
)  # fmt: skip


@dataclass(frozen=True)
class LifecycleConfig:
    """What the operator was started with (``stylegan operator`` flags)."""

    catalog: PriceCatalog = DEFAULT_CATALOG
    trainer_image: str | None = None
    """The trainer image for runs whose spec names none (``render``'s default otherwise)."""
    image_pull_grace_seconds: float = 300.0
    """How long pods may fail to pull their image before the run fails."""
    report_status: bool = True
    """Give the trainer a ServiceAccount token allowed to patch its own run's status."""


# --------------------------------------------------------------------------- observed
def _attempt_of(obj: Mapping[str, Any]) -> int | None:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    value = labels.get(render.LABEL_ATTEMPT)
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _controller_uid(obj: Mapping[str, Any]) -> str | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("uid")
    return None


@dataclass(frozen=True)
class Observed:
    """What a run owns right now, as the API returned it."""

    jobs: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)
    """The run's Jobs by attempt number."""
    pods: Sequence[Mapping[str, Any]] = ()
    """Every pod of the run (all attempts: they all cost money)."""
    config_maps: frozenset[str] = frozenset()
    service: Mapping[str, Any] | None = None

    @classmethod
    def from_api(
        cls,
        run: Mapping[str, Any],
        jobs: Iterable[Mapping[str, Any]] = (),
        pods: Iterable[Mapping[str, Any]] = (),
        config_maps: Iterable[Mapping[str, Any]] = (),
        service: Mapping[str, Any] | None = None,
    ) -> Observed:
        """Keep what belongs to *this* run: a run deleted and created again under the same
        name must not adopt the Jobs (and pods) of the old one while they are collected."""
        uid = (run.get("metadata") or {}).get("uid")
        own_jobs: dict[int, Mapping[str, Any]] = {}
        foreign_job_uids: set[str] = set()
        for job in jobs:
            attempt = _attempt_of(job)
            if uid and _controller_uid(job) not in (None, uid):
                foreign_job_uids.add(str((job.get("metadata") or {}).get("uid")))
                continue
            if attempt is not None:
                own_jobs[attempt] = job
        own_pods = [p for p in pods if _controller_uid(p) not in foreign_job_uids]
        names = frozenset(
            str((c.get("metadata") or {}).get("name"))
            for c in config_maps
            if not uid or _controller_uid(c) in (None, uid)
        )
        if service is not None and uid and _controller_uid(service) not in (None, uid):
            service = None
        return cls(own_jobs, own_pods, names, service)


# --------------------------------------------------------------------------- plan
@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post on the run."""

    type: str  # Normal or Warning
    reason: str
    message: str


@dataclass
class Plan:
    """What one reconcile does, in the order ``kube.apply`` does it.

    Creates come first (so a crash can never lose the Job a restart decided on), then
    patches of Jobs, then deletions of stale Jobs, then the status, then the run's own
    deletion (TTL).
    """

    status: dict[str, Any] = field(default_factory=dict)
    """A JSON merge patch for ``status``; None values remove a field."""
    creates: list[dict[str, Any]] = field(default_factory=list)
    job_patches: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """(Job name, merge patch)."""
    deletes: list[tuple[str, str]] = field(default_factory=list)
    """(kind, name) of objects to delete, e.g. ("Job", "run-a1")."""
    events: list[Event] = field(default_factory=list)
    delete_run: bool = False
    permanent_error: str | None = None
    """Set for a spec the operator refuses; handlers raise kopf.PermanentError with it."""
    sample: RunSample | None = None

    @property
    def phase(self) -> str | None:
        return self.status.get("phase")

    def created(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.creates if o.get("kind") == kind]


# --------------------------------------------------------------------------- helpers
def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _short(message: str | None) -> str:
    text = " ".join((message or "").split())
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 3] + "..."


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def _true_conditions(obj: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    out: dict[str, Mapping[str, Any]] = {}
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type"):
            out[str(cond["type"])] = cond
    return out


def _pod_name(pod: Mapping[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("name", "?"))


def is_disrupted(pod: Mapping[str, Any]) -> bool:
    """The pod was evicted, preempted or drained (the ``DisruptionTarget`` condition)."""
    return "DisruptionTarget" in _true_conditions(pod)


def _phase_of(pod: Mapping[str, Any]) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def _terminated(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    out: list[Mapping[str, Any]] = []
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        term = (cs.get("state") or {}).get("terminated")
        if term:
            out.append({"container": cs.get("name"), **term})
    return out


def _waiting(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    out: list[Mapping[str, Any]] = []
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting")
        if waiting:
            out.append({"container": cs.get("name"), "image": cs.get("image"), **waiting})
    return out


def _scheduled_at(pod: Mapping[str, Any]) -> datetime | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "True":
            return parse_time(cond.get("lastTransitionTime"))
    return parse_time((pod.get("metadata") or {}).get("creationTimestamp"))


def _unschedulable_message(pod: Mapping[str, Any]) -> str | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if (
            cond.get("type") == "PodScheduled"
            and cond.get("status") == "False"
            and cond.get("reason") == "Unschedulable"
        ):
            return str(cond.get("message") or "no node fits the pod")
    return None


@dataclass(frozen=True)
class JobOutcome:
    """Where a Job stands: ``active``, ``suspended``, ``succeeded`` or ``failed``."""

    state: str
    reason: str | None = None
    message: str | None = None


def job_outcome(job: Mapping[str, Any]) -> JobOutcome:
    """Read a Job's conditions. ``FailureTarget``/``SuccessCriteriaMet`` count as the final
    condition: the Job controller sets them first and the verdict cannot change."""
    conds = _true_conditions(job)
    for kind in ("Complete", "SuccessCriteriaMet"):
        if kind in conds:
            return JobOutcome("succeeded", conds[kind].get("reason"), conds[kind].get("message"))
    for kind in ("Failed", "FailureTarget"):
        if kind in conds:
            return JobOutcome("failed", conds[kind].get("reason"), conds[kind].get("message"))
    if (job.get("spec") or {}).get("suspend"):
        return JobOutcome("suspended")
    return JobOutcome("active")


def _job_name(job: Mapping[str, Any]) -> str:
    return str((job.get("metadata") or {}).get("name"))


def _is_deleting(obj: Mapping[str, Any]) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


# --------------------------------------------------------------------------- conditions
def set_condition(
    conditions: list[dict[str, Any]],
    type_: str,
    status: bool,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None,
) -> bool:
    """Set one condition in place; True when its status changed (a transition).

    ``lastTransitionTime`` moves only when the status flips, as Kubernetes does.
    """
    value = "True" if status else "False"
    for cond in conditions:
        if cond.get("type") == type_:
            changed = cond.get("status") != value
            cond.update(status=value, reason=reason, message=_short(message))
            if generation is not None:
                cond["observedGeneration"] = generation
            if changed:
                cond["lastTransitionTime"] = _iso(now)
            return changed
    new: dict[str, Any] = {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": _short(message),
        "lastTransitionTime": _iso(now),
    }
    if generation is not None:
        new["observedGeneration"] = generation
    conditions.append(new)
    return status  # a new False condition is not news


def condition(status: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == type_:
            return cond
    return None


# --------------------------------------------------------------------------- builders
def service_account_name(run_name: str) -> str:
    """The per-run ServiceAccount the trainer reports progress with."""
    return render.dns_label(run_name, "-trainer")


def status_role_name(run_name: str) -> str:
    return render.dns_label(run_name, "-status")


def build_service_account(run_meta: Mapping[str, Any]) -> dict[str, Any]:
    run = str(run_meta["name"])
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _child_meta(run_meta, service_account_name(run)),
        # Only the trainer pods mount a token, and they ask for it explicitly.
        "automountServiceAccountToken": False,
    }


def build_status_role(run_meta: Mapping[str, Any]) -> dict[str, Any]:
    """May read and patch the status of this one run, nothing else."""
    run = str(run_meta["name"])
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _child_meta(run_meta, status_role_name(run)),
        "rules": [
            {
                "apiGroups": [GROUP],
                "resources": [f"{PLURAL}/status"],
                "resourceNames": [run],
                "verbs": ["get", "patch"],
            }
        ],
    }


def build_status_role_binding(run_meta: Mapping[str, Any], account: str) -> dict[str, Any]:
    run = str(run_meta["name"])
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _child_meta(run_meta, status_role_name(run)),
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": status_role_name(run),
        },
        "subjects": [
            {"kind": "ServiceAccount", "name": account, "namespace": str(run_meta["namespace"])}
        ],
    }


def _child_meta(run_meta: Mapping[str, Any], name: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": str(run_meta["namespace"]),
        "labels": render.run_labels(str(run_meta["name"])),
        "ownerReferences": [render.owner_reference(dict(run_meta))],
    }


def _units_per_node(spec: RunSpec, now: datetime) -> float:
    """GPUs per pod, or vCPUs for a CPU run: what one trainer pod is priced by."""
    if not spec.is_cpu:
        return float(spec.resources.gpus_per_node)
    extra = spec.resources.resources
    pod = {
        "metadata": {"uid": "probe", "name": "probe"},
        "spec": {
            "containers": [
                {"resources": {"requests": dict(extra.requests), "limits": dict(extra.limits)}}
            ]
        },
        "status": {"startTime": _iso(now)},
    }
    usage = pod_usage(pod, now, default_gpu_type=spec.resources.gpu_type)
    return usage.units if usage is not None else 0.0


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


# --------------------------------------------------------------------------- decide
class _Decision:
    """The mutable working state of one :func:`decide` call."""

    def __init__(self, run: Mapping[str, Any], observed: Observed, now: datetime,
                 config: LifecycleConfig) -> None:
        self.run = run
        self.meta = dict(run.get("metadata") or {})
        self.old: dict[str, Any] = dict(run.get("status") or {})
        self.observed = observed
        self.now = now
        self.config = config
        self.name = str(self.meta.get("name"))
        self.namespace = str(self.meta.get("namespace"))
        self.generation = self.meta.get("generation")
        self.conditions: list[dict[str, Any]] = copy.deepcopy(self.old.get("conditions") or [])
        self.plan = Plan()
        self.status: dict[str, Any] = {}
        self.phase: str | None = self.old.get("phase")
        self.message: str | None = self.old.get("message")
        self.restarts = _int(self.old.get("restarts"))
        self.preemptions = _int(self.old.get("preemptions"))
        self.lost_work_usd = _float(self.old.get("lostWorkCostUsd")) or 0.0
        self.budget_message = ""

    # -- small helpers -----------------------------------------------------------------
    def cond(self, type_: str, status: bool, reason: str, message: str = "") -> bool:
        return set_condition(
            self.conditions, type_, status, reason, message, self.now, self.generation
        )

    def event(self, type_: str, reason: str, message: str) -> None:
        self.plan.events.append(Event(type_, reason, _short(message)))

    def set_phase(self, phase: str, reason: str, message: str) -> None:
        """Enter ``phase``: its condition True, the other phase conditions False."""
        self.phase = phase
        self.message = message
        for type_ in PHASE_CONDITIONS:
            if type_ == phase:
                self.cond(type_, True, reason, message)
            else:
                current = condition({"conditions": self.conditions}, type_)
                if current is not None and current.get("status") == "True":
                    self.cond(type_, False, reason, message)


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


def _is_true(status: Mapping[str, Any], type_: str) -> bool:
    cond = condition(status, type_)
    return cond is not None and cond.get("status") == "True"


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
            f"{waiting.get('message') or waiting.get('reason')}"
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
    if disrupted:
        _restart(d, spec, attempt, REASON_PREEMPTED, why, start, progress, pricing)
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


def _create_attempt(
    d: _Decision, spec: RunSpec, attempt: int, reason: str, start: datetime,
    progress: Mapping[str, Any],
) -> None:
    """The objects of one attempt, in the order they must exist."""
    run_meta = _run_meta(d)
    resume = _resume_uri(d, spec, progress)
    remaining: int | None = None
    deadline = spec.run_policy.active_deadline_seconds
    if deadline is not None:
        used = (d.now - start).total_seconds()
        remaining = max(int(deadline - used), 1)
    account = _trainer_account(d, spec)
    creates = d.plan.creates
    if account is not None:
        if spec.resources.service_account_name is None:
            creates.append(build_service_account(run_meta))
        creates.append(build_status_role(run_meta))
        creates.append(build_status_role_binding(run_meta, account))
    creates.append(render.build_service(run_meta, spec))
    creates.append(render.build_config_map(run_meta, spec, attempt, resume))
    job = render.build_job(
        run_meta, spec, attempt, resume,
        image=d.config.trainer_image,
        active_deadline_seconds=remaining,
        service_account_name=account,
    )  # fmt: skip
    annotations = job["metadata"].setdefault("annotations", {})
    annotations[ANNOTATION_REASON] = reason
    annotations[ANNOTATION_RESTARTS] = str(d.restarts)
    annotations[ANNOTATION_PREEMPTIONS] = str(d.preemptions)
    creates.append(job)
    name = render.job_name(d.name, attempt)
    d.status.update(attempt=attempt, activeJob=name)
    d.cond(CREATED, True, REASON_JOB_CREATED, f"Job {name} created")
    if reason == REASON_INITIAL and attempt == 1 and not d.old.get("activeJob"):
        shape = f"{spec.node_count}x{spec.resources.gpus_per_node}"
        d.event("Normal", CREATED, f"created Job {name}: {shape} on "
                f"{spec.resources.gpu_type}" + (f", resuming from {resume}" if resume else ""))


def _trainer_account(d: _Decision, spec: RunSpec) -> str | None:
    if not d.config.report_status:
        return None
    return spec.resources.service_account_name or service_account_name(d.name)


def _ensure_support(d: _Decision, spec: RunSpec, attempt: int, job: Mapping[str, Any]) -> None:
    """Recreate the Service or the attempt's ConfigMap when someone deleted them."""
    if job_outcome(job).state in ("succeeded", "failed"):
        return
    run_meta = _run_meta(d)
    if d.observed.service is None:
        d.plan.creates.append(render.build_service(run_meta, spec))
    if render.config_map_name(d.name, attempt) not in d.observed.config_maps:
        annotations = (job.get("metadata") or {}).get("annotations") or {}
        resume = annotations.get(render.ANNOTATION_RESUME)
        d.plan.creates.append(render.build_config_map(run_meta, spec, attempt, resume))


def _resume_uri(d: _Decision, spec: RunSpec, progress: Mapping[str, Any]) -> str | None:
    """The run's newest durable checkpoint, else ``resumeFrom`` (``render.resume_uri_for``).

    Without ``spec.checkpoints`` the trainer writes to a scratch folder in the pod, which
    dies with it: a checkpoint reported from there cannot be resumed.
    """
    last = progress.get("lastCheckpoint") or {}
    uri = last.get("uri") if isinstance(last, Mapping) and spec.checkpoints else None
    return render.resume_uri_for(spec, uri)


def _run_meta(d: _Decision) -> dict[str, Any]:
    return {
        "name": d.name,
        "namespace": d.namespace,
        "uid": d.meta.get("uid"),
        "generation": d.generation,
    }


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
    """Stop what a failed run still pays for; the Job stays for inspection."""
    if job is None or job_outcome(job).state != "active":
        return
    d.plan.job_patches.append((_job_name(job), {"spec": {"suspend": True}}))


def _stop_leftovers(d: _Decision) -> None:
    for job in d.observed.jobs.values():
        if job_outcome(job).state == "active" and not _is_deleting(job):
            d.plan.job_patches.append((_job_name(job), {"spec": {"suspend": True}}))


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


# --------------------------------------------------------------------------- cost
def _pricing(d: _Decision, spec: RunSpec) -> RunPricing | None:
    """How the run is priced; None (a Priced=False condition, one event) when it cannot be:
    the run still trains, it only goes unmetered."""
    try:
        pricing = RunPricing.from_spec(d.config.catalog, spec.resources.gpu_type, spec.cost)
        pricing.unit_price(spec.resources.gpu_type, False)
    except CostError as exc:
        if d.cond(PRICED, False, REASON_NO_PRICE, str(exc)) or condition(d.old, PRICED) is None:
            d.event("Warning", REASON_NO_PRICE, str(exc))
        return None
    return pricing


def _observe_cost(d: _Decision, spec: RunSpec, pricing: RunPricing) -> SpendSnapshot | None:
    if condition({"conditions": d.conditions}, PRICED) is not None:
        d.cond(PRICED, True, "PriceKnown", f"priced as {spec.resources.gpu_type}")
    try:
        ledger = SpendLedger.from_status(d.old.get("costLedger"))
    except CostError as exc:
        d.event("Warning", "CostLedgerReset", f"status.costLedger unreadable, restarted: {exc}")
        ledger = SpendLedger()
    try:
        snapshot = ledger.observe(d.observed.pods, d.now, pricing)
    except CostError as exc:  # a pod the catalog cannot price: unmetered, not stuck
        if d.cond(PRICED, False, REASON_NO_PRICE, str(exc)):
            d.event("Warning", REASON_NO_PRICE, str(exc))
        return None
    d.status["costLedger"] = ledger.to_status()
    return snapshot


def _progress(d: _Decision, spec: RunSpec) -> dict[str, Any]:
    """The trainer's report (``status.progress``), camelCase."""
    raw = d.old.get("progress")
    return dict(raw) if isinstance(raw, Mapping) else {}


def _projection(
    d: _Decision, spec: RunSpec, pricing: RunPricing | None, snapshot: SpendSnapshot | None,
    progress: Mapping[str, Any],
) -> Projection | None:
    if snapshot is None or pricing is None:
        return None
    sec = _float(progress.get("secPerKimg"))
    kimg = _float(progress.get("kimg")) or 0.0
    if not sec or sec <= 0:
        return None
    try:
        return project(
            kimg, spec.training.kimg, sec, spec.node_count, _units_per_node(spec, d.now),
            pricing.unit_price(spec.resources.gpu_type, False), snapshot.cost_usd,
            now=d.now, price_per_node_hour=pricing.node_price(spec.resources.gpu_type, False),
        )  # fmt: skip
    except CostError:
        return None


def _budget(
    d: _Decision, spec: RunSpec, pricing: RunPricing | None, snapshot: SpendSnapshot | None,
    projection: Projection | None,
) -> str | None:
    """Set BudgetExceeded / BudgetAtRisk; returns cost.budget_state or None without one."""
    budget = spec.cost.budget
    if budget is None or snapshot is None or pricing is None:
        for type_ in (BUDGET_EXCEEDED, BUDGET_AT_RISK):
            if condition({"conditions": d.conditions}, type_) is not None:
                d.cond(type_, False, "NoBudget", "no spec.cost.budget")
        if budget is None:
            d.status["budgetExceededAt"] = None
        return None
    budget_usd = pricing.catalog.to_usd(budget, pricing.display_currency, "spec.cost.budget")
    projected = projection.projected_cost if projection else None
    state = budget_state(snapshot.cost_usd, projected, budget_usd)
    # Latched: the spend of a run suspended at its budget can still dip under it (a price
    # lowered in the spec reprices its running pods; a reset ledger), and the run would
    # resume and stop again and again. Only a raised budget lets it go. (Pods ending no
    # longer cause a dip: the ledger closes them no earlier than it last priced them.)
    latched = _float(d.old.get("budgetExceededAt"))
    if state == BUDGET_OVER:
        d.status["budgetExceededAt"] = budget
    elif latched is not None and budget <= latched:
        state = BUDGET_OVER
        d.status["budgetExceededAt"] = latched
    else:
        d.status["budgetExceededAt"] = None
    currency = pricing.display_currency
    spent = f"{snapshot.cost:,.{currency_decimals(currency)}f} {currency}"
    limit = f"{budget:,.{currency_decimals(currency)}f} {currency}"
    over = f"spent {spent} of the budget {limit}"
    d.budget_message = over
    if d.cond(BUDGET_EXCEEDED, state == BUDGET_OVER,
              "SpendReachedBudget" if state == BUDGET_OVER else "WithinBudget", over):
        d.event("Warning", BUDGET_EXCEEDED, f"{over}; budgetAction {spec.cost.budget_action}")
    at_risk = state == BUDGET_PROJECTED_OVER
    risk_text = over
    if projected is not None:
        risk_text += (f"; projected {projected * pricing.exchange_rate:,.2f} {currency} "
                      "at the measured speed")
    if d.cond(BUDGET_AT_RISK, at_risk, "ProjectionOverBudget" if at_risk else "ProjectionOk",
              risk_text):
        d.event("Warning", BUDGET_AT_RISK, risk_text)
    return state


def _lost_work_usd(
    spec: RunSpec, progress: Mapping[str, Any], pricing: RunPricing | None, now: datetime
) -> float:
    """What the training since the last checkpoint cost: thrown away by a restart."""
    if pricing is None:
        return 0.0
    lost_kimg = _kimg_since_checkpoint(progress)
    sec = _float(progress.get("secPerKimg"))
    if lost_kimg is None or not sec:
        return 0.0
    try:
        return lost_work_cost(
            lost_kimg, sec,
            spec.node_count * _units_per_node(spec, now),
            pricing.unit_price(spec.resources.gpu_type, False),
            price_per_node_hour=pricing.node_price(spec.resources.gpu_type, False),
            nodes=spec.node_count,
        )  # fmt: skip
    except CostError:
        return 0.0


def _checkpoint_kimg(progress: Mapping[str, Any]) -> float | None:
    """The kimg of the last checkpoint the trainer reported, None before the first."""
    last = progress.get("lastCheckpoint")
    return _float(last.get("kimg")) if isinstance(last, Mapping) else None


def _kimg_since_checkpoint(progress: Mapping[str, Any]) -> float | None:
    """The training a failure throws away: reported kimg minus the last checkpoint's (the
    whole run so far without one); None before the trainer reported any progress."""
    kimg = _float(progress.get("kimg"))
    if kimg is None:
        return None
    return max(kimg - (_checkpoint_kimg(progress) or 0.0), 0.0)


def _kimg_text(kimg: float) -> str:
    """kimg to the image (``130``, ``0.012``, ``1234.5``), as short as that allows."""
    return f"{round(kimg, 3):g}"


def _work_lost_message(
    attempt: int, progress: Mapping[str, Any], lost_usd: float, pricing: RunPricing | None
) -> str | None:
    """The ``WorkLost`` Event's words; None when the trainer never reported its kimg (then
    nothing is known about what was lost)."""
    lost = _kimg_since_checkpoint(progress)
    if lost is None:
        return None
    kimg = _float(progress.get("kimg")) or 0.0
    saved = _checkpoint_kimg(progress)
    checkpoint = (
        "no checkpoint yet" if saved is None else f"last checkpoint at kimg {_kimg_text(saved)}"
    )
    if pricing is not None and _float(progress.get("secPerKimg")):
        cost = "costing " + format_money(lost_usd * pricing.exchange_rate, pricing.display_currency)
    else:
        cost = "at a cost not known (no price, or no measured sec/kimg)"
    return (
        f"attempt {attempt} lost {_kimg_text(lost)} kimg of training (reported kimg "
        f"{_kimg_text(kimg)}, {checkpoint}), {cost}"
    )


# --------------------------------------------------------------------------- status
def _finish(
    d: _Decision,
    spec: RunSpec | None,
    snapshot: SpendSnapshot | None,
    projection: Projection | None,
    pricing: RunPricing | None = None,
    budget: str | None = None,
    progress: Mapping[str, Any] | None = None,
) -> Plan:
    """Assemble the status patch, the phase event and the metrics sample."""
    status = d.status
    progress = progress or {}
    status.update(
        phase=d.phase,
        conditions=d.conditions,
        message=d.message,
        observedGeneration=d.generation,
        restarts=d.restarts,
        preemptions=d.preemptions,
    )
    if d.lost_work_usd:
        status["lostWorkCostUsd"] = round(d.lost_work_usd, 6)
    if spec is not None:
        status["shape"] = f"{spec.node_count}x{spec.resources.gpus_per_node}"
        status["totalKimg"] = spec.training.kimg
    if progress:
        kimg = _float(progress.get("kimg"))
        sec = _float(progress.get("secPerKimg"))
        if kimg is not None:
            status["kimg"] = round(kimg, 3)
        if sec is not None:
            status["secPerKimg"] = round(sec, 3)
        last = progress.get("lastCheckpoint")
        if isinstance(last, Mapping) and last.get("uri"):
            status["lastCheckpoint"] = _checkpoint_ref(last, d.old.get("lastCheckpoint"))
    if snapshot is not None and pricing is not None:
        status.update(snapshot.to_status())
        rate = pricing.exchange_rate
        if projection is not None and projection.remaining_seconds is not None:
            status["projectedCost"] = round(
                projection.projected_cost * rate, currency_decimals(snapshot.currency)
            )
            status["eta"] = format_duration(projection.remaining_seconds)
        else:
            status["projectedCost"] = (
                status["cost"] if d.phase in FINISHED else d.old.get("projectedCost")
            )
            status["eta"] = None if d.phase in FINISHED or d.phase == SUSPENDED else (
                d.old.get("eta")
            )
    if d.phase != d.old.get("phase") and d.phase in (RUNNING, SUCCEEDED):
        d.event("Normal", d.phase, d.message or d.phase)

    d.plan.status = {k: v for k, v in status.items() if k in STATUS_FIELDS}
    if spec is not None and snapshot is not None and pricing is not None:
        budget_usd = (
            pricing.catalog.to_usd(spec.cost.budget, pricing.display_currency)
            if spec.cost.budget is not None
            else None
        )
        d.plan.sample = RunSample(
            namespace=d.namespace,
            run=d.name,
            phase=d.phase or PENDING,
            spend=snapshot,
            currency=snapshot.currency,
            exchange_rate=pricing.exchange_rate,
            projection=projection,
            budget_usd=budget_usd,
            kimg=_float(progress.get("kimg")),
            target_kimg=float(spec.training.kimg),
            restarts=d.restarts,
            preemptions=d.preemptions,
            lost_work_cost_usd=d.lost_work_usd,
            last_checkpoint_time=_checkpoint_time(
                status.get("lastCheckpoint") or d.old.get("lastCheckpoint")
            ),
        )
    return d.plan


def _checkpoint_ref(reported: Mapping[str, Any], known: Any) -> dict[str, Any]:
    """``status.lastCheckpoint`` from the trainer's report, keeping the time it was written.

    The trainer stamps ``lastCheckpoint.time`` with the time of each progress report, so
    the same checkpoint comes back with a newer time every tick. A checkpoint already in
    the status (same uri) keeps its earlier time: the time it was first reported, within
    one report of when it was written. Otherwise its age, and the alert on it, would never
    grow.
    """
    ref = {k: reported[k] for k in ("uri", "kimg", "time") if reported.get(k) is not None}
    if isinstance(known, Mapping) and known.get("uri") == ref["uri"]:
        earlier = parse_time(known.get("time"))
        reported_time = parse_time(ref.get("time"))
        if earlier is not None and (reported_time is None or earlier < reported_time):
            ref["time"] = known["time"]
    return ref


def _checkpoint_time(ref: Any) -> datetime | None:
    """When the checkpoint ``status.lastCheckpoint`` names was written, if it says."""
    return parse_time(ref.get("time")) if isinstance(ref, Mapping) else None


def diff_status(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch that turns ``old`` into ``new`` for the fields ``new`` names.

    Unchanged fields are left out (no write for no change); a None value removes a field,
    so it is kept only where ``old`` has the field. A merge patch merges objects key by
    key, so keys an object lost (a pod closed out of ``costLedger.open``) are sent as None.
    """
    return {
        key: _replacing(old.get(key), value)
        for key, value in new.items()
        if old.get(key) != value and not (value is None and key not in old)
    }


def _replacing(old: Any, new: Any) -> Any:
    if not isinstance(old, Mapping) or not isinstance(new, Mapping):
        return new
    out: dict[str, Any] = {k: _replacing(old.get(k), v) for k, v in new.items()}
    out.update({k: None for k in old if k not in new})
    return out


def run_reference(run: Mapping[str, Any]) -> dict[str, Any]:
    """The bits of a run kopf needs to post an Event on it."""
    meta = run.get("metadata") or {}
    return {
        "apiVersion": run.get("apiVersion", API_VERSION),
        "kind": run.get("kind", "StyleGANRun"),
        "metadata": {k: meta.get(k) for k in ("name", "namespace", "uid") if meta.get(k)},
    }
