"""The face / non-face classifier: HOG features and a logistic regression, no download.

A face/non-face classifier (HOG features of ``skimage.feature.hog`` + L2-regularised logistic
regression fitted here by Newton's method) on the 100 faces and 100 non-faces of
``skimage.data.lfw_subset()``. Its held-out accuracy comes from a fixed stratified 5-fold split
(0.97). "Face share" is the share of generated images it accepts. A linear model on HOG is easy
to fool: it accepts the mean face (p ~ 1) and, with the usual 2x2-block L2-Hys HOG, most
uniform-noise images (the cell-wise L1 HOG used here accepts ~0.2% of noise).

Its standardised HOG space is also where precision/recall (:mod:`.manifold`) and the HOG KID
(:mod:`.fid`) are measured. Each HOG cell is normalised on its own, so the features describe
the *texture* of edges at the real images' own scale, not their contrast (halving the contrast
of real faces changes nothing). What that means for each figure is told in :mod:`.measures`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from stylegan_trainer.quality.images import ArrayLike, to_grey

# HOG: 64x64 input, 8x8-pixel cells, 9 orientations, each cell L1-normalised on its own (1x1
# blocks). On the LFW split this scores 0.97 held out and accepts ~0.2% of uniform noise; the
# common 32x32 / 2x2-block / L2-Hys setting scores as well but accepts ~88% of noise.
HOG_SIZE = 64
HOG_ORIENTATIONS = 9
HOG_PIXELS_PER_CELL = (8, 8)
HOG_CELLS_PER_BLOCK = (1, 1)
HOG_BLOCK_NORM = "L1"
FACE_THRESHOLD = 0.5


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
