"""Tests for the StyleGAN2 generator, discriminator and their low-level ops (CPU, tiny configs,
except the parameter count, which only constructs the full-size config-F networks)."""

from __future__ import annotations

import math

import pytest
import torch

from stylegan_trainer.model import ops
from stylegan_trainer.model.config import NetworkConfig
from stylegan_trainer.model.discriminator import Discriminator, MinibatchStdLayer
from stylegan_trainer.model.generator import Generator
from stylegan_trainer.model.networks import build_networks, count_parameters
from stylegan_trainer.train.presets import resolve_preset


def tiny_config(resolution: int = 16, **overrides: object) -> NetworkConfig:
    values: dict = dict(
        resolution=resolution, z_dim=8, w_dim=8, mapping_layers=2, channel_base=64, channel_max=8
    )
    values.update(overrides)
    return NetworkConfig(**values)


# ------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("resolution", [4, 8, 16, 32, 64, 128, 256, 512, 1024])
def test_generator_and_discriminator_shapes_at_every_resolution(resolution: int) -> None:
    # Channel base 1024 and max 4: one channel at 1024 px, four at 256 px and below.
    cfg = tiny_config(resolution, channel_base=1024, channel_max=4, mapping_layers=1)
    G, D = build_networks(cfg)
    assert G.num_ws == 2 * int(math.log2(resolution)) - 2 == cfg.num_ws
    z = torch.randn(2, cfg.z_dim)
    ws = G.mapping(z, None)
    assert ws.shape == (2, G.num_ws, cfg.w_dim)
    with torch.no_grad():
        img = G.synthesis(ws, noise_mode="const")
        logits = D(img)
    assert img.shape == (2, 3, resolution, resolution)
    assert img.dtype == torch.float32
    assert torch.isfinite(img).all()
    assert logits.shape == (2, 1)
    assert torch.isfinite(logits).all()


def test_num_ws_is_18_at_1024() -> None:
    assert NetworkConfig(resolution=1024).num_ws == 18


def test_channels_follow_base_over_resolution_capped_at_max() -> None:
    cfg = NetworkConfig(resolution=1024)
    assert [cfg.channels_at(r) for r in (4, 64, 128, 256, 512, 1024)] == [
        512,
        512,
        256,
        128,
        64,
        32,
    ]
    G = Generator(cfg)
    assert G.synthesis.b128.conv1.weight.shape == (256, 256, 3, 3)
    assert G.synthesis.b1024.torgb.weight.shape == (3, 32, 1, 1)


def test_discriminator_rejects_images_of_the_wrong_size() -> None:
    D = Discriminator(tiny_config(16))
    with pytest.raises(ValueError, match="img"):
        D(torch.zeros(2, 3, 8, 8))


def test_synthesis_rejects_ws_of_the_wrong_shape() -> None:
    G = Generator(tiny_config(16))
    with pytest.raises(ValueError, match="ws"):
        G.synthesis(torch.zeros(2, G.num_ws + 1, 8))


# ------------------------------------------------------------------ parameter counts


def test_stylegan2_config_f_parameter_counts_at_1024() -> None:
    """Config F at 1024x1024, c_dim 0. G matches the brief and the published count; D is the
    per-layer sum derived in the networks module docstring (29,012,513), which is also the
    total the published implementation prints for this configuration."""
    cfg = resolve_preset("stylegan2", 1024).network
    G, D = build_networks(cfg)
    assert count_parameters(G) == 30_370_060
    assert count_parameters(G.mapping) == 2_101_248
    assert count_parameters(D) == 29_012_513
    # Per-layer rows of the published module summary.
    syn = G.synthesis
    assert count_parameters(syn.b4.conv1) == 2_622_465
    assert count_parameters(syn.b4.torgb) == 264_195
    assert count_parameters(syn.b128.conv0) == 1_442_561
    assert count_parameters(syn.b1024.conv0) == 51_297
    assert count_parameters(syn.b1024.torgb) == 16_515
    assert syn.b4.const.numel() == 8_192
    assert count_parameters(D.b1024.fromrgb) == 128
    assert count_parameters(D.b1024.skip) == 2_048
    assert count_parameters(D.b1024.conv1) == 18_496
    assert count_parameters(D.b64.conv0) == 2_359_808
    assert count_parameters(D.b4.conv) == 2_364_416
    assert count_parameters(D.b4.fc) == 4_194_816
    assert count_parameters(D.b4.out) == 513
    # Buffers are not parameters.
    assert "mapping.w_avg" in dict(G.named_buffers())
    assert "synthesis.b8.conv0.noise_const" in dict(G.named_buffers())


