"""The StyleGAN2 generator (config F), written from the paper: synthesis network and G.

Karras et al., "Analyzing and Improving the Image Quality of StyleGAN" (arXiv:1912.04958):

* Mapping: see :mod:`stylegan_trainer.model.mapping`.
* Synthesis: a learned 4x4 constant, then per resolution a 2x up-sampling modulated 3x3 conv
  and a modulated 3x3 conv, each with weight demodulation, per-pixel noise with a learned
  strength, bias and lrelu; the "skip" output: a modulated (not demodulated) 1x1 toRGB at
  every resolution, summed into an image that is FIR-up-sampled from level to level.

Channels and mixed precision follow :class:`~stylegan_trainer.model.config.NetworkConfig`.

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
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from stylegan_trainer.model.config import MP_DTYPES, NetworkConfig, _block_dtype
from stylegan_trainer.model.mapping import MappingNetwork
from stylegan_trainer.model.ops import (
    DEFAULT_FIR_TAPS,
    FullyConnectedLayer,
    bias_act,
    full_precision,
    make_fir_filter,
    modulated_conv2d,
    upsample2d,
)

NOISE_MODES = ("random", "const", "none")


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
