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


# ------------------------------------------------------------------ which precision a run uses
CUDA = torch.device("cuda", 0)


@pytest.mark.parametrize(
    ("mode", "capability", "expected"),
    [
        ("auto", (8, 0), "bf16"),  # A100
        ("auto", (9, 0), "bf16"),  # H100
        ("auto", (8, 9), "bf16"),  # L4
        ("auto", (7, 0), "fp16"),  # V100
        ("auto", (7, 5), "fp16"),  # T4
        ("fp16", (9, 0), "fp16"),
        ("bf16", (7, 0), "bf16"),  # asked for: the user's call
        ("none", (9, 0), None),
        (False, (9, 0), None),
        (True, (9, 0), "fp16"),  # configs written before auto: the preset's mp_dtype
    ],
)
def test_mixed_precision_resolves_by_the_gpu(
    monkeypatch: pytest.MonkeyPatch, mode: bool | str, capability: tuple[int, int],
    expected: str | None,
) -> None:
    from stylegan_trainer.train.build import reduced_precision

    # No GPU here: the capability is what the CUDA runtime would report for that card.
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert reduced_precision(mode, "fp16", CUDA) == expected


@pytest.mark.parametrize("mode", ["auto", "fp16", "bf16", True])
def test_a_cpu_trains_in_fp32_whatever_the_option_says(mode: bool | str) -> None:
    from stylegan_trainer.train.build import network_for, resolve_training_preset
    from stylegan_trainer.train.options import TrainingOptions

    options = TrainingOptions(preset="stylegan2", resolution=64, mixed_precision=mode)
    preset = resolve_training_preset(options, 1)
    network = network_for(preset, options, 0, torch.device("cpu"))
    assert network.num_fp16_res == 0 and network.conv_clamp is None


def test_auto_on_a_gpu_gives_the_published_layers_and_clamp(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from stylegan_trainer.train.build import (
        MP_CONV_CLAMP,
        MP_FP16_RES,
        network_for,
        resolve_training_preset,
    )
    from stylegan_trainer.train.options import TrainingOptions

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    options = TrainingOptions(preset="auto", resolution=256)
    assert options.mixed_precision == "auto"  # the default
    network = network_for(resolve_training_preset(options, 1), options, 0, CUDA)
    assert (network.mp_dtype, network.num_fp16_res, network.conv_clamp) == (
        "bf16", MP_FP16_RES, MP_CONV_CLAMP)


def test_an_unknown_precision_names_the_field_and_the_choices() -> None:
    from stylegan_common.errors import ConfigError
    from stylegan_trainer.train.options import TrainingOptions

    with pytest.raises(ConfigError, match=r"^mixed_precision: 'fp8' is not one of auto, fp16"):
        TrainingOptions(mixed_precision="fp8").validate()