def _analytic_counts(cfg: NetworkConfig) -> tuple[int, int]:
    """Independent per-layer formula for the skip G and resnet D with c_dim 0."""
    w, ch = cfg.w_dim, cfg.channels_at
    g = cfg.z_dim * w + w + (cfg.mapping_layers - 1) * (w * w + w)

    def modconv(cin: int, cout: int, k: int, noise: bool) -> int:
        return (w * cin + cin) + cout * cin * k * k + cout + (1 if noise else 0)

    res_list = [2**i for i in range(2, cfg.resolution_log2 + 1)]
    for r in res_list:
        if r == 4:
            g += ch(4) * 16 + modconv(ch(4), ch(4), 3, True)
        else:
            g += modconv(ch(r // 2), ch(r), 3, True) + modconv(ch(r), ch(r), 3, True)
        g += modconv(ch(r), cfg.img_channels, 1, False)
    d = 0
    for r in reversed(res_list[1:]):
        c, o = ch(r), ch(r // 2)
        if r == cfg.resolution:
            d += cfg.img_channels * c + c
        d += (c * c * 9 + c) + (c * o * 9 + o) + c * o
    c = ch(4)
    d += ((c + cfg.mbstd_channels) * c * 9 + c) + (c * 16 * c + c) + (c + 1)
    return g, d


@pytest.mark.parametrize(
    "cfg",
    [
        tiny_config(16),
        tiny_config(32, channel_base=256, channel_max=16, mapping_layers=3, z_dim=5, w_dim=7),
        tiny_config(8, img_channels=1, mbstd_channels=2),
    ],
)
def test_parameter_counts_match_the_per_layer_formula(cfg: NetworkConfig) -> None:
    G, D = build_networks(cfg)
    assert (count_parameters(G), count_parameters(D)) == _analytic_counts(cfg)


# ------------------------------------------------------------------- modulation


def test_demodulation_normalises_output_variance() -> None:
    x = torch.randn(4, 64, 48, 48)
    weight = torch.randn(32, 64, 3, 3)
    styles = torch.exp(torch.randn(4, 64))  # strongly varied, all-positive scales
    y = ops.modulated_conv2d(x, weight, styles, demodulate=True)
    interior = y[:, :, 1:-1, 1:-1]  # zero padding shrinks the variance at the border
    per_map_std = interior.std(dim=[2, 3])
    assert per_map_std.mean().item() == pytest.approx(1.0, abs=0.05)
    assert per_map_std.min().item() > 0.8 and per_map_std.max().item() < 1.2
    # Without demodulation the styles' scale goes straight through.
    raw = ops.modulated_conv2d(x, weight, styles * 10, demodulate=False)[:, :, 1:-1, 1:-1]
    assert raw.std().item() > 5


def test_demodulated_output_ignores_the_scale_of_styles_and_weights() -> None:
    x = torch.randn(2, 8, 10, 10, dtype=torch.float64)
    weight = torch.randn(4, 8, 3, 3, dtype=torch.float64)
    styles = torch.randn(2, 8, dtype=torch.float64)
    base = ops.modulated_conv2d(x, weight, styles)
    scaled = ops.modulated_conv2d(
        x, weight * 3, styles * torch.tensor([[5.0], [0.2]], dtype=torch.float64)
    )
    torch.testing.assert_close(scaled, base, rtol=1e-6, atol=1e-6)


def test_modulated_conv_matches_per_sample_weights() -> None:
    """The shared-conv implementation equals the paper's per-sample modulated weights."""
    x = torch.randn(2, 5, 6, 6, dtype=torch.float64)
    weight = torch.randn(3, 5, 3, 3, dtype=torch.float64)
    styles = torch.randn(2, 5, dtype=torch.float64)
    got = ops.modulated_conv2d(x, weight, styles, demodulate=True)
    for n in range(2):
        w = weight / math.sqrt(5 * 9) * styles[n].reshape(1, 5, 1, 1)
        w = w / (w.square().sum(dim=[1, 2, 3], keepdim=True) + ops.DEMODULATION_EPS).sqrt()
        expected = torch.nn.functional.conv2d(x[n : n + 1], w, padding=1)
        torch.testing.assert_close(got[n : n + 1], expected)


def test_low_precision_modulated_conv_stays_close_to_fp32() -> None:
    x = torch.randn(2, 8, 16, 16)
    weight = torch.randn(4, 8, 3, 3)
    styles = torch.randn(2, 8) * 50  # large styles would overflow fp16 without normalising
    ref = ops.modulated_conv2d(x, weight, styles)
    low = ops.modulated_conv2d(x.bfloat16(), weight, styles)
    assert low.dtype == torch.bfloat16
    assert (low.float() - ref).abs().max().item() < 0.1


# ------------------------------------------------------------- FIR resampling


def test_fir_resampling_keeps_constant_images_constant_away_from_borders() -> None:
    taps = ops.make_fir_filter()
    x = torch.full((1, 2, 16, 16), 3.0)
    up = ops.upsample2d(x, taps)
    down = ops.downsample2d(x, taps)
    assert up.shape == (1, 2, 32, 32) and down.shape == (1, 2, 8, 8)
    torch.testing.assert_close(up[..., 2:-2, 2:-2], torch.full_like(up[..., 2:-2, 2:-2], 3.0))
    torch.testing.assert_close(down[..., 1:-1, 1:-1], torch.full_like(down[..., 1:-1, 1:-1], 3.0))


def test_matrix_and_convolution_fir_paths_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    taps = ops.make_fir_filter()
    x = torch.randn(2, 3, 12, 12, dtype=torch.float64)
    w3 = torch.randn(4, 3, 3, 3, dtype=torch.float64)

    def run() -> list[torch.Tensor]:
        return [
            ops.upsample2d(x, taps),
            ops.downsample2d(x, taps),
            ops.conv2d_resample(x, w3, taps, up=True),
            ops.conv2d_resample(x, w3, taps, down=True),
        ]

    via_matrix = run()
    monkeypatch.setattr(ops, "MATMUL_FIR_MAX_SIZE", 0)
    via_conv = run()
    for a, b in zip(via_matrix, via_conv, strict=True):
        torch.testing.assert_close(a, b)


def test_upsampling_conv_equals_conv_on_the_zero_stuffed_grid_then_filter() -> None:
    """The transposed-conv shortcut is exactly 'stuff zeros, 3x3 conv, blur'."""
    taps = ops.make_fir_filter()
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64)
    w = torch.randn(3, 2, 3, 3, dtype=torch.float64)
    got = ops.conv2d_resample(x, w, taps, up=True)
    stuffed = torch.zeros(1, 2, 9, 9, dtype=torch.float64)
    stuffed[..., ::2, ::2] = x
    conv = torch.nn.functional.conv2d(stuffed, w, padding=2)  # 'full' correlation: 11x11
    expected = ops.upfirdn2d(conv, taps, pad=(1, 1), gain=4.0)
    assert got.shape == (1, 3, 10, 10)
    torch.testing.assert_close(got, expected)


# ------------------------------------------------------------------- mapping


def test_truncation_psi_zero_returns_w_avg() -> None:
    G = Generator(tiny_config(16))
    for _ in range(3):
        G.mapping(torch.randn(16, 8), None, update_w_avg=True)
    w_avg = G.mapping.w_avg.clone()
    assert w_avg.abs().sum() > 0
    ws = G.mapping(torch.randn(5, 8), None, truncation_psi=0.0)
    torch.testing.assert_close(ws, w_avg.expand(5, G.num_ws, 8))


def test_truncation_cutoff_leaves_later_layers_untouched() -> None:
    G = Generator(tiny_config(16))
    G.mapping(torch.randn(16, 8), None, update_w_avg=True)
    z = torch.randn(3, 8)
    full = G.mapping(z, None)
    cut = G.mapping(z, None, truncation_psi=0.5, truncation_cutoff=2)
    torch.testing.assert_close(cut[:, 2:], full[:, 2:])
    torch.testing.assert_close(cut[:, :2], G.mapping.w_avg.lerp(full[:, :2], 0.5))


def test_w_avg_is_an_exponential_moving_average_with_beta_0995() -> None:
    G = Generator(tiny_config(16))
    z = torch.randn(10, 8)
    w = G.mapping(z, None, update_w_avg=True)[:, 0]
    torch.testing.assert_close(G.mapping.w_avg, w.mean(dim=0) * (1 - 0.995))


def test_mapping_uses_equalised_lr_with_multiplier_001() -> None:
    G = Generator(tiny_config(16, w_dim=64, z_dim=64))
    layer = G.mapping.layers[0]
    # Stored weights are N(0, 1) / 0.01; the runtime gain brings them to N(0, 1/fan_in).
    assert layer.weight.std().item() == pytest.approx(100, rel=0.1)
    assert layer.weight_gain == pytest.approx(0.01 / 8)
    conv = G.synthesis.b8.conv1
    assert conv.weight.std().item() == pytest.approx(1.0, rel=0.2)
    assert torch.all(conv.affine.bias == 1)  # styles start at one


# ------------------------------------------------------------------ generator


def test_noise_modes() -> None:
    G = Generator(tiny_config(16))
    for p in G.parameters():
        if p.ndim == 0:  # noise strengths start at zero; make the noise visible
            p.data.fill_(0.5)
    z = torch.randn(2, 8)
    with torch.no_grad():
        const_a, const_b = G(z, noise_mode="const"), G(z, noise_mode="const")
        rand_a, rand_b = G(z, noise_mode="random"), G(z, noise_mode="random")
        none = G(z, noise_mode="none")
    torch.testing.assert_close(const_a, const_b)
    assert not torch.allclose(rand_a, rand_b)
    assert not torch.allclose(none, const_a)
    with pytest.raises(ValueError, match="noise_mode"):
        G(z, noise_mode="loud")


def test_style_mixing_switches_to_other_styles_after_a_crossover() -> None:
    G = Generator(tiny_config(32))
    z = torch.randn(3, 8)
    plain = G.mapping(z, None)
    _, mixed = G(z, style_mixing_prob=1.0, return_ws=True, noise_mode="const")
    same = torch.isclose(mixed, plain).all(dim=2).all(dim=0)  # per layer
    crossover = int(same.int().argmin())
    assert 1 <= crossover < G.num_ws
    assert same[:crossover].all() and not same[crossover:].any()


def test_mixed_precision_blocks_run_fp32_on_cpu_and_give_the_same_images() -> None:
    cfg = tiny_config(32)
    G32 = Generator(cfg)
    G16 = Generator(
        NetworkConfig.from_dict({**cfg.to_dict(), "num_fp16_res": 2, "conv_clamp": 256.0})
    )
    G16.load_state_dict(G32.state_dict())
    assert G16.synthesis.b32.use_mixed and not G16.synthesis.b8.use_mixed
    z = torch.randn(2, 8)
    with torch.no_grad():
        a, b = G32(z, noise_mode="const"), G16(z, noise_mode="const")
    assert b.dtype == torch.float32
    torch.testing.assert_close(a, b)


def test_parameters_stay_fp32_with_mixed_precision() -> None:
    G, D = build_networks(tiny_config(32, num_fp16_res=4, conv_clamp=256.0, mp_dtype="bf16"))
    assert {p.dtype for p in [*G.parameters(), *D.parameters()]} == {torch.float32}


def test_conditional_networks_need_labels() -> None:
    G, D = build_networks(tiny_config(16, c_dim=5))
    z, c = torch.randn(2, 8), torch.eye(5)[:2]
    img = G(z, c)
    assert D(img, c).shape == (2, 1)
    with pytest.raises(ValueError, match="c"):
        G(z)
    with pytest.raises(ValueError, match="c"):
        D(img)


# ------------------------------------------------------------- discriminator


def test_minibatch_std_appends_group_std_and_handles_odd_batches() -> None:
    layer = MinibatchStdLayer(group_size=2, num_channels=1)
    x = torch.zeros(4, 3, 2, 2)
    x[2] = 2.0  # groups are samples {0, 2} and {1, 3}
    y = layer(x)
    assert y.shape == (4, 4, 2, 2)
    torch.testing.assert_close(y[:, :3], x)
    assert y[0, 3].allclose(torch.tensor(1.0)) and y[2, 3].allclose(torch.tensor(1.0))
    assert y[1, 3].max() < 1e-3
    assert MinibatchStdLayer(4)(torch.randn(3, 2, 4, 4)).shape == (3, 3, 4, 4)


def test_discriminator_is_differentiable_with_respect_to_images() -> None:
    D = Discriminator(tiny_config(16))
    img = torch.randn(4, 3, 16, 16, requires_grad=True)
    D(img).sum().backward()
    assert img.grad is not None and img.grad.abs().sum() > 0


# --------------------------------------------------------------------- config


def test_network_config_round_trips_through_a_dict() -> None:
    cfg = tiny_config(64, conv_clamp=256.0, num_fp16_res=2)
    assert NetworkConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("resolution", 48),
        ("resolution", 2048),
        ("z_dim", 0),
        ("mp_dtype", "fp8"),
        ("conv_clamp", -1.0),
        ("channel_base", 8),
    ],
)
def test_network_config_rejects_bad_values_naming_the_field(field: str, value: object) -> None:
    values = {**tiny_config(16).to_dict(), field: value}
    with pytest.raises(ValueError, match=field):
        NetworkConfig(**values)


def test_network_config_from_dict_names_unknown_fields() -> None:
    with pytest.raises(ValueError, match="colour"):
        NetworkConfig.from_dict({"resolution": 16, "colour": 1})


def test_conv_clamp_bounds_every_layer_output() -> None:
    """Each toRGB output is clamped to +-conv_clamp and FIR up-sampling cannot grow it, so
    the image is bounded by (number of blocks) * conv_clamp."""
    G = Generator(tiny_config(16, conv_clamp=0.01))
    with torch.no_grad():
        img = G(torch.randn(4, 8) * 10)
    assert img.abs().max().item() <= 3 * 0.01 + 1e-6
    unclamped = Generator(tiny_config(16))
    unclamped.load_state_dict(G.state_dict())
    with torch.no_grad():
        assert unclamped(torch.randn(4, 8) * 10).abs().max().item() > 0.1
