"""Adaptive discriminator augmentation (ADA): the differentiable 'bgc' pipeline and the
controller that tunes its probability ``p``.

Karras et al., "Training Generative Adversarial Networks with Limited Data"
(arXiv:2006.06676). Every transformation is applied to each image independently with
probability ``p`` (the pre- and post-rotation each with ``1 - sqrt(1 - p)``, so that at least
one happens with probability ``p``), to reals and fakes alike, before D. Because the pipeline
is differentiable, G learns through it, and because each transform is applied with
``p < 1`` (below about 0.8), the augmentations do not leak into the generated images.

'bgc' = blit (x-flip, 90-degree rotations, integer translation) + general geometric (isotropic
scale, arbitrary rotation, anisotropic scale, fractional translation) + colour (brightness,
contrast, luma flip, hue rotation, saturation). Geometry is one composed affine map per image,
applied with ``grid_sample`` (bilinear, reflection padding); colour is one composed 4x4 matrix
on homogeneous RGB. Only stock torch ops are used.

As the paper's pipeline does, the general (non-integer) warp runs at twice the resolution: the
image, reflect-padded, is upsampled 2x through the ``sym6`` wavelet's low-pass filter, warped,
and low-passed and decimated back with the same filter, so rotations and fractional shifts
do not alias (bilinear sampling at the image's own rate does, and D learns to see it). When
only the integer ops (x-flip, 90-degree rotations, integer translation) are on, the warp is
exact at the image's own rate instead, as is every warp with ``supersample=False`` (the
``cpu`` preset's choice: its demo recipe was tuned without it, and at 64 px the 2x pass costs
a CPU about 80 ms a batch of 16). The sym6 coefficients are the published wavelet's
(``dec_lo``, normalised to a unit sum); the pads keep an identity warp unshifted.

The ADA heuristic: ``r_t = E[sign(D(real))]``; every ``interval`` steps
``p += sign(r_t - target) * batch * interval / (kimg * 1000)``, clamped to [0, 1], so p can
go from 0 to 1 within ``kimg`` thousand images.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylegan_trainer.model.ops import upfirdn2d

# The sym6 wavelet's low-pass decomposition filter, normalised to a unit sum (DC gain 1).
_SYM6 = (0.015404109327027373, 0.0034907120842174702, -0.11799011114819057,
         -0.048311742585633, 0.4910559419267466, 0.787641141030194, 0.3379294217276218,
         -0.07263752278646252, -0.021060292512300564, 0.04472490177066578,
         0.0017677118642428036, -0.007800708325034148)
SYM6_TAPS = tuple(t / sum(_SYM6) for t in _SYM6)
# Reflect padding (input pixels) that keeps the filters' tails inside real image content, and
# the up/down pads that keep an identity warp aligned (tests/unit/trainer/test_augment.py).
SUPERSAMPLE_MARGIN = 4
SUPERSAMPLE_UP_PAD = (4, 3)
SUPERSAMPLE_DOWN_PAD = (8, 6)

# Default strengths of the ADA paper (Appendix B).
XINT_MAX = 0.125
SCALE_STD = 0.2
ROTATE_MAX = 1.0
ANISO_STD = 0.2
XFRAC_STD = 0.125
BRIGHTNESS_STD = 0.2
CONTRAST_STD = 0.5
HUE_MAX = 1.0
SATURATION_STD = 1.0


def _eye(n: int, batch: int, device: torch.device) -> Tensor:
    return torch.eye(n, device=device).unsqueeze(0).repeat(batch, 1, 1)


def _gate(values: Tensor, prob: float | Tensor, neutral: float) -> Tensor:
    """Keep each sample's random value with probability ``prob``, else the neutral value."""
    keep = torch.rand(values.shape[0], device=values.device) < prob
    return torch.where(
        keep.reshape([-1] + [1] * (values.ndim - 1)), values, torch.full_like(values, neutral)
    )


def _translate2d(tx: Tensor, ty: Tensor) -> Tensor:
    m = _eye(3, tx.shape[0], tx.device)
    m[:, 0, 2] = tx
    m[:, 1, 2] = ty
    return m


def _scale2d(sx: Tensor, sy: Tensor) -> Tensor:
    m = _eye(3, sx.shape[0], sx.device)
    m[:, 0, 0] = sx
    m[:, 1, 1] = sy
    return m


def _rotate2d(theta: Tensor) -> Tensor:
    m = _eye(3, theta.shape[0], theta.device)
    cos, sin = torch.cos(theta), torch.sin(theta)
    m[:, 0, 0], m[:, 0, 1] = cos, -sin
    m[:, 1, 0], m[:, 1, 1] = sin, cos
    return m


