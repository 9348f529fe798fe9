"""Quality measurement: FID/KID arithmetic, precision/recall, the face classifier, memorisation."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from stylegan_trainer.cli import sample_commands
from stylegan_trainer.quality.faces import (
    FaceClassifier,
    lfw_faces_and_non_faces,
    train_face_classifier,
)
from stylegan_trainer.quality.fid import (
    extract_features,
    fid_from_features,
    frechet_distance,
    kid_from_features,
    load_feature_extractor,
)
from stylegan_trainer.quality.images import to_grey
from stylegan_trainer.quality.manifold import nearest_neighbour_distances, precision_recall
from stylegan_trainer.quality.measures import evaluate_generator, format_report, load_real_images

# -- independent reference computations -----------------------------------------------------


def sqrtm_denman_beavers(a: np.ndarray, iterations: int = 100) -> np.ndarray:
    """Principal square root of a matrix with positive real eigenvalues (Denman-Beavers)."""
    y, z = a.copy(), np.eye(len(a))
    for _ in range(iterations):
        y, z = (y + np.linalg.inv(z)) / 2, (z + np.linalg.inv(y)) / 2
    return y


def fid_reference(f1: np.ndarray, f2: np.ndarray) -> float:
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = sqrtm_denman_beavers(s1 @ s2)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def mmd_unbiased_loops(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased MMD^2 with the cubic polynomial kernel, written out term by term."""
    m, d = len(x), x.shape[1]

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return (a @ b / d + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def random_spd(rng: np.random.RandomState, d: int) -> np.ndarray:
    a = rng.randn(d, d)
    return a @ a.T + 0.1 * np.eye(d)


# -- FID --------------------------------------------------------------------------------------


def test_frechet_distance_matches_closed_form_for_diagonal_covariances() -> None:
    rng = np.random.RandomState(0)
    mu1, mu2 = rng.randn(5), rng.randn(5)
    a, b = rng.uniform(0.1, 3, 5), rng.uniform(0.1, 3, 5)
    expected = ((mu1 - mu2) ** 2).sum() + (a + b - 2 * np.sqrt(a * b)).sum()
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_matches_an_independent_sqrtm_for_general_covariances() -> None:
    rng = np.random.RandomState(1)
    s1, s2 = random_spd(rng, 6), random_spd(rng, 6)
    mu1, mu2 = rng.randn(6), rng.randn(6)
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * sqrtm_denman_beavers(s1 @ s2))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)


def test_fid_of_a_set_with_itself_is_zero_and_a_shift_costs_its_squared_length() -> None:
    feats = np.random.RandomState(2).randn(300, 8) @ random_spd(np.random.RandomState(3), 8)
    assert abs(fid_from_features(feats, feats)) < 1e-6
    shift = np.arange(8) / 4.0
    assert fid_from_features(feats, feats + shift) == pytest.approx((shift**2).sum(), rel=1e-6)


def test_fid_from_features_matches_the_independent_computation() -> None:
    rng = np.random.RandomState(4)
    f1 = rng.randn(200, 7)
    f2 = 1.5 * rng.randn(150, 7) @ random_spd(rng, 7) / 3 + 0.3
    assert fid_from_features(f1, f2) == pytest.approx(fid_reference(f1, f2), rel=1e-6)


def test_frechet_distance_refuses_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="covariances"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(4))


# -- KID --------------------------------------------------------------------------------------


def test_kid_equals_the_unbiased_mmd_written_out() -> None:
    rng = np.random.RandomState(5)
    x, y = rng.randn(12, 4), rng.randn(12, 4) + 0.5
    # One subset holding every row: a permutation, which the MMD does not see.
    assert kid_from_features(x, y, subsets=1, subset_size=12) == pytest.approx(
        mmd_unbiased_loops(x, y), rel=1e-9
    )


def test_kid_is_unbiased_near_zero_for_one_distribution_and_positive_for_two() -> None:
    rng = np.random.RandomState(6)
    same = [kid_from_features(rng.randn(40, 16), rng.randn(40, 16), subsets=1) for _ in range(100)]
    spread = np.std(same) / np.sqrt(len(same))
    assert abs(np.mean(same)) < 3 * spread  # unbiased: the mean of many estimates sits at 0
    assert min(same) < 0  # ... which needs negative estimates too (no clipping)
    different = kid_from_features(
        rng.randn(200, 16), rng.randn(200, 16) + 0.5, subsets=5, subset_size=100
    )
    assert different > 50 * spread


