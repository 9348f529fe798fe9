"""Low-level StyleGAN2 operations in plain PyTorch: FIR resampling, modulated convolution,
bias + activation, and the equalised-learning-rate layers every network block is made of.

Everything here is written from the StyleGAN2 paper (Karras et al. 2020, arXiv:1912.04958)
and uses only stock torch ops, so the same code runs on CPU and CUDA without compiling
anything. Conventions:

* Images and feature maps are NCHW. Pixel ``i`` of an ``H``-pixel axis covers the continuous
  interval ``[i, i+1)``, so its centre sits at ``i + 0.5``. The FIR paddings below are chosen
  so that up- and down-sampling keep those centres aligned (no half-pixel drift per level).
* Equalised learning rate: trainable weights are stored with unit variance (divided by the
  layer's learning-rate multiplier) and scaled at run time by ``lr_multiplier / sqrt(fan_in)``,
  so Adam sees every layer at the same dynamic range (the paper's "equalized learning rate").
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LRELU_SLOPE = 0.2
ACTIVATION_GAINS: dict[str, float] = {"linear": 1.0, "lrelu": math.sqrt(2.0)}
DEFAULT_FIR_TAPS: tuple[int, ...] = (1, 3, 3, 1)
DEMODULATION_EPS = 1e-8


def full_precision(x: Tensor) -> Tensor:
    """``x`` in float32, unless it already is float32 or float64 (kept for exact tests)."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def normalize_2nd_moment(x: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """Scale ``x`` so that its mean square along ``dim`` is one (the mapping net's input norm)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def make_fir_filter(taps: Sequence[float] = DEFAULT_FIR_TAPS) -> tuple[float, ...]:
    """The 1-D taps of the separable low-pass filter, normalised to sum to one.

    The 2-D filter is ``outer(taps, taps)``; it is applied as one pass per axis, which costs
    ``2 * len(taps)`` instead of ``len(taps)**2`` multiply-adds a pixel. The taps are kept as
    Python floats, so applying them never synchronises with the GPU.
    """
    values = [float(t) for t in taps]
    total = sum(values)
    if not values or total == 0:
        raise ValueError(f"taps: expected a non-empty sequence with a non-zero sum, got {taps!r}")
    return tuple(t / total for t in values)


def bias_act(
    x: Tensor,
    bias: Tensor | None = None,
    activation: str = "linear",
    gain: float = 1.0,
    clamp: float | None = None,
) -> Tensor:
    """Add a per-channel bias, apply the activation and its variance-preserving gain, clamp.

    ``lrelu`` carries a gain of sqrt(2) so a unit-variance input leaves with about unit
    variance. ``clamp`` bounds the result to ``[-clamp, clamp]`` (the fp16 overflow guard).
    """
    if activation not in ACTIVATION_GAINS:
        raise ValueError(
            f"activation: expected one of {sorted(ACTIVATION_GAINS)}, got {activation!r}"
        )
    if bias is not None:
        x = x + bias.to(x.dtype).reshape([1, -1] + [1] * (x.ndim - 2))
    if activation == "lrelu":
        x = F.leaky_relu(x, LRELU_SLOPE)
    total_gain = ACTIVATION_GAINS[activation] * gain
    if total_gain != 1.0:
        x = x * total_gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


# Up to this many pixels a side, FIR resampling runs as two small matrix products (one
# per axis); above it, as a grouped convolution. On a CPU the matrix form is 2-4x faster at
# the sizes the small presets use (and much faster to differentiate twice); at high
# resolution its O(size) cost per pixel loses to the convolution's O(taps).
MATMUL_FIR_MAX_SIZE = 64


def _resample_matrix(
    size: int, taps: tuple[float, ...], up: int, pad: tuple[int, int], stride: int, gain: float
) -> Tensor:
    """The [out, size] matrix of one axis of: zero-stuff by ``up``, zero-pad by ``pad``,
    convolve with ``taps`` (times ``gain``), keep every ``stride``-th sample."""
    k = len(taps)
    stuffed = size * up
    out = (stuffed + pad[0] + pad[1] - k) // stride + 1
    m = torch.zeros(out, size)
    for o in range(out):
        for t, tap in enumerate(reversed(taps)):  # reversed: a true convolution
            j = o * stride + t - pad[0]  # index in the zero-stuffed signal
            if 0 <= j < stuffed and j % up == 0:
                m[o, j // up] += tap * gain
    return m


_MATRIX_CACHE: dict[tuple, Tensor] = {}


def _cached_matrix(
    size: int,
    taps: tuple[float, ...],
    up: int,
    pad: tuple[int, int],
    stride: int,
    gain: float,
    like: Tensor,
) -> Tensor:
    key = (size, taps, up, pad, stride, gain, like.device, like.dtype)
    m = _MATRIX_CACHE.get(key)  # a handful of entries: one per size, op, device and dtype
    if m is None:
        m = _resample_matrix(size, taps, up, pad, stride, gain).to(
            device=like.device, dtype=like.dtype
        )
        _MATRIX_CACHE[key] = m
    return m


def _cached_kernel(taps: tuple[float, ...], gain: float, channels: int, like: Tensor) -> Tensor:
    """The depthwise [channels, 1, k, k] kernel of ``outer(taps, taps) * gain``, built once
    per device and dtype (no host-to-device copy per call)."""
    key = ("kernel", taps, gain, channels, like.device, like.dtype)
    kernel = _MATRIX_CACHE.get(key)
    if kernel is None:
        f = torch.tensor(taps, dtype=torch.float64).flip(0)  # conv2d correlates
        kernel = (torch.outer(f, f) * gain)[None, None].repeat(channels, 1, 1, 1)
        kernel = kernel.to(device=like.device, dtype=like.dtype)
        _MATRIX_CACHE[key] = kernel
    return kernel


def _zero_stuff(x: Tensor) -> Tensor:
    """[N, C, H, W] -> [N, C, 2H, 2W] with the input at even positions and zeros elsewhere."""
    n, c, h, w = x.shape
    x = x.reshape(n, c, h, 1, w, 1)
    return F.pad(x, [0, 1, 0, 0, 0, 1]).reshape(n, c, 2 * h, 2 * w)


def upfirdn2d(
    x: Tensor,
    taps: Sequence[float],
    *,
    up: int = 1,
    down: int = 1,
    pad: tuple[int, int] = (0, 0),
    gain: float = 1.0,
) -> Tensor:
    """Zero-stuff by ``up``, zero-pad each side by ``pad``, convolve every channel with the
    separable filter ``outer(taps, taps) * gain``, keep every ``down``-th pixel."""
    if up not in (1, 2) or down not in (1, 2):
        raise ValueError(f"upfirdn2d: up and down must be 1 or 2, got up={up}, down={down}")
    taps = tuple(float(t) for t in taps)
    h, w = x.shape[-2:]
    if max(h, w) <= MATMUL_FIR_MAX_SIZE:
        axis_gain = math.sqrt(gain)  # each axis carries half of the gain (in log)
        mh = _cached_matrix(h, taps, up, pad, down, axis_gain, x)
        mw = mh if w == h else _cached_matrix(w, taps, up, pad, down, axis_gain, x)
        return mh @ (x @ mw.t())
    if up == 2:
        x = _zero_stuff(x)
    channels = x.shape[1]
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    return F.conv2d(x, _cached_kernel(taps, gain, channels, x), stride=down, groups=channels)


def upsample2d(x: Tensor, taps: Sequence[float]) -> Tensor:
    """Double the spatial size: insert zeros between pixels, then low-pass with the filter.

    The gain of 4 restores the mean lost to the inserted zeros. With 4 taps the padding
    (2, 1) puts output pixel ``n`` at input coordinate ``(n + 0.5) / 2``.
    """
    k = len(taps)
    return upfirdn2d(x, taps, up=2, pad=((k + 1) // 2, (k - 2) // 2), gain=4.0)


def downsample2d(x: Tensor, taps: Sequence[float]) -> Tensor:
    """Halve the spatial size: low-pass with the filter and keep every second pixel."""
    k = len(taps)
    return upfirdn2d(x, taps, down=2, pad=((k - 2) // 2, (k - 2) // 2))


def conv2d_resample(
    x: Tensor,
    weight: Tensor,
    taps: Sequence[float] | None = None,
    up: bool = False,
    down: bool = False,
) -> Tensor:
    """A 'same' convolution, optionally fused with 2x FIR up- or down-sampling.

    * up: a stride-2 transposed convolution (the conv on the zero-stuffed grid, computed
      without the zeros) followed by the FIR filter with gain 4. For a 3x3 kernel and a 4-tap
      filter the transposed conv yields ``2H + 1`` pixels and a (1, 1) filter padding brings
      it back to ``2H`` with centres aligned.
    * down: the FIR filter first (anti-aliasing), then a stride-2 convolution.
    """
    if up and down:
        raise ValueError("conv2d_resample: up and down are mutually exclusive")
    k = weight.shape[-1]
    if not (up or down):
        return F.conv2d(x, weight, padding=k // 2)
    if taps is None:
        raise ValueError("conv2d_resample: FIR taps are needed to resample")
    n_taps = len(taps)
    if k == 1:
        # A 1x1 conv commutes with per-channel filtering, so resample the cheaper side.
        if up:
            return upsample2d(F.conv2d(x, weight), taps)
        return F.conv2d(downsample2d(x, taps), weight)
    if up:
        # Flip and transpose so the transposed conv equals correlation with `weight` on the
        # zero-stuffed grid, the same operator the non-resampling path applies.
        x = F.conv_transpose2d(x, weight.transpose(0, 1).flip([2, 3]), stride=2)
        pad_total = n_taps + 1 - k
        return upfirdn2d(x, taps, pad=(pad_total // 2, pad_total - pad_total // 2), gain=4.0)
    pad_total = n_taps - 2 + k - 1
    x = upfirdn2d(x, taps, pad=(pad_total // 2, pad_total - pad_total // 2))
    return F.conv2d(x, weight, stride=2)


def modulated_conv2d(
    x: Tensor,
    weight: Tensor,
    styles: Tensor,
    *,
    demodulate: bool = True,
    up: bool = False,
    resample_taps: Sequence[float] | None = None,
) -> Tensor:
    """StyleGAN2's modulated convolution (paper Sec. 2.2, Eqs. 1-3).

    ``w'_ijk = s_i * w_ijk`` (modulation) and, with ``demodulate``,
    ``w''_ijk = w'_ijk / sqrt(sum_ik w'_ijk^2 + eps)``, so each output map of a unit-variance
    input has unit variance again. Implemented without per-sample weights: scale the input
    channels by the styles, run one shared convolution, scale the outputs by the
    demodulation coefficients, which is mathematically the same and lets the batch share one
    convolution.

    ``weight`` is the stored [out, in, k, k] parameter; the equalised-lr gain
    ``1/sqrt(in*k*k)`` is applied here. ``styles`` is [N, in]. ``x`` may be
    float16/bfloat16, in which case the math for the coefficients stays in full precision.
    """
    out_channels, in_channels, kh, kw = weight.shape
    if styles.shape[1:] != (in_channels,) or styles.shape[0] != x.shape[0]:
        raise ValueError(
            f"styles: expected shape [{x.shape[0]}, {in_channels}], got {list(styles.shape)}"
        )
    gain = 1.0 / math.sqrt(in_channels * kh * kw)
    w = full_precision(weight) * gain
    s = full_precision(styles)
    low_precision = x.dtype in (torch.float16, torch.bfloat16)
    if low_precision and demodulate:
        # Demodulation cancels any per-output-channel weight scale and any per-sample style
        # scale, so rescale both to keep x * s and the conv sums finite in fp16: styles to a
        # max of one, each output channel's weights to a max of 1/sqrt(fan_in). Keeping that
        # factor keeps the conv's output (and so the gradient reaching it, which demodulation
        # multiplies by the inverse scale) near unit size; normalising the weights to a max of
        # one instead made those gradients sqrt(fan_in)-ish times smaller, and fp16 flushed
        # many of them to zero.
        w = w * (gain / w.abs().amax(dim=[1, 2, 3], keepdim=True).clamp_min(1e-12))
        s = s / s.abs().amax(dim=1, keepdim=True).clamp_min(1e-12)
    x = x * s.to(x.dtype)[:, :, None, None]
    x = conv2d_resample(x, w.to(x.dtype), resample_taps, up=up)
    if demodulate:
        # sum over (in, kh, kw) of (s_i w_oik)^2 = s^2 @ (sum_k w_oik^2)^T, without building
        # the [N, out, in, k, k] tensor.
        dcoefs = (s.square() @ w.square().sum(dim=[2, 3]).t() + DEMODULATION_EPS).rsqrt()
        x = x * dcoefs.to(x.dtype)[:, :, None, None]
    return x


class FullyConnectedLayer(nn.Module):
    """An equalised-lr dense layer: ``act((x @ W^T) * lr_mult/sqrt(in) + b * lr_mult)``.

    Weights are stored as ``N(0, 1) / lr_multiplier`` so that the effective weight starts at
    ``N(0, 1/in)`` while gradients reach the stored value scaled by ``lr_multiplier`` (the
    mapping network's 100x slower learning rate uses 0.01).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        bias_init: float = 0.0,
        lr_multiplier: float = 1.0,
        activation: str = "linear",
    ) -> None:
        super().__init__()
        if activation not in ACTIVATION_GAINS:
            raise ValueError(
                f"activation: expected one of {sorted(ACTIVATION_GAINS)}, got {activation!r}"
            )
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = (
            nn.Parameter(torch.full([out_features], float(bias_init)) / lr_multiplier)
            if bias
            else None
        )
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias.to(x.dtype) * self.bias_gain if self.bias is not None else None
        if self.activation == "linear":
            return F.linear(x, w, b)
        return bias_act(F.linear(x, w), b, self.activation)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, act={self.activation}"


class Conv2dLayer(nn.Module):
    """An equalised-lr convolution with optional FIR 2x resampling, bias, activation, clamp."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        bias: bool = True,
        activation: str = "linear",
        up: bool = False,
        down: bool = False,
        gain: float = 1.0,
        conv_clamp: float | None = None,
        fir_taps: Sequence[float] = DEFAULT_FIR_TAPS,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.activation = activation
        self.up = up
        self.down = down
        self.gain = gain
        self.conv_clamp = conv_clamp
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.resample_taps = make_fir_filter(fir_taps)

    def forward(self, x: Tensor) -> Tensor:
        w = (self.weight * self.weight_gain).to(x.dtype)
        x = conv2d_resample(x, w, self.resample_taps, up=self.up, down=self.down)
        clamp = self.conv_clamp * self.gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias, self.activation, gain=self.gain, clamp=clamp)

    def extra_repr(self) -> str:
        return (
            f"in={self.in_channels}, out={self.out_channels}, k={self.weight.shape[-1]}, "
            f"act={self.activation}, up={self.up}, down={self.down}"
        )
