"""Resuming a run: finding and checking its checkpoint, and this run's optimiser settings on it.

What a checkpoint holds is the Trainer's ``state_dict`` (loop.py); how it is written and read
is checkpoint.py. This module is what lies between: which checkpoint a run resumes from, whether
it is of the same network, and what the restored optimisers are set to.

Which checkpoint: ``resume: latest`` reads ``latest.json`` of the run's checkpoint storage when
the Trainer is built, so an attempt whose options were rendered before a newer checkpoint was
written (a Kueue re-admission, a SIGTERM checkpoint written while the old pods stopped) still
continues from the newest. ``resume_fallback`` is read only while that storage has no pointer.

Resume: a checkpoint restores the weights, G_ema, Adam's moments, ADA, the counters, the RNG
state and the sampler position. The optimisers' *settings* are this invocation's, though:
Adam's state dict carries the saved run's lr and betas in its param groups, and loading it
would silently keep them, so after loading every param group gets this run's lr and betas,
lazy-regularisation correction included (``lr * c``, ``beta ** c``, ``c = interval /
(interval + 1)``). ``--set lr_g=...``, another preset or another reg interval thus apply on
resume, as users of the official code expect, and one line says so ("resume: lr_g 0.0025 ->
0.002 (options)"). With unchanged options the values are the same floats: the continuation
stays bit-exact.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch

from stylegan_common.errors import ConfigError
from stylegan_common.storage import Storage
from stylegan_trainer.model.config import NetworkConfig
from stylegan_trainer.train import checkpoint as ckpt
from stylegan_trainer.train.build import adam_hparams
from stylegan_trainer.train.distributed import DistContext, broadcast_object
from stylegan_trainer.train.presets import TrainingPreset

# NetworkConfig fields that change numerics but not the weights: free to differ on resume.
PRECISION_FIELDS = frozenset({"num_fp16_res", "conv_clamp", "mp_dtype"})
# Fields of the preset that set Adam's lr and betas; a resume reports those that changed.
OPTIMIZER_FIELDS = ("lr_g", "lr_d", "betas", "g_reg_interval", "d_reg_interval")

log = logging.getLogger(__name__)


def check_resume_compatible(saved: Mapping[str, Any], network: NetworkConfig, source: str) -> None:
    """Refuse a checkpoint of another architecture or resolution (``ConfigError``, exit 64)."""
    current = network.to_dict()
    differing = [
        f"{k}={saved.get(k)!r} (this run: {current[k]!r})"
        for k in current
        if k not in PRECISION_FIELDS and saved.get(k) != current[k]
    ]
    if differing:
        raise ConfigError(
            f"resume: checkpoint {source} is of another network: {', '.join(differing)}; "
            "use the same preset and resolution, or resume: none"
        )


def _read_resume_state(
    resume: str, storage: Storage, fallback: str | None
) -> dict[str, Any] | None:
    """The checkpoint ``resume`` names: ``latest`` is what the pointer names *now*.

    ``fallback`` is read only when ``storage`` has no pointer yet: the run's own newest work
    always wins over where it was first told to start (``spec.checkpoints.resumeFrom``).
    """
    if resume == "none":
        return None
    if resume != "latest":
        return ckpt.load_checkpoint(resume, map_location="cpu")
    state = ckpt.load_latest(storage, map_location="cpu")
    if state is None and fallback is not None:
        log.info("resume: %s holds no checkpoint yet; starting from %s", storage.uri, fallback)
        state = ckpt.load_checkpoint(fallback, map_location="cpu", field="resume_fallback")
    return state


def load_resume_state(
    resume: str, ctx: DistContext, storage: Storage, network: NetworkConfig,
    fallback: str | None = None,
) -> dict[str, Any] | None:
    """Rank 0 reads the checkpoint and hands it to the others, so only it needs access."""
    state: dict[str, Any] | None = None
    error: ConfigError | None = None
    if ctx.is_main:
        try:
            state = _read_resume_state(resume, storage, fallback)
            if state is not None:
                source = state.get("_checkpoint_name", resume)
                check_resume_compatible(state["network"], network, source)
        except ConfigError as exc:
            error = exc
    if ctx.distributed:
        # Sent as torch.save bytes: pickling tensor storages straight through
        # broadcast_object_list fails on torch 2.15 (UntypedStorage has no dtype).
        payload = ckpt.serialize(state) if state is not None else None
        payload, error = broadcast_object((payload, error))  # type: ignore[misc]
        if not ctx.is_main:
            state = ckpt.deserialize(payload) if payload is not None else None
    if error is not None:
        raise error
    return state


def _numbers(value: Any) -> str:
    """A setting as a log line shows it: ``0.0025``, ``[0, 0.99]``."""
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_numbers(v) for v in value) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)


def apply_optimizer_options(
    opt_G: torch.optim.Optimizer,
    opt_D: torch.optim.Optimizer,
    preset: TrainingPreset,
    saved_preset: Mapping[str, Any] | None,
) -> str | None:
    """Give every param group this run's lr and betas (moments kept).

    Returns the line that says what moved ("resume: ... (options)"), or None if nothing did.
    """
    changed: list[str] = []
    for label, optimizer, lr, interval in (
        ("G", opt_G, preset.lr_g, preset.g_reg_interval),
        ("D", opt_D, preset.lr_d, preset.d_reg_interval),
    ):
        new_lr, new_betas = adam_hparams(preset, lr, interval)
        for group in optimizer.param_groups:
            old_lr, old_betas = group["lr"], tuple(group["betas"])
            if (old_lr, old_betas) != (new_lr, new_betas):
                changed.append(
                    f"{label} Adam lr {old_lr:g} -> {new_lr:g}, betas "
                    f"{_numbers(old_betas)} -> {_numbers(new_betas)}"
                )
            group["lr"] = new_lr
            group["betas"] = new_betas
    if not changed:
        return None
    saved = dict(saved_preset or {})
    current = preset.to_dict()
    named = [
        f"{key} {_numbers(saved[key])} -> {_numbers(current[key])}"
        for key in OPTIMIZER_FIELDS
        if key in saved and saved[key] != current[key]
    ]
    # Without the saved preset (or a change it cannot name), the effective values speak.
    return f"resume: {', '.join(named or changed)} (options)"