def _translate3d(t: Tensor) -> Tensor:
    m = _eye(4, t.shape[0], t.device)
    m[:, :3, 3] = t.unsqueeze(1)
    return m


def _scale3d(s: Tensor) -> Tensor:
    m = _eye(4, s.shape[0], s.device)
    m[:, 0, 0] = m[:, 1, 1] = m[:, 2, 2] = s
    return m


def _rotate3d(axis: Tensor, theta: Tensor) -> Tensor:
    """Rodrigues' rotation about the unit ``axis`` [3] by ``theta`` [N], as 4x4 matrices."""
    ax = axis.reshape(1, 3)
    k = torch.zeros(3, 3, device=theta.device)
    k[0, 1], k[0, 2] = -ax[0, 2], ax[0, 1]
    k[1, 0], k[1, 2] = ax[0, 2], -ax[0, 0]
    k[2, 0], k[2, 1] = -ax[0, 1], ax[0, 0]
    eye3 = torch.eye(3, device=theta.device)
    sin = torch.sin(theta).reshape(-1, 1, 1)
    cos = torch.cos(theta).reshape(-1, 1, 1)
    r = eye3 + sin * k + (1 - cos) * (k @ k)
    m = _eye(4, theta.shape[0], theta.device)
    m[:, :3, :3] = r
    return m


