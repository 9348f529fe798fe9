"""Tests for the ADA augmentation pipe and its probability controller (CPU, small images)."""

from __future__ import annotations

import pytest
import torch

from stylegan_trainer.model.augment import SYM6_TAPS, AdaController, AugmentPipe

ALL_OFF = dict(
    xflip=0,
    rotate90=0,
    xint=0,
    scale=0,
    rotate=0,
    aniso=0,
    xfrac=0,
    brightness=0,
    contrast=0,
    lumaflip=0,
    hue=0,
    saturation=0,
)


def pipe_with(p: float, **enabled: float) -> AugmentPipe:
    pipe = AugmentPipe(**{**ALL_OFF, **enabled}) if enabled else AugmentPipe()
    pipe.p.fill_(p)
    return pipe


def images(n: int = 8, size: int = 16, channels: int = 3) -> torch.Tensor:
    return torch.rand(n, channels, size, size) * 2 - 1


# -------------------------------------------------------------------- the pipe


def test_p_zero_is_exactly_the_identity() -> None:
    x = images()
    out = pipe_with(0.0)(x)
    assert out is x
    assert torch.equal(out, x)


def test_p_is_a_scalar_buffer_saved_with_the_module() -> None:
    pipe = pipe_with(0.25)
    assert pipe.p.shape == ()
    assert pipe.state_dict()["p"].item() == pytest.approx(0.25)
    assert not list(pipe.parameters())


@pytest.mark.parametrize("shape", [(8, 3, 16, 16), (3, 3, 32, 32), (4, 1, 8, 8), (2, 3, 12, 20)])
def test_shapes_and_dtype_are_kept(shape: tuple[int, int, int, int]) -> None:
    x = torch.rand(shape) * 2 - 1
    out = pipe_with(1.0)(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.isfinite(out).all()


def test_integer_transforms_stay_within_the_input_range() -> None:
    """Without a general op the warp is exact at the image's rate: a permutation of pixels."""
    x = images(16)
    out = pipe_with(1.0, xflip=1, rotate90=1, xint=1)(x)
    assert out.min() >= x.min() - 1e-5 and out.max() <= x.max() + 1e-5
    assert not torch.allclose(out, x)


def test_general_transforms_overshoot_no_more_than_the_filters_allow() -> None:
    """The 2x supersampled warp rings (sym6 has negative taps) by at most the product of
    the filters' absolute sums, per axis: the up filter's two phases, then the down filter."""
    taps = torch.tensor(SYM6_TAPS, dtype=torch.float64)
    up_phase = 2 * max(taps[0::2].abs().sum(), taps[1::2].abs().sum())  # gain 2 per axis
    bound = float((up_phase * taps.abs().sum()) ** 2)
    x = images(16)
    geometric = dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1)
    out = pipe_with(1.0, **geometric)(x)
    assert out.abs().max() <= x.abs().max() * bound + 1e-5
    assert not torch.allclose(out, x)


def test_an_identity_warp_through_the_supersampled_path_moves_no_pixel() -> None:
    """Up, warp by the identity and down: a smooth image comes back unshifted, only its
    highest frequencies a little lower (the pads of augment.SUPERSAMPLE_*)."""
    smooth = torch.nn.functional.interpolate(torch.rand(2, 3, 8, 8), size=64, mode="bicubic",
                                             align_corners=False)
    identity = torch.eye(3).expand(2, 3, 3)
    out = AugmentPipe._supersampled_warp(smooth, identity)
    inner = (slice(None), slice(None), slice(4, -4), slice(4, -4))
    error = (out - smooth)[inner].abs().mean()
    assert error < 0.02 * smooth.abs().mean()
    for shift in (1, -1):  # a pixel's shift either way would be far worse
        shifted = (out.roll(shift, dims=-1) - smooth)[inner].abs().mean()
        assert shifted > 3 * error


def test_full_pipeline_keeps_values_in_reasonable_bounds() -> None:
    x = images(64)
    out = pipe_with(1.0)(x)
    assert out.abs().max() < 12  # contrast and saturation are log-normal; a few x at most
    assert out.std() < 4 * x.std()


