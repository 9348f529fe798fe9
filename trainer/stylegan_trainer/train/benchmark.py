"""Benchmark: what one training step and generation cost on this device.

A real Trainer on a throw-away outdir (``stylegan benchmark``, ``bench/trainer.py``): each phase
is timed on its own and weighed by how often training runs it, so the figure is the steady
state's, without snapshots or ticks.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from typing import Any

import torch

from stylegan_common.errors import ConfigError
from stylegan_trainer.model.loss import update_ema
from stylegan_trainer.report.progress import (
    SilentReporter,
    peak_cpu_memory_bytes,
    peak_gpu_memory_bytes,
)
from stylegan_trainer.train.loop import Trainer, _count_params
from stylegan_trainer.train.options import TrainingOptions
from stylegan_trainer.train.phases import real_batch


def benchmark(
    resolution: int,
    preset: str = "auto",
    steps: int = 2,
    device: str = "auto",
    batch: int | None = None,
    gen_batch: int | None = None,
    mixed_precision: bool | str = "none",
    batch_per_gpu: int | None = None,
) -> dict[str, Any]:
    """Time each phase ``steps`` times and weigh them as training runs them.

    Per step Gmain and Dmain run once, Greg once per ``g_reg_interval`` (4) and Dreg once per
    ``d_reg_interval`` (16) steps, so ``sec/step = Gmain + Dmain + Greg/4 + Dreg/16 + EMA``
    and ``sec/kimg = sec/step / batch * 1000``. Generation: images/s of G_ema with constant
    noise. Peak memory: CUDA allocator peak on a GPU, peak RSS of the process on a CPU.
    """
    if steps < 1:
        raise ConfigError(f"steps: {steps} must be at least 1")
    with tempfile.TemporaryDirectory(prefix="stylegan-bench-") as outdir:
        options = TrainingOptions(
            dataset="builtin:lfw", preset=preset, resolution=resolution, batch=batch,
            outdir=outdir, resume="none", augment="ada", device=device, progress_bar="off",
            mixed_precision=mixed_precision, batch_per_gpu=batch_per_gpu,
        )  # fmt: skip
        trainer = Trainer(options, reporter=SilentReporter())
        try:
            return _benchmark_trainer(trainer, steps, gen_batch, preset, resolution)
        finally:
            trainer.close()


def _benchmark_trainer(
    trainer: Trainer, steps: int, gen_batch: int | None, preset: str, resolution: int
) -> dict[str, Any]:
    """The measurements of :func:`benchmark` on a built trainer."""
    dev = trainer.device
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    trainer.train_step()  # warm-up: step 0 runs all four phases
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    phase_seconds: dict[str, float] = {}
    real, real_c = real_batch(trainer.loader, dev, trainer.c_dim)
    for index, phase in enumerate(trainer.phases):
        sync()
        begin = time.perf_counter()
        for _ in range(steps):
            trainer.run_phase(phase, index, real, real_c)
        sync()
        phase_seconds[phase.name] = (time.perf_counter() - begin) / steps
    sync()
    begin = time.perf_counter()
    for _ in range(steps):
        update_ema(trainer.G_ema, trainer.G, 0.99)
        real_batch(trainer.loader, dev, trainer.c_dim)
    sync()
    overhead = (time.perf_counter() - begin) / steps
    sec_per_step = overhead + sum(
        seconds / next(p.interval for p in trainer.phases if p.name == name)
        for name, seconds in phase_seconds.items()
    )
    peak = peak_gpu_memory_bytes(dev) if dev.type == "cuda" else peak_cpu_memory_bytes()
    images_per_sec = _generation_speed(trainer, gen_batch or trainer.batch_per_rank, steps, sync)
    return {
        "resolution": resolution,
        "preset": preset,
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "batch": trainer.batch,
        "steps": steps,
        "g_params": _count_params(trainer.G),
        "d_params": _count_params(trainer.D),
        "phase_seconds": phase_seconds,
        "sec_per_step": sec_per_step,
        "sec_per_kimg": sec_per_step / trainer.batch * 1000,
        "images_per_sec": images_per_sec,
        "peak_mem_bytes": int(peak),
        "mixed_precision": trainer.network.num_fp16_res > 0,
        "precision": trainer.network.mp_dtype if trainer.network.num_fp16_res else "fp32",
        "batch_per_gpu": trainer.batch_per_rank // trainer.rounds,
    }


def _generation_speed(
    trainer: Trainer, batch: int, repeats: int, sync: Callable[[], None]
) -> float:
    z = torch.randn([batch, trainer.network.z_dim], device=trainer.device)
    c = torch.zeros([batch, trainer.c_dim], device=trainer.device) if trainer.c_dim else None
    with torch.no_grad():
        trainer.G_ema(z, c, noise_mode="const")  # warm-up
        sync()
        begin = time.perf_counter()
        for _ in range(repeats):
            trainer.G_ema(z, c, noise_mode="const")
        sync()
    return batch * repeats / (time.perf_counter() - begin)
