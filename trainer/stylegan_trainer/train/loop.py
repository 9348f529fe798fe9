"""The StyleGAN2-ADA training loop: options, phases, EMA, ADA, ticks, snapshots, resume.

One *step* consumes one global batch of real images and runs the phases of lazy
regularisation (StyleGAN2 paper, Sec. 3.1): ``Gmain`` and ``Dmain`` every step, ``Greg`` (path
length) every ``g_reg_interval`` steps and ``Dreg`` (R1) every ``d_reg_interval`` steps, each
with its loss multiplied by its interval. Adam's learning rate and betas are corrected for the
extra regularisation steps (``loss.lazy_regularization_hparams``). After the phases, ``G_ema``
follows G with the EMA half-life ``ema_kimg`` (ramped up early in training), and with ADA on,
every 4 steps the augmentation probability moves by the sign of ``E[sign(D(real))] - 0.6``.

Determinism (the resume test checks bit equality on CPU):

* Networks are initialised from ``seed`` (identically on every rank).
* The latents of a step are drawn for the *global* batch from ``(seed, step, phase)`` and each
  rank keeps its slice; the real images come from the seeded sampler, sliced the same way.
* The randomness inside the loss (noise inputs, style mixing, augmentations) uses torch's global
  generator, reseeded at every step from ``(seed, rank, step)``. A resumed run therefore
  continues the exact sequence without replaying anything, and ranks differ from each other.

Data: ``data.BatchLoader`` hands each step this rank's slice of the sampler's global batch,
read in the training process (``data_workers: 0``) or decoded ahead by worker processes
(``auto``: none on CPU devices, where the cores train; ``min(3, cores per rank)`` on CUDA, where
PNG decoding would otherwise cost about as much as the step). The worker count changes neither
the images nor their order, and the checkpointed sampler position counts consumed batches only.

Resume: a checkpoint restores the weights, G_ema, Adam's moments, ADA, the counters, the RNG
state and the sampler position. The optimisers' *settings* are this invocation's, though:
Adam's state dict carries the saved run's lr and betas in its param groups, and loading it
would silently keep them, so after loading every param group gets this run's lr and betas,
lazy-regularisation correction included (``lr * c``, ``beta ** c``, ``c = interval /
(interval + 1)``). ``--set lr_g=...``, another preset or another reg interval thus apply on
resume, as users of the official code expect, and one line says so ("resume: lr_g 0.0025 ->
0.002 (options)"). With unchanged options the values are the same floats: the continuation
stays bit-exact.

Stopping: at the target kimg (exit 0); at ``max_seconds`` of wall time (checkpoint, exit 0:
the bound was asked for); on SIGTERM (checkpoint, exit 75 because a preempted run should be
resumed, or 0 if training happened to be complete). Ranks agree on stopping with one tiny
all-reduce per step, so nobody is left waiting in a collective.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from stylegan_common.errors import (
    EXIT_OK,
    EXIT_RETRYABLE,
    ConfigError,
    StorageError,
)
from stylegan_common.storage import LocalStorage, Storage, open_storage
from stylegan_common.trainer_metrics import check_port
from stylegan_trainer.data.dataset import ImageDataset, check_resolution, open_dataset
from stylegan_trainer.data.loading import BatchLoader, InfiniteSampler
from stylegan_trainer.model.augment import AdaController, AugmentPipe
from stylegan_trainer.model.config import NetworkConfig
from stylegan_trainer.model.loss import (
    StyleGAN2Loss,
    ema_beta,
    lazy_regularization_hparams,
    update_ema,
)
from stylegan_trainer.model.networks import build_networks
from stylegan_trainer.report.metrics_export import MetricsExporter
from stylegan_trainer.report.progress import (
    PROGRESS_BAR_MODES,
    Reporter,
    SilentReporter,
    TickReport,
    cpu_memory_bytes,
    peak_cpu_memory_bytes,
    peak_gpu_memory_bytes,
)
from stylegan_trainer.report.status import hooks_from_env as status_hooks
from stylegan_trainer.train import checkpoint as ckpt
from stylegan_trainer.train.distributed import (
    DistContext,
    StatsCollector,
    all_reduce_max,
    all_reduce_mean,
    average_gradients,
    broadcast_object,
    per_rank_batch,
    resolve_device,
)
from stylegan_trainer.train.presets import PRESET_NAMES, PresetError, TrainingPreset, resolve_preset

# ADA (Karras et al. 2020): augment when the dataset is small; target, interval and speed.
ADA_DATASET_THRESHOLD = 30_000
ADA_TARGET = 0.6
ADA_INTERVAL = 4
ADA_KIMG = 500
SIGN_REAL = "Loss/signs/real"
AUGMENT_MODES = ("auto", "ada", "noaug", "fixed:<p>")
# Mixed precision as the published configurations run it: the 4 top resolutions, clamp 256.
MP_FP16_RES = 4
MP_CONV_CLAMP = 256.0
# NetworkConfig fields that change numerics but not the weights: free to differ on resume.
PRECISION_FIELDS = frozenset({"num_fp16_res", "conv_clamp", "mp_dtype"})

# data_workers: auto on CUDA starts this many loader processes per rank at most (fewer when the
# rank has fewer cores); three keep a 1024x1024 batch of PNGs decoded ahead of a GPU step.
DATA_WORKERS_AUTO_CUDA = 3
# Fields of the preset that set Adam's lr and betas; a resume reports those that changed.
OPTIMIZER_FIELDS = ("lr_g", "lr_d", "betas", "g_reg_interval", "d_reg_interval")

# Tags that keep the derived seeds of different purposes apart.
_SEED_LOSS, _SEED_LATENTS = 1, 2

# Sample grids: outdir/<SAMPLES_DIR>/ and, when checkpoints live elsewhere, the same name there.
SAMPLES_DIR = "samples"

log = logging.getLogger(__name__)


def derive_seed(*parts: int) -> int:
    """A 63-bit seed mixed from integers (SeedSequence hashing, stable across platforms)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0] >> 1)


