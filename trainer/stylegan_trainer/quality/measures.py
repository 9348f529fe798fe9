"""How good are the faces? FID/KID, a face classifier, precision/recall and a memorisation check.

This module runs them all on one generator and reports them side by side
(:func:`evaluate_generator`, :func:`format_report`); each measure lives in a module of its own.
Two families of measurement, because only one of them works without a download:

* **FID and KID on Inception features**, when the user supplies the feature extractor
  (:mod:`.fid`; nothing is downloaded here: pass ``--inception FILE``).

* **Always available, nothing to download**: a face/non-face classifier on HOG features
  (:mod:`.faces`), whose held-out accuracy on LFW is 0.97 and whose "face share" is the share
  of generated images it accepts. A linear model on HOG is easy to fool, so beside it come
  precision and recall (:mod:`.manifold`, k = 3) and KID, all in that classifier's
  standardised HOG space, each next to the same figure for real versus real (two halves of the
  real set). No one figure is enough; each is fooled by something, as these measurements
  against 50 real faces show (200 images a set, seed 0; printed by
  ``bench/quality_reference.py``):

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

* **Memorisation** (:mod:`.manifold`): the mean nearest-neighbour distance from each generated
  image to the training set, beside the real set's own leave-one-out nearest-neighbour
  distance.

Generated images are compared with the real images as training fed them to the discriminator:
the dataset loaded at the generator's resolution (LFW's 25x25 crops resized to 32x32 for a
32x32 generator), in greyscale (LFW is grey); everything then goes through the same HOG at
64x64. Comparing at the dataset's own 25x25 instead would blur every generated image on the way
back down, and the training images themselves would score precision 0.04 rather than 0.72.
"""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from stylegan_common.errors import DatasetError
from stylegan_trainer.quality.faces import FACE_THRESHOLD, train_face_classifier
from stylegan_trainer.quality.fid import (
    FeatureExtractor,
    extract_features,
    fid_from_features,
    kid_from_features,
    load_feature_extractor,
)
from stylegan_trainer.quality.images import to_grey
from stylegan_trainer.quality.manifold import (
    PR_NEIGHBOURS,
    nearest_neighbour_distances,
    precision_recall,
)
from stylegan_trainer.sampling.generate import GeneratorLike, generate_images

LIMITS_NOTE = (
    "Limits: the HOG classifier accepts the mean face, so read face share with precision and "
    "recall. Recall near 1 for a widely spread (e.g. untrained) generator means its k-NN balls "
    "swallow the real set, not that it covers faces. Precision rewards the right detail: blurred "
    "real faces score 0 and uniform noise 1, so read it with face share and recall. KID on HOG "
    "features barely says whether training works. FID/KID from a hundred images are biased "
    "upward: compare checkpoints, not papers."
)


def load_real_images(dataset_uri: str, resolution: int | None = None) -> torch.Tensor:
    """The training images, uint8 [N, C, H, W], as ``data.open_dataset`` serves them.

    ``resolution``: the size training saw them at (the generator's); None keeps their own.
    Raises ``DatasetError`` (exit 64) naming the dataset when it cannot be opened.
    """
    from stylegan_trainer.data.dataset import open_dataset

    dataset = open_dataset(dataset_uri, resolution)
    images, _ = dataset.batch(range(len(dataset)))
    return images


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
