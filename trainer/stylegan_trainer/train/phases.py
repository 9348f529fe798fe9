"""One phase of a training step, and the seeds and inputs each step draws for its phases.

A phase (``Gmain``, ``Greg``, ``Dmain``, ``Dreg``, or ``Gboth``/``Dboth`` without lazy
regularisation) is one network, its optimiser and the interval of steps it runs at; what the
phase computes is the loss's business (``StyleGAN2Loss.accumulate_gradients`` dispatches on its
name). This module holds what is the same for every phase: zero the gradients, backward, one
all-reduce, one optimiser step, and the inputs of a step. The Trainer (loop.py) decides which
phases are due and keeps the counters; build.py makes the optimisers and phases.

Determinism (the resume test checks bit equality on CPU):

* Networks are initialised from ``seed`` (identically on every rank; see build.py).
* The latents of a step are drawn for the *global* batch from ``(seed, step, phase)`` and each
  rank keeps its slice; the real images come from the seeded sampler, sliced the same way.
* The randomness inside the loss (noise inputs, style mixing, augmentations) uses torch's global
  generator, reseeded at every step from ``(seed, rank, step)``. A resumed run therefore
  continues the exact sequence without replaying anything, and ranks differ from each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from stylegan_trainer.data.dataset import ImageDataset
from stylegan_trainer.data.loading import BatchLoader
from stylegan_trainer.model.loss import StyleGAN2Loss
from stylegan_trainer.train.distributed import DistContext, all_reduce_mean, average_gradients

# Tags that keep the derived seeds of different purposes apart.
_SEED_LOSS, _SEED_LATENTS = 1, 2


def derive_seed(*parts: int) -> int:
    """A 63-bit seed mixed from integers (SeedSequence hashing, stable across platforms)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0] >> 1)


@dataclass(frozen=True)
class Phase:
    name: str
    module: nn.Module
    optimizer: torch.optim.Optimizer
    interval: int


def seed_step_randomness(seed: int, rank: int, step: int) -> None:
    """Reseed torch's global generator, which the loss draws from, for this rank's step."""
    torch.manual_seed(derive_seed(seed, _SEED_LOSS, rank, step))


class StepLatents:
    """Draws this rank's slice of a step's global latents (and labels) for one phase."""

    def __init__(
        self,
        seed: int,
        batch: int,
        z_dim: int,
        labelled: ImageDataset | None,
        ctx: DistContext,
        batch_per_rank: int,
    ) -> None:
        self.seed = seed
        self.batch = batch
        self.z_dim = z_dim
        self.labelled = labelled  # the dataset whose labels condition G; None: unconditional
        self.ctx = ctx
        self.batch_per_rank = batch_per_rank

    def draw(self, step: int, phase_index: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The latents of phase ``phase_index`` at ``step``, on this rank's device."""
        generator = torch.Generator().manual_seed(
            derive_seed(self.seed, _SEED_LATENTS, step, phase_index)
        )
        z = torch.randn([self.batch, self.z_dim], generator=generator)
        c = None
        if self.labelled is not None:
            labels = torch.from_numpy(self.labelled.all_labels())
            c = labels[torch.randint(len(labels), [self.batch], generator=generator)]
        lo = self.ctx.rank * self.batch_per_rank
        hi = lo + self.batch_per_rank
        device = self.ctx.device
        return z[lo:hi].to(device), None if c is None else c[lo:hi].to(device)


def real_batch(
    loader: BatchLoader, device: torch.device, c_dim: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """This rank's next real images in [-1, 1] (and labels when ``c_dim``), on ``device``."""
    images, labels = loader.next()
    # Pinned batches (CUDA with workers) copy asynchronously; the ops after it queue behind.
    images = images.to(device, non_blocking=loader.pin_memory)
    real = images.to(torch.float32) / 127.5 - 1.0
    return real, (labels.to(device) if c_dim else None)


def optimize_phase(
    phase: Phase,
    loss: StyleGAN2Loss,
    real: torch.Tensor,
    real_c: torch.Tensor | None,
    gen_z: torch.Tensor,
    gen_c: torch.Tensor | None,
    rounds: int = 1,
) -> dict[str, float]:
    """One phase: zero grads, the loss's backward, one all-reduce, one optimiser step.

    With ``rounds`` > 1 (``batch_per_gpu``) the rank's share goes through the loss in that
    many equal slices, each backward scaled by ``1/rounds``: the per-image means then add up
    to the mean over the whole share, so the gradients are those of one pass over it (the
    official loop sums unscaled rounds, which Adam nearly forgives; the exact mean keeps a
    run's numbers independent of how it is split). Minibatch-std groups and path-length
    batches form within each slice, as they do there; stats are the mean over the slices.
    """
    phase.optimizer.zero_grad(set_to_none=True)
    if rounds == 1:
        stats = loss.accumulate_gradients(phase.name, real, real_c, gen_z, gen_c, phase.interval)
    else:
        gain = phase.interval / rounds
        reals, zs = real.chunk(rounds), gen_z.chunk(rounds)
        real_cs = real_c.chunk(rounds) if real_c is not None else [None] * rounds
        gen_cs = gen_c.chunk(rounds) if gen_c is not None else [None] * rounds
        stats = {}
        for r, rc, z, zc in zip(reals, real_cs, zs, gen_cs, strict=True):
            for key, value in loss.accumulate_gradients(phase.name, r, rc, z, zc, gain).items():
                stats[key] = stats.get(key, 0.0) + value / rounds
    average_gradients(phase.module)
    phase.optimizer.step()
    return stats


def sync_running_averages(G: nn.Module, loss: StyleGAN2Loss, ctx: DistContext) -> None:
    """Average G's buffers (``w_avg``) and ``pl_mean`` over the ranks.

    Each rank updates them from its own slice; averaging the per-rank moving averages equals
    the moving average of the global batch (the update is linear), and keeps the ranks equal.
    """
    if not ctx.distributed:
        return
    for buffer in G.buffers():
        if buffer.is_floating_point():
            all_reduce_mean(buffer.data)
    pl_mean = loss.pl_mean.detach().to(ctx.device, torch.float32).reshape(1).clone()
    loss.pl_mean = all_reduce_mean(pl_mean).reshape([]).cpu()
