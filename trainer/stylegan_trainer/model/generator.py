"""The StyleGAN2 generator and discriminator (config F), written from the paper.

Karras et al., "Analyzing and Improving the Image Quality of StyleGAN" (arXiv:1912.04958):

* Mapping: 2nd-moment-normalised z (plus an embedded, normalised label when ``c_dim > 0``),
  ``mapping_layers`` equalised dense layers with lrelu and a 0.01 learning-rate multiplier,
  and a tracked average ``w_avg`` (beta 0.995) for the truncation trick.
* Synthesis: a learned 4x4 constant, then per resolution a 2x up-sampling modulated 3x3 conv
  and a modulated 3x3 conv, each with weight demodulation, per-pixel noise with a learned
  strength, bias and lrelu; the "skip" output: a modulated (not demodulated) 1x1 toRGB at
  every resolution, summed into an image that is FIR-up-sampled from level to level.
* Discriminator: "resnet": fromRGB at the top resolution only, residual blocks (conv, conv
  down, and a 1x1 down-sampled skip, summed and scaled by 1/sqrt(2)), then the epilogue at
  4x4: minibatch standard deviation, conv, dense, output dense.

Channels at resolution r: ``min(channel_base // r, channel_max)``. Mixed precision: the
``num_fp16_res`` highest-resolution blocks run in float16 (or bfloat16) on CUDA; parameters
stay float32 and are cast per block; ``conv_clamp`` bounds every conv output. On CPU all
blocks run in float32.

Parameter count of config F at 1024x1024, z = w = 512, c_dim = 0
(``sum(p.numel() for p in net.parameters())``; the per-layer noise constants and
``w_avg`` are buffers and the FIR taps plain constants, so none of them count):

Generator = 30,370,060
  mapping: 8 dense 512->512, weight + bias: 8 * 262,656 = 2,101,248
  synthesis, per modulated conv in->out: affine (512*in + in) + weight (out*in*9)
    + noise strength (1) + bias (out). At 512->512: 262,656 + 2,359,296 + 1 + 512 = 2,622,465
  toRGB from c channels: affine (512*c + c) + weight (3*c) + bias (3); at 512: 264,195
  b4: const 512*4*4 = 8,192 + conv 2,622,465 + toRGB 264,195
  b8..b64 (512->512): 2 convs + toRGB = 5,509,125 each, 4 blocks = 22,036,500
  b128 (512->256): 1,442,561 + 721,409 + 132,099; b256 (256->128): 426,369 + 213,249 + 66,051;
  b512 (128->64): 139,457 + 69,761 + 33,027; b1024 (64->32): 51,297 + 25,665 + 16,515
  synthesis total 28,268,812; with the mapping 30,370,060, the total the published PyTorch
  implementation prints for this configuration.

Discriminator = 29,012,513
  b1024: fromRGB 3->32 (96 + 32 = 128), conv 32->32 (9,248), conv-down 32->64 (18,496),
    skip 32->64 no bias (2,048)
  b512: 36,928 + 73,856 + 8,192; b256: 147,584 + 295,168 + 32,768;
  b128: 590,080 + 1,180,160 + 131,072; b64, b32, b16, b8 (512->512):
    2 * 2,359,808 + 262,144 = 4,981,760 each
  epilogue at 4x4: conv 513->512 (2,363,904 + 512 = 2,364,416), dense 8192->512
    (4,194,304 + 512 = 4,194,816), output dense 512->1 (513)
  A figure of 29,011,421 for D has circulated; it is 1,092 below this per-layer sum, while
  the module summary the published PyTorch implementation prints for exactly this
  configuration (FFHQ 1024, c_dim 0, every layer row equal to the figures above) totals
  29,012,513. No layer or combination of biases in the architecture holds 1,092
  parameters, so the analytical and published count stands, and the tests pin it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
from torch import Tensor, nn

from stylegan_trainer.model.ops import (
    DEFAULT_FIR_TAPS,
    Conv2dLayer,
    FullyConnectedLayer,
    bias_act,
    full_precision,
    make_fir_filter,
    modulated_conv2d,
    normalize_2nd_moment,
    upsample2d,
)

NOISE_MODES = ("random", "const", "none")
MP_DTYPES: dict[str, torch.dtype] = {"fp16": torch.float16, "bf16": torch.bfloat16}
MIN_RESOLUTION = 4
MAX_RESOLUTION = 1024
MAPPING_LR_MULTIPLIER = 0.01
W_AVG_BETA = 0.995


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


def count_parameters(module: nn.Module) -> int:
    """Trainable tensors' element count (buffers excluded), as the papers report it."""
    return sum(p.numel() for p in module.parameters())


