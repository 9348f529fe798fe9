"""``stylegan estimate``: how long and how much a StyleGAN2 run will take, before any run.

The answer comes from a calibration table of *published* training speeds, or from a
``stylegan benchmark --json`` measurement of the local device, priced with the cost
catalog (:mod:`stylegan_operator.cost.pricing`).

Calibration sources (figures copied from /work/shared/reference/stylegan2-figures.md and
the StyleGAN2 README; no code is taken from them):

* ``sg2-readme``: NVlabs/stylegan2 README, "typical training times using NVIDIA DGX-1 with
  8 Tesla V100 GPUs" (TensorFlow, FP32): config-f and config-e at 1024x1024 and config-f
  at 256x256, 25000 and 10000 kimg, on 1/2/4/8 GPUs. Whole-run wall times.
* ``ada-pt-readme``: NVlabs/stylegan2-ada-pytorch README, "Expected training time" for
  ``--cfg=auto`` on V100s (times for 25000 kimg, with ``fid50k_full`` metrics).
* ``sg3-configs``: NVlabs/stylegan3 docs/configs.md, raw s/kimg of the StyleGAN2 configs
  on V100 and A100 (8 GPUs for ``stylegan2``/``paper*``; 1-8 for ``auto``). Raw s/kimg
  excludes snapshots and metrics ("typically by no more than 5%": use ``--overhead``).

Which source answers: the first of the preset's sources (``stylegan2``: sg2-readme, then
sg3-configs; ``auto``: ada-pt-readme, then sg3-configs; ``paper256/512/1024``: sg3-configs;
``config-e``: sg2-readme) that has the preset at that resolution, or the one ``--source``
names. Comparisons between GPU types are made within that one source.

Assumptions (each marked on the rows it touches):

* GPU count: a published row for that count is used as is ("published"). Between two
  published counts the time is interpolated linearly in 1/gpus ("interpolated"). Beyond
  them it is extrapolated from the nearest published count with a parallel efficiency of
  0.95 per doubling of GPUs ("extrapolated"): the worst doubling the StyleGAN2 README
  shows (4 -> 8 V100s, 18d 14h -> 9d 18h, 1.906x for 2x). N GPUs over several nodes are
  treated like N GPUs in one DGX-1; no multi-node StyleGAN2 figure is published.
* GPU type: every source has V100 rows; a GPU type a source lacks is scaled from its V100
  row by a throughput ratio ("scaled"). A100 (40 or 80 GB): the A100/V100 ratio that
  SG3 configs.md measured for the same preset and resolution (1.20-1.65), else 1.20, the
  most conservative of those. H100, L4, T4 have no published StyleGAN2 figure: their ratios
  are assumptions from memory bandwidth in NVIDIA's datasheets (StyleGAN2 runs at 5-10% of
  tensor-core peak, stylegan2-figures.md section 4b, so bandwidth, not FLOPs, is the guide):
  H100 = A100 x 1.64 (3.35 vs 2.04 TB/s), L4 = V100 x 0.33 (300 vs 900 GB/s),
  T4 = V100 x 0.36 (320 vs 900 GB/s).
* A benchmark file measures one device at one GPU count; other counts and GPU types are
  derived from it with the rules above.
* Cost = GPUs x hours x price per GPU-hour (+ nodes x hours x node price). Prices are the
  catalog's (see cost.DEFAULT_PRICES for the source of each) unless ``--price`` is given.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

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

V100 = "nvidia-tesla-v100"
A100 = "nvidia-tesla-a100"
A100_80GB = "nvidia-a100-80gb"
H100 = "nvidia-h100-80gb"
L4 = "nvidia-l4"
T4 = "nvidia-tesla-t4"

DEFAULT_KIMG = 25000
PRESETS = ("stylegan2", "paper256", "paper512", "paper1024", "auto", "cifar", "config-e")
PRESET_RESOLUTION = {"paper256": 256, "paper512": 512, "paper1024": 1024, "cifar": 32}
PRESET_LABEL = {"stylegan2": "config F", "config-e": "config E"}

EFFICIENCY_PER_DOUBLING = 0.95
"""Parallel efficiency per doubling of GPUs beyond the published counts (SG2 README 4->8)."""

A100_DEFAULT_RATIO = 1.20
"""A100/V100 throughput where SG3 configs.md has no pair: its most conservative measured
ratio (``stylegan2`` at 1024x1024, 17.55 / 14.57 s/kimg)."""

# Throughput relative to V100 for types no source measures (see the module docstring).
THROUGHPUT_VS_V100: dict[str, float] = {
    V100: 1.0,
    A100: A100_DEFAULT_RATIO,
    A100_80GB: A100_DEFAULT_RATIO,
    H100: A100_DEFAULT_RATIO * 1.64,
    L4: 0.33,
    T4: 0.36,
}
THROUGHPUT_NOTES: dict[str, str] = {
    A100: "A100/V100 measured 1.20-1.65x in SG3 configs.md",
    A100_80GB: "assumption: as A100 40GB (same SMs and clocks)",
    H100: "assumption: A100 x 1.64, HBM bandwidth 3.35 vs 2.04 TB/s (NVIDIA datasheets)",
    L4: "assumption: V100 x 0.33, memory bandwidth 300 vs 900 GB/s (NVIDIA datasheets)",
    T4: "assumption: V100 x 0.36, memory bandwidth 320 vs 900 GB/s (NVIDIA datasheets)",
}


@dataclass(frozen=True)
class Source:
    key: str
    title: str
    whole_run: bool
    """True when the figures are whole-run wall times (metrics and snapshots included)."""


SOURCES: dict[str, Source] = {
    "sg2-readme": Source(
        "sg2-readme",
        "StyleGAN2 README (NVlabs/stylegan2, TensorFlow, DGX-1 V100)",
        True,
    ),
    "ada-pt-readme": Source(
        "ada-pt-readme",
        "StyleGAN2-ADA PyTorch README (NVlabs/stylegan2-ada-pytorch, V100, --cfg=auto)",
        True,
    ),
    "sg3-configs": Source(
        "sg3-configs",
        "StyleGAN3 docs/configs.md (NVlabs/stylegan3, raw s/kimg, V100 and A100)",
        False,
    ),
    "benchmark": Source("benchmark", "stylegan benchmark on the local device", False),
}

PRESET_SOURCES: dict[str, tuple[str, ...]] = {
    "stylegan2": ("sg2-readme", "sg3-configs"),
    "config-e": ("sg2-readme",),
    "auto": ("ada-pt-readme", "sg3-configs"),
    "paper256": ("sg3-configs",),
    "paper512": ("sg3-configs",),
    "paper1024": ("sg3-configs",),
    "cifar": (),
}


def parse_published_time(text: str) -> int:
    """``"69d 23h"`` / ``"4h 05m"`` / ``"1d 06h"`` -> seconds."""
    seconds = 0
    for part in text.split():
        number, unit = int(part[:-1]), part[-1]
        seconds += number * {"d": 86400, "h": 3600, "m": 60, "s": 1}[unit]
    return seconds


@dataclass(frozen=True)
class CalibrationPoint:
    """One published (or measured) training speed."""

    source: str
    preset: str
    resolution: int
    gpu_type: str
    gpus: int
    sec_per_kimg: float
    kimg: int | None = None
    """The run length a published whole-run time is for."""
    published: str | None = None
    """That time exactly as published, e.g. ``"69d 23h"``."""

    @property
    def seconds(self) -> float | None:
        return None if self.published is None else float(parse_published_time(self.published))


def _timed(source: str, preset: str, res: int, gpus: int, kimg: int, text: str) -> CalibrationPoint:
    seconds = parse_published_time(text)
    return CalibrationPoint(source, preset, res, V100, gpus, seconds / kimg, kimg, text)


def _build_calibration() -> tuple[CalibrationPoint, ...]:
    points: list[CalibrationPoint] = []
    # StyleGAN2 README (TF): config, resolution, kimg, times on 1/2/4/8 V100s.
    sg2 = [
        ("stylegan2", 1024, 25000, ("69d 23h", "36d 4h", "18d 14h", "9d 18h")),
        ("stylegan2", 1024, 10000, ("27d 23h", "14d 11h", "7d 10h", "3d 22h")),
        ("config-e", 1024, 25000, ("35d 11h", "18d 15h", "9d 15h", "5d 6h")),
        ("config-e", 1024, 10000, ("14d 4h", "7d 11h", "3d 20h", "2d 3h")),
        ("stylegan2", 256, 25000, ("32d 13h", "16d 23h", "8d 21h", "4d 18h")),
        ("stylegan2", 256, 10000, ("13d 0h", "6d 19h", "3d 13h", "1d 22h")),
    ]
    for preset, res, kimg, times in sg2:
        for gpus, text in zip((1, 2, 4, 8), times, strict=True):
            points.append(_timed("sg2-readme", preset, res, gpus, kimg, text))
    # StyleGAN2-ADA PyTorch README, --cfg=auto, times for 25000 kimg on 1/2/4/8 V100s.
    ada = [
        (128, ("4d 06h", "2d 04h", "1d 09h", "1d 06h")),
        (256, ("6d 21h", "3d 14h", "1d 20h", "1d 11h")),
        (512, ("21d 22h", "11d 10h", "5d 17h", "2d 22h")),
        (1024, ("46d 03h", "24d 02h", "12d 02h", "6d 03h")),
    ]
    for res, times in ada:
        for gpus, text in zip((1, 2, 4, 8), times, strict=True):
            points.append(_timed("ada-pt-readme", "auto", res, gpus, DEFAULT_KIMG, text))
    # StyleGAN3 configs.md: raw s/kimg (V100, A100).
    sg3: list[tuple[str, int, int, float, float]] = [
        ("stylegan2", 1024, 8, 17.55, 14.57),
        ("paper256", 256, 8, 4.01, 2.47),
        ("paper512", 512, 8, 9.11, 5.28),
        ("paper1024", 1024, 8, 18.56, 11.75),
        ("auto", 128, 1, 12.51, 6.79),
        ("auto", 128, 2, 6.43, 3.45),
        ("auto", 128, 4, 3.82, 2.23),
        ("auto", 256, 1, 20.84, 12.53),
        ("auto", 256, 2, 10.93, 6.36),
        ("auto", 256, 4, 5.39, 3.20),
        ("auto", 256, 8, 3.89, 2.38),
        ("auto", 512, 1, 71.59, 41.06),
        ("auto", 512, 2, 36.79, 20.83),
        ("auto", 512, 4, 18.12, 10.45),
        ("auto", 512, 8, 9.09, 5.24),
        ("auto", 1024, 1, 141.83, 90.39),
        ("auto", 1024, 2, 73.13, 46.04),
        ("auto", 1024, 4, 36.95, 23.15),
        ("auto", 1024, 8, 18.47, 11.66),
    ]
    for preset, res, gpus, v100, a100 in sg3:
        points.append(CalibrationPoint("sg3-configs", preset, res, V100, gpus, v100))
        points.append(CalibrationPoint("sg3-configs", preset, res, A100, gpus, a100))
    return tuple(points)


CALIBRATION: tuple[CalibrationPoint, ...] = _build_calibration()


# --------------------------------------------------------------------------------------
# The estimate itself (pure)
# --------------------------------------------------------------------------------------


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


def _a100_ratio(preset: str, resolution: int, gpus: int) -> tuple[float, str]:
    """Measured A100/V100 throughput for this preset (SG3 configs.md), else the default."""
    pairs: dict[int, dict[str, float]] = {}
    for p in CALIBRATION:
        if p.source == "sg3-configs" and p.preset == preset and p.resolution == resolution:
            pairs.setdefault(p.gpus, {})[p.gpu_type] = p.sec_per_kimg
    if pairs:
        count = gpus if gpus in pairs else min(pairs, key=lambda n: abs(n - gpus))
        pair = pairs[count]
        ratio = pair[V100] / pair[A100]
        return ratio, (
            f"A100 = V100 x {ratio:.2f} (SG3 configs.md, {preset} {resolution}px, {count} GPUs)"
        )
    return A100_DEFAULT_RATIO, (
        f"A100 = V100 x {A100_DEFAULT_RATIO:.2f} (most conservative A100/V100 in SG3 configs.md)"
    )


def throughput_ratio(
    base: str, target: str, preset: str, resolution: int, gpus: int
) -> tuple[float, str]:
    """How many times faster ``target`` trains than ``base`` (and why we think so)."""
    if base == target:
        return 1.0, ""
    if CPU in (base, target):
        raise CostError(
            "--gpu: CPU and GPU speeds cannot be converted into each other; measure the "
            "device you will run on with `stylegan benchmark --json` and pass --from-benchmark"
        )
    relative: dict[str, tuple[float, str]] = {}
    for gpu in (base, target):
        if gpu in (A100, A100_80GB):
            ratio, note = _a100_ratio(preset, resolution, gpus)
            if gpu == A100_80GB:
                note += "; " + THROUGHPUT_NOTES[A100_80GB]
            relative[gpu] = (ratio, note)
        elif gpu == H100:
            a100, _ = _a100_ratio(preset, resolution, gpus)
            relative[gpu] = (a100 * 1.64, THROUGHPUT_NOTES[H100])
        elif gpu in THROUGHPUT_VS_V100:
            relative[gpu] = (THROUGHPUT_VS_V100[gpu], THROUGHPUT_NOTES.get(gpu, ""))
        else:
            known = ", ".join(sorted(THROUGHPUT_VS_V100))
            raise CostError(
                f"--gpu: no throughput figure for GPU type {gpu!r}; known: {known}; "
                "measure it with `stylegan benchmark --json` and pass --from-benchmark"
            )
    ratio = relative[target][0] / relative[base][0]
    notes = "; ".join(n for g in (base, target) if (n := relative[g][1]) and g != V100)
    name = FRIENDLY_NAMES.get(target, target)
    return ratio, f"scaled {FRIENDLY_NAMES.get(base, base)} -> {name} x {ratio:.2f}: {notes}"


def _speedup(gpus: float) -> float:
    """Speed of ``gpus`` GPUs relative to one, at 0.95 efficiency per doubling."""
    return gpus * EFFICIENCY_PER_DOUBLING ** math.log2(gpus)


def _nearest_kimg(points: Sequence[CalibrationPoint], kimg: float) -> CalibrationPoint:
    return min(points, key=lambda p: (abs((p.kimg or kimg) - kimg), -(p.kimg or 0)))


def _time_for_count(
    points: Sequence[CalibrationPoint], gpus: int, kimg: float
) -> tuple[float, float | None, str, str]:
    """(sec/kimg, exact published seconds or None, basis, note) for ``gpus`` GPUs."""
    by_count: dict[int, CalibrationPoint] = {}
    for count in sorted({p.gpus for p in points}):
        by_count[count] = _nearest_kimg([p for p in points if p.gpus == count], kimg)
    if gpus in by_count:
        point = by_count[gpus]
        exact = point.seconds if point.kimg == kimg else None
        text = f" ({point.published} for {point.kimg} kimg)" if point.published else ""
        return point.sec_per_kimg, exact, "published", f"published {gpus} GPUs{text}"
    counts = sorted(by_count)
    lower = [c for c in counts if c < gpus]
    upper = [c for c in counts if c > gpus]
    if lower and upper:
        n1, n2 = lower[-1], upper[0]
        t1, t2 = by_count[n1].sec_per_kimg, by_count[n2].sec_per_kimg
        weight = (1 / gpus - 1 / n1) / (1 / n2 - 1 / n1)
        return (
            t1 + (t2 - t1) * weight,
            None,
            "interpolated",
            f"interpolated linearly in 1/gpus between {n1} and {n2} GPUs",
        )
    nearest = lower[-1] if lower else upper[0]
    speed = by_count[nearest].sec_per_kimg * _speedup(nearest) / _speedup(gpus)
    return (
        speed,
        None,
        "extrapolated",
        f"extrapolated from {nearest} GPUs at {EFFICIENCY_PER_DOUBLING} efficiency per doubling",
    )


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
        + f"; published: {listing}. Measure it with `stylegan benchmark --json` and pass "
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
            "`stylegan benchmark --json` and pass --from-benchmark FILE"
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


def load_benchmark(path: Path) -> CalibrationPoint:
    """A calibration point from ``stylegan benchmark --json`` output."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CostError(f"--from-benchmark {path}: cannot read JSON: {exc}") from None
    if not isinstance(data, Mapping):
        raise CostError(f"--from-benchmark {path}: expected a JSON object")
    where = f"--from-benchmark {path}"
    try:
        speed = float(data["sec_per_kimg"])
        device = str(data.get("device", "cpu"))
        resolution = int(data["resolution"])
        preset = str(data.get("preset", "auto"))
        gpus = int(data.get("gpus", 1))
    except (KeyError, TypeError, ValueError) as exc:
        raise CostError(
            f"{where}: needs sec_per_kimg, resolution (and device, preset, gpus): {exc}"
        ) from None
    if not (math.isfinite(speed) and speed > 0) or gpus < 1:
        raise CostError(f"{where}: sec_per_kimg must be > 0 and gpus >= 1")
    gpu_type = CPU if device.lower().startswith("cpu") else canonical_gpu_type(device)
    return CalibrationPoint("benchmark", preset, resolution, gpu_type, gpus, speed)


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


