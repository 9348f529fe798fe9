"""Calibration points: the published StyleGAN2 training speeds, and a measured one.

:data:`CALIBRATION` holds every published figure ``stylegan estimate`` answers from, as
:class:`CalibrationPoint` rows (source, preset, resolution, GPU type and count, s/kimg);
:func:`load_benchmark` reads a ``stylegan benchmark -o json`` file (checked by the pydantic
model :class:`BenchmarkFile`) as one more point. The data is kept apart from the arithmetic
(``scaling``, ``estimate``) so that each figure can be checked against its source in one place.

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
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from stylegan_common.validation import validate_model
from stylegan_operator.cost.pricing import CPU, CostError, canonical_gpu_type

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


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    return value


class BenchmarkFile(BaseModel):
    """The fields ``stylegan estimate`` reads from ``stylegan benchmark -o json``; the rest of
    that output (phases, memory, parameter counts) is ignored, not refused."""

    model_config = ConfigDict(extra="ignore")

    sec_per_kimg: Annotated[
        float, BeforeValidator(_no_bool), Field(gt=0, allow_inf_nan=False)
    ]
    resolution: Annotated[int, BeforeValidator(_no_bool), Field(ge=1)]
    device: str = "cpu"
    device_name: str | None = None
    """The CUDA device's product name (``NVIDIA H100 80GB HBM3``) when ``device`` is cuda."""
    preset: str = "auto"
    gpus: Annotated[int, BeforeValidator(_no_bool), Field(ge=1)] = 1

    def gpu_type(self) -> str:
        if self.device.lower().startswith("cpu"):
            return CPU
        if self.device.lower().startswith("cuda") and self.device_name:
            return canonical_gpu_type(self.device_name)  # "cuda:0" says nothing of the GPU
        return canonical_gpu_type(self.device)


def load_benchmark(path: Path) -> CalibrationPoint:
    """A calibration point from ``stylegan benchmark -o json`` output."""
    where = f"--from-benchmark {path}"
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CostError(f"{where}: cannot read JSON: {exc}") from None
    bench = validate_model(BenchmarkFile, data, CostError, prefix=f"{where}: ")
    return CalibrationPoint(
        "benchmark", bench.preset, bench.resolution, bench.gpu_type(), bench.gpus,
        bench.sec_per_kimg,
    )