def _block_dtype(use_mixed: bool, mp_dtype: torch.dtype, param: Tensor) -> torch.dtype:
    # Half precision only pays (and is only safe with the clamps) on CUDA; elsewhere a block
    # computes in its parameters' dtype (float32, or float64 in exactness tests).
    return mp_dtype if use_mixed and param.device.type == "cuda" else param.dtype


# ----------------------------------------------------------------------------- mapping


class MappingNetwork(nn.Module):
    """z (and c) -> w, broadcast to ``num_ws`` style vectors; tracks ``w_avg`` for truncation."""

    w_avg: Tensor  # buffer [w_dim]

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        num_ws: int | None,
        num_layers: int,
        lr_multiplier: float = MAPPING_LR_MULTIPLIER,
        w_avg_beta: float | None = W_AVG_BETA,
    ) -> None:
        super().__init__()
        if z_dim + c_dim == 0:
            raise ValueError("MappingNetwork: z_dim and c_dim cannot both be zero")
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.num_ws = num_ws
        self.w_avg_beta = w_avg_beta
        self.embed = FullyConnectedLayer(c_dim, w_dim) if c_dim > 0 else None
        in_features = z_dim + (w_dim if c_dim > 0 else 0)
        widths = [in_features] + [w_dim] * num_layers
        self.layers = nn.ModuleList(
            FullyConnectedLayer(
                widths[i], widths[i + 1], lr_multiplier=lr_multiplier, activation="lrelu"
            )
            for i in range(num_layers)
        )
        if w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(
        self,
        z: Tensor | None,
        c: Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_w_avg: bool = False,
    ) -> Tensor:
        parts = []
        if self.z_dim > 0:
            if z is None or z.ndim != 2 or z.shape[1] != self.z_dim:
                got = None if z is None else list(z.shape)
                raise ValueError(f"z: expected shape [N, {self.z_dim}], got {got}")
            parts.append(normalize_2nd_moment(full_precision(z)))
        if self.c_dim > 0:
            if c is None or c.ndim != 2 or c.shape[1] != self.c_dim:
                got = None if c is None else list(c.shape)
                raise ValueError(f"c: expected shape [N, {self.c_dim}] (c_dim > 0), got {got}")
            assert self.embed is not None
            parts.append(normalize_2nd_moment(self.embed(full_precision(c))))
        x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        for layer in self.layers:
            x = layer(x)
        if update_w_avg and self.w_avg_beta is not None:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if self.num_ws is None:
            return x
        ws = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            if self.w_avg_beta is None:
                raise ValueError("truncation_psi: this mapping network tracks no w_avg")
            cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
            truncated = self.w_avg.lerp(ws[:, :cutoff], truncation_psi)
            ws = torch.cat([truncated, ws[:, cutoff:]], dim=1)
        return ws


# --------------------------------------------------------------------------- synthesis


class SynthesisLayer(nn.Module):
    """Modulated, demodulated 3x3 conv (optionally 2x up), noise, bias, lrelu, clamp."""

    noise_const: Tensor  # buffer [resolution, resolution], the noise of noise_mode='const'

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        *,
        up: bool = False,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.resolution = resolution
        self.up = up
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.resample_taps = make_fir_filter(DEFAULT_FIR_TAPS)

    def forward(self, x: Tensor, w: Tensor, noise_mode: str = "random") -> Tensor:
        styles = self.affine(w)
        x = modulated_conv2d(
            x, self.weight, styles, demodulate=True, up=self.up, resample_taps=self.resample_taps
        )
        if noise_mode == "random":
            noise = torch.randn(
                x.shape[0], 1, self.resolution, self.resolution, device=x.device, dtype=x.dtype
            )
            x = x + noise * self.noise_strength.to(x.dtype)
        elif noise_mode == "const":
            x = x + (self.noise_const * self.noise_strength).to(x.dtype)
        elif noise_mode != "none":
            raise ValueError(f"noise_mode: expected one of {NOISE_MODES}, got {noise_mode!r}")
        # The clamp bounds the activation's output (after its sqrt(2) gain), as in Conv2dLayer.
        return bias_act(x, self.bias, "lrelu", clamp=self.conv_clamp)


