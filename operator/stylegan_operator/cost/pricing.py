"""Cost accounting, pure arithmetic: prices, measured GPU-seconds, money, projections.

Nothing here talks to Kubernetes or the clock on its own; callers pass the pods (plain dicts
as the API returns them) and ``now``. The operator (``kube``/``handlers``) lists a run's
pods, feeds them to a :class:`SpendLedger` kept in the run's status, and publishes the
result through ``metrics``; ``estimate`` uses the catalog and the formatting helpers.

How spend is measured (DESIGN.md, "Cost"): a pod costs from the moment it is bound to a
node (its ``PodScheduled`` condition turned True, else ``status.startTime``) until it ends
(the last container's ``terminated.finishedAt``, else its ``deletionTimestamp``, else
``now`` while it runs), times its GPU count (``nvidia.com/gpu`` limits), times the price of
its node's GPU type, plus an optional price per node-hour for the machine around the GPUs.
Every attempt counts, failed ones too, and so do pods that were bound but never started:
the node was rented all the same. This mirrors OpenCost's "amount x duration x hourly
rate" asset model, with the amount taken from the pod's limits (one pod owns one node here).

All amounts are kept in USD (the catalog's unit) and converted only for display. Every
public function refuses NaN, infinities and negative inputs with :class:`CostError`, so no
result is ever NaN or negative.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

__all__ = [
    "BUDGET_OK",
    "BUDGET_OVER",
    "BUDGET_PROJECTED_OVER",
    "CPU",
    "DEFAULT_CATALOG",
    "DEFAULT_EXCHANGE_RATES",
    "DEFAULT_PRICES",
    "FRIENDLY_NAMES",
    "GPU_ALIASES",
    "CostError",
    "GpuPrice",
    "PodUsage",
    "PriceCatalog",
    "Projection",
    "RunPricing",
    "SpendLedger",
    "SpendSnapshot",
    "TypeSpend",
    "budget_state",
    "canonical_gpu_type",
    "format_duration",
    "format_money",
    "lost_work_cost",
    "parse_time",
    "pod_gpu_seconds",
    "pod_usage",
    "project",
]


class CostError(ValueError):
    """Bad cost input (a price, a budget, a currency, a GPU type); the message names the field."""


USD = "USD"
CPU = "cpu"
GPU_RESOURCE = "nvidia.com/gpu"

# --------------------------------------------------------------------------------------
# Price catalog defaults
# --------------------------------------------------------------------------------------

_SKYPILOT_GCP = (
    "GCP us-central1 list price as hard-coded in SkyPilot's GCP catalog fetcher "
    "(sky/clouds/service_catalog/data_fetchers/fetch_gcp.py, ~2022), which cites "
    "https://cloud.google.com/compute/gpus-pricing; spot = that file's preemptible price"
)
# The entries below come from stored copies of two public, machine-generated price lists,
# both built from GCP's Cloud Billing Catalog (SKU) API:
_CYCLENERD = (
    "Cyclenerd/google-cloud-pricing-cost-calculator pricing.yml, commit 0166a59e, "
    '"generated: Thu Mar 6 03:53:56 2025"'
)
_SKYPILOT_CATALOG = "skypilot-org/skypilot-catalog catalogs/v{}/gcp/vms.csv, commit {}"
_SPOT_NOTE = "spot prices can change daily (https://cloud.google.com/spot-vms/pricing)"


@dataclass(frozen=True)
class GpuPrice:
    """The prices of one GPU type, in USD per GPU-hour (per vCPU-hour for ``cpu``)."""

    on_demand: float
    spot: float
    node_on_demand: float = 0.0
    """Optional price per node-hour of the machine around the GPUs (vCPUs, memory, disk)."""
    node_spot: float = 0.0
    source: str = ""
    """Where the figures come from, or ``assumption: ...`` with the reason."""

    def unit_price(self, spot: bool) -> float:
        return self.spot if spot else self.on_demand

    def node_price(self, spot: bool) -> float:
        return self.node_spot if spot else self.node_on_demand


DEFAULT_PRICES: dict[str, GpuPrice] = {
    # The V100 figure is the one the reference cost (8 GPUs x 234 h x 2.48 = 4,642.56 USD)
    # is built on; it is GCP's long-standing on-demand V100 price. The StyleGAN2 README
    # itself gives times, not prices.
    "nvidia-tesla-v100": GpuPrice(2.48, 0.74, source=_SKYPILOT_GCP),
    "nvidia-tesla-t4": GpuPrice(0.35, 0.11, source=_SKYPILOT_GCP),
    "nvidia-tesla-a100": GpuPrice(
        2.939, 0.880, source=_SKYPILOT_GCP + " (the GPU share of an a2-highgpu machine)"
    ),
    "nvidia-a100-80gb": GpuPrice(
        3.92808,
        1.5712,
        source=(
            "GCP us-central1 A100 80GB GPU share of an a2-ultragpu-1g. On-demand: the whole "
            "machine, 5.06880 USD/h (" + _CYCLENERD + "), minus its 12 vCPU + 170 GiB, "
            "1.09962 (A2 rates 0.031611/vCPU + 0.004237/GiB: the a2-ultragpu-1g row of "
            + _SKYPILOT_CATALOG.format(7, "017e2502")
            + "), minus its 375 GB local SSD at 0.08 USD/GB-month, 0.04110 = 3.92808. Spot: "
            "that catalog's 'A100-80GB' us-central1 GPU row, 1.5712 (same in v6, commit "
            "04895829); the snapshot's a2-ultragpu-1g spot total, 2.02747, is that plus the "
            "A2 spot host 0.43983, leaving 0.0164 for the local SSD. That catalog's on-demand "
            "GPU row (1.8462) is not used: it is exactly 0.47 x 3.92808, apparently a "
            "discounted (flex-start) SKU that its fetcher matched first; " + _SPOT_NOTE
        ),
    ),
    "nvidia-h100-80gb": GpuPrice(
        11.06125,
        4.42447,
        source=(
            "GCP us-central1 a3-highgpu-8g / 8 GPUs: 88.49000 USD/h on-demand and 35.39575 "
            "spot for the whole machine (" + _CYCLENERD + "). H100 is sold only bundled with "
            "its machine, so this per-GPU price includes the machine's 26 vCPU, 234 GiB and "
            "750 GB local SSD per GPU (leave the node price at 0). The GPU alone is 9.79655 "
            "on-demand: 11.06125 - 1.18251 host (a3-highgpu-1g row of "
            + _SKYPILOT_CATALOG.format(7, "017e2502")
            + ") - 0.08219 local SSD, the same as that catalog's us-east4 H100 GPU row (v6, "
            "commit 04895829); " + _SPOT_NOTE
        ),
    ),
    "nvidia-l4": GpuPrice(
        0.56004,
        0.2231,
        source=(
            "GCP us-central1 L4 GPU share of a g2-standard machine, from two machines with one "
            "L4 each in " + _CYCLENERD + ": g2-standard-4 (4 vCPU, 16 GiB) 0.706832 USD/h "
            "on-demand, 0.279932 spot; g2-standard-32 (32 vCPU, 128 GiB) 1.734376 and "
            "0.677756. The difference prices 28 x (1 vCPU + 4 GiB), so L4 = g2-standard-4 - 4/28 "
            "x difference = 0.56004 on-demand, 0.2231 spot; both equal the 'L4' us-central1 "
            "GPU row (8 GPUs: 4.48032, 1.7848) of "
            + _SKYPILOT_CATALOG.format(6, "04895829")
            + "; "
            + _SPOT_NOTE
        ),
    ),
    CPU: GpuPrice(
        0.031611,
        0.00976,
        source=(
            "GCP us-central1 N2 vCPU-hour, memory not included, from " + _CYCLENERD + ": "
            "n2-standard-32 (32 vCPU, 128 GiB) 1.553888 USD/h on-demand, 0.479616 spot, minus "
            "n2-highmem-16 (16 vCPU, 128 GiB) 1.048112 and 0.323456 = the price of 16 vCPUs: "
            "0.031611 on-demand, 0.00976 spot per vCPU-hour (memory: 0.004237 and 0.001307 "
            "per GiB-hour); " + _SPOT_NOTE
        ),
    ),
}

# Units of each currency per 1 USD. Display only: amounts are kept in USD.
DEFAULT_EXCHANGE_RATES: dict[str, float] = {
    "USD": 1.0,
    "JPY": 109.0,  # the figure the reference cost uses (4,642.56 USD -> 506,039 JPY)
    "EUR": 0.92,  # assumption: a round 2024 market rate, not a quoted source; configure it
    "GBP": 0.79,  # assumption: a round 2024 market rate, not a quoted source; configure it
}

# Minor-unit digits shown for a currency (ISO 4217); anything else shows 2.
_CURRENCY_DECIMALS: dict[str, int] = {"JPY": 0, "KRW": 0}

# The operator's node label values (GKE ``cloud.google.com/gke-accelerator``) are canonical;
# these friendly names are accepted wherever a GPU type is read.
GPU_ALIASES: dict[str, str] = {
    "v100": "nvidia-tesla-v100",
    "tesla-v100": "nvidia-tesla-v100",
    "a100": "nvidia-tesla-a100",
    "a100-40gb": "nvidia-tesla-a100",
    "tesla-a100": "nvidia-tesla-a100",
    "a100-80gb": "nvidia-a100-80gb",
    "a100-80": "nvidia-a100-80gb",
    "h100": "nvidia-h100-80gb",
    "h100-80gb": "nvidia-h100-80gb",
    "l4": "nvidia-l4",
    "t4": "nvidia-tesla-t4",
    "tesla-t4": "nvidia-tesla-t4",
    "cpu": CPU,
}

FRIENDLY_NAMES: dict[str, str] = {
    "nvidia-tesla-v100": "V100",
    "nvidia-tesla-a100": "A100",
    "nvidia-a100-80gb": "A100-80GB",
    "nvidia-h100-80gb": "H100",
    "nvidia-l4": "L4",
    "nvidia-tesla-t4": "T4",
    CPU: "CPU",
}

# Node labels that name a node's GPU type, most specific first. The first is GKE's; the
# second is NVIDIA GPU feature discovery's product name (e.g. "NVIDIA-A100-SXM4-80GB").
GPU_TYPE_LABELS: tuple[str, ...] = (
    "cloud.google.com/gke-accelerator",
    "stylegan.dev/gpu-type",
    "nvidia.com/gpu.product",
)

# Node labels (key -> value, compared case-insensitively) that mark spot/preemptible capacity.
SPOT_LABELS: dict[str, str] = {
    "cloud.google.com/gke-spot": "true",
    "cloud.google.com/gke-preemptible": "true",
    "karpenter.sh/capacity-type": "spot",
    "eks.amazonaws.com/capacitytype": "spot",
    "kubernetes.azure.com/scalesetpriority": "spot",
}


def _finite(value: Any, field_name: str, *, positive: bool = False) -> float:
    """``value`` as a float that is finite and not negative (and > 0 when ``positive``)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise CostError(f"{field_name}: expected a number, got {value!r}") from None
    number = float(value)
    if not math.isfinite(number):
        raise CostError(f"{field_name}: must be a finite number, got {value!r}")
    if positive and number <= 0:
        raise CostError(f"{field_name}: must be greater than 0, got {value!r}")
    if number < 0:
        raise CostError(f"{field_name}: must not be negative, got {value!r}")
    return number


