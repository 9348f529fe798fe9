"""What the no-download quality figures say about sets whose answer is known.

Prints face share, precision, recall and KID (all from ``stylegan_trainer.quality``, in the
face classifier's standardised HOG space, against real half A as ``evaluate_generator`` does)
for reference sets at 32x32, the size a 32x32 generator trains on and is compared at (LFW's
25x25 crops resized as training resizes them): the other real half, copies of the training
set, the other half blurred through 16x16, two untrained 32x32 ``cpu``-preset generators,
uniform noise, the mean face and LFW's non-faces. The table in the docstring of
``stylegan_trainer/quality/measures.py`` comes from this script; rerun it when the HOG settings
or the precision/recall code change.
Asserts nothing.

    .venv/bin/python bench/quality_reference.py [--num 200] [--seed 0]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from stylegan_trainer.model.generator import Generator
from stylegan_trainer.quality.faces import (
    FACE_THRESHOLD,
    lfw_faces_and_non_faces,
    train_face_classifier,
)
from stylegan_trainer.quality.fid import kid_from_features
from stylegan_trainer.quality.images import to_grey
from stylegan_trainer.quality.manifold import PR_NEIGHBOURS, precision_recall
from stylegan_trainer.quality.measures import _halves, load_real_images
from stylegan_trainer.sampling.generate import generate_images
from stylegan_trainer.train.presets import resolve_preset

RESOLUTION = 32


def blurred(grey: torch.Tensor, through: int) -> torch.Tensor:
    """Grey images [N, H, W] shrunk to ``through`` pixels (anti-aliased) and grown back."""
    small = F.interpolate(grey[:, None], size=(through, through), mode="bilinear",
                          antialias=True, align_corners=False)
    return F.interpolate(small, size=tuple(grey.shape[-2:]), mode="bilinear",
                         align_corners=False)[:, 0]


def reference_sets(num: int, seed: int, real_grey: torch.Tensor,
                   half_b: torch.Tensor) -> dict[str, torch.Tensor]:
    """Grey [N, H, W] image sets at the real images' size, by name."""
    rng = torch.Generator().manual_seed(seed)
    size = tuple(real_grey.shape[-2:])
    images, labels = lfw_faces_and_non_faces()
    sets = {
        "the other real half": real_grey[half_b],
        "copies of the training set": real_grey[torch.randint(0, len(real_grey), (num,),
                                                              generator=rng)],
        "the other half, blurred through 16x16": blurred(real_grey[half_b], 16),
        "uniform noise": torch.rand(num, *size, generator=rng),
        "the mean face": real_grey.mean(0, keepdim=True).repeat(num, 1, 1),
        "LFW non-faces": to_grey(torch.as_tensor(images[labels == 0]), size=size),
    }
    for init in (seed, seed + 1):
        torch.manual_seed(init)
        G = Generator(resolve_preset("cpu", RESOLUTION, 1).network).eval()
        fake = generate_images(G, range(num), noise_mode="const")
        sets[f"untrained {RESOLUTION}x{RESOLUTION} G, init {init}"] = to_grey(fake)
    return sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=200, help="images in each made-up set")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)

    real_grey = to_grey(load_real_images("builtin:lfw", RESOLUTION))
    classifier = train_face_classifier(args.seed)
    real_feats = classifier.features(real_grey)
    half_a, half_b = _halves(len(real_grey), args.seed)
    print(f"against real half A ({len(half_a)} faces), k = {PR_NEIGHBOURS}; "
          f"classifier held-out accuracy {classifier.heldout_accuracy:.2f}")
    print(f"{'set':42s} {'face share':>10s} {'precision':>9s} {'recall':>6s} {'KID':>6s}")
    for name, grey in reference_sets(args.num, args.seed, real_grey,
                                     torch.as_tensor(half_b)).items():
        feats = classifier.features(grey)
        precision, recall = precision_recall(real_feats[half_a], feats)
        share = float((classifier.predict_proba(grey) >= FACE_THRESHOLD).mean())
        kid = kid_from_features(real_feats[half_a], feats, seed=args.seed)
        print(f"{name:42s} {share:10.2f} {precision:9.2f} {recall:6.2f} {kid:6.2f}", flush=True)


if __name__ == "__main__":
    main()