# --------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------

_COLUMNS = ("preset", "resolution", "kimg", "gpu", "gpus", "time", "GPU-hours", "cost", "basis")


def _cells(row: EstimateRow) -> tuple[str, ...]:
    return (
        PRESET_LABEL.get(row.preset, row.preset),
        f"{row.resolution}x{row.resolution}",
        f"{row.kimg:,.0f}",
        FRIENDLY_NAMES.get(row.gpu_type, row.gpu_type),
        f"{row.gpus}" if row.nodes == 1 else f"{row.nodes}x{row.gpus_per_node}",
        row.time,
        f"{row.gpu_hours:,.1f}",
        format_money(row.cost, row.currency),
        row.basis,
    )


def render_table(rows: Sequence[EstimateRow]) -> str:
    """A plain-text table, columns aligned, numbers right-aligned."""
    body = [_cells(r) for r in rows]
    widths = [max(len(c[i]) for c in [_COLUMNS, *body]) for i in range(len(_COLUMNS))]
    right = {2, 4, 5, 6, 7}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(_COLUMNS), line(["-" * w for w in widths]), *map(line, body)])


def render_notes(rows: Sequence[EstimateRow], catalog: PriceCatalog) -> str:
    lines: list[str] = []
    for row in rows:
        for note in row.notes:
            # "published" is already said by the basis column; JSON keeps the detail.
            if not note.startswith("published ") and note not in lines:
                lines.append(note)
    for row in rows:
        name = FRIENDLY_NAMES.get(row.gpu_type, row.gpu_type)
        line = f"price {name}: {row.price_per_gpu_hour_usd:g} USD per GPU-hour ({row.price_source})"
        if line not in lines:
            lines.append(line)
    if rows and rows[0].currency != "USD":
        lines.append(
            f"1 USD = {catalog.rate(rows[0].currency):g} {rows[0].currency} (display only)"
        )
    return "\n".join(f"* {line}" for line in lines)