def _normalise_name(name: str) -> str:
    return re.sub(r"[\s_]+", "-", name.strip().lower())


def canonical_gpu_type(name: str) -> str:
    """The catalog key for a GPU type name: a node label value, an alias, or a product name.

    ``V100``, ``nvidia-tesla-v100`` and ``Tesla-V100-SXM2-16GB`` all give
    ``nvidia-tesla-v100``. A name that matches nothing is returned normalised (lower case,
    dashes) so that a catalog or a per-run price can still cover it.
    """
    key = _normalise_name(name)
    if key in FRIENDLY_NAMES:
        return key
    if key in GPU_ALIASES:
        return GPU_ALIASES[key]
    tokens = set(re.split(r"[-/]+", key))
    # Product names from GPU feature discovery / nvidia-smi, e.g. "NVIDIA H100 80GB HBM3".
    if any(t.startswith("h100") for t in tokens):
        return "nvidia-h100-80gb"
    if any(t.startswith("a100") for t in tokens):
        return "nvidia-a100-80gb" if any("80gb" in t for t in tokens) else "nvidia-tesla-a100"
    if any(t.startswith("v100") for t in tokens):
        return "nvidia-tesla-v100"
    if "l4" in tokens:
        return "nvidia-l4"
    if "t4" in tokens:
        return "nvidia-tesla-t4"
    return key


