"""How good are the faces? FID/KID, a face classifier, precision/recall and a memorisation check.

Two families of measurement, because only one of them works without a download:

* **FID and KID on Inception features**, when the user supplies the feature extractor. The file
  that works is the TorchScript ``inception-2015-12-05.pt`` that the metric tooling of the
  StyleGAN2-ADA/StyleGAN3 code loads (a translation of TensorFlow's 2015 Inception v3, pool3
  features): ``model(uint8 images [N, 3, H, W], return_features=True) -> float [N, 2048]``. Any
  TorchScript module that maps uint8 (or float) [N, 3, 299, 299] images to [N, D] features
  works; a module whose ``forward`` has no ``return_features`` argument is called without it.
  Nothing is downloaded here: fetch the file yourself and pass ``--inception FILE``.
  FID = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2}) (Heusel et al. 2017), computed without
  scipy: Tr((S1 S2)^{1/2}) = Tr((sqrt(S1) S2 sqrt(S1))^{1/2}), whose argument is symmetric PSD,
  so it is the sum of the square roots of its eigenvalues. KID is the unbiased MMD^2 with the
  kernel k(x, y) = (x.y / d + 1)^3, averaged over random subsets (Binkowski et al. 2018).
  With the hundred LFW faces both are heavily biased upward (2048-d covariances from 100 samples);
  compare them between checkpoints, not with published figures.

* **Always available, nothing to download**: a face/non-face classifier (HOG features of
  ``skimage.feature.hog`` + L2-regularised logistic regression fitted here by Newton's method) on
  the 100 faces and 100 non-faces of ``skimage.data.lfw_subset()``. Its held-out accuracy comes
  from a fixed stratified 5-fold split (0.97). "Face share" is the share of generated images it
  accepts. A linear model on HOG is easy to fool: it accepts the mean face (p ~ 1) and, with
  the usual 2x2-block L2-Hys HOG, most uniform-noise images (the cell-wise L1 HOG used here
  accepts ~0.2% of noise). So beside it come precision and recall (k-NN manifolds,
  Kynkaanniemi et al. 2019, k = 3) and KID, all in that classifier's standardised HOG space, each
  next to the same figure for real versus real (two halves of the real set). No one figure is
  enough; each is fooled by something, as these measurements against 50 real faces show
  (200 images a set, seed 0; printed by ``bench/quality_reference.py``):

  ===================================  ==========  =========  ======  =======
  set (at 32x32)                       face share  precision  recall  KID
  ===================================  ==========  =========  ======  =======
  the other 50 real faces              (1.00)      0.72       0.54    0.01
  copies of the training set           1.00        0.83       0.86    -0.04
  the other 50, blurred through 16x16  0.98        0.02       0.98    0.16
  untrained 32x32 G, 2 inits           0.36        0.00       1.00    0.79-0.81
  uniform noise                        0.01        1.00       0.00    0.78
  the mean face                        1.00        0.00       0.00    5.29
  LFW non-faces                        0.00        0.00       1.00    0.80
  ===================================  ==========  =========  ======  =======

  Each HOG cell is normalised on its own, so the features describe the *texture* of edges at
  the real images' own scale, not their contrast (halving the contrast of real faces changes
  nothing): real faces blurred through 16x16 keep their face share but fall out of the real
  manifold entirely, and uniform noise, whose cells hold every orientation as real hair and
  skin do, falls inside it. Precision here therefore asks "is the detail right?", which a
  generator learns last (coarse-to-fine), and it must be read with the face share ("is it a
  face?") and recall ("is the whole set spread like the real one?"). An untrained generator's
  widely spread set gets recall near 1 because its k-NN balls swallow the real set. KID on HOG
  features reacts to any change of feature statistics, faces or not, and rates noise closer to
  faces than an untrained generator, so it barely says whether training works. The real faces'
  face share is in brackets because the classifier was fitted on them.

* **Memorisation**: the mean nearest-neighbour distance (RMS over pixels, grey levels in [0, 1])
  from each generated image to the training set, beside the real set's own leave-one-out
  nearest-neighbour distance. A generator that copies its training images scores near 0; a
  healthy one scores about as far from the training set as the training images are from each
  other.

Generated images are compared with the real images as training fed them to the discriminator:
the dataset loaded at the generator's resolution (LFW's 25x25 crops resized to 32x32 for a
32x32 generator), in greyscale (LFW is grey); everything then goes through the same HOG at
64x64. Comparing at the dataset's own 25x25 instead would blur every generated image on the way
back down, and the training images themselves would score precision 0.04 rather than 0.72.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import os
import textwrap
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from stylegan_common.errors import DatasetError
from stylegan_trainer.sampling.generate import GeneratorLike, generate_images

ArrayLike = np.ndarray | torch.Tensor

# HOG: 64x64 input, 8x8-pixel cells, 9 orientations, each cell L1-normalised on its own (1x1
# blocks). On the LFW split this scores 0.97 held out and accepts ~0.2% of uniform noise; the
# common 32x32 / 2x2-block / L2-Hys setting scores as well but accepts ~88% of noise.
HOG_SIZE = 64
HOG_ORIENTATIONS = 9
HOG_PIXELS_PER_CELL = (8, 8)
HOG_CELLS_PER_BLOCK = (1, 1)
HOG_BLOCK_NORM = "L1"
FACE_THRESHOLD = 0.5
PR_NEIGHBOURS = 3
INCEPTION_SIZE = 299

LIMITS_NOTE = (
    "Limits: the HOG classifier accepts the mean face, so read face share with precision and "
    "recall. Recall near 1 for a widely spread (e.g. untrained) generator means its k-NN balls "
    "swallow the real set, not that it covers faces. Precision rewards the right detail: blurred "
    "real faces score 0 and uniform noise 1, so read it with face share and recall. KID on HOG "
    "features barely says whether training works. FID/KID from a hundred images are biased "
    "upward: compare checkpoints, not papers."
)


# ----------------------------------------------------------------------------------------------
# Image plumbing


def _as_tensor(images: ArrayLike) -> torch.Tensor:
    return (
        images.detach().cpu()
        if isinstance(images, torch.Tensor)
        else torch.from_numpy(np.asarray(images))
    )


def to_grey(images: ArrayLike, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Images as float32 grey levels in [0, 1], shape [N, H, W], optionally resized to ``size``.

    Accepts uint8 (0-255) or float ([0, 1]) images shaped [N, C, H, W] with C = 1 or 3, or
    [N, H, W]. Colour becomes luma with the ITU-R BT.601 weights. Resizing is bilinear with
    anti-aliasing, so shrinking does not alias.
    """
    x = _as_tensor(images)
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"images: expected [N, 1|3, H, W] or [N, H, W], got {tuple(x.shape)}")
    if x.shape[1] == 3:
        luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        x = (x * luma).sum(dim=1, keepdim=True)
    if size is not None and tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    return x[:, 0].clamp(0.0, 1.0)


