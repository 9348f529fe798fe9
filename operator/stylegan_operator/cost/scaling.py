"""Scaling a training speed to another GPU count or GPU type, and the ratios it uses.

A calibration point is measured on one GPU type at one GPU count; :func:`throughput_ratio`
converts between GPU types and ``_time_for_count`` between GPU counts, each with a note
saying which rule was applied (the estimate's ``basis`` and ``notes``).

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
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from stylegan_operator.cost.calibration import (
    A100,
    A100_80GB,
    CALIBRATION,
    H100,
    L4,
    T4,
    V100,
    CalibrationPoint,
)
from stylegan_operator.cost.pricing import CPU, FRIENDLY_NAMES, CostError

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
            "device you will run on with `stylegan benchmark -o json` and pass --from-benchmark"
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
                "measure it with `stylegan benchmark -o json` and pass --from-benchmark"
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
