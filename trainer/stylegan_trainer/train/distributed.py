"""Rank helpers, gradient averaging and the one stats channel, for one process or many.

The trainer runs alone (``python -m stylegan_trainer.cli.train_commands``) or as several ranks
under ``torchrun``, which exports ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``. Every helper here also works when ``torch.distributed`` was never initialised,
so the loop has a single code path: a lone process is a world of size 1.

Why no ``DistributedDataParallel``: a StyleGAN2 step runs four phases (Gmain, Greg, Dmain,
Dreg) that call G and D in different combinations, with gradients flowing through the module
that is *not* being trained. DDP hooks would fire on the wrong module and assume one forward per
backward. Instead, after each phase's backward, the gradients of the module being trained are
flattened into one tensor, all-reduced once and divided by the world size
(:func:`average_gradients`), as the StyleGAN2-ADA training loop does.

How the ranks stay equal to one process: the loop draws the *global* batch (latents, dataset
indices) from the seed on every rank and each rank keeps its own slice
(:func:`rank_slice`), so 2 ranks x 4 images see exactly the images 1 rank x 8 would.

How long a collective may wait for a peer (``init_process_group``'s timeout, which NCCL's
watchdog enforces): ``STYLEGAN_DIST_TIMEOUT_S`` when set (the operator passes
``spec.distributed.collectiveTimeoutSeconds``), else :data:`DEFAULT_TIMEOUT_S`.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from stylegan_common.errors import ConfigError


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in its rank group, and the device it trains on."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str | None  # None when running alone

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes checkpoints, samples and progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """This process's global rank; 0 when running alone."""
    return dist.get_rank() if is_initialized() else 0


def get_world_size() -> int:
    """How many ranks train together; 1 when running alone."""
    return dist.get_world_size() if is_initialized() else 1


def is_main() -> bool:
    """True on rank 0 (and in a lone process)."""
    return get_rank() == 0


def resolve_device(device: str | torch.device, local_rank: int = 0) -> torch.device:
    """Turn ``auto``/``cpu``/``cuda``/``cuda:N`` into a device; ``cuda`` picks the local rank's GPU.

    Raises ``ConfigError`` naming ``device`` when CUDA is asked for but absent.
    """
    if isinstance(device, torch.device):
        return device
    name = device.strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device: {device!r} asked for CUDA but no CUDA device is visible; "
                "use 'cpu' or 'auto'"
            )
        if name == "cuda":
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device(name)
    raise ConfigError(f"device: {device!r} is not one of auto, cpu, cuda, cuda:N")


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name}: environment value {raw!r} is not an integer") from None


DEFAULT_TIMEOUT_S = 1800
TIMEOUT_ENV = "STYLEGAN_DIST_TIMEOUT_S"


def collective_timeout_s() -> int:
    """How long a collective may wait for a peer: ``$STYLEGAN_DIST_TIMEOUT_S``, else the default."""
    seconds = _env_int(TIMEOUT_ENV, DEFAULT_TIMEOUT_S)
    if seconds < 1:
        raise ConfigError(f"{TIMEOUT_ENV}={seconds}: must be a positive number of seconds")
    return seconds


def init_from_env(
    device: str | torch.device = "auto", timeout_s: float | None = None
) -> DistContext:
    """Join the rank group torchrun describes in the environment, or run alone.

    The backend follows the device: ``nccl`` for CUDA, ``gloo`` for CPU. Calling it again in a
    process that already joined a group returns the existing context. ``timeout_s`` defaults
    to ``$STYLEGAN_DIST_TIMEOUT_S``, else :data:`DEFAULT_TIMEOUT_S` (module docstring).
    """
    if timeout_s is None:
        timeout_s = collective_timeout_s()
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    if world_size < 1 or not 0 <= rank < world_size:
        raise ConfigError(f"RANK={rank} and WORLD_SIZE={world_size} do not describe a rank group")
    resolved = resolve_device(device, local_rank)
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    backend: str | None = None
    if world_size > 1:
        backend = "nccl" if resolved.type == "cuda" else "gloo"
        if not is_initialized():
            dist.init_process_group(
                backend=backend,
                init_method="env://",
                timeout=datetime.timedelta(seconds=timeout_s),
                **({"device_id": resolved} if resolved.type == "cuda" else {}),
            )
        rank, world_size = dist.get_rank(), dist.get_world_size()
    return DistContext(rank, world_size, local_rank, resolved, backend)


def shutdown() -> None:
    """Leave the rank group (a no-op when running alone)."""
    if is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (a no-op when running alone)."""
    if get_world_size() > 1:
        dist.barrier()


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Average ``tensor`` over the ranks, in place, and return it."""
    world = get_world_size()
    if world > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor.div_(world)
    return tensor


def all_reduce_max(tensor: torch.Tensor) -> torch.Tensor:
    """Maximum of ``tensor`` over the ranks, in place (used to agree on stopping)."""
    if get_world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor


