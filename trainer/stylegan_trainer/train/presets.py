"""Training presets: the published StyleGAN2(-ADA) configurations, the ADA ``auto``
formulas, and a small ``cpu`` preset for demos and tests.

Sources (see /work/shared/reference/stylegan2-figures.md §3a-3c): the ``cfg_specs`` table of
the StyleGAN2-ADA PyTorch release (``stylegan2``, ``paper256``, ``paper512``, ``paper1024``,
``cifar``) and its ``auto`` rules, which size everything from the resolution and GPU count:

    batch = max(min(gpus * min(4096 // res, 32), 64), gpus)
    mbstd group = min(batch // gpus, 4)
    channel_base = 16384 below 512 px, else 32768
    lr = 0.002 at 1024 px and above, else 0.0025
    r1_gamma = 0.0002 * res^2 / batch
    ema_kimg = batch * 10 / 32, ema_rampup = 0.05, mapping layers = 2

All published presets use Adam betas (0, 0.99), lazy regularisation (G every 4, D every 16
steps), and mixed precision on the 4 highest resolutions with ``conv_clamp`` 256.
``cifar`` turns off path length and style mixing (its published D is the 'orig'
architecture; this trainer only builds the resnet D).

``cpu`` is this project's own: the same architecture, scaled down (channel_base 1024,
channel_max 64, z = w = 256, 2 mapping layers, batch 16; see ``_cpu_preset``) so that a
training step of all four phases on 32x32 images takes about half a second of one CPU
core (measured with one torch thread: Gmain 0.13 s, Greg 0.09 s, Dmain 0.15 s, Dreg
0.14 s of CPU time on a busy 2-core AVX-512 Xeon). A usual step (Gmain + Dmain, with
Greg every 4th and Dreg every 16th) is about 0.32 s, some 50 images/s a core, so a few
tens of kimg in ten minutes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields

from stylegan_trainer.model.config import MAX_RESOLUTION, MIN_RESOLUTION, NetworkConfig

PRESET_NAMES: tuple[str, ...] = (
    "stylegan2",
    "paper256",
    "paper512",
    "paper1024",
    "cifar",
    "auto",
    "cpu",
)

PUBLISHED_FP16_RES = 4
PUBLISHED_CONV_CLAMP = 256.0


class PresetError(ValueError):
    """A preset name, resolution, GPU count or override is not valid; the message names the
    field and what would be valid."""


@dataclass(frozen=True)
class TrainingPreset:
    """Everything a run needs that the paper and the official configurations fix."""

    name: str
    network: NetworkConfig
    batch_size: int
    lr_g: float
    lr_d: float
    r1_gamma: float
    ema_kimg: float
    ema_rampup: float | None
    style_mixing_prob: float
    pl_weight: float
    pl_decay: float = 0.01
    pl_batch_shrink: int = 2
    g_reg_interval: int = 4
    d_reg_interval: int = 16
    betas: tuple[float, float] = (0.0, 0.99)
    total_kimg: float = 25000
    augment_supersample: bool = True
    """ADA's general warp at 2x between sym6 filters, as the paper's pipeline (``augment``)."""

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["network"] = self.network.to_dict()
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainingPreset:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise PresetError(f"TrainingPreset: unknown field(s) {unknown}; valid: {sorted(known)}")
        values = dict(d)
        try:
            values["network"] = NetworkConfig.from_dict(dict(d["network"]))
        except KeyError as exc:
            raise PresetError("TrainingPreset: missing field 'network'") from exc
        except (TypeError, ValueError) as exc:
            raise PresetError(f"network: {exc}") from exc
        if "betas" in values:
            values["betas"] = tuple(values["betas"])
        return cls(**values)


@dataclass(frozen=True)
class _PaperSpec:
    """One row of the published cfg_specs table."""

    ref_gpus: int
    kimg: float
    batch: int
    mbstd: int
    fmaps: float
    lr: float
    gamma: float
    ema_kimg: float
    ema_rampup: float | None
    mapping_layers: int


_PAPER_SPECS: dict[str, _PaperSpec] = {
    "stylegan2": _PaperSpec(8, 25000, 32, 4, 1, 0.002, 10, 10, None, 8),
    "paper256": _PaperSpec(8, 25000, 64, 8, 0.5, 0.0025, 1, 20, None, 8),
    "paper512": _PaperSpec(8, 25000, 64, 8, 1, 0.0025, 0.5, 20, None, 8),
    "paper1024": _PaperSpec(8, 25000, 32, 4, 1, 0.002, 2, 10, None, 8),
    "cifar": _PaperSpec(2, 100000, 64, 32, 1, 0.0025, 0.01, 500, 0.05, 2),
}

# The cpu preset (see _cpu_preset).
CPU_CHANNEL_BASE = 1024
CPU_CHANNEL_MAX = 64
CPU_LATENT_DIM = 256
CPU_BATCH = 16
CPU_LR = 0.0025
CPU_TOTAL_KIMG = 50


def _auto_spec(resolution: int, gpus: int) -> _PaperSpec:
    batch = max(min(gpus * min(4096 // resolution, 32), 64), gpus)
    return _PaperSpec(
        ref_gpus=gpus,
        kimg=25000,
        batch=batch,
        mbstd=min(batch // gpus, 4),
        fmaps=1 if resolution >= 512 else 0.5,
        lr=0.002 if resolution >= 1024 else 0.0025,
        gamma=0.0002 * resolution**2 / batch,
        ema_kimg=batch * 10 / 32,
        ema_rampup=0.05,
        mapping_layers=2,
    )


def _published_preset(name: str, spec: _PaperSpec, resolution: int) -> TrainingPreset:
    network = NetworkConfig(
        resolution=resolution,
        channel_base=int(spec.fmaps * 32768),
        channel_max=512,
        mapping_layers=spec.mapping_layers,
        mbstd_group=spec.mbstd,
        num_fp16_res=PUBLISHED_FP16_RES,
        conv_clamp=PUBLISHED_CONV_CLAMP,
    )
    no_pl = name == "cifar"
    return TrainingPreset(
        name=name,
        network=network,
        batch_size=spec.batch,
        lr_g=spec.lr,
        lr_d=spec.lr,
        r1_gamma=spec.gamma,
        ema_kimg=spec.ema_kimg,
        ema_rampup=spec.ema_rampup,
        style_mixing_prob=0.0 if no_pl else 0.9,
        pl_weight=0.0 if no_pl else 2.0,
        total_kimg=spec.kimg,
    )


def _cpu_preset(resolution: int) -> TrainingPreset:
    """Small enough for a CPU demo: 2 mapping layers, z = w = 256, channels
    ``min(1024 // res, 64)`` (64 up to 16x16, 32 at 32x32), batch 16, fp32; the rest follows
    the ``auto`` rules (gamma 0.0002 * res^2 / batch, ema batch * 10 / 32 kimg, rampup 0.05)."""
    batch = CPU_BATCH
    network = NetworkConfig(
        resolution=resolution,
        z_dim=CPU_LATENT_DIM,
        w_dim=CPU_LATENT_DIM,
        mapping_layers=2,
        channel_base=CPU_CHANNEL_BASE,
        channel_max=CPU_CHANNEL_MAX,
        mbstd_group=4,
    )
    return TrainingPreset(
        name="cpu",
        network=network,
        batch_size=batch,
        lr_g=CPU_LR,
        lr_d=CPU_LR,
        r1_gamma=0.0002 * resolution**2 / batch,
        ema_kimg=batch * 10 / 32,
        ema_rampup=0.05,
        style_mixing_prob=0.9,
        pl_weight=2.0,
        total_kimg=CPU_TOTAL_KIMG,
        augment_supersample=False,  # the demo's recipe was tuned with the single-rate warp
    )


_NETWORK_FIELDS = {f.name for f in fields(NetworkConfig)} - {"resolution"}
_PRESET_FIELDS = {f.name for f in fields(TrainingPreset)} - {"name", "network"}


def _validate_resolution(resolution: object) -> int:
    valid = [2**i for i in range(2, 11) if MIN_RESOLUTION <= 2**i <= MAX_RESOLUTION]
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution not in valid:
        raise PresetError(f"resolution: expected one of {valid}, got {resolution!r}")
    return resolution


def _apply_overrides(preset: TrainingPreset, overrides: dict) -> TrainingPreset:
    unknown = sorted(set(overrides) - _NETWORK_FIELDS - _PRESET_FIELDS)
    if unknown:
        valid = sorted(_NETWORK_FIELDS | _PRESET_FIELDS)
        raise PresetError(f"{unknown[0]}: not a preset setting; valid overrides: {valid}")
    net_changes = {k: v for k, v in overrides.items() if k in _NETWORK_FIELDS}
    preset_changes = {k: v for k, v in overrides.items() if k in _PRESET_FIELDS}
    if "betas" in preset_changes:
        preset_changes["betas"] = tuple(preset_changes["betas"])
    try:
        network = dataclasses.replace(preset.network, **net_changes)
    except ValueError as exc:
        raise PresetError(str(exc)) from exc
    return dataclasses.replace(preset, network=network, **preset_changes)


def _validate_preset(preset: TrainingPreset, gpus: int) -> None:
    if (
        not isinstance(preset.batch_size, int)
        or preset.batch_size < gpus
        or preset.batch_size % gpus
    ):
        raise PresetError(
            f"batch_size: expected a positive multiple of the GPU count ({gpus}), "
            f"got {preset.batch_size!r}"
        )
    for name in ("lr_g", "lr_d", "ema_kimg", "total_kimg"):
        value = getattr(preset, name)
        if not value > 0:
            raise PresetError(f"{name}: expected a positive number, got {value!r}")
    for name in ("r1_gamma", "pl_weight"):
        value = getattr(preset, name)
        if not value >= 0:
            raise PresetError(f"{name}: expected a non-negative number, got {value!r}")
    if not 0 <= preset.style_mixing_prob <= 1:
        raise PresetError(
            f"style_mixing_prob: expected a value in [0, 1], got {preset.style_mixing_prob!r}"
        )
    if preset.ema_rampup is not None and not preset.ema_rampup > 0:
        raise PresetError(
            f"ema_rampup: expected a positive number or None, got {preset.ema_rampup!r}"
        )
    if not 0 < preset.pl_decay <= 1:
        raise PresetError(f"pl_decay: expected a value in (0, 1], got {preset.pl_decay!r}")
    for name in ("pl_batch_shrink", "g_reg_interval", "d_reg_interval"):
        value = getattr(preset, name)
        if not isinstance(value, int) or value < 1:
            raise PresetError(f"{name}: expected a positive integer, got {value!r}")
    if len(preset.betas) != 2 or not all(0 <= b < 1 for b in preset.betas):
        raise PresetError(f"betas: expected two values in [0, 1), got {preset.betas!r}")


def resolve_preset(
    name: str, resolution: int, gpus: int = 1, **overrides: object
) -> TrainingPreset:
    """The preset ``name`` at ``resolution`` for ``gpus`` GPUs in total, with ``overrides``
    (any TrainingPreset or NetworkConfig field but ``name``/``network``/``resolution``)
    applied last, as the official ``--batch``/``--gamma``/... flags are; derived values such
    as ``r1_gamma`` are not recomputed from an overridden batch."""
    if name not in PRESET_NAMES:
        raise PresetError(f"preset: expected one of {list(PRESET_NAMES)}, got {name!r}")
    resolution = _validate_resolution(resolution)
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 1:
        raise PresetError(f"gpus: expected a positive integer, got {gpus!r}")
    if name == "auto":
        preset = _published_preset("auto", _auto_spec(resolution, gpus), resolution)
    elif name == "cpu":
        preset = _cpu_preset(resolution)
    else:
        try:
            preset = _published_preset(name, _PAPER_SPECS[name], resolution)
        except ValueError as exc:
            raise PresetError(str(exc)) from exc
    preset = _apply_overrides(preset, overrides)
    _validate_preset(preset, gpus)
    return preset
