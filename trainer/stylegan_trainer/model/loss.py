"""StyleGAN2 losses and regularisers, and the per-phase loss object the training loop drives.

From the StyleGAN2 paper (arXiv:1912.04958) and its predecessors:

* G: the non-saturating logistic loss ``softplus(-D(G(z)))``.
* D: the logistic loss ``softplus(D(G(z))) + softplus(-D(x))``.
* R1 (Mescheder et al. 2018): ``gamma/2 * ||grad_x D(x)||^2`` on reals, applied lazily every
  ``d_reg_interval`` steps with the loss scaled up by the interval (the loop passes it as
  ``gain``).
* Path length (paper Sec. 3.2): ``(||J_w^T y||_2 - a)^2`` with ``y`` Gaussian images scaled by
  ``1/sqrt(H*W)`` and ``a`` the running mean of the lengths, on a smaller batch
  (``pl_batch_shrink``) every ``g_reg_interval`` steps.
* Lazy regularisation's optimiser correction and the generator EMA (``G_ema``) with its
  rampup, as used by the published configurations.

``StyleGAN2Loss.accumulate_gradients`` computes one phase (``Gmain``, ``Greg``, ``Gboth``,
``Dmain``, ``Dreg``, ``Dboth``) and calls ``backward()``; the loop owns zero_grad, DDP
synchronisation and the optimiser steps. While a G phase runs, D's parameters are frozen
(``requires_grad`` off, then restored), and D phases build the fakes without autograd, so no
phase spends time on, or leaves, gradients of the other network.

Gradients of gradients use ``torch.autograd.grad(create_graph=True)`` on stock ops, so the
penalties work on CPU and CUDA alike.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PHASES = ("Gmain", "Greg", "Gboth", "Dmain", "Dreg", "Dboth")


def g_nonsaturating_loss(fake_logits: Tensor) -> Tensor:
    """Mean of ``softplus(-D(G(z)))``, i.e. ``-log sigmoid(D(G(z)))``."""
    return F.softplus(-fake_logits).mean()


def d_logistic_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Mean of ``softplus(D(G(z)))`` plus mean of ``softplus(-D(x))``."""
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()


def r1_penalty(real_img: Tensor, real_logits: Tensor) -> Tensor:
    """Per-sample squared norm of ``d(sum D(x)) / dx``, shape [N]; differentiable.

    ``real_img`` must require grad and ``real_logits`` be computed from it.
    """
    if not real_img.requires_grad:
        raise ValueError("real_img: must require grad (call real_img.requires_grad_() before D)")
    (grad,) = torch.autograd.grad(outputs=real_logits.sum(), inputs=real_img, create_graph=True)
    return grad.square().sum(dim=list(range(1, grad.ndim)))


