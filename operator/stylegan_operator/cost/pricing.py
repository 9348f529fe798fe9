"""Prices and money: the GPU price catalog, GPU type names, currencies and their formatting.

:class:`PriceCatalog` holds the USD price of each GPU type (:data:`DEFAULT_PRICES`, each
with its source) and the exchange rates used for display; :func:`canonical_gpu_type` maps
node label values, aliases and product names onto its keys. This is the bottom of the
``cost`` package: ``metering`` reads what pods rented, ``spend`` and ``ledger`` price and
add it up, ``budget`` projects it, and ``estimate`` prices published training speeds, all
with the catalog and the formatting helpers here.

All amounts are kept in USD (the catalog's unit) and converted only for display. Every
public function refuses NaN, infinities and negative inputs with :class:`CostError`, so no
result is ever NaN or negative.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stylegan_common.validation import validate_model
from stylegan_operator.cost.catalog_file import CatalogFile, currency_code
from stylegan_operator.cost.catalog_file import PriceEntry as CatalogEntry

__all__ = [
    "CPU",
    "DEFAULT_CATALOG",
    "DEFAULT_EXCHANGE_RATES",
    "DEFAULT_PRICES",
    "FRIENDLY_NAMES",
    "GPU_ALIASES",
    "CostError",
    "GpuPrice",
    "PriceCatalog",
    "canonical_gpu_type",
    "format_duration",
    "format_money",
]


class CostError(ValueError):
    """Bad cost input (a price, a budget, a currency, a GPU type); the message names the field."""


USD = "USD"
CPU = "cpu"

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
    try:
        return currency_code(currency)
    except ValueError as exc:
        raise CostError(f"{field_name}: {exc}") from None


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
        if isinstance(data, Mapping) and isinstance(data.get("cost"), Mapping):
            data = data["cost"]  # a whole values file was passed
        checked = validate_model(CatalogFile, data, CostError, root="cost")
        prices = dict(base.prices)
        for raw_key, entry in checked.prices.items():
            key = canonical_gpu_type(raw_key)
            prices[key] = _merged_price(entry, prices.get(key), f"cost.prices[{raw_key!r}]")
        rates = {**base.exchange_rates, **checked.exchange_rates}
        return cls(prices=prices, exchange_rates=rates, currency=checked.currency or base.currency)

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


def _merged_price(entry: CatalogEntry, current: GpuPrice | None, where: str) -> GpuPrice:
    """``entry``'s fields over ``current`` (the defaults' or an earlier entry's prices).

    A GPU type not in the defaults must give ``onDemand``; its ``spot`` defaults to it (a
    missing spot price never under-reports), and ``nodeSpot`` to ``nodeOnDemand``.
    """
    given = entry.model_fields_set
    if current is None and "on_demand" not in given:
        raise CostError(f"{where}.onDemand: required for a GPU type not in the defaults")
    on_demand = entry.on_demand if current is None or "on_demand" in given else current.on_demand
    if "spot" in given:
        spot = entry.spot
    else:
        spot = current.spot if current is not None else on_demand
    if "node_on_demand" in given:
        node_od = entry.node_on_demand
    else:
        node_od = current.node_on_demand if current is not None else 0.0
    if "node_spot" in given:
        node_spot = entry.node_spot
    else:
        node_spot = current.node_spot if current is not None else node_od
    return GpuPrice(on_demand, spot, node_od, node_spot, entry.source or f"{where} (configured)")


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


def format_progress(done_kimg: float, total_kimg: float) -> str:
    """``20.5%``: the share of the target reached, one decimal, held within 0-100% (the
    trainer ends on a whole tick, so it may pass its target by a little)."""
    done = _finite(done_kimg, "kimg")
    total = _finite(total_kimg, "total kimg", positive=True)
    return f"{min(max(done / total, 0.0), 1.0) * 100:.1f}%"


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
