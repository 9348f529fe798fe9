"""What fixes the architecture of G and D: :class:`NetworkConfig`, and its mixed-precision rule.

It sits below the network modules (mapping, generator, discriminator), which all read it, and
it is what a checkpoint stores to rebuild them.

Channels at resolution r: ``min(channel_base // r, channel_max)``. Mixed precision: the
``num_fp16_res`` highest-resolution blocks run in float16 (or bfloat16) on CUDA; parameters
stay float32 and are cast per block; ``conv_clamp`` bounds every conv output. On CPU all
blocks run in float32.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
from torch import Tensor

MP_DTYPES: dict[str, torch.dtype] = {"fp16": torch.float16, "bf16": torch.bfloat16}
MIN_RESOLUTION = 4
MAX_RESOLUTION = 1024


def _is_power_of_two(n: int) -> bool:
    return n > 0 and (n & (n - 1)) == 0


@dataclass(frozen=True)
class NetworkConfig:
    """Everything that fixes the architecture of G and D (and so their checkpoints)."""

    resolution: int
    img_channels: int = 3
    z_dim: int = 512
    w_dim: int = 512
    c_dim: int = 0
    mapping_layers: int = 8
    channel_base: int = 32768
    channel_max: int = 512
    mbstd_group: int = 4
    mbstd_channels: int = 1
    num_fp16_res: int = 0
    conv_clamp: float | None = None
    mp_dtype: str = "fp16"

    def __post_init__(self) -> None:
        if (
            not isinstance(self.resolution, int)
            or not _is_power_of_two(self.resolution)
            or not (MIN_RESOLUTION <= self.resolution <= MAX_RESOLUTION)
        ):
            raise ValueError(
                f"resolution: expected a power of two from {MIN_RESOLUTION} to {MAX_RESOLUTION}, "
                f"got {self.resolution!r}"
            )
        positive = (
            "img_channels",
            "z_dim",
            "w_dim",
            "mapping_layers",
            "channel_base",
            "channel_max",
            "mbstd_group",
        )
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        for name in ("c_dim", "mbstd_channels", "num_fp16_res"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name}: expected a non-negative integer, got {value!r}")
        if self.channel_base // self.resolution < 1:
            raise ValueError(
                f"channel_base: must be at least the resolution ({self.resolution}) so the top "
                f"block has a channel, got {self.channel_base}"
            )
        if self.conv_clamp is not None and not self.conv_clamp > 0:
            raise ValueError(
                f"conv_clamp: expected a positive number or None, got {self.conv_clamp!r}"
            )
        if self.mp_dtype not in MP_DTYPES:
            raise ValueError(
                f"mp_dtype: expected one of {sorted(MP_DTYPES)}, got {self.mp_dtype!r}"
            )

    @property
    def resolution_log2(self) -> int:
        return int(math.log2(self.resolution))

    @property
    def num_ws(self) -> int:
        """Two styles per resolution level: 18 at 1024, 10 at 64, 2 at 4."""
        return 2 * self.resolution_log2 - 2

    def channels_at(self, res: int) -> int:
        return min(self.channel_base // res, self.channel_max)

    @property
    def fp16_resolution(self) -> int:
        """Blocks at this resolution and above use the mixed-precision dtype (on CUDA)."""
        if self.num_fp16_res == 0:
            return self.resolution * 2  # no block qualifies
        return max(2 ** (self.resolution_log2 + 1 - self.num_fp16_res), 8)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> NetworkConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"NetworkConfig: unknown field(s) {unknown}; valid: {sorted(known)}")
        return cls(**d)


def _block_dtype(use_mixed: bool, mp_dtype: torch.dtype, param: Tensor) -> torch.dtype:
    # Half precision only pays (and is only safe with the clamps) on CUDA; elsewhere a block
    # computes in its parameters' dtype (float32, or float64 in exactness tests).
    return mp_dtype if use_mixed and param.device.type == "cuda" else param.dtype
