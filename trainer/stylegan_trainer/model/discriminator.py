"""The StyleGAN2 discriminator (config F), written from the paper.

Karras et al., "Analyzing and Improving the Image Quality of StyleGAN" (arXiv:1912.04958):
"resnet": fromRGB at the top resolution only, residual blocks (conv, conv down, and a 1x1
down-sampled skip, summed and scaled by 1/sqrt(2)), then the epilogue at 4x4: minibatch
standard deviation, conv, dense, output dense. A conditional D maps the label through a
:class:`~stylegan_trainer.model.mapping.MappingNetwork` and projects onto it.

Channels and mixed precision follow :class:`~stylegan_trainer.model.config.NetworkConfig`.

Parameter count of config F at 1024x1024, z = w = 512, c_dim = 0
(``sum(p.numel() for p in net.parameters())``; the FIR taps are plain constants and do not
count):

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

import torch
from torch import Tensor, nn

from stylegan_trainer.model.config import MP_DTYPES, NetworkConfig, _block_dtype
from stylegan_trainer.model.mapping import MappingNetwork
from stylegan_trainer.model.ops import Conv2dLayer, FullyConnectedLayer, full_precision


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
