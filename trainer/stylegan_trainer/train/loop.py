"""The StyleGAN2-ADA training loop: the Trainer, its steps, EMA, ADA, ticks and stopping.

One *step* consumes one global batch of real images and runs the phases of lazy
regularisation (StyleGAN2 paper, Sec. 3.1): ``Gmain`` and ``Dmain`` every step, ``Greg`` (path
length) every ``g_reg_interval`` steps and ``Dreg`` (R1) every ``d_reg_interval`` steps, each
with its loss multiplied by its interval. Adam's learning rate and betas are corrected for the
extra regularisation steps (``loss.lazy_regularization_hparams``). After the phases, ``G_ema``
follows G with the EMA half-life ``ema_kimg`` (ramped up early in training), and with ADA on,
every 4 steps the augmentation probability moves by the sign of ``E[sign(D(real))] - 0.6``.

The parts live beside this module: the options in options.py, building the networks,
optimisers and data from them in build.py, one phase and the seeds of a step in phases.py
(with the determinism rules), resuming in resume.py, sample grids and the snapshot collective
in snapshots.py, the tick and stop timetable in schedule.py, and ``benchmark`` in benchmark.py.

Stopping: at the target kimg (exit 0); at ``max_seconds`` of wall time (checkpoint, exit 0:
the bound was asked for); on SIGTERM (checkpoint, exit 75 because a preempted run should be
resumed, or 0 if training happened to be complete). Ranks agree on stopping (schedule.py), so
nobody is left waiting in a collective.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from stylegan_common.errors import EXIT_OK, EXIT_RETRYABLE
from stylegan_common.storage import Storage, open_storage
from stylegan_trainer.data.dataset import open_dataset
from stylegan_trainer.model.loss import ema_beta, update_ema
from stylegan_trainer.report.progress import Reporter
from stylegan_trainer.train import checkpoint as ckpt
from stylegan_trainer.train.build import (
    attach_log_archive,
    attach_metrics,
    build_augment,
    build_loader,
    build_loss,
    build_optimizers,
    build_training_networks,
    configure_cuda_math,
    label_dim,
    network_for,
    open_reporter,
    resolve_training_preset,
)
from stylegan_trainer.train.distributed import (
    DistContext,
    StatsCollector,
    accumulation_rounds,
    per_rank_batch,
    resolve_device,
)
from stylegan_trainer.train.init_from import initialise_networks, network_modules
from stylegan_trainer.train.options import TrainingOptions
from stylegan_trainer.train.phases import (
    Phase,
    StepLatents,
    optimize_phase,
    real_batch,
    seed_step_randomness,
    sync_running_averages,
)
from stylegan_trainer.train.resume import apply_optimizer_options, load_resume_state
from stylegan_trainer.train.schedule import StopRequest, TickClock
from stylegan_trainer.train.snapshots import SnapshotWriter

SIGN_REAL = "Loss/signs/real"


def _cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def _count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class Trainer:
    """Holds the networks, optimisers and counters of one run and advances them step by step.

    Construction validates everything (options, preset, dataset, resume target) before any
    training compute, raising ``ConfigError`` (exit 64). ``run()`` trains until the target,
    the time bound or SIGTERM and returns the exit code.
    """

    def __init__(
        self,
        options: TrainingOptions,
        ctx: DistContext | None = None,
        reporter: Reporter | None = None,
    ) -> None:
        options.validate()
        self.options = options
        self.ctx = ctx or DistContext(0, 1, 0, resolve_device(options.device), None)
        self.device = self.ctx.device
        self.preset = resolve_training_preset(options, self.ctx.world_size)
        self.batch = self.preset.batch_size
        self.batch_per_rank = per_rank_batch(self.batch, self.ctx.world_size)
        self.rounds = accumulation_rounds(self.batch_per_rank, options.batch_per_gpu)
        self.total_nimg = round((options.kimg or self.preset.total_kimg) * 1000)
        self.dataset = open_dataset(options.dataset, options.resolution, xflip=options.xflip)
        self.c_dim = label_dim(options, self.dataset)
        if self.device.type == "cuda":
            configure_cuda_math(options.mixed_precision)
        self.network = network_for(self.preset, options, self.c_dim, self.device)
        self.storage: Storage = open_storage(options.checkpoint_uri or options.outdir)
        self.reporter = reporter or open_reporter(options, self.ctx, self.total_nimg / 1000)
        self.metrics = attach_metrics(options, self.ctx, self.reporter)
        self.log_archive = attach_log_archive(options, self.ctx, self.reporter, self.storage)
        self.snapshots = SnapshotWriter(options, self.storage, self.reporter, self.ctx)
        resume_state = load_resume_state(
            options.resume, self.ctx, self.storage, self.network, options.resume_fallback
        )

        self.G, self.D, self.G_ema = build_training_networks(
            self.network, options.seed, self.device
        )
        self.augment_mode, self.augment_pipe, self.ada = build_augment(
            options, self.preset, self.device)
        self.loss = build_loss(self.G, self.D, self.augment_pipe, self.preset)
        self.opt_G, self.opt_D, self.phases = build_optimizers(self.G, self.D, self.preset)
        self.latents = StepLatents(
            options.seed, self.batch, self.network.z_dim, self.dataset if self.c_dim else None,
            self.ctx, self.batch_per_rank,
        )  # fmt: skip
        self.sampler, self.data_workers, self.loader = build_loader(
            options, self.dataset, self.ctx, self.batch
        )
        self.tick_stats = StatsCollector()
        self.ada_stats = StatsCollector()
        self.cur_nimg = 0
        self.cur_step = 0
        self.cur_tick = 0
        self.last_checkpoint: str | None = None
        self.initialised_from: str | None = None
        self._stop = StopRequest()
        if resume_state is not None:
            self.load_state_dict(resume_state)
        self._initialise_from(options.init_from, resume_state is not None)

    # -- state ---------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue bit for bit (see checkpoint.py)."""
        cpu = _cpu_state
        return {
            "format": ckpt.CHECKPOINT_FORMAT,
            "network": self.network.to_dict(),
            "preset": self.preset.to_dict(),
            "options": self.options.to_dict(),
            "G": cpu(self.G),
            "D": cpu(self.D),
            "G_ema": cpu(self.G_ema),
            "opt_G": self.opt_G.state_dict(),
            "opt_D": self.opt_D.state_dict(),
            "augment": cpu(self.augment_pipe) if self.augment_pipe is not None else {},
            "ada": {
                "mode": self.augment_mode,
                "controller": self.ada.state_dict() if self.ada is not None else None,
                "stats": self.ada_stats.state_dict(),
            },
            "pl_mean": self.loss.pl_mean.detach().cpu().clone(),
            "cur_nimg": self.cur_nimg,
            "cur_step": self.cur_step,
            "tick": self.cur_tick,
            "rng": ckpt.capture_rng_state(),
            "sampler": self.sampler.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from ``state``; Adam's lr and betas stay this run's (see resume.py)."""
        self.loader.close()  # the sampler moves: workers restart from its new position
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.G_ema.load_state_dict(state["G_ema"])
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])
        moved = apply_optimizer_options(self.opt_G, self.opt_D, self.preset, state.get("preset"))
        if moved is not None:
            self.reporter.log(moved)
        ada = state.get("ada") or {}
        if self.augment_pipe is not None and state.get("augment"):
            self.augment_pipe.load_state_dict(state["augment"])
        if self.ada is not None and ada.get("controller"):
            self.ada.load_state_dict(ada["controller"])
            self.ada.kimg = float(self.options.ada_kimg)  # this run's speed, not the saved one
        self.ada_stats.load_state_dict(ada.get("stats") or {})
        self.loss.load_state_dict({"pl_mean": state["pl_mean"]})
        self.cur_nimg = int(state["cur_nimg"])
        self.cur_step = int(state.get("cur_step", self.cur_nimg // self.batch))
        self.cur_tick = int(state["tick"])
        self.sampler.load_state_dict(state["sampler"])
        ckpt.restore_rng_state(state["rng"])
        self.last_checkpoint = state.get("_checkpoint_name")

    def _initialise_from(self, uri: str | None, resumed: bool) -> None:
        """``init_from``'s weights for a fresh run; a resumed one keeps its own (init_from.py)."""
        if uri is None:
            return
        if resumed:
            self.reporter.log(f"init_from: not used, resuming from {self.last_checkpoint}")
            return
        modules = network_modules(self.G, self.D, self.G_ema)
        line = initialise_networks(uri, self.ctx, modules, self.network.resolution)
        self.initialised_from = uri
        self.reporter.log(line)

    # -- one step ------------------------------------------------------------------------

    def run_phase(
        self, phase: Phase, phase_index: int, real: torch.Tensor, real_c: torch.Tensor | None
    ) -> dict[str, float]:
        """One phase on the latents this step draws for it (see ``phases.optimize_phase``)."""
        gen_z, gen_c = self.latents.draw(self.cur_step, phase_index)
        return optimize_phase(phase, self.loss, real, real_c, gen_z, gen_c, self.rounds)

    def train_step(self) -> None:
        """One global batch through the phases due at this step, then EMA, counters and ADA."""
        seed_step_randomness(self.options.seed, self.ctx.rank, self.cur_step)
        real, real_c = real_batch(self.loader, self.device, self.c_dim)
        for index, phase in enumerate(self.phases):
            if self.cur_step % phase.interval != 0:
                continue
            stats = self.run_phase(phase, index, real, real_c)
            self.tick_stats.add_many(stats, count=self.batch_per_rank)
            if SIGN_REAL in stats and phase.name.startswith("D"):
                self.ada_stats.add(SIGN_REAL, stats[SIGN_REAL], count=self.batch_per_rank)
        sync_running_averages(self.G, self.loss, self.ctx)
        beta = ema_beta(self.batch, self.preset.ema_kimg, self.preset.ema_rampup, self.cur_nimg)
        update_ema(self.G_ema, self.G, beta)
        self.cur_nimg += self.batch
        self.cur_step += 1
        if self.ada is not None and self.cur_step % self.ada.interval == 0:
            sign = self.ada_stats.reduce(self.device).get(SIGN_REAL)
            if sign is not None and self.augment_pipe is not None:
                self.ada.update(self.augment_pipe, sign, self.batch)

    # -- the loop --------------------------------------------------------------------------

    @property
    def augment_p(self) -> float:
        return float(self.augment_pipe.p) if self.augment_pipe is not None else 0.0

    @property
    def done(self) -> bool:
        return self.cur_nimg >= self.total_nimg

    def close(self) -> None:
        """Stop the data loader's worker processes (``run()`` does it on every way out)."""
        self.loader.close()

    def request_stop(self) -> None:
        """Ask the loop to checkpoint and stop after the current step (SIGTERM calls this)."""
        self._stop.set()

    def run(self) -> int:
        """Train until done, out of time, or told to stop; returns the process exit code."""
        options = self.options
        start = time.monotonic()
        deadline = None if options.max_seconds is None else start + options.max_seconds
        restore_handler = self._stop.install_sigterm()
        try:
            self._begin()
            clock = TickClock(self.cur_nimg, options.tick_kimg, options.snapshot_kimg, start)
            stopped, timed_out = False, False
            while not self.done:
                self.train_step()
                self.reporter.advance(self.cur_nimg)
                stopped, timed_out = self._stop.agree(deadline, self.ctx)
                if not (clock.tick_due(self.cur_nimg) or stopped or timed_out or self.done):
                    continue
                clock.end_tick()
                self._report_tick(clock)
                if self.done or stopped or timed_out or clock.snapshot_due(self.cur_nimg):
                    self.snapshot()
                    clock.snapshot_taken(self.cur_nimg)
                self.cur_tick += 1
                clock.start_tick(self.cur_nimg)
                if stopped or timed_out:
                    break
            if self.done and self.last_checkpoint is None:
                self.snapshot()  # resumed at the end already: still leave a pointer behind
            if stopped and not self.done:
                self.reporter.log(f"stopped by SIGTERM at kimg {self.cur_nimg / 1000:.1f}; exit 75")
                return EXIT_RETRYABLE
            why = "done" if self.done else f"time bound of {options.max_seconds:g} s reached"
            self.reporter.log(f"{why} at kimg {self.cur_nimg / 1000:.1f}")
            return EXIT_OK
        except Exception as exc:
            self.reporter.error(f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self.close()
            restore_handler()
            self.reporter.close()
            if self.log_archive is not None:
                self.log_archive.publish()  # with the last line: done, stopped or the error

    def _begin(self) -> None:
        """Before the first step: serve /metrics, record the options, log the start, reals."""
        if self.metrics is not None:
            self.metrics.serve(self.options.metrics_port)
            self.metrics.metrics.update(kimg=self.cur_nimg / 1000)  # a resumed run's start
        record = {
            "options": self.options.to_dict(),
            "preset": self.preset.to_dict(),
            "network": self.network.to_dict(),
            "world_size": self.ctx.world_size,
            "device": str(self.device),
            "data_workers": self.data_workers,
            "augment_mode": self.augment_mode,
            "dataset_images": len(self.dataset),
        }
        self.reporter.write_options(record)
        self._log_start()
        if self.ctx.is_main:
            self.snapshots.save_reals_grid(self.dataset)

    def _log_start(self) -> None:
        params = _count_params
        resumed = f", resumed from {self.last_checkpoint}" if self.last_checkpoint else ""
        if self.initialised_from:
            resumed = f", weights from {self.initialised_from}"
        self.reporter.log(
            f"training {self.options.preset} at {self.options.resolution}px on "
            f"{self.ctx.world_size} x {self.device}: batch {self.batch} "
            f"({self.batch_per_rank} per rank{self._rounds_text}), G {params(self.G):,} and "
            f"D {params(self.D):,} parameters, {len(self.dataset)} images "
            f"({self.data_workers} data workers), "
            f"augment {self.augment_mode}, "
            f"target {self.total_nimg / 1000:g} kimg, at kimg {self.cur_nimg / 1000:.1f}{resumed}"
        )

    @property
    def _rounds_text(self) -> str:
        per_pass = self.batch_per_rank // self.rounds
        return f" in {self.rounds} rounds of {per_pass}" if self.rounds > 1 else ""

    def _report_tick(self, clock: TickClock) -> None:
        stats = self.tick_stats.reduce(self.device)  # a collective: every rank takes part
        report = clock.report(
            self.cur_tick, self.cur_nimg, self.total_nimg, stats, self.device, self.augment_p
        )
        self.reporter.tick(report)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    # -- snapshots -------------------------------------------------------------------------

    def save_checkpoint(self) -> str:
        """Rank 0 writes a checkpoint; ``StorageError`` (exit 75) when that fails."""
        state, kimg = self.state_dict(), self.cur_nimg / 1000
        name = ckpt.save_checkpoint(self.storage, state, kimg, keep=self.options.keep_checkpoints)
        self.last_checkpoint = name
        self.reporter.checkpoint(name)
        return name

    def snapshot(self) -> None:
        """Rank 0 writes the sample grid and a checkpoint; every rank learns whether it worked
        (``StorageError`` when not) and the checkpoint's name (see ``SnapshotWriter.snapshot``).
        """
        self.last_checkpoint = self.snapshots.snapshot(
            self.G_ema, self.cur_nimg, self.save_checkpoint
        )
