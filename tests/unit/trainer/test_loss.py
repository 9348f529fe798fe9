"""Tests for the StyleGAN2 losses, R1 and path-length penalties (against finite differences
in double precision), the EMA helpers and the per-phase loss object (tiny CPU networks)."""

from __future__ import annotations

import copy
import itertools
import math

import pytest
import torch

from stylegan_trainer.model.augment import AugmentPipe
from stylegan_trainer.model.config import NetworkConfig
from stylegan_trainer.model.discriminator import Discriminator
from stylegan_trainer.model.generator import Generator
from stylegan_trainer.model.loss import (
    PHASES,
    StyleGAN2Loss,
    d_logistic_loss,
    ema_beta,
    g_nonsaturating_loss,
    lazy_regularization_hparams,
    path_length_penalty,
    r1_penalty,
    update_ema,
)
from stylegan_trainer.model.networks import build_networks

F64 = torch.float64


def tiny_config(resolution: int = 8, **overrides: object) -> NetworkConfig:
    values: dict = dict(
        resolution=resolution, z_dim=4, w_dim=4, mapping_layers=2, channel_base=32, channel_max=4
    )
    values.update(overrides)
    return NetworkConfig(**values)


def _central_difference_grad(fn, x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """d fn(x) / dx by central differences, one entry at a time (fn returns a scalar)."""
    grad = torch.zeros_like(x)
    flat, gflat = x.detach().clone().reshape(-1), grad.reshape(-1)
    for i in range(flat.numel()):
        orig = flat[i].item()
        flat[i] = orig + eps
        plus = fn(flat.reshape(x.shape)).item()
        flat[i] = orig - eps
        minus = fn(flat.reshape(x.shape)).item()
        flat[i] = orig
        gflat[i] = (plus - minus) / (2 * eps)
    return grad


# ------------------------------------------------------------------ plain losses


def test_logistic_losses_have_their_closed_form_values() -> None:
    zero = torch.zeros(3, 1)
    assert g_nonsaturating_loss(zero).item() == pytest.approx(math.log(2))
    assert d_logistic_loss(zero, zero).item() == pytest.approx(2 * math.log(2))
    fake = torch.tensor([[2.0], [-1.0]])
    real = torch.tensor([[3.0], [0.5]])
    expected_g = (math.log1p(math.exp(-2.0)) + math.log1p(math.exp(1.0))) / 2
    expected_d = (math.log1p(math.exp(2.0)) + math.log1p(math.exp(-1.0))) / 2 + (
        math.log1p(math.exp(-3.0)) + math.log1p(math.exp(-0.5))
    ) / 2
    assert g_nonsaturating_loss(fake).item() == pytest.approx(expected_g)
    assert d_logistic_loss(real, fake).item() == pytest.approx(expected_d)
    # Numerically safe for huge logits (softplus, not log(sigmoid)).
    assert torch.isfinite(d_logistic_loss(torch.tensor([1e4]), torch.tensor([-1e4])))


# --------------------------------------------------------------------- penalties


def test_r1_penalty_matches_finite_differences() -> None:
    D = Discriminator(tiny_config(8)).to(F64)
    img = torch.randn(2, 3, 8, 8, dtype=F64, requires_grad=True)
    penalty = r1_penalty(img, D(img))
    assert penalty.shape == (2,)

    def total_logit(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return D(x).sum()

    grad = _central_difference_grad(total_logit, img)
    torch.testing.assert_close(
        penalty.detach(), grad.square().sum(dim=[1, 2, 3]), rtol=1e-5, atol=1e-9
    )


def test_r1_penalty_is_differentiable_with_respect_to_d() -> None:
    D = Discriminator(tiny_config(8)).to(F64)
    img = torch.randn(2, 3, 8, 8, dtype=F64, requires_grad=True)
    r1_penalty(img, D(img)).sum().backward()
    assert D.b8.conv0.weight.grad is not None and D.b8.conv0.weight.grad.abs().sum() > 0


def test_r1_penalty_needs_an_image_that_requires_grad() -> None:
    with pytest.raises(ValueError, match="real_img"):
        r1_penalty(torch.zeros(1, 3, 4, 4), torch.zeros(1, 1))


def test_path_length_penalty_matches_finite_differences() -> None:
    G = Generator(tiny_config(8)).to(F64)
    for p in G.parameters():  # make the noise inputs matter too
        if p.ndim == 0:
            p.data.fill_(0.3)
    ws = G.mapping(torch.randn(2, 4, dtype=F64), None).detach().requires_grad_(True)
    img = G.synthesis(ws, noise_mode="const")
    noise = torch.randn_like(img) / math.sqrt(8 * 8)
    pl_mean = torch.tensor(0.5, dtype=F64)
    penalty, new_mean = path_length_penalty(img, ws, pl_mean, 0.01, noise=noise)

    def projected(w: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return (G.synthesis(w, noise_mode="const") * noise).sum()

    grad = _central_difference_grad(projected, ws)
    lengths = grad.square().sum(dim=2).mean(dim=1).sqrt()
    expected_mean = 0.5 + 0.01 * (lengths.mean() - 0.5)
    torch.testing.assert_close(new_mean, expected_mean, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(
        penalty.detach(), (lengths - expected_mean).square(), rtol=1e-5, atol=1e-9
    )
    assert penalty.requires_grad and not new_mean.requires_grad


def test_path_length_penalty_draws_its_own_noise_by_default() -> None:
    G = Generator(tiny_config(8))
    ws = G.mapping(torch.randn(3, 4), None).detach().requires_grad_(True)
    penalty, new_mean = path_length_penalty(G.synthesis(ws), ws, torch.zeros([]), 0.01)
    assert penalty.shape == (3,) and new_mean.shape == ()
    assert torch.isfinite(penalty).all() and new_mean.item() > 0


# ----------------------------------------------------------------- EMA, lazy reg


@pytest.mark.parametrize(
    ("batch", "ema_kimg", "rampup", "cur_nimg"),
    [
        (32, 10.0, None, 0),
        (32, 10.0, None, 10**6),
        (4, 1.25, 0.05, 0),
        (4, 1.25, 0.05, 2000),
        (64, 20.0, 0.05, 10**7),
    ],
)
def test_ema_beta_follows_the_half_life_formula(
    batch: int, ema_kimg: float, rampup, cur_nimg: int
) -> None:
    ema_nimg = ema_kimg * 1000
    if rampup is not None:
        ema_nimg = min(ema_nimg, cur_nimg * rampup)
    expected = 0.5 ** (batch / max(ema_nimg, 1e-8))
    assert ema_beta(batch, ema_kimg, rampup, cur_nimg) == pytest.approx(
        expected, rel=1e-12, abs=1e-300
    )


def test_ema_beta_values() -> None:
    assert ema_beta(32, 10, None, 0) == pytest.approx(0.5 ** (32 / 10_000))
    # Rampup: 2000 images in, the half-life is 100 images rather than 1250.
    assert ema_beta(4, 1.25, 0.05, 2000) == pytest.approx(0.5 ** (4 / 100))
    # At the very start the EMA simply copies G.
    assert ema_beta(4, 1.25, 0.05, 0) == 0.0


def test_update_ema_lerps_parameters_and_copies_buffers() -> None:
    G = Generator(tiny_config(8))
    G_ema = copy.deepcopy(G)
    with torch.no_grad():
        for p in G.parameters():
            p.add_(torch.randn_like(p))
        G.mapping.w_avg.fill_(3.0)
    before = {k: v.clone() for k, v in G_ema.state_dict().items()}
    update_ema(G_ema, G, 0.9)
    for name, p in G.named_parameters():
        expected = 0.9 * before[name] + 0.1 * p.detach()
        torch.testing.assert_close(dict(G_ema.named_parameters())[name].detach(), expected)
    torch.testing.assert_close(G_ema.mapping.w_avg, torch.full_like(G_ema.mapping.w_avg, 3.0))


def test_update_ema_accepts_a_wrapped_generator() -> None:
    G = Generator(tiny_config(8))
    G_ema = copy.deepcopy(G)
    wrapper = torch.nn.Module()
    wrapper.module = G  # the shape of DistributedDataParallel
    with torch.no_grad():
        G.mapping.layers[0].bias.fill_(1.0)
    update_ema(G_ema, wrapper, 0.0)
    torch.testing.assert_close(G_ema.mapping.layers[0].bias, G.mapping.layers[0].bias)


def test_lazy_regularization_hparams_apply_the_minibatch_ratio() -> None:
    lr, betas = lazy_regularization_hparams(0.002, (0.0, 0.99), 16)
    ratio = 16 / 17
    assert lr == pytest.approx(0.002 * ratio)
    assert betas == pytest.approx((0.0, 0.99**ratio))
    assert all(isinstance(b, float) for b in betas)  # torch.optim.Adam refuses mixed types
    assert lazy_regularization_hparams(0.002, (0.0, 0.99), None) == (0.002, (0.0, 0.99))


# ------------------------------------------------------------ per-phase loss object


def _networks_and_batch(batch: int = 4):
    G, D = build_networks(tiny_config(8))
    real = torch.rand(batch, 3, 8, 8) * 2 - 1
    z = torch.randn(batch, 4)
    return G, D, real, z


def _grads(module: torch.nn.Module) -> list[torch.Tensor | None]:
    return [p.grad for p in module.parameters()]


@pytest.mark.parametrize("phase", PHASES)
def test_each_phase_only_touches_its_own_network(phase: str) -> None:
    G, D, real, z = _networks_and_batch()
    loss = StyleGAN2Loss(
        G, D, augment_pipe=None, r1_gamma=1.0, style_mixing_prob=0.9, pl_weight=2.0
    )
    stats = loss.accumulate_gradients(phase, real, None, z, None, gain=1.0)
    trained, other = (G, D) if phase.startswith("G") else (D, G)
    assert all(g is None for g in _grads(other)), "the other network must not collect gradients"
    assert any(g is not None and g.abs().sum() > 0 for g in _grads(trained))
    assert all(p.requires_grad for p in [*G.parameters(), *D.parameters()]), "flags restored"
    assert all(isinstance(v, float) and math.isfinite(v) for v in stats.values())
    expected_keys = {
        "Gmain": {"Loss/G/loss", "Loss/scores/fake", "Loss/signs/fake"},
        "Greg": {"Loss/pl_penalty", "Loss/G/reg"},
        "Dmain": {"Loss/D/loss", "Loss/scores/real", "Loss/signs/real", "Loss/signs/fake"},
        "Dreg": {"Loss/r1_penalty", "Loss/D/reg", "Loss/signs/real"},
    }
    parts = {"Gboth": ["Gmain", "Greg"], "Dboth": ["Dmain", "Dreg"]}.get(phase, [phase])
    assert set().union(*(expected_keys[p] for p in parts)) <= set(stats)


def test_d_phase_reports_the_mean_sign_of_real_logits() -> None:
    G, D, real, z = _networks_and_batch(batch=8)
    loss = StyleGAN2Loss(G, D, r1_gamma=1.0)
    stats = loss.accumulate_gradients("Dmain", real, None, z, None, gain=1.0)
    with torch.no_grad():
        expected = D(real).sign().mean().item()
    assert stats["Loss/signs/real"] == pytest.approx(expected)


def test_gain_scales_the_accumulated_gradients() -> None:
    G, D, real, z = _networks_and_batch()
    loss = StyleGAN2Loss(G, D, r1_gamma=1.0)
    torch.manual_seed(1)
    loss.accumulate_gradients("Dboth", real, None, z, None, gain=1.0)
    once = [g.clone() for g in _grads(D)]
    D.zero_grad(set_to_none=True)
    torch.manual_seed(1)
    loss.accumulate_gradients("Dboth", real, None, z, None, gain=3.0)
    for a, b in zip(once, _grads(D), strict=True):
        torch.testing.assert_close(b, 3 * a)


def test_r1_phase_matches_gamma_over_two_times_the_penalty() -> None:
    G, D, real, z = _networks_and_batch()
    loss = StyleGAN2Loss(G, D, r1_gamma=4.0)
    stats = loss.accumulate_gradients("Dreg", real, None, z, None, gain=16.0)
    assert stats["Loss/D/reg"] == pytest.approx(2.0 * stats["Loss/r1_penalty"])


def test_path_length_phase_updates_pl_mean_and_it_round_trips() -> None:
    G, D, real, z = _networks_and_batch()
    loss = StyleGAN2Loss(G, D, pl_weight=2.0, pl_decay=0.01)
    assert loss.pl_mean.item() == 0
    loss.accumulate_gradients("Greg", real, None, z, None, gain=4.0)
    first = loss.pl_mean.item()
    assert first > 0
    loss.accumulate_gradients("Greg", real, None, z, None, gain=4.0)
    assert loss.pl_mean.item() != first
    restored = StyleGAN2Loss(G, D)
    restored.load_state_dict(loss.state_dict())
    assert restored.pl_mean.item() == pytest.approx(loss.pl_mean.item())


def test_disabled_regularisers_do_nothing() -> None:
    G, D, real, z = _networks_and_batch()
    loss = StyleGAN2Loss(G, D, r1_gamma=0.0, pl_weight=0.0)
    assert loss.accumulate_gradients("Greg", real, None, z, None, gain=4.0) == {}
    assert loss.accumulate_gradients("Dreg", real, None, z, None, gain=16.0) == {}
    assert all(g is None for g in itertools.chain(_grads(G), _grads(D)))


def test_phases_run_through_the_augmentation_pipe() -> None:
    G, D, real, z = _networks_and_batch()
    pipe = AugmentPipe()
    pipe.p.fill_(0.5)
    loss = StyleGAN2Loss(G, D, augment_pipe=pipe, r1_gamma=1.0)
    for phase in ("Gboth", "Dboth"):
        stats = loss.accumulate_gradients(phase, real, None, z, None, gain=1.0)
        assert all(math.isfinite(v) for v in stats.values())


def test_conditional_phases_pass_labels() -> None:
    G, D = build_networks(tiny_config(8, c_dim=3))
    loss = StyleGAN2Loss(G, D, r1_gamma=1.0)
    c = torch.eye(3)[[0, 1, 2, 0]]
    for phase in ("Gboth", "Dboth"):
        loss.accumulate_gradients(phase, torch.zeros(4, 3, 8, 8), c, torch.randn(4, 4), c, gain=1.0)


def test_unknown_phase_is_refused_with_the_valid_ones() -> None:
    G, D, real, z = _networks_and_batch()
    with pytest.raises(ValueError, match="phase.*Gmain"):
        StyleGAN2Loss(G, D).accumulate_gradients("Gall", real, None, z, None, gain=1.0)


def test_bad_hyperparameters_name_the_field() -> None:
    G, D, _, _ = _networks_and_batch()
    with pytest.raises(ValueError, match="r1_gamma"):
        StyleGAN2Loss(G, D, r1_gamma=-1)
    with pytest.raises(ValueError, match="style_mixing_prob"):
        StyleGAN2Loss(G, D, style_mixing_prob=1.5)


def test_d_step_gradients_are_those_of_the_whole_loss() -> None:
    """The D phase sends its fakes' and reals' terms backward one after the other (to hold
    one batch's graph at a time); the gradients must be those of the summed loss."""
    G, D, real, z = _networks_and_batch(batch=4)
    reference = copy.deepcopy(D)
    gamma, gain = 2.0, 16.0
    loss = StyleGAN2Loss(G, D, r1_gamma=gamma)
    torch.manual_seed(5)  # the same style mixing and noise in both generator calls
    loss.accumulate_gradients("Dboth", real, None, z, None, gain=gain)

    torch.manual_seed(5)
    with torch.no_grad():
        fake = G(z, None, style_mixing_prob=0.9, return_ws=True)[0]
    x = real.detach().requires_grad_(True)
    real_logits = reference(x)
    whole = (d_logistic_loss(real_logits, reference(fake))
             + (r1_penalty(x, real_logits) * gamma / 2).mean())
    whole.mul(gain).backward()
    for got, want in zip(_grads(D), _grads(reference), strict=True):
        torch.testing.assert_close(got, want)