# ----------------------------------------------------------------------------------------------
# Options


@dataclass
class TrainingOptions:
    """What a run is asked to do. ``None`` means "the preset's value"."""

    dataset: str = "builtin:lfw"
    preset: str = "auto"
    resolution: int = 256
    kimg: float | None = None  # target length; None: the preset's total_kimg
    batch: int | None = None  # global batch over all ranks; None: the preset's
    snapshot_kimg: float = 200.0  # checkpoint + sample grid every this many kimg
    seed: int = 0
    outdir: str = "out/train"
    xflip: bool = False
    augment: str = "auto"  # auto (ADA below 30k images) | ada | noaug | fixed:<p>
    ada_kimg: float = ADA_KIMG  # ADA can move p from 0 to 1 in this many kimg
    mixed_precision: bool = False  # fp16 in the 4 top resolutions, CUDA only
    resume: str = "latest"  # latest (from the checkpoint storage, none if empty) | none | URI
    max_seconds: float | None = None  # stop cleanly after this much wall time
    tick_kimg: float = 4.0
    device: str = "auto"
    data_workers: int | str = "auto"  # loader processes per rank: auto | 0 (in-process) | N
    cond: bool = False  # condition on the dataset's labels
    checkpoint_uri: str | None = None  # where checkpoints go; None: outdir
    keep_checkpoints: int = 3
    grid_seeds: int = 32  # the sample grid shows seeds 0..grid_seeds-1 every snapshot
    progress_bar: str = "auto"  # auto (when stderr is a TTY) | on | off
    metrics_port: int = 0  # rank 0 serves Prometheus /metrics here; 0: off (pods use 9400)
    overrides: dict[str, Any] = field(default_factory=dict)  # preset fields, e.g. lr_g, r1_gamma

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str = "options") -> TrainingOptions:
        """Options from a config file's mapping; ``-`` and ``_`` are interchangeable in keys.

        Raises ``ConfigError`` naming ``source`` and the unknown key, with the valid ones.
        """
        known = set(cls.field_names())
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            name = str(key).replace("-", "_")
            if name not in known:
                raise ConfigError(
                    f"{source}: unknown option {key!r}; valid: {', '.join(cls.field_names())}"
                )
            kwargs[name] = value
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the first bad field and what would be valid."""
        _check_type("dataset", self.dataset, str)
        if not self.dataset:
            raise ConfigError("dataset: empty; give a folder, a .zip, builtin:lfw or gs://...")
        if self.preset not in PRESET_NAMES:
            raise ConfigError(f"preset: {self.preset!r} is not one of {', '.join(PRESET_NAMES)}")
        check_resolution(self.resolution)
        _check_positive("kimg", self.kimg, optional=True)
        if self.batch is not None:
            _check_type("batch", self.batch, int)
            if self.batch < 1:
                raise ConfigError(f"batch: {self.batch} must be a positive number of images")
        _check_positive("snapshot_kimg", self.snapshot_kimg)
        _check_type("seed", self.seed, int)
        if not 0 <= self.seed < 2**32:
            raise ConfigError(f"seed: {self.seed} must be in [0, 2^32)")
        _check_type("outdir", self.outdir, str)
        if not self.outdir:
            raise ConfigError("outdir: empty; give a folder for samples, stats and progress")
        _check_type("xflip", self.xflip, bool)
        parse_augment(self.augment)
        _check_positive("ada_kimg", self.ada_kimg)
        _check_type("mixed_precision", self.mixed_precision, bool)
        _check_type("resume", self.resume, str)
        if not self.resume:
            raise ConfigError("resume: empty; use latest, none, or a checkpoint path/URI")
        _check_positive("max_seconds", self.max_seconds, optional=True, allow_zero=True)
        _check_positive("tick_kimg", self.tick_kimg)
        _check_type("device", self.device, str)
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ConfigError(f"device: {self.device!r} is not one of auto, cpu, cuda, cuda:N")
        parse_data_workers(self.data_workers)
        _check_type("cond", self.cond, bool)
        if self.checkpoint_uri is not None:
            _check_type("checkpoint_uri", self.checkpoint_uri, str)
        _check_type("keep_checkpoints", self.keep_checkpoints, int)
        if self.keep_checkpoints < 1:
            raise ConfigError(f"keep_checkpoints: {self.keep_checkpoints} must be at least 1")
        _check_type("grid_seeds", self.grid_seeds, int)
        if not 1 <= self.grid_seeds <= 1024:
            raise ConfigError(f"grid_seeds: {self.grid_seeds} must be from 1 to 1024")
        if self.progress_bar not in PROGRESS_BAR_MODES:
            raise ConfigError(
                f"progress_bar: {self.progress_bar!r} is not one of {', '.join(PROGRESS_BAR_MODES)}"
            )
        check_port(self.metrics_port)
        if not isinstance(self.overrides, dict):
            raise ConfigError("overrides: must be a mapping of preset fields, e.g. {lr_g: 0.002}")


def _check_type(name: str, value: Any, kind: type) -> None:
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if not ok:
        raise ConfigError(f"{name}: {value!r} is not a {kind.__name__}")


def _check_positive(
    name: str, value: Any, optional: bool = False, allow_zero: bool = False
) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{name}: {value!r} is not a number")
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{name}: {value!r} must be {'>= 0' if allow_zero else '> 0'}")


def parse_augment(spec: str) -> tuple[str, float]:
    """``auto``/``ada``/``noaug``/``fixed:<p>`` -> (mode, initial p)."""
    if not isinstance(spec, str):
        raise ConfigError(f"augment: {spec!r} is not one of {', '.join(AUGMENT_MODES)}")
    if spec in ("auto", "ada", "noaug"):
        return spec, 0.0
    if spec.startswith("fixed:"):
        try:
            p = float(spec[len("fixed:") :])
        except ValueError:
            p = float("nan")
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"augment: {spec!r} needs a probability in [0, 1], e.g. fixed:0.2")
        return "fixed", p
    raise ConfigError(f"augment: {spec!r} is not one of {', '.join(AUGMENT_MODES)}")


def parse_data_workers(value: Any) -> int | None:
    """``auto`` -> None; a whole number >= 0 (or its digits, as a flag gives it) -> that int."""
    if value == "auto":
        return None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ConfigError(
        f"data_workers: {value!r} is not valid; use auto or a whole number >= 0 "
        "(0 loads the images in the training process)"
    )


def cores_per_rank() -> int:
    """The cores this process may use, shared by the ranks of this node (torchrun's count)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    try:
        local_ranks = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    except ValueError:
        local_ranks = 1
    return max(1, cores // max(1, local_ranks))


def resolve_data_workers(
    value: Any, device: torch.device, dataset: ImageDataset, cores: int
) -> int:
    """How many loader processes this rank starts for the option value ``value``.

    ``auto``: none on a CPU device (the cores are the bottleneck there, and the demo runs 2
    ranks on 2 cores) or for images already in memory (nothing to decode);
    ``min(DATA_WORKERS_AUTO_CUDA, cores)`` on CUDA, with at least one.
    """
    workers = parse_data_workers(value)
    if workers is not None:
        return workers
    if device.type != "cuda" or dataset.in_memory:
        return 0
    return max(1, min(DATA_WORKERS_AUTO_CUDA, cores))


def resolve_training_preset(options: TrainingOptions, world_size: int) -> TrainingPreset:
    """The preset with the options' batch and overrides applied; ``ConfigError`` if invalid."""
    overrides = dict(options.overrides)
    if options.batch is not None:
        overrides["batch_size"] = options.batch
    try:
        return resolve_preset(options.preset, options.resolution, gpus=world_size, **overrides)
    except PresetError as exc:
        raise ConfigError(str(exc)) from exc
    except TypeError as exc:  # an override of the wrong type
        raise ConfigError(f"overrides: {exc}") from exc


def network_for(
    preset: TrainingPreset, options: TrainingOptions, c_dim: int, device: torch.device
) -> NetworkConfig:
    """The preset's network with the dataset's label size and the precision asked for."""
    network = dataclasses.replace(preset.network, c_dim=c_dim)
    if options.mixed_precision and device.type == "cuda":
        if network.num_fp16_res == 0:
            network = dataclasses.replace(
                network, num_fp16_res=MP_FP16_RES, conv_clamp=network.conv_clamp or MP_CONV_CLAMP
            )
        return network
    return dataclasses.replace(network, num_fp16_res=0, conv_clamp=None)


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


def _cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def _count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _numbers(value: Any) -> str:
    """A setting as a log line shows it: ``0.0025``, ``[0, 0.99]``."""
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_numbers(v) for v in value) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)