def test_xflip_gives_either_the_image_or_its_mirror() -> None:
    x = images(32)
    out = pipe_with(1.0, xflip=1)(x)
    flipped = x.flip(3)
    per_image = [
        torch.allclose(o, a, atol=1e-5) or torch.allclose(o, b, atol=1e-5)
        for o, a, b in zip(out, x, flipped, strict=True)
    ]
    assert all(per_image)
    mirrored = sum(torch.allclose(o, b, atol=1e-5) for o, b in zip(out, flipped, strict=True))
    assert 0 < mirrored < 32


def test_rotate90_gives_one_of_the_four_rotations() -> None:
    x = images(16)
    out = pipe_with(1.0, rotate90=1)(x)
    for o, a in zip(out, x, strict=True):
        assert any(torch.allclose(o, torch.rot90(a, k, dims=(1, 2)), atol=1e-5) for k in range(4))


def test_brightness_adds_one_offset_per_image() -> None:
    x = images(8)
    out = pipe_with(1.0, brightness=1)(x)
    offsets = (out - x).reshape(8, -1)
    torch.testing.assert_close(offsets, offsets[:, :1].expand_as(offsets), atol=1e-5, rtol=0)
    assert offsets[:, 0].std() > 0.01


def test_saturation_and_hue_keep_grey_pixels_grey() -> None:
    grey = torch.rand(4, 1, 8, 8).expand(4, 3, 8, 8).contiguous()
    out = pipe_with(1.0, hue=1, saturation=1)(grey)
    torch.testing.assert_close(out, grey, atol=1e-5, rtol=0)


def test_probability_gates_each_image_independently() -> None:
    x = images(400, size=8)
    out = pipe_with(0.3, brightness=1)(x)
    changed = ((out - x).abs().reshape(400, -1).max(dim=1).values > 0).float().mean().item()
    assert 0.2 < changed < 0.4


def test_gradients_flow_through_the_pipeline() -> None:
    x = images(4).requires_grad_(True)
    out = pipe_with(0.8)(x)
    (out * torch.randn_like(out)).sum().backward()
    assert x.grad is not None
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_unsupported_channel_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="channels"):
        pipe_with(1.0, brightness=1)(torch.zeros(2, 2, 8, 8))


# ------------------------------------------------------------------ controller


def test_controller_raises_p_when_d_overfits_and_lowers_it_otherwise() -> None:
    pipe = pipe_with(0.0)
    ctl = AdaController(target=0.6, interval=4, kimg=500)
    step = 64 * 4 / 500_000
    p = ctl.update(pipe, mean_sign_real=0.9, batch_size=64)
    assert p == pytest.approx(step) and pipe.p.item() == pytest.approx(step)
    p = ctl.update(pipe, mean_sign_real=0.95, batch_size=64)
    assert p == pytest.approx(2 * step)
    p = ctl.update(pipe, mean_sign_real=0.1, batch_size=64)
    assert p == pytest.approx(step)


def test_controller_clamps_p_to_zero_and_one() -> None:
    pipe = pipe_with(0.0)
    ctl = AdaController(target=0.6, interval=4, kimg=0.1)  # one update moves p by 0.64
    assert ctl.update(pipe, -1.0, batch_size=16) == 0.0
    assert ctl.update(pipe, 1.0, batch_size=16) == pytest.approx(0.64)
    assert ctl.update(pipe, 1.0, batch_size=16) == 1.0
    assert pipe.p.item() == 1.0


def test_controller_reaches_p_one_within_kimg_of_images() -> None:
    pipe = pipe_with(0.0)
    ctl = AdaController(target=0.6, interval=4, kimg=2)
    updates_for_2_kimg = 2000 // (32 * 4)
    for _ in range(updates_for_2_kimg):
        ctl.update(pipe, 1.0, batch_size=32)
    assert pipe.p.item() == pytest.approx(updates_for_2_kimg * 32 * 4 / 2000)


def test_controller_state_round_trips() -> None:
    ctl = AdaController(target=0.7, interval=2, kimg=100)
    ctl.update(pipe_with(0.0), 0.9, batch_size=8)
    other = AdaController()
    other.load_state_dict(ctl.state_dict())
    assert other.state_dict() == ctl.state_dict()
    with pytest.raises(ValueError, match="target"):
        other.load_state_dict({"interval": 4, "kimg": 500})


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [("target", {"target": 1.5}), ("interval", {"interval": 0}), ("kimg", {"kimg": 0})],
)
def test_controller_rejects_bad_settings_naming_the_field(field: str, kwargs: dict) -> None:
    with pytest.raises(ValueError, match=field):
        AdaController(**kwargs)