class AugmentPipe(nn.Module):
    """The ADA 'bgc' pipeline. ``p`` (a buffer, so it is checkpointed and broadcast) is the
    per-transform probability; at ``p == 0`` the images come back unchanged (the same
    tensor). Each flag is a multiplier on ``p`` for that transform (0 disables it)."""

    p: Tensor  # buffer, scalar
    luma_axis: Tensor  # buffer [3]

    def __init__(
        self,
        xflip: float = 1,
        rotate90: float = 1,
        xint: float = 1,
        scale: float = 1,
        rotate: float = 1,
        aniso: float = 1,
        xfrac: float = 1,
        brightness: float = 1,
        contrast: float = 1,
        lumaflip: float = 1,
        hue: float = 1,
        saturation: float = 1,
        *,
        xint_max: float = XINT_MAX,
        scale_std: float = SCALE_STD,
        rotate_max: float = ROTATE_MAX,
        aniso_std: float = ANISO_STD,
        xfrac_std: float = XFRAC_STD,
        brightness_std: float = BRIGHTNESS_STD,
        contrast_std: float = CONTRAST_STD,
        hue_max: float = HUE_MAX,
        saturation_std: float = SATURATION_STD,
        supersample: bool = True,
    ) -> None:
        super().__init__()
        self.register_buffer("p", torch.zeros([]))
        self.supersample = bool(supersample)  # the general warp at 2x (module doc)
        self.xflip, self.rotate90, self.xint = float(xflip), float(rotate90), float(xint)
        self.scale, self.rotate, self.aniso, self.xfrac = (
            float(scale),
            float(rotate),
            float(aniso),
            float(xfrac),
        )
        self.brightness, self.contrast, self.lumaflip = (
            float(brightness),
            float(contrast),
            float(lumaflip),
        )
        self.hue, self.saturation = float(hue), float(saturation)
        self.xint_max, self.scale_std, self.rotate_max = xint_max, scale_std, rotate_max
        self.aniso_std, self.xfrac_std = aniso_std, xfrac_std
        self.brightness_std, self.contrast_std = brightness_std, contrast_std
        self.hue_max, self.saturation_std = hue_max, saturation_std
        # Unit luma axis in RGB: lumaflip, hue and saturation act around it.
        self.register_buffer("luma_axis", torch.full([3], 1 / math.sqrt(3)), persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        if images.ndim != 4:
            raise ValueError(f"images: expected [N, C, H, W], got {list(images.shape)}")
        p = float(self.p)
        if p <= 0:
            return images
        geometric, general = self._geometric_matrix(images, p)
        if geometric is not None:
            warp = self._supersampled_warp if general and self.supersample else self._warp
            images = warp(images, geometric)
        color = self._color_matrix(images, p)
        if color is not None:
            images = self._apply_color(images, color)
        return images

    # -- geometry ----------------------------------------------------------------------

    def _geometric_matrix(self, images: Tensor, p: float) -> tuple[Tensor | None, bool]:
        """Per-image 3x3 map from output pixel coordinates (centred, in pixels) to input
        coordinates, and whether a general (non-integer) op is on. Every distribution is
        symmetric, so sampling the map directly is the same as sampling the forward
        transform and inverting it."""
        n, _, h, w = images.shape
        dev = images.device
        m = _eye(3, n, dev)
        touched = False
        if self.xflip > 0:
            flip = _gate(torch.randint(0, 2, [n], device=dev).float(), p * self.xflip, 0.0)
            m = m @ _scale2d(1 - 2 * flip, torch.ones(n, device=dev))
            touched = True
        if self.rotate90 > 0:
            quarter = _gate(torch.randint(0, 4, [n], device=dev).float(), p * self.rotate90, 0.0)
            m = m @ _rotate2d(-math.pi / 2 * quarter)
            touched = True
        if self.xint > 0:
            t = _gate((torch.rand(n, 2, device=dev) * 2 - 1) * self.xint_max, p * self.xint, 0.0)
            m = m @ _translate2d(torch.round(t[:, 0] * w), torch.round(t[:, 1] * h))
            touched = True
        integer_only = True
        if self.scale > 0:
            s = _gate(torch.exp2(torch.randn(n, device=dev) * self.scale_std), p * self.scale, 1.0)
            m = m @ _scale2d(s, s)
            touched, integer_only = True, False
        p_rot = 1 - math.sqrt(max(1 - min(p * self.rotate, 1.0), 0.0))
        if self.rotate > 0:
            theta = _gate(
                (torch.rand(n, device=dev) * 2 - 1) * math.pi * self.rotate_max, p_rot, 0.0
            )
            m = m @ _rotate2d(-theta)
            touched, integer_only = True, False
        if self.aniso > 0:
            s = _gate(torch.exp2(torch.randn(n, device=dev) * self.aniso_std), p * self.aniso, 1.0)
            m = m @ _scale2d(s, 1 / s)
            touched, integer_only = True, False
        if self.rotate > 0:
            theta = _gate(
                (torch.rand(n, device=dev) * 2 - 1) * math.pi * self.rotate_max, p_rot, 0.0
            )
            m = m @ _rotate2d(-theta)
        if self.xfrac > 0:
            t = _gate(torch.randn(n, 2, device=dev) * self.xfrac_std, p * self.xfrac, 0.0)
            m = m @ _translate2d(t[:, 0] * w, t[:, 1] * h)
            touched, integer_only = True, False
        return (m if touched else None), not integer_only

    @classmethod
    def _supersampled_warp(cls, images: Tensor, m: Tensor) -> Tensor:
        """:meth:`_warp` at twice the resolution, between sym6 up- and downsampling."""
        pad = SUPERSAMPLE_MARGIN
        h, w = images.shape[-2:]
        x = F.pad(images, [pad] * 4, mode="reflect")
        x = upfirdn2d(x, SYM6_TAPS, up=2, pad=SUPERSAMPLE_UP_PAD, gain=4.0)
        # m works in centred pixel units; _warp turns it into the grid's [-1, 1] units with
        # the size it is given, so the same m at twice the pixels needs its shifts doubled.
        m2 = m.clone()
        m2[:, :2, 2] *= 2
        x = cls._warp(x, m2)
        x = upfirdn2d(x, SYM6_TAPS, down=2, pad=SUPERSAMPLE_DOWN_PAD)
        return x[..., pad:pad + h, pad:pad + w]

    @staticmethod
    def _warp(images: Tensor, m: Tensor) -> Tensor:
        """Resample ``images`` through the pixel-space map ``m`` (bilinear, reflection)."""
        n, _, h, w = images.shape
        # Pixel coordinates centred on the image -> grid_sample's [-1, 1] (align_corners=False):
        # theta = S m S^-1 with S = diag(2/w, 2/h, 1), written out to avoid building S.
        theta = m[:, :2, :].clone()
        theta[:, 0, 1] *= h / w
        theta[:, 1, 0] *= w / h
        theta[:, 0, 2] *= 2 / w
        theta[:, 1, 2] *= 2 / h
        grid = F.affine_grid(
            theta.to(images.dtype), [n, images.shape[1], h, w], align_corners=False
        )
        return F.grid_sample(
            images, grid, mode="bilinear", padding_mode="reflection", align_corners=False
        )

    # -- colour ------------------------------------------------------------------------

    def _color_matrix(self, images: Tensor, p: float) -> Tensor | None:
        n = images.shape[0]
        dev = images.device
        c = _eye(4, n, dev)
        touched = False
        v = self.luma_axis
        vv = torch.outer(v, v)
        if self.brightness > 0:
            b = _gate(torch.randn(n, device=dev) * self.brightness_std, p * self.brightness, 0.0)
            c = _translate3d(b) @ c
            touched = True
        if self.contrast > 0:
            s = _gate(
                torch.exp2(torch.randn(n, device=dev) * self.contrast_std), p * self.contrast, 1.0
            )
            c = _scale3d(s) @ c
            touched = True
        if self.lumaflip > 0:
            flip = _gate(torch.randint(0, 2, [n], device=dev).float(), p * self.lumaflip, 0.0)
            householder = _eye(4, n, dev)
            householder[:, :3, :3] -= 2 * vv * flip.reshape(-1, 1, 1)
            c = householder @ c
            touched = True
        if self.hue > 0 and images.shape[1] > 1:
            theta = _gate(
                (torch.rand(n, device=dev) * 2 - 1) * math.pi * self.hue_max, p * self.hue, 0.0
            )
            c = _rotate3d(v, theta) @ c
            touched = True
        if self.saturation > 0 and images.shape[1] > 1:
            s = _gate(
                torch.exp2(torch.randn(n, device=dev) * self.saturation_std),
                p * self.saturation,
                1.0,
            )
            sat = _eye(4, n, dev)
            sat[:, :3, :3] = vv + (torch.eye(3, device=dev) - vv) * s.reshape(-1, 1, 1)
            c = sat @ c
            touched = True
        return c if touched else None

    @staticmethod
    def _apply_color(images: Tensor, c: Tensor) -> Tensor:
        n, ch, h, w = images.shape
        flat = images.reshape(n, ch, h * w)
        c = c.to(images.dtype)
        if ch == 3:
            out = c[:, :3, :3] @ flat + c[:, :3, 3:]
        elif ch == 1:
            # Grey images: the matrix's average effect on a grey (r = g = b) pixel.
            gain = c[:, :3, :3].sum(dim=2).mean(dim=1).reshape(n, 1, 1)
            out = flat * gain + c[:, :3, 3:].mean(dim=1, keepdim=True)
        else:
            raise ValueError(f"images: colour augmentation needs 1 or 3 channels, got {ch}")
        return out.reshape(n, ch, h, w)


class AdaController:
    """Moves ``pipe.p`` toward the point where E[sign(D(real))] equals ``target``."""

    def __init__(self, target: float = 0.6, interval: int = 4, kimg: float = 500) -> None:
        if not 0 < target < 1:
            raise ValueError(f"target: expected a value in (0, 1), got {target!r}")
        if interval < 1:
            raise ValueError(f"interval: expected a positive number of steps, got {interval!r}")
        if not kimg > 0:
            raise ValueError(f"kimg: expected a positive number, got {kimg!r}")
        self.target = float(target)
        self.interval = int(interval)
        self.kimg = float(kimg)
        self.num_updates = 0
        self.last_sign: float | None = None

    def step_size(self, batch_size: int) -> float:
        """How far p moves per update: ``batch * interval / (kimg * 1000)``."""
        return batch_size * self.interval / (self.kimg * 1000)

    def update(self, pipe: AugmentPipe, mean_sign_real: float, batch_size: int) -> float:
        """Call once every ``interval`` steps with the mean sign of D(real) over them
        and the global batch size; returns the new p (also written into ``pipe.p``)."""
        if not math.isfinite(mean_sign_real):
            return float(pipe.p)
        direction = (
            math.copysign(1.0, mean_sign_real - self.target)
            if mean_sign_real != self.target
            else 0.0
        )
        new_p = min(max(float(pipe.p) + direction * self.step_size(batch_size), 0.0), 1.0)
        with torch.no_grad():
            pipe.p.fill_(new_p)
        self.num_updates += 1
        self.last_sign = float(mean_sign_real)
        return new_p

    def state_dict(self) -> dict:
        return {
            "target": self.target,
            "interval": self.interval,
            "kimg": self.kimg,
            "num_updates": self.num_updates,
            "last_sign": self.last_sign,
        }

    def load_state_dict(self, state: dict) -> None:
        missing = {"target", "interval", "kimg"} - set(state)
        if missing:
            raise ValueError(f"AdaController state: missing {sorted(missing)}")
        self.target = float(state["target"])
        self.interval = int(state["interval"])
        self.kimg = float(state["kimg"])
        self.num_updates = int(state.get("num_updates", 0))
        last = state.get("last_sign")
        self.last_sign = None if last is None else float(last)