def path_length_penalty(
    fake_img: Tensor, ws: Tensor, pl_mean: Tensor, decay: float, *, noise: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Path-length penalty per sample [N] and the updated running mean ``a``.

    ``length_n = sqrt(mean_over_ws_layers(||J_n^T y_n||^2))`` where ``J_n = d img_n / d ws_n``
    and ``y ~ N(0, I) / sqrt(H*W)`` (``noise`` may be given to make it deterministic);
    ``a <- a + decay * (mean(length) - a)``; penalty ``(length - a)^2`` with ``a`` held
    constant, as the paper defines it.
    """
    if not ws.requires_grad:
        raise ValueError("ws: must be part of the graph that produced fake_img")
    h, w = fake_img.shape[2], fake_img.shape[3]
    if noise is None:
        noise = torch.randn_like(fake_img) / math.sqrt(h * w)
    (grad,) = torch.autograd.grad(outputs=(fake_img * noise).sum(), inputs=ws, create_graph=True)
    lengths = grad.square().sum(dim=2).mean(dim=1).sqrt()
    new_mean = pl_mean.to(lengths.device, lengths.dtype).lerp(lengths.mean().detach(), decay)
    penalty = (lengths - new_mean).square()
    return penalty, new_mean


def lazy_regularization_hparams(
    lr: float, betas: tuple[float, float], reg_interval: int | None
) -> tuple[float, tuple[float, float]]:
    """Adam settings for a network regularised every ``reg_interval`` minibatches.

    The regulariser's steps are extra steps, so the optimiser sees ``interval + 1`` updates
    per ``interval`` minibatches; ``mb_ratio = interval / (interval + 1)`` scales the learning
    rate and takes the betas to that power to keep the effective dynamics unchanged.
    """
    if reg_interval is None or reg_interval <= 0:
        return lr, betas
    mb_ratio = reg_interval / (reg_interval + 1)
    return lr * mb_ratio, (betas[0] ** mb_ratio, betas[1] ** mb_ratio)


def ema_beta(batch_size: int, ema_kimg: float, ema_rampup: float | None, cur_nimg: int) -> float:
    """Per-step decay of G_ema: its half-life is ``ema_kimg`` thousand images, shortened early
    in training to ``cur_nimg * ema_rampup`` images when a rampup is set."""
    ema_nimg = ema_kimg * 1000
    if ema_rampup is not None:
        ema_nimg = min(ema_nimg, cur_nimg * ema_rampup)
    return 0.5 ** (batch_size / max(ema_nimg, 1e-8))


def _unwrap(module: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel (or similar) wrapper."""
    inner = getattr(module, "module", None)
    return inner if isinstance(inner, nn.Module) else module


@torch.no_grad()
def update_ema(G_ema: nn.Module, G: nn.Module, beta: float) -> None:
    """``p_ema <- p + beta * (p_ema - p)`` for every parameter; buffers (``w_avg``, noise
    constants) are copied as they are."""
    src, dst = _unwrap(G), _unwrap(G_ema)
    params = dict(src.named_parameters())
    for name, p_ema in dst.named_parameters():
        if name not in params:
            raise KeyError(
                f"update_ema: G has no parameter {name!r}; G and G_ema must share an architecture"
            )
        p_ema.copy_(params[name].detach().lerp(p_ema, beta))
    buffers = dict(src.named_buffers())
    for name, b_ema in dst.named_buffers():
        if name not in buffers:
            raise KeyError(
                f"update_ema: G has no buffer {name!r}; G and G_ema must share an architecture"
            )
        b_ema.copy_(buffers[name])


def _to_floats(stats: dict[str, Tensor]) -> dict[str, float]:
    """Scalar tensors to floats with one device-to-host transfer (one sync, not one a stat)."""
    if not stats:
        return {}
    values = torch.stack([v.detach().float().reshape([]) for v in stats.values()]).tolist()
    return dict(zip(stats, values, strict=True))


@contextlib.contextmanager
def _frozen(module: nn.Module) -> Iterator[None]:
    """Turn off ``requires_grad`` on a module's parameters for a while, then restore it."""
    params = list(module.parameters())
    saved = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, saved, strict=True):
            p.requires_grad_(flag)


