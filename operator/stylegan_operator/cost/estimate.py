"""``stylegan estimate``: how long and how much a StyleGAN2 run will take, before any run.

The answer comes from a calibration table of *published* training speeds, or from a
``stylegan benchmark -o json`` measurement of the local device, priced with the cost
catalog (:mod:`stylegan_operator.cost.pricing`).

Which source answers: the first of the preset's sources (``stylegan2``: sg2-readme, then
sg3-configs; ``auto``: ada-pt-readme, then sg3-configs; ``paper256/512/1024``: sg3-configs;
``config-e``: sg2-readme) that has the preset at that resolution, or the one ``--source``
names. Comparisons between GPU types are made within that one source.

Cost = GPUs x hours x price per GPU-hour (+ nodes x hours x node price). Prices are the
catalog's (see pricing.DEFAULT_PRICES for the source of each) unless ``--price`` is given.

The calibration points are in ``calibration``, the rules that carry them to another GPU
count or type in ``scaling``, and the plain-text output in ``estimate_table``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from stylegan_operator.cost.calibration import (
    CALIBRATION,
    DEFAULT_KIMG,
    PRESET_RESOLUTION,
    PRESET_SOURCES,
    PRESETS,
    SOURCES,
    V100,
    CalibrationPoint,
)
from stylegan_operator.cost.pricing import (
    CPU,
    DEFAULT_CATALOG,
    FRIENDLY_NAMES,
    CostError,
    PriceCatalog,
    canonical_gpu_type,
    format_duration,
    format_money,
)
from stylegan_operator.cost.scaling import _time_for_count, throughput_ratio


@dataclass(frozen=True)
class EstimateRequest:
    preset: str = "stylegan2"
    resolution: int | None = None
    kimg: float = DEFAULT_KIMG
    gpu_type: str = V100
    gpus_per_node: int = 1
    nodes: int = 1
    currency: str | None = None
    price_per_gpu_hour_usd: float | None = None
    spot: bool = False
    source: str | None = None
    overhead: float = 0.0
    """Extra fraction of time for snapshots and metrics (0.05 = 5%)."""


@dataclass(frozen=True)
class EstimateRow:
    preset: str
    resolution: int
    kimg: float
    gpu_type: str
    gpus_per_node: int
    nodes: int
    sec_per_kimg: float
    seconds: float
    time: str
    gpu_hours: float
    price_per_gpu_hour_usd: float
    price_source: str
    cost_usd: float
    cost: float
    currency: str
    basis: str
    """published | interpolated | extrapolated, plus ``scaled`` when another GPU's figures
    were converted; see ``notes``."""
    source: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def gpus(self) -> int:
        return self.gpus_per_node * self.nodes

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["gpus"] = self.gpus
        data["notes"] = list(self.notes)
        data["cost_text"] = format_money(self.cost, self.currency)
        return data


def _resolution(preset: str, resolution: int | None) -> int:
    fixed = PRESET_RESOLUTION.get(preset)
    if resolution is None:
        return fixed or 1024
    if fixed is not None and resolution != fixed:
        raise CostError(f"--resolution: preset {preset} trains at {fixed}, not {resolution}")
    if resolution < 4 or resolution & (resolution - 1):
        raise CostError(f"--resolution: must be a power of two >= 4, got {resolution}")
    return resolution


def _choose_source(preset: str, resolution: int, forced: str | None) -> str:
    order = (forced,) if forced else PRESET_SOURCES.get(preset, ())
    for key in order:
        if any(
            p.source == key and p.preset == preset and p.resolution == resolution
            for p in CALIBRATION
        ):
            return key
    known = sorted(
        {(p.preset, p.resolution) for p in CALIBRATION if not forced or p.source == forced}
    )
    listing = ", ".join(f"{p}@{r}" for p, r in known)
    raise CostError(
        f"--preset/--resolution: no published figure for {preset} at {resolution}x{resolution}"
        + (f" in {forced}" if forced else "")
        + f"; published: {listing}. Measure it with `stylegan benchmark -o json` and pass "
        "--from-benchmark FILE"
    )


def _validate(request: EstimateRequest, *, known_preset: bool = True) -> None:
    if known_preset and request.preset not in PRESETS:
        raise CostError(f"--preset: unknown preset {request.preset!r}; valid: {', '.join(PRESETS)}")
    if not (
        isinstance(request.kimg, int | float) and math.isfinite(request.kimg) and request.kimg > 0
    ):
        raise CostError(f"--kimg: must be a positive number, got {request.kimg!r}")
    if request.gpus_per_node < 1 or request.nodes < 1:
        raise CostError("--gpus/--nodes: must be at least 1")
    if not (math.isfinite(request.overhead) and 0 <= request.overhead <= 10):
        raise CostError(
            f"--overhead: must be between 0 and 10 (a fraction), got {request.overhead}"
        )
    if request.source is not None and request.source not in SOURCES:
        raise CostError(f"--source: unknown {request.source!r}; valid: {', '.join(SOURCES)}")


def _price_row(
    request: EstimateRequest,
    catalog: PriceCatalog,
    *,
    resolution: int,
    gpu_type: str,
    sec_per_kimg: float,
    exact_seconds: float | None,
    basis: str,
    source: str,
    notes: list[str],
) -> EstimateRow:
    currency = (request.currency or catalog.currency).upper()
    rate = catalog.rate(currency, "--currency")
    if request.price_per_gpu_hour_usd is not None:
        price = request.price_per_gpu_hour_usd
        if not (math.isfinite(price) and price > 0):
            raise CostError(f"--price: must be greater than 0, got {price}")
        price_source = "--price"
    else:
        entry = catalog.entry(gpu_type, "--gpu")
        price = entry.unit_price(request.spot)
        price_source = ("spot; " if request.spot else "on-demand; ") + entry.source
    node_price = catalog.node_price(gpu_type, spot=request.spot)
    speed = sec_per_kimg * (1 + request.overhead)
    seconds = speed * request.kimg
    if exact_seconds is not None and request.overhead == 0:
        seconds = exact_seconds  # keep the published figure exact (no float drift)
    if request.overhead:
        notes.append(f"plus {request.overhead:.0%} for snapshots and metrics")
    gpus = request.gpus_per_node * request.nodes
    gpu_hours = seconds * gpus / 3600.0
    cost_usd = gpu_hours * price + seconds / 3600.0 * request.nodes * node_price
    return EstimateRow(
        preset=request.preset,
        resolution=resolution,
        kimg=request.kimg,
        gpu_type=gpu_type,
        gpus_per_node=request.gpus_per_node,
        nodes=request.nodes,
        sec_per_kimg=speed,
        seconds=seconds,
        time=format_duration(seconds),
        gpu_hours=gpu_hours,
        price_per_gpu_hour_usd=price,
        price_source=price_source,
        cost_usd=cost_usd,
        cost=cost_usd * rate,
        currency=currency,
        basis=basis,
        source=source,
        notes=tuple(notes),
    )


def estimate(request: EstimateRequest, catalog: PriceCatalog = DEFAULT_CATALOG) -> EstimateRow:
    """The time and cost of one configuration from the calibration table."""
    _validate(request)
    resolution = _resolution(request.preset, request.resolution)
    gpu_type = canonical_gpu_type(request.gpu_type)
    gpus = request.gpus_per_node * request.nodes
    if gpu_type == CPU:
        raise CostError(
            "--gpu: no published StyleGAN2 figure for CPUs; measure with "
            "`stylegan benchmark -o json` and pass --from-benchmark FILE"
        )
    source = _choose_source(request.preset, resolution, request.source)
    candidates = [
        p
        for p in CALIBRATION
        if p.source == source and p.preset == request.preset and p.resolution == resolution
    ]
    notes = [SOURCES[source].title]
    # The A100 80GB is never published separately, so it is always scaled (from V100).
    own = [p for p in candidates if p.gpu_type == gpu_type]
    base_type = gpu_type if own else V100
    speed, exact, basis, note = _time_for_count(
        own or [p for p in candidates if p.gpu_type == V100], gpus, request.kimg
    )
    notes.append(note)
    if base_type != gpu_type:
        ratio, why = throughput_ratio(base_type, gpu_type, request.preset, resolution, gpus)
        speed /= ratio
        exact = None
        basis += ", scaled"
        notes.append(why)
    if gpus > 8:
        notes.append("assumption: GPUs on several nodes scale like GPUs in one DGX-1")
    return _price_row(
        request,
        catalog,
        resolution=resolution,
        gpu_type=gpu_type,
        sec_per_kimg=speed,
        exact_seconds=exact,
        basis=basis,
        source=source,
        notes=notes,
    )


def estimate_from_benchmark(
    point: CalibrationPoint,
    request: EstimateRequest,
    catalog: PriceCatalog = DEFAULT_CATALOG,
) -> EstimateRow:
    """The time and cost of one configuration from a measured speed."""
    if request.resolution is not None and request.resolution != point.resolution:
        raise CostError(
            f"--resolution: the benchmark measured {point.resolution}px, not {request.resolution}"
        )
    # A benchmark may measure a preset the calibration table does not know (e.g. "small").
    request = EstimateRequest(**{**asdict(request), "preset": point.preset, "resolution": None})
    _validate(request, known_preset=False)
    gpus = request.gpus_per_node * request.nodes
    target = canonical_gpu_type(request.gpu_type)
    speed, _, basis, note = _time_for_count([point], gpus, request.kimg)
    notes = [
        f"{SOURCES['benchmark'].title}: {point.sec_per_kimg:g} s/kimg on {point.gpus} "
        f"{FRIENDLY_NAMES.get(point.gpu_type, point.gpu_type)}",
        note,
    ]
    basis = "measured" if basis == "published" else basis
    if target != point.gpu_type:
        ratio, why = throughput_ratio(point.gpu_type, target, point.preset, point.resolution, gpus)
        speed /= ratio
        basis += ", scaled"
        notes.append(why)
    return _price_row(
        request,
        catalog,
        resolution=point.resolution,
        gpu_type=target,
        sec_per_kimg=speed,
        exact_seconds=None,
        basis=basis,
        source="benchmark",
        notes=notes,
    )


def readme_rows(
    catalog: PriceCatalog = DEFAULT_CATALOG,
    *,
    currency: str | None = None,
    price_per_gpu_hour_usd: float | None = None,
    spot: bool = False,
) -> list[EstimateRow]:
    """Every row of the StyleGAN2 README training-time table, priced."""
    rows = []
    for point in CALIBRATION:
        if point.source != "sg2-readme":
            continue
        request = EstimateRequest(
            preset=point.preset,
            resolution=point.resolution,
            kimg=point.kimg or DEFAULT_KIMG,
            gpu_type=V100,
            gpus_per_node=point.gpus,
            currency=currency,
            price_per_gpu_hour_usd=price_per_gpu_hour_usd,
            spot=spot,
            source="sg2-readme",
        )
        rows.append(estimate(request, catalog))
    return rows
