"""Projection, budget and lost work: where a run's cost is heading, from its measured speed.

:func:`project` prices the remaining kimg at the measured sec/kimg; :func:`budget_state`
compares the spend and that projection with ``spec.cost.budget``; :func:`lost_work_cost`
prices the training a failure threw away. Plain numbers in and out (USD in the operator):
unlike ``metering`` and ``ledger``, nothing here reads pods.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

from stylegan_operator.cost.pricing import _finite

__all__ = [
    "BUDGET_OK",
    "BUDGET_OVER",
    "BUDGET_PROJECTED_OVER",
    "Projection",
    "budget_state",
    "lost_work_cost",
    "project",
]


@dataclass(frozen=True)
class Projection:
    """Where a run will end: time left, when, and at what total cost (USD)."""

    remaining_seconds: float | None
    """None until a sec/kimg has been measured."""
    eta: datetime | None
    projected_cost: float
    remaining_cost: float


def project(
    kimg_done: float,
    total_kimg: float,
    sec_per_kimg: float | None,
    nodes: int,
    gpus_per_node: float,
    price_per_gpu_hour: float,
    spent: float,
    *,
    now: datetime | None = None,
    price_per_node_hour: float = 0.0,
    measured_nodes: int | None = None,
) -> Projection:
    """Remaining kimg x measured sec/kimg at the current node count, priced per GPU-hour.

    ``sec_per_kimg`` was measured on ``measured_nodes`` (default: ``nodes``); at another
    node count it is scaled linearly (an assumption: perfect scaling across nodes).
    ``spent`` and the prices share one unit (USD in the operator).
    """
    done = _finite(kimg_done, "status.kimg")
    total = _finite(total_kimg, "spec.training.kimg", positive=True)
    spent_ = _finite(spent, "status.cost")
    price = _finite(price_per_gpu_hour, "spec.cost.pricePerGpuHour", positive=True)
    node_price = _finite(price_per_node_hour, "price per node-hour")
    node_count = int(_finite(nodes, "spec.resources.nodes", positive=True))
    gpus = _finite(gpus_per_node, "spec.resources.gpusPerNode")
    if sec_per_kimg is None or sec_per_kimg == 0:
        return Projection(None, None, spent_, 0.0)
    speed = _finite(sec_per_kimg, "status.secPerKimg")
    if measured_nodes is not None:
        speed *= _finite(measured_nodes, "measured nodes", positive=True) / node_count
    remaining = max(total - done, 0.0) * speed
    hourly = node_count * (gpus * price + node_price)
    remaining_cost = remaining / 3600.0 * hourly
    moment = now or datetime.now(UTC)
    try:
        eta: datetime | None = moment + timedelta(seconds=remaining)
    except OverflowError:  # a remaining time past year 9999 has no date
        eta = None
    return Projection(remaining, eta, spent_ + remaining_cost, remaining_cost)


BUDGET_OK: Final = "ok"
BUDGET_PROJECTED_OVER: Final = "projected_over"
BUDGET_OVER: Final = "over"
BudgetState = Literal["ok", "projected_over", "over"]


def budget_state(spent: float, projected: float | None, budget: float | None) -> BudgetState:
    """``over`` once spent reaches the budget, ``projected_over`` when the projection passes
    it, else ``ok`` (also when there is no budget)."""
    spent_ = _finite(spent, "status.cost")
    if budget is None:
        return BUDGET_OK
    limit = _finite(budget, "spec.cost.budget", positive=True)
    if spent_ >= limit:
        return BUDGET_OVER
    if projected is not None and _finite(projected, "status.projectedCost") > limit:
        return BUDGET_PROJECTED_OVER
    return BUDGET_OK


def lost_work_cost(
    kimg_since_checkpoint: float,
    sec_per_kimg: float,
    gpus: float,
    price_per_gpu_hour: float,
    *,
    price_per_node_hour: float = 0.0,
    nodes: int = 1,
) -> float:
    """The cost of training thrown away by a failure: kimg since the last checkpoint x
    sec/kimg x what the whole group costs per hour (``gpus`` is the total over nodes)."""
    kimg = _finite(kimg_since_checkpoint, "kimg since checkpoint")
    speed = _finite(sec_per_kimg, "status.secPerKimg")
    hourly = _finite(gpus, "gpus") * _finite(
        price_per_gpu_hour, "spec.cost.pricePerGpuHour", positive=True
    ) + _finite(nodes, "nodes") * _finite(price_per_node_hour, "price per node-hour")
    return kimg * speed / 3600.0 * hourly