class ToRGBLayer(nn.Module):
    """Modulated 1x1 conv to image channels, without demodulation (its scale is meaningful)."""

    def __init__(
        self, in_channels: int, out_channels: int, w_dim: int, conv_clamp: float | None
    ) -> None:
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        x = modulated_conv2d(x, self.weight, self.affine(w), demodulate=False)
        return bias_act(x, self.bias, "linear", clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution level of the skip generator: (const | conv-up), conv, toRGB."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        *,
        use_mixed: bool,
        mp_dtype: torch.dtype,
        conv_clamp: float | None,
    ) -> None:
        super().__init__()
        self.resolution = resolution
        self.is_first = in_channels == 0
        self.use_mixed = use_mixed
        self.mp_dtype = mp_dtype
        if self.is_first:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
            self.conv0 = None
        else:
            self.conv0 = SynthesisLayer(
                in_channels, out_channels, w_dim, resolution, up=True, conv_clamp=conv_clamp
            )
        self.conv1 = SynthesisLayer(
            out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp
        )
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp)
        self.resample_taps = make_fir_filter(DEFAULT_FIR_TAPS)
        self.num_conv = 1 if self.is_first else 2
        self.num_torgb = 1

    def forward(
        self, x: Tensor | None, img: Tensor | None, ws: Tensor, noise_mode: str
    ) -> tuple[Tensor, Tensor]:
        dtype = _block_dtype(self.use_mixed, self.mp_dtype, self.conv1.weight)
        w_iter = iter(ws.unbind(dim=1))
        if self.is_first:
            x = self.const.to(dtype).unsqueeze(0).repeat(ws.shape[0], 1, 1, 1)
        else:
            assert x is not None and self.conv0 is not None
            x = self.conv0(x.to(dtype), next(w_iter), noise_mode)
        x = self.conv1(x, next(w_iter), noise_mode)
        if img is not None:
            img = upsample2d(img, self.resample_taps)
        y = self.torgb(x, next(w_iter)).to(ws.dtype)
        img = y if img is None else img + y
        return x, img