def hog_features(images: ArrayLike, size: int = HOG_SIZE) -> np.ndarray:
    """Raw HOG descriptors, float64 [N, D], of grey images resized to ``size`` x ``size``."""
    from skimage.feature import hog  # imported here: skimage's import is slow and often unused

    grey = to_grey(images, size=(size, size)).numpy().astype(np.float64)
    return np.stack(
        [
            hog(
                img,
                orientations=HOG_ORIENTATIONS,
                pixels_per_cell=HOG_PIXELS_PER_CELL,
                cells_per_block=HOG_CELLS_PER_BLOCK,
                block_norm=HOG_BLOCK_NORM,
                feature_vector=True,
            )
            for img in grey
        ]
    )


# ----------------------------------------------------------------------------------------------
# The face / non-face classifier


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -500, 500)))


@contextmanager
def _one_thread() -> Iterator[None]:
    # The fit is tiny; on a shared CPU, BLAS threads fighting for cores made it ten times slower.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float, max_iter: int = 100) -> np.ndarray:
    """L2-regularised logistic regression by Newton's method; returns [D + 1] weights, bias last.

    Minimises sum(log-loss) + l2/2 * ||w||^2 (the bias is not penalised). The objective is
    strictly convex for l2 > 0, so Newton converges in about ten steps from zero.
    """
    with _one_thread():
        features = torch.from_numpy(np.asarray(x, dtype=np.float64))
        targets = torch.from_numpy(np.asarray(y, dtype=np.float64))
        n, d = features.shape
        design = torch.cat([features, torch.ones([n, 1], dtype=torch.float64)], dim=1)
        penalty = torch.full([d + 1], float(l2), dtype=torch.float64)
        penalty[-1] = 0.0
        weights = torch.zeros(d + 1, dtype=torch.float64)
        for _ in range(max_iter):
            p = torch.sigmoid(design @ weights)
            gradient = design.T @ (p - targets) + penalty * weights
            hessian = (design.T * (p * (1 - p))) @ design + torch.diag(penalty + 1e-9)
            step = torch.linalg.solve(hessian, gradient)
            weights -= step
            if float(step.abs().max()) < 1e-9:
                break
    return weights.numpy()