# -- precision and recall --------------------------------------------------------------------


def test_identical_sets_have_precision_and_recall_one() -> None:
    feats = np.random.RandomState(7).randn(60, 5)
    assert precision_recall(feats, feats.copy(), k=3) == (1.0, 1.0)


def test_disjoint_distributions_have_precision_and_recall_zero() -> None:
    rng = np.random.RandomState(8)
    assert precision_recall(rng.randn(60, 5), rng.randn(60, 5) + 100.0) == (0.0, 0.0)


def test_a_generator_covering_one_of_two_modes_is_precise_but_half_recalled() -> None:
    rng = np.random.RandomState(9)
    real = np.concatenate([rng.randn(100, 3), rng.randn(100, 3) + 30.0])
    fake = rng.randn(100, 3)
    precision, recall = precision_recall(real, fake)
    assert precision > 0.9 and 0.4 < recall < 0.6


def test_precision_recall_needs_more_samples_than_neighbours() -> None:
    with pytest.raises(ValueError, match="k"):
        precision_recall(np.zeros([3, 2]), np.ones([3, 2]), k=3)


# -- the face classifier ---------------------------------------------------------------------


def test_classifier_held_out_accuracy_is_well_above_chance() -> None:
    classifier = train_face_classifier()
    assert classifier.heldout_accuracy >= 0.85
    assert train_face_classifier() is classifier  # cached per process


def test_held_out_faces_are_accepted_far_more_often_than_uniform_noise() -> None:
    images, labels = lfw_faces_and_non_faces()
    # Hold out 20 faces and 20 non-faces so the faces scored are unseen.
    train = np.r_[0:80, 100:180]
    classifier = FaceClassifier().fit(images[train], labels[train])
    face_share = (classifier.predict_proba(images[80:100]) >= 0.5).mean()
    noise = np.random.RandomState(10).uniform(size=(200, 25, 25))
    noise_share = (classifier.predict_proba(noise) >= 0.5).mean()
    assert face_share >= 0.8 and face_share > noise_share + 0.4


def test_classifier_features_are_standardised_hog() -> None:
    images, _ = lfw_faces_and_non_faces()
    feats = train_face_classifier().features(images)
    assert feats.shape[0] == 200 and feats.shape[1] > 50
    np.testing.assert_allclose(feats.mean(0), 0, atol=1e-9)


def test_colour_and_uint8_images_become_the_same_grey() -> None:
    grey = torch.randint(0, 256, (2, 1, 6, 6), dtype=torch.uint8)
    colour = grey.repeat(1, 3, 1, 1)
    assert torch.allclose(to_grey(colour), to_grey(grey), atol=1e-6)
    assert torch.allclose(to_grey(grey), grey[:, 0].float() / 255)
    assert to_grey(grey, size=(3, 3)).shape == (2, 3, 3)


# -- memorisation ----------------------------------------------------------------------------


def test_a_copied_training_set_is_at_distance_zero() -> None:
    real = to_grey(load_real_images("builtin:lfw"))
    copied = nearest_neighbour_distances(real[:30], real)
    own = nearest_neighbour_distances(real, real, leave_one_out=True)
    assert copied.max() < 1e-9 and own.min() > 0.02


# -- whole evaluations with stand-in generators ----------------------------------------------


class MemorisingGenerator(torch.nn.Module):
    """Returns LFW training faces as training served them (32x32), chosen by the latent: the
    worst case of memorisation, and what a perfect generator of the training set would draw."""

    def __init__(self) -> None:
        super().__init__()
        self.faces = load_real_images("builtin:lfw", 32).float()
        self.z_dim, self.c_dim, self.num_ws = 4, 0, 2
        self.img_channels, self.img_resolution = self.faces.shape[1], self.faces.shape[-1]

    def forward(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None, noise_mode="const"):
        index = (z[:, 0].abs() * 1000).long() % len(self.faces)
        return (self.faces[index] - 127.5) / 127.5


