"""Precision, recall and memorisation: nearest-neighbour questions about two sets.

* **Precision and recall** (k-NN manifolds, Kynkaanniemi et al. 2019, k = 3), taken in the face
  classifier's standardised HOG space, each next to the same figure for real versus real (two
  halves of the real set).

* **Memorisation**: the mean nearest-neighbour distance (RMS over pixels, grey levels in [0, 1])
  from each generated image to the training set, beside the real set's own leave-one-out
  nearest-neighbour distance. A generator that copies its training images scores near 0; a
  healthy one scores about as far from the training set as the training images are from each
  other.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from stylegan_trainer.quality.images import ArrayLike, _float64

PR_NEIGHBOURS = 3


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
