"""Pricing a run's pods and adding up what they cost now: :class:`RunPricing`, snapshots.

:class:`RunPricing` joins a run's ``spec.cost`` (price overrides, spot, display currency)
to the catalog and prices one pod's :class:`~stylegan_operator.cost.metering.PodUsage`;
:func:`pod_gpu_seconds` adds up the pods listed now into a :class:`SpendSnapshot` (the cost
so far and the burn rate, per GPU type). Stateless: a pod gone from the API is not seen;
``ledger`` keeps what such pods cost.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from stylegan_operator.cost.metering import PodUsage, _get, pod_usage
from stylegan_operator.cost.pricing import (
    CPU,
    DEFAULT_CATALOG,
    PriceCatalog,
    _currency_code,
    _finite,
    currency_decimals,
    format_money,
)

__all__ = ["RunPricing", "SpendSnapshot", "TypeSpend", "pod_gpu_seconds"]


@dataclass(frozen=True)
class RunPricing:
    """Everything needed to price one run's pods.

    ``price_per_gpu_hour_usd`` is the run's override (``spec.cost.pricePerGpuHour``,
    converted to USD by :meth:`from_spec`); it replaces the catalog's unit price for every
    pod of the run, and ``price_per_node_hour_usd`` (``spec.cost.pricePerNodeHour``) the
    catalog's node price. ``spot`` forces spot/on-demand; None reads it from node labels.
    """

    catalog: PriceCatalog = DEFAULT_CATALOG
    gpu_type: str | None = None
    price_per_gpu_hour_usd: float | None = None
    price_per_node_hour_usd: float | None = None
    spot: bool | None = None
    currency: str | None = None
    node_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.price_per_gpu_hour_usd is not None:
            _finite(self.price_per_gpu_hour_usd, "spec.cost.pricePerGpuHour", positive=True)
        if self.price_per_node_hour_usd is not None:
            _finite(self.price_per_node_hour_usd, "spec.cost.pricePerNodeHour")
        self.catalog.rate(self.display_currency, "spec.cost.currency")

    @classmethod
    def from_spec(
        cls,
        catalog: PriceCatalog,
        gpu_type: str | None,
        cost_spec: Mapping[str, Any] | Any = None,
        *,
        node_labels: Mapping[str, Mapping[str, str]] | None = None,
    ) -> RunPricing:
        """From ``spec.resources.gpuType`` and ``spec.cost`` (a camelCase or snake_case
        mapping, or the pydantic ``CostSpec``).

        Amounts in ``spec.cost`` (pricePerGpuHour, pricePerNodeHour, budget) are in
        ``spec.cost.currency`` (default: the catalog's currency).
        """
        if hasattr(cost_spec, "model_dump"):
            cost_spec = cost_spec.model_dump()
        cost_spec = cost_spec or {}
        currency = _currency_code(
            _get(cost_spec, "currency", catalog.currency), "spec.cost.currency"
        )
        catalog.rate(currency, "spec.cost.currency")
        override = _get(cost_spec, "pricePerGpuHour")
        override_usd = (
            None
            if override is None
            else catalog.to_usd(
                _finite(override, "spec.cost.pricePerGpuHour", positive=True),
                currency,
                "spec.cost.pricePerGpuHour",
            )
        )
        node_override = _get(cost_spec, "pricePerNodeHour")
        node_usd = (
            None
            if node_override is None
            else catalog.to_usd(node_override, currency, "spec.cost.pricePerNodeHour")
        )
        spot = _get(cost_spec, "spot")
        return cls(
            catalog=catalog,
            gpu_type=gpu_type,
            price_per_gpu_hour_usd=override_usd,
            price_per_node_hour_usd=node_usd,
            spot=None if spot is None else bool(spot),
            currency=currency,
            node_labels=node_labels or {},
        )

    @property
    def display_currency(self) -> str:
        return (self.currency or self.catalog.currency).upper()

    @property
    def exchange_rate(self) -> float:
        return self.catalog.rate(self.display_currency)

    def usage(self, pod: Mapping[str, Any], now: datetime) -> PodUsage | None:
        found = pod_usage(pod, now, default_gpu_type=self.gpu_type, node_labels=self.node_labels)
        if found is not None and self.spot is not None:
            found = replace(found, spot=self.spot)
        return found

    def unit_price(self, gpu_type: str, spot: bool) -> float:
        """USD per unit-hour (GPU, or vCPU for cpu) for this run."""
        if self.price_per_gpu_hour_usd is not None:
            return self.price_per_gpu_hour_usd
        return self.catalog.entry(gpu_type).unit_price(spot)

    def node_price(self, gpu_type: str, spot: bool) -> float:
        if self.price_per_node_hour_usd is not None:
            return self.price_per_node_hour_usd
        return self.catalog.node_price(gpu_type, spot=spot)

    def hourly_usd(self, usage: PodUsage) -> float:
        """What the pod costs per hour while it holds its node."""
        return usage.units * self.unit_price(usage.gpu_type, usage.spot) + self.node_price(
            usage.gpu_type, usage.spot
        )

    def cost_usd(self, usage: PodUsage) -> float:
        return usage.seconds / 3600.0 * self.hourly_usd(usage)


@dataclass(frozen=True)
class TypeSpend:
    """Spend on one GPU type (``cpu``: vCPUs)."""

    gpu_type: str
    unit_seconds: float
    """GPU-seconds (vCPU-seconds for ``cpu``)."""
    node_seconds: float
    cost_usd: float
    price_per_unit_hour_usd: float
    """The unit price last applied (for the price gauge)."""


@dataclass(frozen=True)
class SpendSnapshot:
    """What a run has cost so far and how fast it is spending now."""

    gpu_seconds: float
    node_seconds: float
    cost_usd: float
    cost: float
    """``cost_usd`` in ``currency``."""
    currency: str
    burn_rate_usd_per_hour: float
    burn_rate_per_hour: float
    """``burn_rate_usd_per_hour`` in ``currency``."""
    by_type: Mapping[str, TypeSpend]
    running_pods: int = 0

    @property
    def gpu_hours(self) -> float:
        return self.gpu_seconds / 3600.0

    @property
    def node_hours(self) -> float:
        return self.node_seconds / 3600.0

    def to_status(self) -> dict[str, Any]:
        """The ``RunStatus`` cost fields (camelCase, JSON-safe, rounded for display)."""
        return {
            "gpuHours": round(self.gpu_hours, 4),
            "cost": round(self.cost, currency_decimals(self.currency)),
            "currency": self.currency,
            "costText": format_money(self.cost, self.currency),
        }


class _Totals:
    """A mutable per-type accumulator turned into a :class:`SpendSnapshot`."""

    def __init__(self) -> None:
        self.by_type: dict[str, list[float]] = {}  # type -> [unit_s, node_s, usd, price]
        self.burn_usd = 0.0
        self.running = 0

    def add(self, gpu_type: str, unit_s: float, node_s: float, usd: float, price: float) -> None:
        row = self.by_type.setdefault(gpu_type, [0.0, 0.0, 0.0, price])
        row[0] += unit_s
        row[1] += node_s
        row[2] += usd
        row[3] = price

    def add_usage(self, usage: PodUsage, pricing: RunPricing) -> None:
        self.add(
            usage.gpu_type,
            usage.unit_seconds,
            usage.seconds,
            pricing.cost_usd(usage),
            pricing.unit_price(usage.gpu_type, usage.spot),
        )
        if usage.running:
            self.burn_usd += pricing.hourly_usd(usage)
            self.running += 1

    def snapshot(self, pricing: RunPricing) -> SpendSnapshot:
        rate = pricing.exchange_rate
        by_type = {
            key: TypeSpend(key, row[0], row[1], row[2], row[3])
            for key, row in sorted(self.by_type.items())
        }
        cost_usd = sum(t.cost_usd for t in by_type.values())
        return SpendSnapshot(
            gpu_seconds=sum(t.unit_seconds for t in by_type.values() if t.gpu_type != CPU),
            node_seconds=sum(t.node_seconds for t in by_type.values()),
            cost_usd=cost_usd,
            cost=cost_usd * rate,
            currency=pricing.display_currency,
            burn_rate_usd_per_hour=self.burn_usd,
            burn_rate_per_hour=self.burn_usd * rate,
            by_type=by_type,
            running_pods=self.running,
        )


def pod_gpu_seconds(
    pods: Iterable[Mapping[str, Any]],
    now: datetime,
    pricing: RunPricing | None = None,
) -> SpendSnapshot:
    """The spend of the pods listed now (stateless: pods gone from the API are not seen).

    Use a :class:`SpendLedger` to keep pods that were deleted.
    """
    pricing = pricing or RunPricing()
    totals = _Totals()
    seen: set[str] = set()
    for pod in pods:
        usage = pricing.usage(pod, now)
        if usage is not None and usage.uid not in seen:  # a pod listed twice counts once
            seen.add(usage.uid)
            totals.add_usage(usage, pricing)
    return totals.snapshot(pricing)