class NoiseGenerator(torch.nn.Module):
    """Uniform RGB noise at 32x32, a seed-driven stand-in for a broken generator."""

    z_dim, c_dim, num_ws, img_channels, img_resolution = 32 * 32 * 3, 0, 2, 3, 32

    def forward(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None, noise_mode="const"):
        return torch.erf(z / 2**0.5).view(len(z), 3, 32, 32)  # Gaussian -> uniform on [-1, 1]


class NonFaceGenerator(MemorisingGenerator):
    """Returns the LFW non-faces: natural, varied, and no faces."""

    def __init__(self) -> None:
        super().__init__()
        images, labels = lfw_faces_and_non_faces()
        grey = to_grey(torch.from_numpy(images[labels == 0]), size=(32, 32))
        self.faces = grey[:, None].repeat(1, 3, 1, 1) * 255


@pytest.fixture(scope="module")
def memorised() -> dict:
    return evaluate_generator(MemorisingGenerator(), num_images=120)


@pytest.fixture(scope="module")
def noise() -> dict:
    return evaluate_generator(NoiseGenerator(), num_images=120)


@pytest.fixture(scope="module")
def non_faces() -> dict:
    return evaluate_generator(NonFaceGenerator(), num_images=120)


EXPECTED_KEYS = {
    "face_share",
    "precision",
    "recall",
    "kid_hog",
    "real_precision",
    "real_recall",
    "real_kid_hog",
    "nn_dist_fake_to_real",
    "nn_dist_real_loo",
    "classifier_heldout_accuracy",
}


def test_evaluation_reports_every_figure_with_its_real_counterpart(noise: dict) -> None:
    assert EXPECTED_KEYS <= noise.keys() and "fid" not in noise
    for key in ("face_share", "precision", "recall", "real_precision", "real_recall"):
        assert 0.0 <= noise[key] <= 1.0
    assert noise["real_precision"] > 0.5 and noise["real_recall"] > 0.4
    assert abs(noise["real_kid_hog"]) < 0.1


def test_memorisation_is_detected(memorised: dict, noise: dict) -> None:
    assert memorised["nn_dist_fake_to_real"] < 1e-3
    assert memorised["nn_dist_real_loo"] > 50 * memorised["nn_dist_fake_to_real"]
    assert noise["nn_dist_fake_to_real"] > 50 * memorised["nn_dist_fake_to_real"]


def test_copied_faces_score_like_real_faces(memorised: dict) -> None:
    assert memorised["face_share"] > 0.9
    assert memorised["precision"] > 0.8 and memorised["recall"] > 0.4
    assert memorised["kid_hog"] < 0.1


def test_face_share_and_precision_reject_natural_non_faces(non_faces: dict) -> None:
    assert non_faces["face_share"] < 0.1 and non_faces["precision"] < 0.2
    assert non_faces["kid_hog"] > 10 * abs(non_faces["real_kid_hog"])


def test_noise_fools_precision_but_not_face_share_or_recall(noise: dict) -> None:
    # The documented limit: flat HOG histograms sit inside the real k-NN balls.
    assert noise["precision"] > 0.9
    assert noise["face_share"] < 0.1 and noise["recall"] < 0.1


def test_report_is_an_aligned_table_with_the_limits(noise: dict) -> None:
    text = format_report(noise)
    lines = text.splitlines()
    assert lines[0].split() == ["metric", "generated", "real", "vs", "real"]
    table = lines[2 : lines.index("")]
    assert [line.split("  ")[0] for line in table] == [
        "face share (HOG classifier)",
        "precision (k=3, HOG)",
        "recall (k=3, HOG)",
        "KID (HOG)",
        "NN distance to training set",
    ]
    assert len({len(line) for line in lines[: lines.index("")]}) == 1
    assert (
        f"{noise['real_precision']:.3f}" in text
        and "swallow" in text
        and "held-out accuracy" in text
    )


# -- Inception features through a stand-in TorchScript module --------------------------------


class PooledFeatures(torch.nn.Module):
    """Stand-in for inception-2015-12-05.pt: uint8 [N, 3, 299, 299] -> 48 pooled features."""

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        assert x.shape[1:] == (3, 299, 299)
        pooled = torch.nn.functional.adaptive_avg_pool2d(x.float() / 255, 4)
        return pooled.flatten(1)