def _currency_code(currency: Any, field_name: str) -> str:
    if not isinstance(currency, str) or not re.fullmatch(r"[A-Za-z]{3}", currency.strip()):
        raise CostError(f"{field_name}: expected a 3-letter ISO 4217 code, got {currency!r}")
    return currency.strip().upper()


@dataclass(frozen=True)
class PriceCatalog:
    """Prices per GPU type (USD) and exchange rates for display.

    Build one with :meth:`from_dict` from Helm values or a ConfigMap::

        currency: EUR                 # display currency
        exchangeRates: {EUR: 0.92, JPY: 109}
        prices:
          nvidia-tesla-v100: {onDemand: 2.48, spot: 0.74, nodeOnDemand: 0.0, nodeSpot: 0.0}
          H100: 9.8                   # aliases and the short form (one price) are accepted

    Entries merge field by field over the defaults; a new type given without ``spot``
    uses its on-demand price for spot too (never under-reports).
    """

    prices: Mapping[str, GpuPrice] = field(default_factory=lambda: dict(DEFAULT_PRICES))
    exchange_rates: Mapping[str, float] = field(
        default_factory=lambda: dict(DEFAULT_EXCHANGE_RATES)
    )
    currency: str = USD

    def __post_init__(self) -> None:
        for key, price in self.prices.items():
            where = f"cost.prices[{key!r}]"
            _finite(price.on_demand, f"{where}.onDemand", positive=True)
            _finite(price.spot, f"{where}.spot", positive=True)
            _finite(price.node_on_demand, f"{where}.nodeOnDemand")
            _finite(price.node_spot, f"{where}.nodeSpot")
        for code, rate in self.exchange_rates.items():
            _finite(rate, f"cost.exchangeRates[{code!r}]", positive=True)
        if self.exchange_rates.get(USD) != 1.0:
            raise CostError("cost.exchangeRates['USD']: must be 1 (amounts are kept in USD)")
        self.rate(self.currency, "cost.currency")

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any] | None, *, base: PriceCatalog | None = None
    ) -> PriceCatalog:
        """A catalog from a Helm values / ConfigMap mapping, merged over ``base`` (defaults)."""
        base = base if base is not None else DEFAULT_CATALOG
        if not data:
            return base
        if not isinstance(data, Mapping):
            raise CostError(f"cost: expected a mapping, got {type(data).__name__}")
        if "cost" in data and isinstance(data["cost"], Mapping):
            data = data["cost"]  # a whole values file was passed
        known = {"currency", "exchangeRates", "prices"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CostError(f"cost: unknown keys {unknown}; valid keys: {sorted(known)}")
        prices = dict(base.prices)
        raw_prices = data.get("prices") or {}
        if not isinstance(raw_prices, Mapping):
            raise CostError("cost.prices: expected a mapping of GPU type -> prices")
        for raw_key, entry in raw_prices.items():
            key = canonical_gpu_type(str(raw_key))
            prices[key] = _price_from_entry(entry, prices.get(key), f"cost.prices[{raw_key!r}]")
        rates = dict(base.exchange_rates)
        raw_rates = data.get("exchangeRates") or {}
        if not isinstance(raw_rates, Mapping):
            raise CostError("cost.exchangeRates: expected a mapping of currency -> rate per USD")
        for code, rate in raw_rates.items():
            where = f"cost.exchangeRates[{code!r}]"
            rates[_currency_code(code, where)] = _finite(rate, where, positive=True)
        currency = _currency_code(data.get("currency", base.currency), "cost.currency")
        return cls(prices=prices, exchange_rates=rates, currency=currency)

    def known_types(self) -> list[str]:
        return sorted(self.prices)

    def entry(self, gpu_type: str, field_name: str = "spec.resources.gpuType") -> GpuPrice:
        """The prices of a GPU type; :class:`CostError` naming ``field_name`` when unknown."""
        key = canonical_gpu_type(gpu_type)
        try:
            return self.prices[key]
        except KeyError:
            aliases = ", ".join(
                sorted(FRIENDLY_NAMES[k] for k in self.prices if k in FRIENDLY_NAMES)
            )
            raise CostError(
                f"{field_name}: no price for GPU type {gpu_type!r}; known types: "
                f"{', '.join(self.known_types())} (aliases {aliases}); add it to the catalog "
                "(cost.prices) or set spec.cost.pricePerGpuHour"
            ) from None

    def unit_price(self, gpu_type: str, *, spot: bool = False) -> float:
        """USD per GPU-hour (per vCPU-hour for ``cpu``)."""
        return self.entry(gpu_type).unit_price(spot)

    def node_price(self, gpu_type: str, *, spot: bool = False) -> float:
        """USD per node-hour for the machine around the GPUs (0 when not priced)."""
        key = canonical_gpu_type(gpu_type)
        price = self.prices.get(key)
        return price.node_price(spot) if price else 0.0

    def rate(self, currency: str, field_name: str = "currency") -> float:
        """Units of ``currency`` per USD; :class:`CostError` when the currency is unknown."""
        code = _currency_code(currency, field_name)
        try:
            return self.exchange_rates[code]
        except KeyError:
            raise CostError(
                f"{field_name}: unknown currency {currency!r}; known: "
                f"{', '.join(sorted(self.exchange_rates))} (add a rate under cost.exchangeRates)"
            ) from None

    def convert(self, usd: float, currency: str) -> float:
        """A USD amount in ``currency``."""
        return _finite(usd, "amount") * self.rate(currency)

    def to_usd(self, amount: float, currency: str, field_name: str = "amount") -> float:
        """An amount given in ``currency`` (a price, a budget), in USD."""
        return _finite(amount, field_name) / self.rate(currency, field_name)


def _price_from_entry(entry: Any, current: GpuPrice | None, where: str) -> GpuPrice:
    if isinstance(entry, int | float | str) and not isinstance(entry, bool):
        value = _finite(entry, where, positive=True)
        return GpuPrice(value, value, source=f"{where} (configured)")
    if not isinstance(entry, Mapping):
        raise CostError(f"{where}: expected a price or a mapping with onDemand/spot")
    known = {"onDemand", "spot", "nodeOnDemand", "nodeSpot", "source"}
    unknown = sorted(set(entry) - known)
    if unknown:
        raise CostError(f"{where}: unknown keys {unknown}; valid keys: {sorted(known)}")
    if current is None and "onDemand" not in entry:
        raise CostError(f"{where}.onDemand: required for a GPU type not in the defaults")
    on_demand = (
        _finite(entry["onDemand"], f"{where}.onDemand", positive=True)
        if "onDemand" in entry
        else current.on_demand  # type: ignore[union-attr]
    )
    if "spot" in entry:
        spot = _finite(entry["spot"], f"{where}.spot", positive=True)
    else:
        spot = current.spot if current is not None else on_demand
    node_od = (
        _finite(entry["nodeOnDemand"], f"{where}.nodeOnDemand")
        if "nodeOnDemand" in entry
        else (current.node_on_demand if current else 0.0)
    )
    node_spot = (
        _finite(entry["nodeSpot"], f"{where}.nodeSpot")
        if "nodeSpot" in entry
        else (current.node_spot if current else node_od)
    )
    source = str(entry.get("source") or f"{where} (configured)")
    return GpuPrice(on_demand, spot, node_od, node_spot, source)


DEFAULT_CATALOG = PriceCatalog()


# --------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------


def currency_decimals(currency: str) -> int:
    return _CURRENCY_DECIMALS.get(currency.upper(), 2)


def format_money(amount: float, currency: str) -> str:
    """``4,642.56 USD``, ``506,039 JPY``: thousands separators, the currency's minor units."""
    value = _finite(amount, "amount")
    code = _currency_code(currency, "currency")
    return f"{value:,.{currency_decimals(code)}f} {code}"


def format_duration(seconds: float) -> str:
    """``69d 23h`` from one day on (rounded to the hour, as the StyleGAN2 README prints),
    ``4h 05m`` below a day, ``12m 30s`` below an hour."""
    value = _finite(seconds, "seconds")
    if value >= 86400 - 1800:
        hours = int(math.floor(value / 3600 + 0.5))
        return f"{hours // 24}d {hours % 24}h"
    if value >= 3600 - 30:
        minutes = int(math.floor(value / 60 + 0.5))
        return f"{minutes // 60}h {minutes % 60:02d}m"
    whole = int(math.floor(value + 0.5))
    return f"{whole // 60}m {whole % 60:02d}s"


# --------------------------------------------------------------------------------------
# Reading pods (raw camelCase JSON or the kubernetes client's to_dict() snake_case)
# --------------------------------------------------------------------------------------


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _get(obj: Any, key: str, default: Any = None) -> Any:
    """``obj[key]`` under its camelCase or snake_case spelling; ``default`` when absent/None."""
    if not isinstance(obj, Mapping):
        return default
    value = obj.get(key)
    if value is None:
        value = obj.get(_snake(key))
    return default if value is None else value


def parse_time(value: Any) -> datetime | None:
    """A Kubernetes timestamp (RFC 3339 string) as an aware datetime; None when absent or
    unreadable (for status fields, where a missing time means "not yet")."""
    if not value or not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _time(value: Any, field_name: str) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise CostError(f"{field_name}: not an RFC 3339 time: {value!r}") from None
    else:
        raise CostError(f"{field_name}: expected a time, got {type(value).__name__}")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_SUFFIX = {
    None: 1.0,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
    "Pi": 2.0**50,
    "Ei": 2.0**60,
}


def _quantity(value: Any, field_name: str) -> float:
    """A Kubernetes resource quantity (``"2"``, ``"500m"``, ``4``) as a float."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _finite(value, field_name)
    match = _QUANTITY.match(str(value).strip())
    if not match:
        raise CostError(f"{field_name}: not a resource quantity: {value!r}")
    return float(match.group(1)) * _SUFFIX[match.group(2)]


def _container_amount(containers: Iterable[Any], resource: str, where: str) -> list[float]:
    amounts = []
    for index, container in enumerate(containers or ()):
        resources = _get(container, "resources", {})
        limits = _get(resources, "limits", {}) or {}
        requests = _get(resources, "requests", {}) or {}
        # Extended resources (GPUs) must have limit == request; CPUs may have either.
        value = limits.get(resource, requests.get(resource))
        amounts.append(
            0.0
            if value is None
            else _quantity(value, f'{where}[{index}].resources.limits["{resource}"]')
        )
    return amounts


def _effective_amount(spec: Mapping[str, Any], resource: str) -> float:
    """What the scheduler reserves: max(sum of containers, largest init container)."""
    main = _container_amount(_get(spec, "containers", []), resource, "spec.containers")
    init = _container_amount(_get(spec, "initContainers", []), resource, "spec.initContainers")
    return max(sum(main), max(init, default=0.0))


@dataclass(frozen=True)
class PodUsage:
    """One pod's rented time: what it held, where, from when to when."""

    uid: str
    name: str
    gpu_type: str
    """Catalog key; ``cpu`` for a pod without GPUs."""
    spot: bool
    units: float
    """GPUs held (vCPUs for ``cpu`` pods)."""
    start: datetime
    end: datetime
    running: bool
    """Still accruing at ``now`` (not terminal)."""

    @property
    def seconds(self) -> float:
        return max((self.end - self.start).total_seconds(), 0.0)

    @property
    def unit_seconds(self) -> float:
        return self.seconds * self.units

    @property
    def gpu_seconds(self) -> float:
        return 0.0 if self.gpu_type == CPU else self.unit_seconds


def _labels_spot(labels: Mapping[str, Any]) -> bool:
    lowered = {str(k).lower(): str(v).lower() for k, v in labels.items()}
    return any(lowered.get(key) == value for key, value in SPOT_LABELS.items())


def _bound_at(pod: Mapping[str, Any]) -> datetime | None:
    status = _get(pod, "status", {})
    for condition in _get(status, "conditions", []) or []:
        if _get(condition, "type") == "PodScheduled" and _get(condition, "status") == "True":
            moment = _time(
                _get(condition, "lastTransitionTime"),
                "status.conditions[PodScheduled].lastTransitionTime",
            )
            if moment is not None:
                return moment
    return _time(_get(status, "startTime"), "status.startTime")


def _ended_at(pod: Mapping[str, Any], now: datetime) -> tuple[datetime, bool]:
    """(end, running): the last container's finish, else deletion, else ``now``."""
    status = _get(pod, "status", {})
    phase = _get(status, "phase", "Unknown")
    statuses = list(_get(status, "containerStatuses", []) or [])
    finished: list[datetime] = []
    all_terminated = bool(statuses)
    for index, container in enumerate(statuses):
        terminated = _get(_get(container, "state", {}), "terminated")
        moment = _time(
            _get(terminated, "finishedAt") if terminated else None,
            f"status.containerStatuses[{index}].state.terminated.finishedAt",
        )
        if moment is None:
            all_terminated = False
        else:
            finished.append(moment)
    deletion = _time(_get(_get(pod, "metadata", {}), "deletionTimestamp"), "deletionTimestamp")
    if phase in ("Succeeded", "Failed") or all_terminated:
        if finished:
            return min(max(finished), now), False
        if deletion is not None:
            return min(deletion, now), False
        # A terminal pod with no container times (evicted before start, node lost):
        # the last condition change is when it was marked so.
        changes = [
            _time(_get(c, "lastTransitionTime"), "status.conditions[].lastTransitionTime")
            for c in _get(status, "conditions", []) or []
        ]
        known = [c for c in changes if c is not None]
        return (min(max(known), now) if known else now), False
    if deletion is not None:
        # Terminating: billed until the grace period ends, never past now.
        return min(deletion, now), deletion > now
    return now, True


def pod_usage(
    pod: Mapping[str, Any],
    now: datetime,
    *,
    default_gpu_type: str | None = None,
    node_labels: Mapping[str, Mapping[str, str]] | None = None,
) -> PodUsage | None:
    """The rented time of one pod, or None when it was never bound to a node.

    The GPU type comes from the node's labels (``node_labels[spec.nodeName]``), else the
    pod's ``nodeSelector``, else ``default_gpu_type`` (``spec.resources.gpuType``). A pod
    without GPUs is priced per vCPU as ``cpu``. Spot comes from the same labels.
    """
    if not isinstance(pod, Mapping):
        raise CostError(f"pod: expected a mapping (the API's JSON), got {type(pod).__name__}")
    now = _time(now, "now")  # type: ignore[assignment]
    start = _bound_at(pod)
    spec = _get(pod, "spec", {})
    metadata = _get(pod, "metadata", {})
    name = str(_get(metadata, "name", "?"))
    if start is None:
        return None
    end, running = _ended_at(pod, now)
    node = _get(spec, "nodeName")
    labels: dict[str, Any] = {}
    labels.update(_get(spec, "nodeSelector", {}) or {})
    if node and node_labels and node in node_labels:
        labels.update(node_labels[node])  # the real node wins over what was asked for
    gpus = _effective_amount(spec, GPU_RESOURCE)
    if gpus > 0:
        named = next((labels[k] for k in GPU_TYPE_LABELS if labels.get(k)), None)
        if named is None and default_gpu_type is None:
            raise CostError(
                f"spec.resources.gpuType: pod {name!r} holds {gpus:g} GPUs but neither its node "
                f"labels ({', '.join(GPU_TYPE_LABELS)}) nor the run name a GPU type"
            )
        gpu_type = canonical_gpu_type(str(named or default_gpu_type))
        units = gpus
    else:
        gpu_type = CPU
        units = _effective_amount(spec, "cpu")
    return PodUsage(
        uid=str(_get(metadata, "uid", name)),
        name=name,
        gpu_type=gpu_type,
        spot=_labels_spot(labels),
        units=units,
        start=start,
        end=max(end, start),
        running=running,
    )


# --------------------------------------------------------------------------------------
# Pricing a run and adding up its spend
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# The ledger: spend that survives pod deletion and operator restarts
# --------------------------------------------------------------------------------------

LEDGER_VERSION = 1
MAX_COUNTED_UIDS = 2000
"""Closed pods remembered by uid; the oldest are forgotten past this (their pods are long
gone from the API by then, so they cannot be seen, and counted, again)."""


@dataclass
class _OpenPod:
    gpu_type: str
    spot: bool
    units: float
    start: datetime
    seen: datetime
    """Last time the pod was listed running: its usage was priced up to here, so it never
    closes earlier (see :meth:`SpendLedger._close`)."""
    deadline: datetime | None
    """Its deletionTimestamp, when seen terminating."""


@dataclass
class SpendLedger:
    """Spend of a run accumulated across reconciles, serialisable into the run's status.

    * Finished pods are *closed* once, keyed by uid, into per-type totals; a uid never
      counts twice.
    * Running pods are *open*: remembered (type, units, start, last seen) so that a pod
      deleted and gone before the next reconcile still counts up to its deletion time when
      one was seen, else up to the last time it was listed. The operator calls
      :meth:`close` just before it deletes pods itself, which makes its own deletions exact.
    * A pod closes at the later of its own end and the last time it was seen running. While
      it runs it is priced up to ``now`` (to the microsecond), but its end is
      ``finishedAt``, whole seconds, and the kubelet reports it late: closing at
      ``finishedAt`` alone would give back up to a few seconds of burn already reported,
      and a run's cost would drop when a pod ends. The open entry's ``seen`` is what was
      priced, so closing never goes below it (at most the status lag is over-counted).
    * :meth:`to_status` / :meth:`from_status` round-trip through a small JSON mapping, so
      an operator restart loses nothing.

    Do not call :meth:`observe` with a listing that failed: the pods missing from it would
    be closed early.
    """

    totals: dict[str, list[float]] = field(default_factory=dict)
    """gpu_type -> [unit_seconds, node_seconds, cost_usd, last unit price USD]."""
    counted: list[str] = field(default_factory=list)
    open: dict[str, _OpenPod] = field(default_factory=dict)

    def _close(self, uid: str, usage: PodUsage, pricing: RunPricing) -> None:
        if uid in self.counted:
            return
        opened = self.open.pop(uid, None)
        if opened is not None and opened.seen > usage.end:
            usage = replace(usage, end=opened.seen)  # never below what was already reported
        row = self.totals.setdefault(usage.gpu_type, [0.0, 0.0, 0.0, 0.0])
        row[0] += usage.unit_seconds
        row[1] += usage.seconds
        row[2] += pricing.cost_usd(usage)
        row[3] = pricing.unit_price(usage.gpu_type, usage.spot)
        self.counted.append(uid)
        del self.counted[:-MAX_COUNTED_UIDS]

    def close(self, pod: Mapping[str, Any], now: datetime, pricing: RunPricing) -> None:
        """Count a pod as ended at ``now`` (call it before deleting the pod); never earlier
        than the last time :meth:`observe` priced it running."""
        usage = pricing.usage(pod, now)
        if usage is not None:
            ended = replace(usage, end=min(usage.end, now), running=False)
            self._close(ended.uid, ended, pricing)

    def observe(
        self, pods: Iterable[Mapping[str, Any]], now: datetime, pricing: RunPricing
    ) -> SpendSnapshot:
        """Fold the run's current pods in and return the run's whole spend so far."""
        now = _time(now, "now")  # type: ignore[assignment]
        live = _Totals()
        listed: set[str] = set()
        for pod in pods:
            usage = pricing.usage(pod, now)
            if usage is None:
                continue
            listed.add(usage.uid)
            if usage.uid in self.counted:
                continue
            if not usage.running:
                self._close(usage.uid, usage, pricing)
                continue
            deadline = _time(
                _get(_get(pod, "metadata", {}), "deletionTimestamp"), "deletionTimestamp"
            )
            self.open[usage.uid] = _OpenPod(
                usage.gpu_type, usage.spot, usage.units, usage.start, now, deadline
            )
            live.add_usage(usage, pricing)
        for uid in [u for u in self.open if u not in listed]:
            self._close(uid, self._vanished_usage(uid, now), pricing)
        for key, row in self.totals.items():
            live.add(key, row[0], row[1], row[2], row[3])
        return live.snapshot(pricing)

    def _vanished_usage(self, uid: str, now: datetime) -> PodUsage:
        entry = self.open[uid]
        end = min(entry.deadline, now) if entry.deadline else entry.seen
        return PodUsage(
            uid,
            uid,
            entry.gpu_type,
            entry.spot,
            entry.units,
            entry.start,
            max(end, entry.start),
            False,
        )

    def to_status(self) -> dict[str, Any]:
        """A small JSON-safe mapping for ``status.costLedger``."""
        return {
            "v": LEDGER_VERSION,
            "totals": {k: [float(x) for x in row] for k, row in sorted(self.totals.items())},
            "counted": list(self.counted),
            "open": {
                uid: {
                    "type": p.gpu_type,
                    "spot": p.spot,
                    "units": p.units,
                    "start": p.start.isoformat(),
                    "seen": p.seen.isoformat(),
                    **({"deadline": p.deadline.isoformat()} if p.deadline else {}),
                }
                for uid, p in sorted(self.open.items())
            },
        }

    @classmethod
    def from_status(cls, data: Mapping[str, Any] | None) -> SpendLedger:
        """The ledger :meth:`to_status` wrote (an empty one for None)."""
        if not data:
            return cls()
        where = "status.costLedger"
        if not isinstance(data, Mapping) or data.get("v") != LEDGER_VERSION:
            raise CostError(f"{where}: expected a version {LEDGER_VERSION} ledger, got {data!r}")
        totals: dict[str, list[float]] = {}
        for key, row in (data.get("totals") or {}).items():
            if not isinstance(row, list | tuple) or len(row) != 4:
                raise CostError(f"{where}.totals[{key!r}]: expected 4 numbers")
            totals[str(key)] = [
                _finite(x, f"{where}.totals[{key!r}][{i}]") for i, x in enumerate(row)
            ]
        opened: dict[str, _OpenPod] = {}
        for uid, entry in (data.get("open") or {}).items():
            at = f"{where}.open[{uid!r}]"
            start = _time(entry.get("start"), f"{at}.start")
            seen = _time(entry.get("seen"), f"{at}.seen")
            if start is None or seen is None:
                raise CostError(f"{at}: start and seen are required")
            opened[str(uid)] = _OpenPod(
                gpu_type=str(entry.get("type", CPU)),
                spot=bool(entry.get("spot", False)),
                units=_finite(entry.get("units", 0), f"{at}.units"),
                start=start,
                seen=seen,
                deadline=_time(entry.get("deadline"), f"{at}.deadline"),
            )
        counted = [str(u) for u in data.get("counted") or []]
        return cls(totals=totals, counted=counted, open=opened)


# --------------------------------------------------------------------------------------
# Projection, budget, lost work
# --------------------------------------------------------------------------------------


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
