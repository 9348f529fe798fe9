"""What one reconcile does (:class:`Plan`), the draft it is decided in, and the status it writes.

:class:`Plan` holds what to create, patch and delete, the status to write, the Events to
post and the metrics sample (:class:`RunSample`) to publish; ``kube`` applies it, and
:func:`diff_status` turns its status into the merge patch that is sent. ``_Decision`` is the
mutable working state of one ``decide`` call, and ``_finish`` turns it into the Plan's
status patch, phase Event and sample. Kept apart so that the steps of the decision
(``attempts``, ``spend``) all write into the same draft without importing one another.

Progress: rank 0 of the trainer merge-patches ``status.progress`` (``status_report`` in the
trainer); the operator copies ``kimg``, ``secPerKimg`` and ``lastCheckpoint`` to the
top-level fields the printer columns show, and projects from them. A checkpoint keeps the
time it was first reported (``_checkpoint_ref``); the metrics sample exports it as
``stylegan_run_last_checkpoint_timestamp_seconds``, which the checkpoint-age alert watches.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from stylegan_operator.api.names import API_VERSION
from stylegan_operator.api.spec import RunSpec
from stylegan_operator.cost.budget import Projection
from stylegan_operator.cost.metering import parse_time
from stylegan_operator.cost.pricing import (
    USD,
    currency_decimals,
    format_duration,
    format_money,
    format_progress,
)
from stylegan_operator.cost.spend import RunPricing, SpendSnapshot
from stylegan_operator.reconcile.conditions import (
    FINISHED,
    PENDING,
    PHASE_CONDITIONS,
    RUNNING,
    SUCCEEDED,
    SUSPENDED,
    _short,
    condition,
    set_condition,
)
from stylegan_operator.reconcile.observe import LifecycleConfig, Observed, _float, _int


# --------------------------------------------------------------------------- plan
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
    applies, then patches of Jobs, then deletions (stale Jobs, a server no longer wanted),
    then the Jobs a finished run stops, then the status, then the run's own deletion (TTL).
    """

    status: dict[str, Any] = field(default_factory=dict)
    """A JSON merge patch for ``status``; None values remove a field."""
    creates: list[dict[str, Any]] = field(default_factory=list)
    applies: list[dict[str, Any]] = field(default_factory=list)
    """Objects sent whole with server-side apply (the server of ``spec.serve``): made when
    missing, brought back to what the operator renders when that changed, fields it no
    longer renders removed."""
    job_patches: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """(Job name, merge patch)."""
    deletes: list[tuple[str, str]] = field(default_factory=list)
    """(kind, name) of objects to delete, e.g. ("Job", "run-a1")."""
    job_stops: list[str] = field(default_factory=list)
    """Jobs a finished run no longer needs, deleted with foreground propagation: the Job
    stays (terminating) until its pods have stopped, which gives the trainer its SIGTERM
    checkpoint, and is then gone for good. Never suspended: Kueue unsuspends a queued Job."""
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


# --------------------------------------------------------------------------- draft
def _attempt_nodes(d: _Decision, spec: RunSpec) -> int:
    """Nodes of the run's current attempt: its Job's completions (an elastic attempt may
    have fewer than maxNodes, ``capacity``), else what the spec asks for."""
    if d.attempt_nodes is not None:
        return d.attempt_nodes
    attempt = _int(d.status.get("attempt", d.old.get("attempt")))
    job = d.observed.jobs.get(attempt)
    completions = _int(((job or {}).get("spec") or {}).get("completions"))
    return completions if completions > 0 else spec.node_count


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
        self.attempt_nodes: int | None = None
        """Nodes of an attempt created by this decision (``children._create_attempt``)."""

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


# --------------------------------------------------------------------------- status
# Status fields this module owns; anything else under status (the trainer's ``progress``,
# kopf's own keys) is left alone by the merge patch.
STATUS_FIELDS: Final = (
    "phase", "conditions", "shape", "kimg", "totalKimg", "progressText", "secPerKimg",
    "gpuHours", "cost", "costText", "projectedCost", "projectedCostText", "currency", "eta",
    "lastCheckpoint", "restarts", "preemptions",
    "attempt", "activeJob", "observedGeneration", "startTime", "completionTime", "message",
    "costLedger", "lostWorkCostUsd", "budgetExceededAt", "serve",
)  # fmt: skip


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
        status["shape"] = f"{_attempt_nodes(d, spec)}x{spec.resources.gpus_per_node}"
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
    _progress_text(d)
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
        projected = _float(status.get("projectedCost"))
        status["projectedCostText"] = (
            None if projected is None else format_money(projected, snapshot.currency)
        )
    if d.phase != d.old.get("phase") and d.phase in (RUNNING, SUCCEEDED):
        d.event("Normal", d.phase, d.message or d.phase)

    d.plan.status = {k: v for k, v in status.items() if k in STATUS_FIELDS}
    if spec is not None and snapshot is not None and pricing is not None:
        d.plan.sample = _sample(d, spec, snapshot, projection, pricing, progress)
    return d.plan


def _progress_text(d: _Decision) -> None:
    """``status.progressText`` (``20.5%``) for the PROGRESS column, from the kimg and target
    written now or before (the real share: a run stopped at a time bound ends below 100%)."""
    kimg = _float(d.status.get("kimg", d.old.get("kimg")))
    total = _float(d.status.get("totalKimg", d.old.get("totalKimg")))
    if kimg is not None and total is not None and total > 0:
        d.status["progressText"] = format_progress(kimg, total)


def _sample(
    d: _Decision, spec: RunSpec, snapshot: SpendSnapshot, projection: Projection | None,
    pricing: RunPricing, progress: Mapping[str, Any],
) -> RunSample:
    """The metrics sample of the run, from the status just written to the plan."""
    status = d.status
    budget_usd = (
        pricing.catalog.to_usd(spec.cost.budget, pricing.display_currency)
        if spec.cost.budget is not None
        else None
    )
    return RunSample(
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