class SynthesisNetwork(nn.Module):
    """ws [N, num_ws, w_dim] -> image [N, img_channels, res, res], about [-1, 1]."""

    def __init__(self, cfg: NetworkConfig) -> None:
        super().__init__()
        self.w_dim = cfg.w_dim
        self.img_resolution = cfg.resolution
        self.img_channels = cfg.img_channels
        self.block_resolutions = [2**i for i in range(2, cfg.resolution_log2 + 1)]
        mp_dtype = MP_DTYPES[cfg.mp_dtype]
        self.num_ws = 0
        for res in self.block_resolutions:
            block = SynthesisBlock(
                cfg.channels_at(res // 2) if res > 4 else 0,
                cfg.channels_at(res),
                cfg.w_dim,
                res,
                cfg.img_channels,
                use_mixed=res >= cfg.fp16_resolution,
                mp_dtype=mp_dtype,
                conv_clamp=cfg.conv_clamp,
            )
            setattr(self, f"b{res}", block)  # state_dict keys like synthesis.b64.conv0.weight
            self.num_ws += block.num_conv
        self.num_ws += 1  # the last toRGB has its own style; the others share the next conv's
        assert self.num_ws == cfg.num_ws

    def forward(self, ws: Tensor, noise_mode: str = "random") -> Tensor:
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(
                f"ws: expected shape [N, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}"
            )
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode: expected one of {NOISE_MODES}, got {noise_mode!r}")
        ws = full_precision(ws)
        x: Tensor | None = None
        img: Tensor | None = None
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            # A block's toRGB style is the next block's first conv style (the paper's layout).
            block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            x, img = block(x, img, block_ws, noise_mode)
            w_idx += block.num_conv
        assert img is not None
        return img


class Generator(nn.Module):
    """G = synthesis(mapping(z, c)); see the module docstring."""

    def __init__(self, cfg: NetworkConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.z_dim = cfg.z_dim
        self.w_dim = cfg.w_dim
        self.c_dim = cfg.c_dim
        self.img_resolution = cfg.resolution
        self.img_channels = cfg.img_channels
        self.synthesis = SynthesisNetwork(cfg)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(
            cfg.z_dim, cfg.c_dim, cfg.w_dim, self.num_ws, cfg.mapping_layers
        )

    def forward(
        self,
        z: Tensor,
        c: Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "random",
        *,
        style_mixing_prob: float = 0.0,
        update_w_avg: bool = False,
        return_ws: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Generate images. The keyword-only extras serve training (through DDP, which only
        wraps ``forward``): style mixing regularisation, the ``w_avg`` update, and returning
        the ws the path-length penalty differentiates against."""
        ws = self.mapping(z, c, truncation_psi, truncation_cutoff, update_w_avg=update_w_avg)
        if style_mixing_prob > 0:
            ws = self._mix_styles(ws, z, c, style_mixing_prob, truncation_psi, truncation_cutoff)
        img = self.synthesis(ws, noise_mode=noise_mode)
        return (img, ws) if return_ws else img

    def _mix_styles(
        self, ws: Tensor, z: Tensor, c: Tensor | None, prob: float, psi: float, cutoff: int | None
    ) -> Tensor:
        """With probability ``prob`` switch the whole batch, from a random layer on, to the
        styles of fresh latents (the paper's mixing regularisation, one crossover a batch)."""
        if torch.rand([]).item() >= prob or self.num_ws < 2:
            return ws
        crossover = int(torch.randint(1, self.num_ws, []).item())
        other = self.mapping(torch.randn_like(z), c, psi, cutoff, update_w_avg=False)
        return torch.cat([ws[:, :crossover], other[:, crossover:]], dim=1)


# ----------------------------------------------------------------------- discriminator


class DiscriminatorBlock(nn.Module):
    """Residual block: [fromRGB], conv, conv-down; skip = 1x1 conv-down; sum / sqrt(2)."""

    def __init__(
        self,
        in_channels: int,
        tmp_channels: int,
        out_channels: int,
        img_channels: int,
        *,
        use_mixed: bool,
        mp_dtype: torch.dtype,
        conv_clamp: float | None,
    ) -> None:
        super().__init__()
        self.use_mixed = use_mixed
        self.mp_dtype = mp_dtype
        self.fromrgb = (
            Conv2dLayer(img_channels, tmp_channels, 1, activation="lrelu", conv_clamp=conv_clamp)
            if in_channels == 0
            else None
        )
        self.conv0 = Conv2dLayer(
            tmp_channels, tmp_channels, 3, activation="lrelu", conv_clamp=conv_clamp
        )
        half = math.sqrt(0.5)
        self.conv1 = Conv2dLayer(
            tmp_channels,
            out_channels,
            3,
            activation="lrelu",
            down=True,
            gain=half,
            conv_clamp=conv_clamp,
        )
        self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, down=True, gain=half)

    def forward(self, x: Tensor | None, img: Tensor) -> Tensor:
        dtype = _block_dtype(self.use_mixed, self.mp_dtype, self.conv0.weight)
        if self.fromrgb is not None:
            x = self.fromrgb(img.to(dtype))
        assert x is not None
        x = x.to(dtype)
        y = self.skip(x)
        x = self.conv1(self.conv0(x))
        return y + x


class MinibatchStdLayer(nn.Module):
    """Append the mean standard deviation over groups of samples as extra feature maps."""

    def __init__(self, group_size: int, num_channels: int = 1) -> None:
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        # A group must divide the batch; the gcd keeps odd last batches (and small per-GPU
        # batches) working instead of failing, at the price of smaller groups for them.
        g = math.gcd(self.group_size, n)
        f = self.num_channels
        if f == 0:
            return x
        if c % f != 0:
            raise ValueError(f"mbstd_channels: {f} must divide the feature channels ({c})")
        y = full_precision(x).reshape(
            g, n // g, f, c // f, h, w
        )  # sample i sits in group i % (n//g)
        y = (y - y.mean(dim=0)).square().mean(dim=0)
        y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4])  # [n//g, f]
        y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w).to(x.dtype)
        return torch.cat([x, y], dim=1)