class NoFlag(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float().mean(dim=(2, 3))


def script(module: torch.nn.Module) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is what the Inception file is
        return torch.jit.script(module)


@pytest.fixture(scope="module")
def extractor_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("inception") / "standin.pt"
    script(PooledFeatures()).save(str(path))
    return str(path)


def test_fid_and_kid_are_added_when_an_extractor_is_given(extractor_file: str) -> None:
    faces = evaluate_generator(MemorisingGenerator(), num_images=60, inception=extractor_file)
    static = evaluate_generator(NoiseGenerator(), num_images=60, inception=extractor_file)
    assert {"fid", "kid", "real_fid", "real_kid"} <= faces.keys()
    assert faces["fid"] < static["fid"] and faces["kid"] < static["kid"]
    assert "FID (Inception)" in format_report(faces)


def test_extractors_without_the_features_flag_are_called_plainly() -> None:
    images = torch.randint(0, 256, (3, 1, 25, 25), dtype=torch.uint8)
    feats = extract_features(script(NoFlag()), images)
    assert feats.shape == (3, 3)


def test_missing_extractor_file_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="inception"):
        load_feature_extractor(str(tmp_path / "inception-2015-12-05.pt"))


# -- the command ----------------------------------------------------------------------------


@pytest.fixture
def checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "network.pt"
    path.write_bytes(b"stand-in")
    monkeypatch.setattr(
        sample_commands, "_load_generator", lambda uri, device, which: MemorisingGenerator()
    )
    return path


def test_quality_command_prints_json(checkpoint: Path, extractor_file: str) -> None:
    args = [
        "--checkpoint",
        str(checkpoint),
        "--num",
        "40",
        "-o",
        "json",
        "--device",
        "cpu",
        "--inception",
        extractor_file,
    ]
    result = CliRunner().invoke(sample_commands.quality_cmd, args)
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert (
        EXPECTED_KEYS | {"fid", "kid"} <= figures.keys() and figures["nn_dist_fake_to_real"] < 1e-3
    )


def test_quality_command_prints_a_table(checkpoint: Path) -> None:
    result = CliRunner().invoke(
        sample_commands.quality_cmd, ["--checkpoint", str(checkpoint), "--num", "20"]
    )
    assert result.exit_code == 0, result.output
    assert "face share" in result.output and "Limits" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--inception", "missing.pt"], "--inception"),
        (["--dataset", "builtin:nothing"], "--dataset"),
        (["--num", "2"], "--num"),
        (["--device", "tpu"], "--device"),
    ],
)
def test_bad_quality_input_exits_64(checkpoint: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(
        sample_commands.quality_cmd, ["--checkpoint", str(checkpoint), *args]
    )
    assert result.exit_code == 64, result.output
    assert message in result.output


def test_quality_command_reads_a_real_checkpoint(tmp_path: Path) -> None:
    from stylegan_trainer.model import config, generator
    from stylegan_trainer.train import checkpoint as checkpoint_module

    torch.manual_seed(0)
    cfg = config.NetworkConfig(
        resolution=16, z_dim=16, w_dim=16, mapping_layers=2, channel_base=64, channel_max=16
    )
    G = generator.Generator(cfg)
    path = tmp_path / "ckpt.pt"
    torch.save(
        {
            "format": checkpoint_module.CHECKPOINT_FORMAT,
            "network": cfg.to_dict(),
            "G_ema": G.state_dict(),
        },
        path,
    )
    result = CliRunner().invoke(
        sample_commands.quality_cmd,
        ["--checkpoint", str(path), "--num", "20", "-o", "json", "--device", "cpu"],
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert figures["num_images"] == 20 and figures["precision"] < figures["real_precision"]


def test_an_inception_file_that_is_not_torchscript_exits_64(
    checkpoint: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "inception-2015-12-05.pt"
    bad.write_bytes(b"not a TorchScript archive")
    args = ["--checkpoint", str(checkpoint), "--inception", str(bad)]
    result = CliRunner().invoke(sample_commands.quality_cmd, args)
    assert (
        result.exit_code == 64 and "--inception" in result.output and "TorchScript" in result.output
    )