class StyleGAN2Loss:
    """The per-phase StyleGAN2 (+ADA) loss. ``G`` and ``D`` may be DDP-wrapped: G is only
    called through ``forward`` (with ``return_ws=True`` and the training extras)."""

    def __init__(
        self,
        G: nn.Module,
        D: nn.Module,
        augment_pipe: nn.Module | None = None,
        r1_gamma: float = 10,
        style_mixing_prob: float = 0.9,
        pl_weight: float = 2,
        pl_decay: float = 0.01,
        pl_batch_shrink: int = 2,
    ) -> None:
        if r1_gamma < 0:
            raise ValueError(f"r1_gamma: expected >= 0, got {r1_gamma!r}")
        if not 0 <= style_mixing_prob <= 1:
            raise ValueError(
                f"style_mixing_prob: expected a probability in [0, 1], got {style_mixing_prob!r}"
            )
        if pl_batch_shrink < 1:
            raise ValueError(
                f"pl_batch_shrink: expected a positive integer, got {pl_batch_shrink!r}"
            )
        self.G = G
        self.D = D
        self.augment_pipe = augment_pipe
        self.r1_gamma = float(r1_gamma)
        self.style_mixing_prob = float(style_mixing_prob)
        self.pl_weight = float(pl_weight)
        self.pl_decay = float(pl_decay)
        self.pl_batch_shrink = int(pl_batch_shrink)
        self.pl_mean = torch.zeros([])

    # -- state that a checkpoint must carry -------------------------------------------

    def state_dict(self) -> dict[str, Tensor]:
        return {"pl_mean": self.pl_mean.detach().cpu().clone()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if "pl_mean" not in state:
            raise ValueError("StyleGAN2Loss state: missing 'pl_mean'")
        self.pl_mean = torch.as_tensor(state["pl_mean"], dtype=torch.float32).reshape([])

    # -- helpers -----------------------------------------------------------------------

    def _run_G(
        self, z: Tensor, c: Tensor | None, *, update_w_avg: bool = False
    ) -> tuple[Tensor, Tensor]:
        img, ws = self.G(
            z,
            c,
            style_mixing_prob=self.style_mixing_prob,
            update_w_avg=update_w_avg,
            return_ws=True,
        )
        return img, ws

    def _run_D(self, img: Tensor, c: Tensor | None) -> Tensor:
        if self.augment_pipe is not None:
            img = self.augment_pipe(img)
        return self.D(img, c)

    # -- the phases ----------------------------------------------------------------------

    def accumulate_gradients(
        self,
        phase: str,
        real_img: Tensor,
        real_c: Tensor | None,
        gen_z: Tensor,
        gen_c: Tensor | None,
        gain: float,
    ) -> dict[str, float]:
        """Run one phase, ``backward()`` its loss times ``gain``, return scalar stats."""
        if phase not in PHASES:
            raise ValueError(f"phase: expected one of {PHASES}, got {phase!r}")
        do_g_main = phase in ("Gmain", "Gboth")
        do_g_pl = phase in ("Greg", "Gboth") and self.pl_weight != 0
        do_d_main = phase in ("Dmain", "Dboth")
        do_d_r1 = phase in ("Dreg", "Dboth") and self.r1_gamma != 0
        stats: dict[str, Tensor] = {}
        if do_g_main or do_g_pl:
            with _frozen(self.D):
                if do_g_main:
                    stats.update(self._g_main(gen_z, gen_c, gain))
                if do_g_pl:
                    stats.update(self._g_path_length(gen_z, gen_c, gain))
        if do_d_main or do_d_r1:
            stats.update(self._d_phase(real_img, real_c, gen_z, gen_c, gain, do_d_main, do_d_r1))
        return _to_floats(stats)

    def _g_main(self, gen_z: Tensor, gen_c: Tensor | None, gain: float) -> dict[str, Tensor]:
        gen_img, _ = self._run_G(gen_z, gen_c, update_w_avg=True)
        fake_logits = self._run_D(gen_img, gen_c)
        loss = F.softplus(-fake_logits)
        loss.mean().mul(gain).backward()
        return {
            "Loss/scores/fake": fake_logits.detach().mean(),
            "Loss/signs/fake": fake_logits.detach().sign().mean(),
            "Loss/G/loss": loss.detach().mean(),
        }

    def _g_path_length(self, gen_z: Tensor, gen_c: Tensor | None, gain: float) -> dict[str, Tensor]:
        batch = max(gen_z.shape[0] // self.pl_batch_shrink, 1)
        c = gen_c[:batch] if gen_c is not None else None
        gen_img, gen_ws = self._run_G(gen_z[:batch], c)
        penalty, self.pl_mean = path_length_penalty(gen_img, gen_ws, self.pl_mean, self.pl_decay)
        self.pl_mean = self.pl_mean.detach()
        loss = penalty * self.pl_weight
        # The zero-weighted image term keeps every G parameter in the graph (DDP expects all
        # parameters to receive a gradient, and the last biases do not affect d img / d ws).
        (gen_img[:, 0, 0, 0] * 0 + loss).mean().mul(gain).backward()
        return {
            "Loss/pl_penalty": penalty.detach().mean(),
            "Loss/G/reg": loss.detach().mean(),
        }

    def _d_phase(
        self,
        real_img: Tensor,
        real_c: Tensor | None,
        gen_z: Tensor,
        gen_c: Tensor | None,
        gain: float,
        do_main: bool,
        do_r1: bool,
    ) -> dict[str, Tensor]:
        stats: dict[str, Tensor] = {}
        if do_main:
            # The fakes' term goes backward on its own, before D sees the reals: its graph
            # (every activation of D on the fake batch) is freed first, so the D step never
            # holds the graphs of both batches at once; the gradients are the same sum.
            with torch.no_grad():
                gen_img, _ = self._run_G(gen_z, gen_c)
            fake_logits = self._run_D(gen_img, gen_c)
            loss_fake = F.softplus(fake_logits)
            loss_fake.mean().mul(gain).backward()
            stats["Loss/scores/fake"] = fake_logits.detach().mean()
            stats["Loss/signs/fake"] = fake_logits.detach().sign().mean()
            del gen_img, fake_logits
        # R1 differentiates D(augment(x)) with respect to the un-augmented reals.
        real = real_img.detach().requires_grad_(do_r1)
        real_logits = self._run_D(real, real_c)
        stats["Loss/scores/real"] = real_logits.detach().mean()
        stats["Loss/signs/real"] = real_logits.detach().sign().mean()
        # Zero-weighted logits keep every D parameter in the graph for DDP (see _g_path_length).
        real_term = real_logits * 0
        if do_main:
            loss_real = F.softplus(-real_logits)
            real_term = real_term + loss_real
            stats["Loss/D/loss"] = loss_fake.detach().mean() + loss_real.detach().mean()
        if do_r1:
            penalty = r1_penalty(real, real_logits)
            loss_r1 = penalty * (self.r1_gamma / 2)
            real_term = real_term + loss_r1.reshape(real_term.shape)
            stats["Loss/r1_penalty"] = penalty.detach().mean()
            stats["Loss/D/reg"] = loss_r1.detach().mean()
        real_term.mean().mul(gain).backward()
        return stats