@dataclass
class FaceClassifier:
    """Face (1) versus non-face (0) from standardised HOG features and a linear model."""

    l2: float = 10.0
    hog_size: int = HOG_SIZE
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    weights: np.ndarray | None = None
    heldout_accuracy: float = float("nan")
    """Accuracy on images it was not fitted on (set by ``train_face_classifier``)."""

    def fit(self, images: ArrayLike, labels: ArrayLike) -> FaceClassifier:
        """Fit on images (any shape ``to_grey`` takes) and 0/1 labels; returns self."""
        raw = hog_features(images, self.hog_size)
        y = np.asarray(labels, dtype=np.float64)
        if len(y) != len(raw) or not set(np.unique(y)) <= {0.0, 1.0}:
            raise ValueError("labels: need one 0/1 label per image")
        self.mean = raw.mean(axis=0)
        # Constant HOG bins (e.g. a block that is flat in every image) would divide by zero.
        self.std = np.maximum(raw.std(axis=0), 1e-6)
        self.weights = fit_logistic((raw - self.mean) / self.std, y, self.l2)
        return self

    def features(self, images: ArrayLike) -> np.ndarray:
        """Standardised HOG features, float64 [N, D] (the space for precision/recall and KID)."""
        if self.mean is None or self.std is None:
            raise RuntimeError("FaceClassifier: call fit() before features()")
        return (hog_features(images, self.hog_size) - self.mean) / self.std

    def predict_proba(self, images: ArrayLike) -> np.ndarray:
        """Probability that each image is a face, float64 [N]."""
        if self.weights is None:
            raise RuntimeError("FaceClassifier: call fit() before predict_proba()")
        return _sigmoid(self.features(images) @ self.weights[:-1] + self.weights[-1])


def lfw_faces_and_non_faces() -> tuple[np.ndarray, np.ndarray]:
    """The 200 grey 25x25 images of ``skimage.data.lfw_subset()`` (float [0, 1]) and labels.

    The first 100 are faces (label 1), the last 100 non-faces (label 0).
    """
    from skimage.data import lfw_subset

    images = np.asarray(lfw_subset(), dtype=np.float64)
    labels = np.concatenate([np.ones(100), np.zeros(100)])
    return images, labels


def _stratified_folds(labels: np.ndarray, folds: int, seed: int) -> list[np.ndarray]:
    rng = np.random.RandomState(seed)
    assignment = np.empty(len(labels), dtype=int)
    for value in np.unique(labels):
        members = np.flatnonzero(labels == value)
        assignment[rng.permutation(members)] = np.arange(len(members)) % folds
    return [np.flatnonzero(assignment == k) for k in range(folds)]


