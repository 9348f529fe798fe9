"""What a run costs, as the decision sees it: its price, spend, projection and budget.

Cost: the run's pods are folded into a :class:`~stylegan_operator.cost.ledger.SpendLedger` kept in
``status.costLedger``; the status gets ``gpuHours``, ``cost``, ``projectedCost`` and
``eta``. ``spec.cost.budget`` is compared in USD: spend at or over it sets
``BudgetExceeded`` and applies ``budgetAction``; a projection over it sets ``BudgetAtRisk``
(a warning only: projections move).

Also what the training thrown away by a restart cost (the ``WorkLost`` Event, see
``attempts``). The arithmetic is ``cost.pricing``'s; this module reads the run's spec and
status into it and writes the ``Priced`` and budget conditions.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from stylegan_operator.api.spec import RunSpec
from stylegan_operator.cost.budget import (
    BUDGET_OVER,
    BUDGET_PROJECTED_OVER,
    Projection,
    budget_state,
    lost_work_cost,
    project,
)
from stylegan_operator.cost.ledger import SpendLedger
from stylegan_operator.cost.metering import pod_usage
from stylegan_operator.cost.pricing import CostError, currency_decimals, format_money
from stylegan_operator.cost.spend import RunPricing, SpendSnapshot
from stylegan_operator.reconcile.conditions import (
    BUDGET_AT_RISK,
    BUDGET_EXCEEDED,
    PRICED,
    REASON_NO_PRICE,
    _iso,
    condition,
)
from stylegan_operator.reconcile.observe import _float
from stylegan_operator.reconcile.plan import _Decision


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