# ----------------------------------------------------------------------------------------------
# The trainer


@dataclass(frozen=True)
class Phase:
    name: str
    module: nn.Module
    optimizer: torch.optim.Optimizer
    interval: int


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
        self.total_nimg = round((options.kimg or self.preset.total_kimg) * 1000)
        self.dataset = open_dataset(options.dataset, options.resolution, xflip=options.xflip)
        self.c_dim = self._label_dim(self.dataset)
        self.network = network_for(self.preset, options, self.c_dim, self.device)
        self.storage: Storage = open_storage(options.checkpoint_uri or options.outdir)
        self.reporter = reporter or (
            Reporter(
                options.outdir,
                self.total_nimg / 1000,
                options.progress_bar,
                # In a StyleGANRun's pod, progress also goes to the run's status.
                hooks=status_hooks(options.checkpoint_uri or options.outdir),
            )
            if self.ctx.is_main
            else SilentReporter(self.total_nimg / 1000)
        )
        # Only rank 0 exports (its tick figures are already reduced over the ranks); the
        # endpoint opens in run(), so building a Trainer binds no port.
        self.metrics: MetricsExporter | None = None
        if self.ctx.is_main and options.metrics_port:
            self.metrics = MetricsExporter()
            self.reporter.tick_hooks.append(self.metrics)
        resume_state = self._load_resume_state()

        torch.manual_seed(options.seed)  # identical initial weights on every rank
        self.G, self.D = (m.to(self.device) for m in build_networks(self.network))
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.augment_mode, initial_p = parse_augment(options.augment)
        if self.augment_mode == "auto":
            self.augment_mode = "ada" if self.dataset.raw_size < ADA_DATASET_THRESHOLD else "noaug"
        self.augment_pipe: AugmentPipe | None = None
        self.ada: AdaController | None = None
        if self.augment_mode != "noaug":
            self.augment_pipe = AugmentPipe().to(self.device)
            self.augment_pipe.p.fill_(initial_p)
        if self.augment_mode == "ada":
            self.ada = AdaController(ADA_TARGET, ADA_INTERVAL, options.ada_kimg)
        self.loss = StyleGAN2Loss(
            self.G, self.D, self.augment_pipe,
            r1_gamma=self.preset.r1_gamma, style_mixing_prob=self.preset.style_mixing_prob,
            pl_weight=self.preset.pl_weight, pl_decay=self.preset.pl_decay,
            pl_batch_shrink=self.preset.pl_batch_shrink,
        )  # fmt: skip
        self.opt_G, g_phases = self._phases(
            "G", self.G, self.preset.lr_g, self.preset.g_reg_interval
        )
        self.opt_D, d_phases = self._phases(
            "D", self.D, self.preset.lr_d, self.preset.d_reg_interval
        )
        self.phases = g_phases + d_phases
        self.sampler = InfiniteSampler(
            len(self.dataset), options.seed, self.batch, self.ctx.rank, self.ctx.world_size
        )
        self.data_workers = resolve_data_workers(
            options.data_workers, self.device, self.dataset, cores_per_rank()
        )
        # Starts its workers on the first batch, so after a resume has moved the sampler.
        self.loader = BatchLoader(
            self.dataset, self.sampler, self.data_workers, pin_memory=self.device.type == "cuda"
        )
        self.tick_stats = StatsCollector()
        self.ada_stats = StatsCollector()
        self.cur_nimg = 0
        self.cur_step = 0
        self.cur_tick = 0
        self.last_checkpoint: str | None = None
        self._stop_signal = threading.Event()
        if resume_state is not None:
            self.load_state_dict(resume_state)

    # -- construction helpers ------------------------------------------------------------

    def _label_dim(self, dataset: ImageDataset) -> int:
        if not self.options.cond:
            return 0
        if not dataset.has_labels:
            raise ConfigError(
                f"cond: the dataset {dataset.name} has no labels (dataset.json); "
                "add labels or set cond: false"
            )
        return dataset.label_dim

    def _adam_hparams(
        self, lr: float, reg_interval: int | None
    ) -> tuple[float, tuple[float, float]]:
        """This run's Adam lr and betas for a network regularised every ``reg_interval``."""
        beta1, beta2 = (float(b) for b in self.preset.betas)  # Adam refuses an int 0
        return lazy_regularization_hparams(lr, (beta1, beta2), reg_interval)

    def _phases(
        self, prefix: str, module: nn.Module, lr: float, reg_interval: int | None
    ) -> tuple[torch.optim.Optimizer, list[Phase]]:
        lr, betas = self._adam_hparams(lr, reg_interval)
        optimizer = torch.optim.Adam(module.parameters(), lr=lr, betas=betas, eps=1e-8)
        if not reg_interval:
            return optimizer, [Phase(f"{prefix}both", module, optimizer, 1)]
        return optimizer, [
            Phase(f"{prefix}main", module, optimizer, 1),
            Phase(f"{prefix}reg", module, optimizer, reg_interval),
        ]

    def _load_resume_state(self) -> dict[str, Any] | None:
        """Rank 0 reads the checkpoint and hands it to the others, so only it needs access."""
        resume = self.options.resume
        state: dict[str, Any] | None = None
        error: ConfigError | None = None
        if self.ctx.is_main and resume != "none":
            try:
                if resume == "latest":
                    state = ckpt.load_latest(self.storage, map_location="cpu")
                else:
                    state = ckpt.load_checkpoint(resume, map_location="cpu")
                if state is not None:
                    source = state.get("_checkpoint_name", resume)
                    check_resume_compatible(state["network"], self.network, source)
            except ConfigError as exc:
                error = exc
        if self.ctx.distributed:
            # Sent as torch.save bytes: pickling tensor storages straight through
            # broadcast_object_list fails on torch 2.15 (UntypedStorage has no dtype).
            payload = ckpt.serialize(state) if state is not None else None
            payload, error = broadcast_object((payload, error))  # type: ignore[misc]
            if not self.ctx.is_main:
                state = ckpt.deserialize(payload) if payload is not None else None
        if error is not None:
            raise error
        return state

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
        """Continue from ``state``; Adam's lr and betas stay this run's (module docstring)."""
        self.loader.close()  # the sampler moves: workers restart from its new position
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.G_ema.load_state_dict(state["G_ema"])
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])
        self._apply_optimizer_options(state.get("preset"))
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

    def _apply_optimizer_options(self, saved_preset: Mapping[str, Any] | None) -> None:
        """Give every param group this run's lr and betas (moments kept); say if they moved."""
        changed: list[str] = []
        for label, optimizer, lr, interval in (
            ("G", self.opt_G, self.preset.lr_g, self.preset.g_reg_interval),
            ("D", self.opt_D, self.preset.lr_d, self.preset.d_reg_interval),
        ):
            new_lr, new_betas = self._adam_hparams(lr, interval)
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
            return
        saved = dict(saved_preset or {})
        current = self.preset.to_dict()
        named = [
            f"{key} {_numbers(saved[key])} -> {_numbers(current[key])}"
            for key in OPTIMIZER_FIELDS
            if key in saved and saved[key] != current[key]
        ]
        # Without the saved preset (or a change it cannot name), the effective values speak.
        self.reporter.log(f"resume: {', '.join(named or changed)} (options)")

    # -- one step ------------------------------------------------------------------------

    def _latents(self, phase_index: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """This rank's slice of the step's global latents (and labels) for one phase."""
        generator = torch.Generator().manual_seed(
            derive_seed(self.options.seed, _SEED_LATENTS, self.cur_step, phase_index)
        )
        z = torch.randn([self.batch, self.network.z_dim], generator=generator)
        c = None
        if self.c_dim:
            labels = torch.from_numpy(self.dataset.all_labels())
            c = labels[torch.randint(len(labels), [self.batch], generator=generator)]
        lo = self.ctx.rank * self.batch_per_rank
        hi = lo + self.batch_per_rank
        return z[lo:hi].to(self.device), None if c is None else c[lo:hi].to(self.device)

    def _reals(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        images, labels = self.loader.next()
        # Pinned batches (CUDA with workers) copy asynchronously; the ops after it queue behind.
        images = images.to(self.device, non_blocking=self.loader.pin_memory)
        real = images.to(torch.float32) / 127.5 - 1.0
        return real, (labels.to(self.device) if self.c_dim else None)

    def run_phase(
        self, phase: Phase, phase_index: int, real: torch.Tensor, real_c: torch.Tensor | None
    ) -> dict[str, float]:
        """One phase: zero grads, the loss's backward, one all-reduce, one optimiser step."""
        gen_z, gen_c = self._latents(phase_index)
        phase.optimizer.zero_grad(set_to_none=True)
        stats = self.loss.accumulate_gradients(
            phase.name, real, real_c, gen_z, gen_c, phase.interval
        )
        average_gradients(phase.module)
        phase.optimizer.step()
        return stats

    def train_step(self) -> None:
        """One global batch through the phases due at this step, then EMA, counters and ADA."""
        torch.manual_seed(derive_seed(self.options.seed, _SEED_LOSS, self.ctx.rank, self.cur_step))
        real, real_c = self._reals()
        for index, phase in enumerate(self.phases):
            if self.cur_step % phase.interval != 0:
                continue
            stats = self.run_phase(phase, index, real, real_c)
            self.tick_stats.add_many(stats, count=self.batch_per_rank)
            if SIGN_REAL in stats and phase.name.startswith("D"):
                self.ada_stats.add(SIGN_REAL, stats[SIGN_REAL], count=self.batch_per_rank)
        self._sync_running_averages()
        beta = ema_beta(self.batch, self.preset.ema_kimg, self.preset.ema_rampup, self.cur_nimg)
        update_ema(self.G_ema, self.G, beta)
        self.cur_nimg += self.batch
        self.cur_step += 1
        if self.ada is not None and self.cur_step % self.ada.interval == 0:
            sign = self.ada_stats.reduce(self.device).get(SIGN_REAL)
            if sign is not None and self.augment_pipe is not None:
                self.ada.update(self.augment_pipe, sign, self.batch)

    def _sync_running_averages(self) -> None:
        """Average G's buffers (``w_avg``) and ``pl_mean`` over the ranks.

        Each rank updates them from its own slice; averaging the per-rank moving averages equals
        the moving average of the global batch (the update is linear), and keeps the ranks equal.
        """
        if not self.ctx.distributed:
            return
        for buffer in self.G.buffers():
            if buffer.is_floating_point():
                all_reduce_mean(buffer.data)
        pl_mean = self.loss.pl_mean.detach().to(self.device, torch.float32).reshape(1).clone()
        self.loss.pl_mean = all_reduce_mean(pl_mean).reshape([]).cpu()

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
        self._stop_signal.set()

    def _agree_stop(self, deadline: float | None) -> tuple[bool, bool]:
        """(stop requested, time is up), agreed by every rank with one all-reduce."""
        timed_out = deadline is not None and time.monotonic() >= deadline
        flags = torch.tensor([float(self._stop_signal.is_set()), float(timed_out)])
        if self.ctx.distributed:
            flags = all_reduce_max(flags.to(self.device)).cpu()
        return bool(flags[0]), bool(flags[1])

    def run(self) -> int:
        """Train until done, out of time, or told to stop; returns the process exit code."""
        options = self.options
        start = time.monotonic()
        deadline = None if options.max_seconds is None else start + options.max_seconds
        restore_handler = self._install_sigterm()
        try:
            if self.metrics is not None:
                self.metrics.serve(options.metrics_port)
                self.metrics.metrics.update(kimg=self.cur_nimg / 1000)  # a resumed run's start
            self.reporter.write_options(self._options_record())
            self._log_start()
            if self.ctx.is_main:
                self._save_reals_grid()
            snapshot_nimg = round(options.snapshot_kimg * 1000)
            next_snapshot = (self.cur_nimg // snapshot_nimg + 1) * snapshot_nimg
            tick_start_nimg, tick_start = self.cur_nimg, time.monotonic()
            first_tick, maintenance = True, 0.0
            stopped, timed_out = False, False
            while not self.done:
                self.train_step()
                self.reporter.advance(self.cur_nimg)
                stopped, timed_out = self._agree_stop(deadline)
                tick_due = self.cur_nimg >= tick_start_nimg + options.tick_kimg * 1000
                if not (first_tick or tick_due or stopped or timed_out or self.done):
                    continue
                tick_end = time.monotonic()
                self._report_tick(tick_start_nimg, tick_start, tick_end, start, maintenance)
                snapshot = self.done or stopped or timed_out or self.cur_nimg >= next_snapshot
                if snapshot:
                    self.snapshot()
                    next_snapshot = (self.cur_nimg // snapshot_nimg + 1) * snapshot_nimg
                self.cur_tick += 1
                first_tick = False
                tick_start_nimg, tick_start = self.cur_nimg, time.monotonic()
                maintenance = tick_start - tick_end
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

    def _install_sigterm(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, lambda signum, frame: self.request_stop())
        return lambda: signal.signal(signal.SIGTERM, previous)

    def _options_record(self) -> dict[str, Any]:
        return {
            "options": self.options.to_dict(),
            "preset": self.preset.to_dict(),
            "network": self.network.to_dict(),
            "world_size": self.ctx.world_size,
            "device": str(self.device),
            "data_workers": self.data_workers,
            "augment_mode": self.augment_mode,
            "dataset_images": len(self.dataset),
        }

    def _log_start(self) -> None:
        params = _count_params
        resumed = f", resumed from {self.last_checkpoint}" if self.last_checkpoint else ""
        self.reporter.log(
            f"training {self.options.preset} at {self.options.resolution}px on "
            f"{self.ctx.world_size} x {self.device}: batch {self.batch} "
            f"({self.batch_per_rank} per rank), G {params(self.G):,} and D {params(self.D):,} "
            f"parameters, {len(self.dataset)} images ({self.data_workers} data workers), "
            f"augment {self.augment_mode}, "
            f"target {self.total_nimg / 1000:g} kimg, at kimg {self.cur_nimg / 1000:.1f}{resumed}"
        )

    def _report_tick(
        self,
        tick_start_nimg: int,
        tick_start: float,
        tick_end: float,
        start: float,
        maintenance: float,
    ) -> None:
        stats = self.tick_stats.reduce(self.device)  # a collective: every rank takes part
        done_nimg = max(self.cur_nimg - tick_start_nimg, 1)
        sec_per_tick = tick_end - tick_start
        report = TickReport(
            tick=self.cur_tick,
            kimg=self.cur_nimg / 1000,
            total_kimg=self.total_nimg / 1000,
            time_s=tick_end - start,
            sec_per_tick=sec_per_tick,
            sec_per_kimg=sec_per_tick / done_nimg * 1000,
            maintenance_s=maintenance,
            cpumem_gb=cpu_memory_bytes() / 2**30,
            gpumem_gb=peak_gpu_memory_bytes(self.device) / 2**30,
            augment_p=self.augment_p,
            stats=stats,
        )
        self.reporter.tick(report)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    # -- snapshots -------------------------------------------------------------------------

    def _save_reals_grid(self) -> None:
        """The first ``grid_seeds`` real images, once per outdir and once in the checkpoint
        storage (a new pod's empty scratch folder draws it again, but uploads only if missing)."""
        from stylegan_trainer.sampling.generate import make_grid

        path = Path(self.options.outdir) / SAMPLES_DIR / "reals.png"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            count = min(self.options.grid_seeds, self.dataset.raw_size)
            images, _ = self.dataset.batch(range(count))
            make_grid(images).save(path)
        self.publish_sample(path, only_if_missing=True)

    def save_fakes_grid(self) -> Path:
        """G_ema on seeds 0..grid_seeds-1 with constant noise: grids of a run compare."""
        from stylegan_trainer.sampling.generate import save_grid

        path = Path(self.options.outdir) / SAMPLES_DIR / f"fakes-{self.cur_nimg:09d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_grid(self.G_ema, list(range(self.options.grid_seeds)), str(path), device=self.device)
        return path

    def _samples_beside_checkpoints(self) -> bool:
        """Whether outdir/samples already is the checkpoint storage's ``samples/`` (no
        checkpoint_uri, or a claim serving as both): then there is nothing to copy."""
        storage = self.storage
        return (
            isinstance(storage, LocalStorage)
            and storage.root.resolve() == Path(self.options.outdir).resolve()
        )

    def publish_sample(self, path: Path, only_if_missing: bool = False) -> bool:
        """Copy the grid ``path`` to ``samples/<its name>`` in the checkpoint storage.

        A run on Kubernetes writes outdir in the pod's scratch folder, which dies with the pod;
        next to the checkpoints (``gs://...``) the grids outlive it and ``stylegan samples``
        finds them. Best effort by design: a failed upload logs a warning and returns False,
        it never raises, so it can neither stop training nor cost a checkpoint (the snapshot
        writes the checkpoint first). Grids are never pruned: ``keep_checkpoints`` applies to
        checkpoints only, and a grid is a small fraction of a checkpoint (about 0.1 MB at
        32x32; 32 images at 1024x1024 are 6144x6144 pixels, tens of MB). Returns True when
        the grid is in the storage (or the storage is outdir itself).
        """
        if self._samples_beside_checkpoints():
            return True
        name = f"{SAMPLES_DIR}/{path.name}"
        try:
            if only_if_missing and self.storage.exists(name):
                return True
            self.storage.put_file(name, path, "image/png")
        except Exception as exc:  # whatever went wrong, training must go on
            log.warning(
                "sample grid %s was not copied to %s/%s (%s: %s); training goes on, the grid "
                "stays in %s",
                path.name, self.storage.uri, name, type(exc).__name__, exc, path.parent,
            )  # fmt: skip
            return False
        return True

    def save_checkpoint(self) -> str:
        """Rank 0 writes a checkpoint; ``StorageError`` (exit 75) when that fails."""
        name = ckpt.save_checkpoint(
            self.storage,
            self.state_dict(),
            self.cur_nimg / 1000,
            keep=self.options.keep_checkpoints,
        )
        self.last_checkpoint = name
        self.reporter.checkpoint(name)
        return name

    def snapshot(self) -> None:
        """Rank 0 writes the sample grid and a checkpoint; every rank learns whether it worked.

        The grid is copied to the checkpoint storage after the checkpoint, and a failed copy
        only logs a warning (see :meth:`publish_sample`).
        """
        error: str | None = None
        name: str | None = None
        if self.ctx.is_main:
            try:
                grid = self.save_fakes_grid()
                name = self.save_checkpoint()
                self.reporter.log(f"checkpoint {name} at kimg {self.cur_nimg / 1000:.1f}")
                self.publish_sample(grid)
            except StorageError as exc:
                error = str(exc)
            except OSError as exc:
                error = f"cannot write a snapshot in {self.options.outdir}: {exc}"
        if self.ctx.distributed:
            # Every rank learns the name too: run() decides on it, and all ranks must agree.
            error, name = broadcast_object((error, name))  # type: ignore[misc]
        if error is not None:
            raise StorageError(error)
        self.last_checkpoint = name


# ----------------------------------------------------------------------------------------------
# Benchmark: what one training step and generation cost on this device


def benchmark(
    resolution: int,
    preset: str = "auto",
    steps: int = 2,
    device: str = "auto",
    batch: int | None = None,
    gen_batch: int | None = None,
    mixed_precision: bool = False,
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
            mixed_precision=mixed_precision,
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
    real, real_c = trainer._reals()
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
        trainer._reals()
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