@functools.lru_cache(maxsize=4)
def train_face_classifier(seed: int = 0, folds: int = 5) -> FaceClassifier:
    """The LFW face classifier, fitted on all 200 images; cached per process and seed.

    ``heldout_accuracy`` is the mean accuracy over a stratified ``folds``-fold split (seeded),
    each fold scored by a model fitted on the other folds.
    """
    images, labels = lfw_faces_and_non_faces()
    correct = 0
    for test in _stratified_folds(labels, folds, seed):
        train = np.setdiff1d(np.arange(len(labels)), test)
        model = FaceClassifier().fit(images[train], labels[train])
        correct += int(
            ((model.predict_proba(images[test]) >= FACE_THRESHOLD) == labels[test]).sum()
        )
    classifier = FaceClassifier().fit(images, labels)
    classifier.heldout_accuracy = correct / len(labels)
    return classifier


# ----------------------------------------------------------------------------------------------
# Distribution distances


def _float64(x: ArrayLike) -> torch.Tensor:
    return _as_tensor(x).to(torch.float64)


def frechet_distance(mu1: ArrayLike, s1: ArrayLike, mu2: ArrayLike, s2: ArrayLike) -> float:
    """Frechet distance between N(mu1, s1) and N(mu2, s2).

    ||mu1 - mu2||^2 + Tr(s1) + Tr(s2) - 2 Tr((s1 s2)^{1/2}); the last trace is computed as
    Tr((sqrt(s1) s2 sqrt(s1))^{1/2}) from eigenvalues (the two matrices are similar, and the
    second is symmetric PSD, so no complex square roots appear). Negative eigenvalues from
    rounding are clipped to 0.
    """
    mu1, mu2, s1, s2 = _float64(mu1), _float64(mu2), _float64(s1), _float64(s2)
    d = mu1.shape[-1]
    if mu2.shape != mu1.shape or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(
            f"frechet_distance: need means [D] and covariances [D, D]; got {tuple(mu1.shape)}, "
            f"{tuple(s1.shape)}, {tuple(mu2.shape)}, {tuple(s2.shape)}"
        )
    evals, evecs = torch.linalg.eigh((s1 + s1.T) / 2)
    sqrt_s1 = (evecs * evals.clamp(min=0).sqrt()) @ evecs.T
    inner = sqrt_s1 @ s2 @ sqrt_s1
    tr_sqrt = torch.linalg.eigvalsh((inner + inner.T) / 2).clamp(min=0).sqrt().sum()
    value = (mu1 - mu2).square().sum() + torch.trace(s1) + torch.trace(s2) - 2 * tr_sqrt
    return float(value)