class DiscriminatorEpilogue(nn.Module):
    """4x4 head: minibatch-std, conv, dense, output dense (or the label projection)."""

    def __init__(
        self,
        in_channels: int,
        cmap_dim: int,
        mbstd_group: int,
        mbstd_channels: int,
        conv_clamp: float | None,
        resolution: int = 4,
    ) -> None:
        super().__init__()
        self.cmap_dim = cmap_dim
        self.mbstd = MinibatchStdLayer(mbstd_group, mbstd_channels)
        self.conv = Conv2dLayer(
            in_channels + mbstd_channels, in_channels, 3, activation="lrelu", conv_clamp=conv_clamp
        )
        self.fc = FullyConnectedLayer(in_channels * resolution**2, in_channels, activation="lrelu")
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x: Tensor, cmap: Tensor | None) -> Tensor:
        x = full_precision(x)  # the head is small; keep it in full precision
        x = self.conv(self.mbstd(x))
        x = self.out(self.fc(x.flatten(1)))
        if cmap is not None:
            # Projection discriminator: score = <features, embedded label> / sqrt(dim).
            x = (x * cmap).sum(dim=1, keepdim=True) / math.sqrt(self.cmap_dim)
        return x


class Discriminator(nn.Module):
    """D(img, c) -> real/fake logits [N, 1]."""

    def __init__(self, cfg: NetworkConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.c_dim = cfg.c_dim
        self.img_resolution = cfg.resolution
        self.img_channels = cfg.img_channels
        mp_dtype = MP_DTYPES[cfg.mp_dtype]
        self.block_resolutions = [2**i for i in range(cfg.resolution_log2, 2, -1)]
        for res in self.block_resolutions:
            block = DiscriminatorBlock(
                0 if res == cfg.resolution else cfg.channels_at(res),
                cfg.channels_at(res),
                cfg.channels_at(res // 2),
                cfg.img_channels,
                use_mixed=res >= cfg.fp16_resolution,
                mp_dtype=mp_dtype,
                conv_clamp=cfg.conv_clamp,
            )
            setattr(self, f"b{res}", block)  # state_dict keys like b64.conv0.weight
        cmap_dim = cfg.channels_at(4) if cfg.c_dim > 0 else 0
        self.mapping = (
            MappingNetwork(
                0, cfg.c_dim, cmap_dim, num_ws=None, num_layers=cfg.mapping_layers, w_avg_beta=None
            )
            if cfg.c_dim > 0
            else None
        )
        self.top_fromrgb = (
            Conv2dLayer(
                cfg.img_channels,
                cfg.channels_at(4),
                1,
                activation="lrelu",
                conv_clamp=cfg.conv_clamp,
            )
            if not self.block_resolutions  # a 4x4 D has no block to read the image
            else None
        )
        self.b4 = DiscriminatorEpilogue(
            cfg.channels_at(4), cmap_dim, cfg.mbstd_group, cfg.mbstd_channels, cfg.conv_clamp
        )

    def forward(self, img: Tensor, c: Tensor | None = None) -> Tensor:
        expected = (self.img_channels, self.img_resolution, self.img_resolution)
        if img.ndim != 4 or tuple(img.shape[1:]) != expected:
            raise ValueError(
                f"img: expected shape [N, {', '.join(map(str, expected))}], got {list(img.shape)}"
            )
        x: Tensor | None = None
        for res in self.block_resolutions:
            x = getattr(self, f"b{res}")(x, img)
        if self.top_fromrgb is not None:
            x = self.top_fromrgb(full_precision(img))
        assert x is not None
        cmap = self.mapping(None, c) if self.mapping is not None else None
        return self.b4(x, cmap)


def build_networks(cfg: NetworkConfig) -> tuple[Generator, Discriminator]:
    """A fresh (G, D) pair for ``cfg``; the caller seeds torch beforehand for reproducibility."""
    return Generator(cfg), Discriminator(cfg)
