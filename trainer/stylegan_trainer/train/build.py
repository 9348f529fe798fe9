"""Building a run from its options: preset, network, augmentation, loss, optimisers, data, output.

Each function makes one part the Trainer (loop.py) holds, and raises ``ConfigError`` (exit 64)
for what the options ask but cannot be had, before any training compute. The Trainer calls them
in a fixed order, which the determinism of phases.py relies on: the networks are built right
after ``torch.manual_seed(seed)``, so every rank starts from the same weights.

Data: ``data.BatchLoader`` hands each step this rank's slice of the sampler's global batch,
read in the training process (``data_workers: 0``) or decoded ahead by worker processes
(``auto``: none on CPU devices, where the cores train; ``min(3, cores per rank)`` on CUDA, where
PNG decoding would otherwise cost about as much as the step). The worker count changes neither
the images nor their order, and the checkpointed sampler position counts consumed batches only.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from typing import Any

import torch
from torch import nn

from stylegan_common.errors import ConfigError
from stylegan_common.storage import Storage
from stylegan_trainer.data.dataset import ImageDataset
from stylegan_trainer.data.loading import BatchLoader, InfiniteSampler
from stylegan_trainer.model.augment import AdaController, AugmentPipe
from stylegan_trainer.model.config import NetworkConfig
from stylegan_trainer.model.discriminator import Discriminator
from stylegan_trainer.model.generator import Generator
from stylegan_trainer.model.loss import StyleGAN2Loss, lazy_regularization_hparams
from stylegan_trainer.model.networks import build_networks
from stylegan_trainer.report.log_archive import LogArchive, attempt_from_env
from stylegan_trainer.report.metrics_export import MetricsExporter
from stylegan_trainer.report.progress import Reporter, SilentReporter
from stylegan_trainer.report.status import hooks_from_env as status_hooks
from stylegan_trainer.train.distributed import DistContext
from stylegan_trainer.train.options import TrainingOptions, parse_augment, parse_data_workers
from stylegan_trainer.train.phases import Phase
from stylegan_trainer.train.presets import PresetError, TrainingPreset, resolve_preset

# ADA (Karras et al. 2020): target and interval (the speed is the option ada_kimg).
ADA_TARGET = 0.6
ADA_INTERVAL = 4
# Mixed precision as the published configurations run it: the 4 top resolutions, clamp 256.
MP_FP16_RES = 4
MP_CONV_CLAMP = 256.0

# data_workers: auto on CUDA starts this many loader processes per rank at most (fewer when the
# rank has fewer cores); three keep a 1024x1024 batch of PNGs decoded ahead of a GPU step.
DATA_WORKERS_AUTO_CUDA = 3


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


def label_dim(options: TrainingOptions, dataset: ImageDataset) -> int:
    """The size of G's and D's label input: the dataset's labels with ``cond``, else 0."""
    if not options.cond:
        return 0
    if not dataset.has_labels:
        raise ConfigError(
            f"cond: the dataset {dataset.name} has no labels (dataset.json); "
            "add labels or set cond: false"
        )
    return dataset.label_dim


def network_for(
    preset: TrainingPreset, options: TrainingOptions, c_dim: int, device: torch.device
) -> NetworkConfig:
    """The preset's network with the dataset's label size and the precision asked for."""
    network = dataclasses.replace(preset.network, c_dim=c_dim)
    dtype = reduced_precision(options.mixed_precision, network.mp_dtype, device)
    if dtype is None:
        return dataclasses.replace(network, num_fp16_res=0, conv_clamp=None)
    return dataclasses.replace(
        network, mp_dtype=dtype, num_fp16_res=network.num_fp16_res or MP_FP16_RES,
        conv_clamp=network.conv_clamp or MP_CONV_CLAMP,
    )  # fmt: skip


def reduced_precision(mode: bool | str, preset_dtype: str, device: torch.device) -> str | None:
    """``fp16``, ``bf16``, or ``None`` for fp32: what ``mixed_precision`` means on ``device``.

    ``auto`` picks bf16 where the GPU computes it natively (compute capability 8.0 and up:
    fp32's range, so no loss scaling and nothing to clamp against overflow) and the published
    fp16 elsewhere; a CPU always trains in fp32.
    """
    if device.type != "cuda" or mode is False or mode == "none":
        return None
    if mode is True:
        return preset_dtype
    if mode == "auto":
        major, _ = torch.cuda.get_device_capability(device)
        return "bf16" if major >= 8 else "fp16"
    return str(mode)


def configure_cuda_math(mode: bool | str) -> None:
    """cuDNN autotuning on; TF32 matmuls and convolutions on unless fp32 was asked for
    (``mixed_precision: none``), which then means fp32 in every op."""
    exact = mode is False or mode == "none"
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = not exact
    torch.backends.cudnn.allow_tf32 = not exact


def open_reporter(options: TrainingOptions, ctx: DistContext, total_kimg: float) -> Reporter:
    """Rank 0 reports progress (and, in a StyleGANRun's pod, the run's status); others don't."""
    if not ctx.is_main:
        return SilentReporter(total_kimg)
    return Reporter(
        options.outdir,
        total_kimg,
        options.progress_bar,
        # In a StyleGANRun's pod, progress also goes to the run's status.
        hooks=status_hooks(options.checkpoint_uri or options.outdir),
    )