def fid_from_features(f1: ArrayLike, f2: ArrayLike) -> float:
    """FID between two feature sets [N, D] (means and unbiased covariances)."""
    a, b = _float64(f1), _float64(f2)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(
            f"features: need two [N>=2, D] sets, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    return frechet_distance(a.mean(0), torch.cov(a.T), b.mean(0), torch.cov(b.T))


def kid_from_features(
    f1: ArrayLike, f2: ArrayLike, subsets: int = 10, subset_size: int = 1000, seed: int = 0
) -> float:
    """Kernel Inception Distance: the unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3.

    Averaged over ``subsets`` random subsets of ``min(subset_size, len(f1), len(f2))`` rows of
    each set (drawn without replacement, seeded). Can be slightly negative for equal
    distributions: the estimate is unbiased, not clipped.
    """
    a, b = _float64(f1), _float64(f2)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(
            f"features: need two [N, D] sets, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise ValueError(f"subset_size: KID needs at least 2 rows a set, got {m}")
    if subsets < 1:
        raise ValueError(f"subsets: must be at least 1, got {subsets}")
    d = a.shape[1]
    rng = np.random.RandomState(seed)
    estimates = []
    for _ in range(subsets):
        x = a[torch.from_numpy(rng.choice(len(a), m, replace=False))]
        y = b[torch.from_numpy(rng.choice(len(b), m, replace=False))]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        # The unbiased estimate leaves out each kernel matrix's diagonal, k(x_i, x_i).
        within = (kxx.sum() - kxx.trace() + kyy.sum() - kyy.trace()) / (m * (m - 1))
        estimates.append(float(within - 2 * kxy.mean()))
    return float(np.mean(estimates))


def _distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")


def kth_neighbour_radii(feats: ArrayLike, k: int = PR_NEIGHBOURS) -> torch.Tensor:
    """Distance from each row to its k-th nearest other row, float64 [N]."""
    x = _float64(feats)
    if not 0 < k < len(x):
        raise ValueError(f"k: need 0 < k < number of samples ({len(x)}), got {k}")
    d = _distances(x, x)
    d.fill_diagonal_(math.inf)  # a point is not its own neighbour
    return torch.kthvalue(d, k, dim=1).values


def precision_recall(
    real_feats: ArrayLike, fake_feats: ArrayLike, k: int = PR_NEIGHBOURS
) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019).

    The real manifold is the union of balls around each real sample with radius its k-th
    nearest real neighbour; precision is the share of fake samples inside it. Recall swaps the
    roles: the share of real samples inside the fake manifold. A spread-out fake set has huge
    balls, so its recall runs to 1 whatever it looks like.
    """
    real, fake = _float64(real_feats), _float64(fake_feats)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"features: need two [N, D] sets, got {tuple(real.shape)} and {tuple(fake.shape)}"
        )
    real_radii = kth_neighbour_radii(real, k)
    fake_radii = kth_neighbour_radii(fake, k)
    d = _distances(fake, real)  # [fake, real]
    precision = (d <= real_radii[None, :]).any(dim=1).double().mean()
    recall = (d.T <= fake_radii[None, :]).any(dim=1).double().mean()
    return float(precision), float(recall)


def nearest_neighbour_distances(
    query: ArrayLike, reference: ArrayLike, leave_one_out: bool = False
) -> np.ndarray:
    """RMS pixel distance from each grey query image [N, H, W] to its nearest reference image.

    ``leave_one_out=True`` takes query and reference to be the same set and skips each
    image's distance to itself.
    """
    q = _float64(query).flatten(1)
    r = _float64(reference).flatten(1)
    if q.shape[1] != r.shape[1]:
        raise ValueError(
            f"images: query {tuple(q.shape)} and reference {tuple(r.shape)} differ in size"
        )
    d = _distances(q, r) / math.sqrt(q.shape[1])
    if leave_one_out:
        d.fill_diagonal_(math.inf)
    return d.min(dim=1).values.numpy()


# ----------------------------------------------------------------------------------------------
# Inception features (only when the user supplies the extractor)

FeatureExtractor = Callable[..., torch.Tensor]


def load_feature_extractor(path: str, device: torch.device | str = "cpu") -> torch.jit.ScriptModule:
    """Load a TorchScript feature extractor such as ``inception-2015-12-05.pt``."""
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"inception: no file at {path!r}; pass a TorchScript feature extractor, e.g. the "
            "'inception-2015-12-05.pt' used by the StyleGAN2-ADA metrics (not downloaded here)"
        )
    with warnings.catch_warnings():
        # torch marks TorchScript deprecated, but it is the format the Inception file ships in.
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(path, map_location=torch.device(device)).eval()


def accepts_features_flag(extractor: FeatureExtractor) -> bool:
    """Whether the extractor's ``forward`` takes ``return_features`` (StyleGAN's Inception does)."""
    forward = getattr(extractor, "forward", extractor)
    schema = getattr(forward, "schema", None)  # TorchScript methods carry a schema, no signature
    if schema is not None:
        return any(argument.name == "return_features" for argument in schema.arguments)
    try:
        parameters = inspect.signature(forward).parameters
    except (TypeError, ValueError):
        return False
    return "return_features" in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


@torch.no_grad()
def extract_features(
    extractor: FeatureExtractor,
    images_uint8: ArrayLike,
    device: torch.device | str = "cpu",
    batch: int = 64,
) -> np.ndarray:
    """Features [N, D] of uint8 images, shown to the extractor as uint8 RGB [n, 3, 299, 299]."""
    device = torch.device(device)
    x = _as_tensor(images_uint8)
    if x.ndim != 4 or x.dtype != torch.uint8:
        raise ValueError(f"images: expected uint8 [N, C, H, W], got {x.dtype} {tuple(x.shape)}")
    wants_flag = accepts_features_flag(extractor)
    out = []
    for start in range(0, len(x), batch):
        chunk = x[start : start + batch].to(device)
        if chunk.shape[1] == 1:
            chunk = chunk.repeat(1, 3, 1, 1)  # grey to RGB: the extractor expects three channels
        if tuple(chunk.shape[-2:]) != (INCEPTION_SIZE, INCEPTION_SIZE):
            resized = F.interpolate(
                chunk.float(),
                size=(INCEPTION_SIZE, INCEPTION_SIZE),
                mode="bilinear",
                align_corners=False,
            )
            chunk = resized.round().clamp(0, 255).to(torch.uint8)
        feats = extractor(chunk, return_features=True) if wants_flag else extractor(chunk)
        out.append(feats.reshape(len(chunk), -1).double().cpu())
    return torch.cat(out).numpy()


# ----------------------------------------------------------------------------------------------
# Real images


def load_real_images(dataset_uri: str, resolution: int | None = None) -> torch.Tensor:
    """The training images, uint8 [N, C, H, W], as ``data.open_dataset`` serves them.

    ``resolution``: the size training saw them at (the generator's); None keeps their own.
    Raises ``DatasetError`` (exit 64) naming the dataset when it cannot be opened.
    """
    from stylegan_trainer.data.dataset import open_dataset

    dataset = open_dataset(dataset_uri, resolution)
    images, _ = dataset.batch(range(len(dataset)))
    return images


# ----------------------------------------------------------------------------------------------
# The whole evaluation


def _halves(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.RandomState(seed).permutation(n)
    return order[: n // 2], order[n // 2 :]


def evaluate_generator(
    G: GeneratorLike,
    dataset_uri: str = "builtin:lfw",
    num_images: int = 200,
    device: torch.device | str = "cpu",
    seed: int = 0,
    truncation_psi: float = 1.0,
    inception: str | FeatureExtractor | None = None,
) -> dict[str, Any]:
    """Every quality figure for one generator, with the real-versus-real figure beside each.

    Generated images come from seeds ``seed .. seed + num_images - 1`` with constant noise. The
    real set is split into two seeded halves A and B: precision, recall and KID in HOG space are
    measured for (A, generated) and for (A, B); the A-versus-B figures show what a perfect
    generator would score on sets this small. Keys: face_share, precision, recall, kid_hog,
    real_precision, real_recall, real_kid_hog, nn_dist_fake_to_real, nn_dist_real_loo,
    classifier_heldout_accuracy, num_images, num_real, and fid, kid, real_fid, real_kid when
    ``inception`` (a file path or a loaded extractor) is given. See the module docstring for
    what each can and cannot tell.
    """
    if num_images < PR_NEIGHBOURS + 1:
        raise ValueError(
            f"num: need at least {PR_NEIGHBOURS + 1} generated images, got {num_images}"
        )
    device = torch.device(device)
    # The real images exactly as training fed them to D: at the generator's resolution. A
    # generator that reproduced them perfectly then scores what real-versus-real scores;
    # shrinking its 32x32 output back to LFW's own 25x25 instead would blur it (the training
    # images themselves, so compared, get precision 0.04 against 0.72).
    real_u8 = load_real_images(dataset_uri, int(G.img_resolution))
    if len(real_u8) < 2 * (PR_NEIGHBOURS + 1):
        raise DatasetError(
            f"dataset: {dataset_uri!r} has {len(real_u8)} images; "
            f"need at least {2 * (PR_NEIGHBOURS + 1)}"
        )
    fake_u8 = generate_images(
        G,
        range(seed, seed + num_images),
        truncation_psi=truncation_psi,
        noise_mode="const",
        device=device,
    )
    real_grey = to_grey(real_u8)
    fake_grey = to_grey(fake_u8)

    classifier = train_face_classifier(seed)
    real_feats = classifier.features(real_grey)
    fake_feats = classifier.features(fake_grey)
    half_a, half_b = _halves(len(real_u8), seed)

    precision, recall = precision_recall(real_feats[half_a], fake_feats)
    real_precision, real_recall = precision_recall(real_feats[half_a], real_feats[half_b])
    result: dict[str, Any] = {
        "face_share": float((classifier.predict_proba(fake_grey) >= FACE_THRESHOLD).mean()),
        "precision": precision,
        "recall": recall,
        "kid_hog": kid_from_features(real_feats[half_a], fake_feats, seed=seed),
        "real_precision": real_precision,
        "real_recall": real_recall,
        "real_kid_hog": kid_from_features(real_feats[half_a], real_feats[half_b], seed=seed),
        "nn_dist_fake_to_real": float(nearest_neighbour_distances(fake_grey, real_grey).mean()),
        "nn_dist_real_loo": float(
            nearest_neighbour_distances(real_grey, real_grey, leave_one_out=True).mean()
        ),
        "classifier_heldout_accuracy": classifier.heldout_accuracy,
        "num_images": num_images,
        "num_real": len(real_u8),
    }
    if inception is not None:
        extractor = (
            load_feature_extractor(inception, device) if isinstance(inception, str) else inception
        )
        # The Inception protocol compares at the generator's own resolution and colour.
        real_inc = extract_features(extractor, real_u8, device)
        fake_inc = extract_features(extractor, fake_u8, device)
        result["fid"] = fid_from_features(real_inc, fake_inc)
        result["kid"] = kid_from_features(real_inc, fake_inc, seed=seed)
        result["real_fid"] = fid_from_features(real_inc[half_a], real_inc[half_b])
        result["real_kid"] = kid_from_features(real_inc[half_a], real_inc[half_b], seed=seed)
    return result


# Rows of the report: (label, key for generated, key for real vs real, format).
REPORT_ROWS: Sequence[tuple[str, str, str | None, str]] = (
    ("face share (HOG classifier)", "face_share", None, "{:.3f}"),
    ("precision (k=3, HOG)", "precision", "real_precision", "{:.3f}"),
    ("recall (k=3, HOG)", "recall", "real_recall", "{:.3f}"),
    ("KID (HOG)", "kid_hog", "real_kid_hog", "{:.4f}"),
    ("NN distance to training set", "nn_dist_fake_to_real", "nn_dist_real_loo", "{:.4f}"),
    ("FID (Inception)", "fid", "real_fid", "{:.2f}"),
    ("KID (Inception)", "kid", "real_kid", "{:.4f}"),
)


def format_report(result: dict[str, Any]) -> str:
    """An aligned table, generated against real-versus-real, followed by the metrics' limits."""
    header = ("metric", "generated", "real vs real")
    rows = [header]
    for label, fake_key, real_key, fmt in REPORT_ROWS:
        if fake_key not in result:
            continue
        real = fmt.format(result[real_key]) if real_key and real_key in result else "-"
        rows.append((label, fmt.format(result[fake_key]), real))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"{a:<{widths[0]}}  {b:>{widths[1]}}  {c:>{widths[2]}}" for a, b, c in rows]
    lines.insert(1, "-" * len(lines[0]))
    extra = []
    if "classifier_heldout_accuracy" in result:
        extra.append(
            "face classifier held-out accuracy (5-fold, LFW): "
            f"{result['classifier_heldout_accuracy']:.3f}"
        )
    if "num_images" in result and "num_real" in result:
        extra.append(
            f"{result['num_images']} generated images; {result['num_real']} real images "
            "(real vs real: two halves; NN distance: real set leave-one-out)"
        )
    return "\n".join(lines + [""] + extra + textwrap.wrap(LIMITS_NOTE, width=100))


def report_json(result: dict[str, Any]) -> str:
    """The result as one JSON object (NaN written as null)."""
    clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in result.items()}
    return json.dumps(clean, indent=2, sort_keys=True)