def broadcast_object(obj: object, src: int = 0) -> object:
    """Rank ``src``'s ``obj`` on every rank (identity when running alone)."""
    if get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def per_rank_batch(global_batch: int, world_size: int) -> int:
    """Images each rank processes per step; the global batch must split evenly.

    Raises ``ConfigError`` naming ``batch`` otherwise (exit 64: retrying cannot fix it).
    """
    if global_batch < 1:
        raise ConfigError(f"batch: {global_batch} must be a positive number of images")
    if global_batch % world_size != 0:
        raise ConfigError(
            f"batch: {global_batch} images do not split across {world_size} ranks; "
            f"use a multiple of {world_size}"
        )
    return global_batch // world_size


def accumulation_rounds(batch_per_rank: int, batch_per_gpu: int | None) -> int:
    """How many passes a rank makes over its share of a step's batch (1 when ``None``).

    Raises ``ConfigError`` naming ``batch_per_gpu`` when it does not divide the share.
    """
    if batch_per_gpu is None or batch_per_gpu == batch_per_rank:
        return 1
    if batch_per_gpu > batch_per_rank or batch_per_rank % batch_per_gpu:
        divisors = [d for d in range(1, batch_per_rank + 1) if batch_per_rank % d == 0]
        raise ConfigError(
            f"batch_per_gpu: {batch_per_gpu} must divide the {batch_per_rank} images each rank "
            f"gets per step (batch / ranks); valid: {', '.join(map(str, divisors))}"
        )
    return batch_per_rank // batch_per_gpu


def rank_slice(global_tensor: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """This rank's contiguous share of a global batch drawn identically on every rank."""
    per_rank = per_rank_batch(global_tensor.shape[0], world_size)
    return global_tensor[rank * per_rank : (rank + 1) * per_rank]


def average_gradients(module: nn.Module) -> None:
    """Average the gradients of ``module`` over the ranks with one all-reduce.

    Only parameters that received a gradient take part; every rank runs the same phase, so the
    set is the same everywhere. Non-finite values are replaced (NaN -> 0, inf -> +-1e5) in a
    lone process too, so one rank and many ranks apply exactly the same update rule.
    """
    params = [p for p in module.parameters() if p.grad is not None]
    if not params:
        return
    flat = torch.cat([p.grad.flatten() for p in params])  # type: ignore[union-attr]
    all_reduce_mean(flat)
    torch.nan_to_num(flat, nan=0.0, posinf=1e5, neginf=-1e5, out=flat)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset : offset + n].view_as(p))  # type: ignore[union-attr]
        offset += n


class StatsCollector:
    """Named scalars gathered during a tick and reduced once across the ranks.

    ``add`` records values on this rank; ``reduce`` sums values and counts over all ranks (one
    all-reduce for all names), returns ``{name: mean}`` and starts a new collection. Every rank
    must call ``reduce`` at the same point. The set of names may differ between ranks: the names
    are agreed first, so a stat seen on one rank only still averages correctly.
    """

    def __init__(self) -> None:
        self._sums: dict[str, float] = {}
        self._counts: dict[str, float] = {}

    def add(self, name: str, value: float | torch.Tensor, count: float = 1.0) -> None:
        """Record ``value`` as the mean of ``count`` observations of ``name``."""
        if isinstance(value, torch.Tensor):
            value = float(value.detach().float().mean())
        self._sums[name] = self._sums.get(name, 0.0) + float(value) * count
        self._counts[name] = self._counts.get(name, 0.0) + count

    def add_many(self, values: Mapping[str, float | torch.Tensor], count: float = 1.0) -> None:
        for name, value in values.items():
            self.add(name, value, count)

    def names(self) -> list[str]:
        return sorted(self._sums)

    def state_dict(self) -> dict[str, dict[str, float]]:
        """Partial sums, so a checkpoint taken mid-interval loses nothing."""
        return {"sums": dict(self._sums), "counts": dict(self._counts)}

    def load_state_dict(self, state: Mapping[str, Mapping[str, float]]) -> None:
        self._sums = {k: float(v) for k, v in state.get("sums", {}).items()}
        self._counts = {k: float(v) for k, v in state.get("counts", {}).items()}

    def reduce(self, device: torch.device | str = "cpu") -> dict[str, float]:
        """Means over every rank's observations; clears the collection."""
        names = self._agreed_names()
        result: dict[str, float] = {}
        if names:
            packed = torch.tensor(
                [[self._sums.get(n, 0.0), self._counts.get(n, 0.0)] for n in names],
                dtype=torch.float64,
            ).to(device)
            if get_world_size() > 1:
                dist.all_reduce(packed, op=dist.ReduceOp.SUM)
            for name, (total, count) in zip(names, packed.cpu().tolist(), strict=True):
                if count > 0:
                    result[name] = total / count
        self._sums.clear()
        self._counts.clear()
        return result

    def _agreed_names(self) -> list[str]:
        names: Iterable[str] = self._sums
        if get_world_size() > 1:
            every: list[list[str] | None] = [None] * get_world_size()
            dist.all_gather_object(every, sorted(self._sums))
            names = {n for rank_names in every if rank_names for n in rank_names}
        return sorted(names)
