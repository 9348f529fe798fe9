"""Tests for the training presets: the published table, the ADA ``auto`` formulas
(stylegan2-figures.md §3b), the small ``cpu`` preset, overrides and error messages."""

from __future__ import annotations

import pytest

from stylegan_trainer.train.presets import PRESET_NAMES, PresetError, TrainingPreset, resolve_preset

# stylegan2-figures.md §3b: (res, gpus) -> batch, mbstd, channel_base, lr, gamma, ema_kimg.
AUTO_TABLE = {
    (256, 1): (16, 4, 16384, 0.0025, 0.8192, 5.0),
    (256, 8): (64, 4, 16384, 0.0025, 0.2048, 20.0),
    (1024, 1): (4, 4, 32768, 0.002, 52.4288, 1.25),
    (1024, 8): (32, 4, 32768, 0.002, 6.5536, 10.0),
    (128, 2): (64, 4, 16384, 0.0025, 0.0512, 20.0),
    (512, 4): (32, 4, 32768, 0.0025, 1.6384, 10.0),
}


@pytest.mark.parametrize(("resolution", "gpus"), sorted(AUTO_TABLE))
def test_auto_reproduces_the_published_default_configuration(resolution: int, gpus: int) -> None:
    batch, mbstd, cbase, lr, gamma, ema = AUTO_TABLE[(resolution, gpus)]
    preset = resolve_preset("auto", resolution, gpus=gpus)
    assert preset.batch_size == batch
    assert preset.network.mbstd_group == mbstd
    assert preset.network.channel_base == cbase
    assert preset.network.channel_max == 512
    assert preset.network.mapping_layers == 2
    assert preset.lr_g == preset.lr_d == lr
    assert preset.r1_gamma == pytest.approx(gamma)
    assert preset.ema_kimg == pytest.approx(ema)
    assert preset.ema_rampup == 0.05
    assert preset.total_kimg == 25000


def test_stylegan2_preset_is_config_f_with_mixed_precision() -> None:
    preset = resolve_preset("stylegan2", 1024, gpus=8)
    net = preset.network
    assert (net.channel_base, net.channel_max, net.mapping_layers, net.z_dim, net.w_dim) == (
        32768,
        512,
        8,
        512,
        512,
    )
    assert (net.num_fp16_res, net.conv_clamp, net.mbstd_group) == (4, 256.0, 4)
    assert preset.batch_size == 32
    assert preset.lr_g == preset.lr_d == 0.002
    assert preset.r1_gamma == 10
    assert (preset.ema_kimg, preset.ema_rampup) == (10, None)
    assert (
        preset.style_mixing_prob,
        preset.pl_weight,
        preset.pl_decay,
        preset.pl_batch_shrink,
    ) == (
        0.9,
        2.0,
        0.01,
        2,
    )
    assert (preset.g_reg_interval, preset.d_reg_interval, preset.betas) == (4, 16, (0.0, 0.99))


@pytest.mark.parametrize(
    ("name", "batch", "mbstd", "cbase", "lr", "gamma", "ema"),
    [
        ("paper256", 64, 8, 16384, 0.0025, 1.0, 20),
        ("paper512", 64, 8, 32768, 0.0025, 0.5, 20),
        ("paper1024", 32, 4, 32768, 0.002, 2.0, 10),
    ],
)
def test_paper_presets(
    name: str, batch: int, mbstd: int, cbase: int, lr: float, gamma: float, ema: int
) -> None:
    preset = resolve_preset(name, 256)
    assert (preset.batch_size, preset.network.mbstd_group, preset.network.channel_base) == (
        batch,
        mbstd,
        cbase,
    )
    assert (preset.lr_g, preset.r1_gamma, preset.ema_kimg) == (lr, gamma, ema)


def test_cifar_preset_drops_path_length_and_style_mixing() -> None:
    preset = resolve_preset("cifar", 32, gpus=2)
    assert (preset.pl_weight, preset.style_mixing_prob) == (0.0, 0.0)
    assert (preset.batch_size, preset.network.mbstd_group, preset.r1_gamma) == (64, 32, 0.01)
    assert (preset.ema_kimg, preset.ema_rampup, preset.total_kimg) == (500, 0.05, 100000)


def test_cpu_preset_is_small_fp32_and_follows_the_auto_rules() -> None:
    preset = resolve_preset("cpu", 32)
    net = preset.network
    assert net.resolution == 32 and net.num_fp16_res == 0 and net.conv_clamp is None
    assert net.mapping_layers == 2 and net.z_dim == net.w_dim == 256
    assert [net.channels_at(r) for r in (4, 8, 16, 32)] == [64, 64, 64, 32]
    assert preset.batch_size == 16 and net.mbstd_group == 4
    assert preset.lr_g == preset.lr_d == 0.0025
    assert preset.r1_gamma == pytest.approx(0.0002 * 32**2 / 16)
    assert preset.ema_kimg == pytest.approx(16 * 10 / 32) and preset.ema_rampup == 0.05


def test_ada_supersamples_its_warp_except_in_the_cpu_demo_preset() -> None:
    assert all(resolve_preset(name, 256).augment_supersample
               for name in PRESET_NAMES if name not in ("cpu",))
    assert not resolve_preset("cpu", 32).augment_supersample
    assert resolve_preset("cpu", 32, augment_supersample=True).augment_supersample  # --set


def test_preset_names() -> None:
    assert set(PRESET_NAMES) == {
        "stylegan2",
        "paper256",
        "paper512",
        "paper1024",
        "cifar",
        "auto",
        "cpu",
    }
    for name in PRESET_NAMES:
        assert resolve_preset(name, 64).name == name


def test_overrides_apply_to_preset_and_network_fields() -> None:
    preset = resolve_preset(
        "auto", 256, gpus=2, batch_size=8, r1_gamma=1.5, channel_base=8192, num_fp16_res=0
    )
    assert preset.batch_size == 8 and preset.r1_gamma == 1.5
    assert preset.network.channel_base == 8192 and preset.network.num_fp16_res == 0
    # Derived values are not recomputed from an overridden batch (as with the official flags).
    assert preset.ema_kimg == pytest.approx(32 * 10 / 32)


def test_preset_round_trips_through_a_dict() -> None:
    preset = resolve_preset("stylegan2", 512, ema_rampup=0.05)
    assert TrainingPreset.from_dict(preset.to_dict()) == preset


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "stylegan3", "resolution": 256}, "preset"),
        ({"name": "auto", "resolution": 100}, "resolution"),
        ({"name": "auto", "resolution": 2048}, "resolution"),
        ({"name": "auto", "resolution": 2}, "resolution"),
        ({"name": "auto", "resolution": 256, "gpus": 0}, "gpus"),
        ({"name": "auto", "resolution": 256, "learning_rate": 0.1}, "learning_rate"),
        ({"name": "auto", "resolution": 256, "gpus": 2, "batch_size": 3}, "batch_size"),
        ({"name": "auto", "resolution": 256, "mp_dtype": "fp8"}, "mp_dtype"),
        ({"name": "auto", "resolution": 256, "r1_gamma": -1.0}, "r1_gamma"),
        ({"name": "cpu", "resolution": 32, "style_mixing_prob": 2.0}, "style_mixing_prob"),
    ],
)
def test_bad_input_raises_preset_error_naming_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(PresetError, match=field) as info:
        resolve_preset(**kwargs)
    assert isinstance(info.value, ValueError)


def test_error_messages_list_the_valid_values() -> None:
    with pytest.raises(PresetError, match="paper256"):
        resolve_preset("nope", 256)
    with pytest.raises(PresetError, match="1024"):
        resolve_preset("auto", 300)
