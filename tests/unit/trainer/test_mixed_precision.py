"""Mixed precision: the modulated convolution's fp16/bf16 gradients agree with fp32's.

Every modulated convolution that config F at 1024x1024 runs in reduced precision (its four
highest resolutions, ``num_fp16_res`` 4, the published setting) is checked: the same inputs
in fp32 and in fp16/bf16, the same upstream gradient, and the gradients for the input, the
weight and the styles compared. Runs on CPU (PyTorch has fp16 and bf16 convolutions there);
the networks cast blocks only on CUDA, so this checks the operation those blocks call.

The upstream gradient is 3e-6 per element, the order of a discriminator loss's gradient on a
1024x1024 image: small enough that fp16's narrow range matters. Before the fix, the fp16 path
normalised each output channel's weights to a max of one, dropping the 1/sqrt(fan_in) gain: the
input and weight gradients of the 256- and 512-channel layers deviated 3.7-5.1% from fp32's,
2.2-2.9% on the narrower ones; now 0.6-1.6% (``python -m pytest`` this file to see them fail
with the old code: ``git log -p -- trainer/stylegan_trainer/model/ops.py``).
"""

from __future__ import annotations

import pytest
import torch

from stylegan_trainer.model.config import NetworkConfig
from stylegan_trainer.model.ops import DEFAULT_FIR_TAPS, modulated_conv2d
from stylegan_trainer.train.presets import PUBLISHED_FP16_RES

UPSTREAM_GRADIENT = 3e-6
MAX_RELATIVE_ERROR = {
    torch.float16: {"input": 0.02, "weight": 0.02, "styles": 0.035},
    torch.bfloat16: {"input": 0.02, "weight": 0.02, "styles": 0.02},
}
"""``|g_low - g_fp32| / |g_fp32|`` per gradient tensor. The styles' gradient, a sum of many
products, carries more rounding; so does every gradient of the toRGB layer, whose few output
channels give each input pixel a gradient close to fp16's smallest normal number."""
TO_RGB_MAX_RELATIVE_ERROR = 0.035
MAX_INPUT_ZERO_SHARE = 0.1
"""Share of the input gradient that is 0 in reduced precision where fp32's is not: fp16 keeps
nothing below ~6e-8, so some of a gradient this small flushes to zero whatever the layer does;
weights' and styles' gradients (sums over many pixels) may not flush at all."""


def _config_f_mixed_layers() -> list[tuple[int, int, bool, bool]]:
    """(in, out, up, demodulate) of every modulated conv in config F's reduced-precision blocks."""
    cfg = NetworkConfig(resolution=1024, num_fp16_res=PUBLISHED_FP16_RES)
    layers = []
    res = cfg.fp16_resolution
    while res <= cfg.resolution:
        cin, cout = cfg.channels_at(res // 2), cfg.channels_at(res)
        layers += [(cin, cout, True, True), (cout, cout, False, True)]
        res *= 2
    layers.append((cfg.channels_at(cfg.resolution), cfg.img_channels, False, False))  # toRGB
    return layers


LAYERS = _config_f_mixed_layers()


def _gradients(dtype: torch.dtype, cin: int, cout: int, up: bool, demodulate: bool,
               ) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(cin * 1000 + cout)
    x = torch.randn(4, cin, 8, 8, generator=gen)
    k = 3 if demodulate else 1
    weight = torch.randn(cout, cin, k, k, generator=gen)
    styles = torch.randn(4, cin, generator=gen) * 0.5 + 1.0
    size = 16 if up else 8
    upstream = torch.randn(4, cout, size, size, generator=gen) * UPSTREAM_GRADIENT
    x = x.to(dtype).requires_grad_()
    weight.requires_grad_()
    styles.requires_grad_()
    out = modulated_conv2d(x, weight, styles, demodulate=demodulate, up=up,
                           resample_taps=DEFAULT_FIR_TAPS if up else None)
    assert out.dtype == dtype
    (out.float() * upstream).sum().backward()
    assert x.grad is not None and weight.grad is not None and styles.grad is not None
    return x.grad.float(), weight.grad, styles.grad


def test_the_layer_list_is_config_f_at_1024() -> None:
    # 128..1024: two convs each, plus the last toRGB; the first takes the 64x64 block's 512.
    assert len(LAYERS) == 9
    assert LAYERS[0] == (512, 256, True, True) and LAYERS[-2] == (32, 32, False, True)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize(("cin", "cout", "up", "demodulate"), LAYERS,
                         ids=[f"{a}-{b}{'-up' if u else ''}{'' if d else '-rgb'}"
                              for a, b, u, d in LAYERS])
def test_reduced_precision_gradients_match_fp32(
    dtype: torch.dtype, cin: int, cout: int, up: bool, demodulate: bool
) -> None:
    reference = _gradients(torch.float32, cin, cout, up, demodulate)
    reduced = _gradients(dtype, cin, cout, up, demodulate)
    for name, ref, got in zip(("input", "weight", "styles"), reference, reduced, strict=True):
        assert torch.isfinite(got).all(), f"{name}: non-finite gradient"
        error = ((got - ref).norm() / ref.norm()).item()
        bound = MAX_RELATIVE_ERROR[dtype][name] if demodulate else TO_RGB_MAX_RELATIVE_ERROR
        assert error < bound, (
            f"{name} gradient: relative error {error:.3g} against fp32")
        flushed = ((got == 0) & (ref != 0)).float().mean().item()
        bound = MAX_INPUT_ZERO_SHARE if name == "input" else 0.0
        assert flushed <= bound, f"{name} gradient: {flushed:.2%} flushed to zero"