def attach_metrics(
    options: TrainingOptions, ctx: DistContext, reporter: Reporter
) -> MetricsExporter | None:
    """Rank 0's Prometheus exporter, fed by the reporter's ticks, when ``metrics_port`` is set.

    Only rank 0 exports (its tick figures are already reduced over the ranks); the endpoint
    opens in ``Trainer.run()``, so building a Trainer binds no port.
    """
    if not (ctx.is_main and options.metrics_port):
        return None
    metrics = MetricsExporter()
    reporter.tick_hooks.append(metrics)
    return metrics


def attach_log_archive(
    options: TrainingOptions, ctx: DistContext, reporter: Reporter, storage: Storage
) -> LogArchive | None:
    """Rank 0 copies its log and stats beside the checkpoints at every tick (and at exit)."""
    if not ctx.is_main:
        return None
    archive = LogArchive(storage, options.outdir, attempt_from_env())
    if not archive.needed:
        return None
    reporter.tick_hooks.append(archive)
    return archive


def build_training_networks(
    network: NetworkConfig, seed: int, device: torch.device
) -> tuple[Generator, Discriminator, Generator]:
    """G, D and G_ema (a frozen copy of G), initialised from ``seed`` on every rank alike."""
    torch.manual_seed(seed)  # identical initial weights on every rank
    G, D = build_networks(network)
    G, D = G.to(device), D.to(device)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    return G, D, G_ema


def build_augment(
    options: TrainingOptions, preset: TrainingPreset, device: torch.device
) -> tuple[str, AugmentPipe | None, AdaController | None]:
    """(mode, pipe, ADA controller). ``auto`` is ADA whatever the dataset's size, the published
    code's default (``--aug=ada``): p starts at 0 and rises only while D overfits, so on a
    large dataset it stays near 0 and the augmentations seldom fire, while a small one gets
    the augmentation it needs."""
    mode, initial_p = parse_augment(options.augment)
    if mode == "auto":
        mode = "ada"
    pipe: AugmentPipe | None = None
    ada: AdaController | None = None
    if mode != "noaug":
        pipe = AugmentPipe(supersample=preset.augment_supersample).to(device)
        pipe.p.fill_(initial_p)
    if mode == "ada":
        ada = AdaController(ADA_TARGET, ADA_INTERVAL, options.ada_kimg)
    return mode, pipe, ada


def build_loss(
    G: nn.Module, D: nn.Module, augment_pipe: AugmentPipe | None, preset: TrainingPreset
) -> StyleGAN2Loss:
    return StyleGAN2Loss(
        G, D, augment_pipe,
        r1_gamma=preset.r1_gamma, style_mixing_prob=preset.style_mixing_prob,
        pl_weight=preset.pl_weight, pl_decay=preset.pl_decay,
        pl_batch_shrink=preset.pl_batch_shrink,
    )  # fmt: skip


def adam_hparams(
    preset: TrainingPreset, lr: float, reg_interval: int | None
) -> tuple[float, tuple[float, float]]:
    """This run's Adam lr and betas for a network regularised every ``reg_interval``."""
    beta1, beta2 = (float(b) for b in preset.betas)  # Adam refuses an int 0
    return lazy_regularization_hparams(lr, (beta1, beta2), reg_interval)


def build_phases(
    prefix: str, module: nn.Module, preset: TrainingPreset, lr: float, reg_interval: int | None
) -> tuple[torch.optim.Optimizer, list[Phase]]:
    """Adam for ``module`` and its phases: main + reg (lazy regularisation), or one ``both``."""
    lr, betas = adam_hparams(preset, lr, reg_interval)
    optimizer = torch.optim.Adam(module.parameters(), lr=lr, betas=betas, eps=1e-8)
    if not reg_interval:
        return optimizer, [Phase(f"{prefix}both", module, optimizer, 1)]
    return optimizer, [
        Phase(f"{prefix}main", module, optimizer, 1),
        Phase(f"{prefix}reg", module, optimizer, reg_interval),
    ]


def build_optimizers(
    G: nn.Module, D: nn.Module, preset: TrainingPreset
) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer, list[Phase]]:
    """Adam for G and for D, and all phases in the order a step runs them (G's, then D's)."""
    opt_G, g_phases = build_phases("G", G, preset, preset.lr_g, preset.g_reg_interval)
    opt_D, d_phases = build_phases("D", D, preset, preset.lr_d, preset.d_reg_interval)
    return opt_G, opt_D, g_phases + d_phases


def build_loader(
    options: TrainingOptions, dataset: ImageDataset, ctx: DistContext, batch: int
) -> tuple[InfiniteSampler, int, BatchLoader]:
    """The seeded sampler of global batches, the worker count, and this rank's loader."""
    sampler = InfiniteSampler(len(dataset), options.seed, batch, ctx.rank, ctx.world_size)
    workers = resolve_data_workers(options.data_workers, ctx.device, dataset, cores_per_rank())
    # Starts its workers on the first batch, so after a resume has moved the sampler.
    loader = BatchLoader(dataset, sampler, workers, pin_memory=ctx.device.type == "cuda")
    return sampler, workers, loader
