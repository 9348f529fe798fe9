"""FID and KID between two feature sets, and the Inception feature extractor they want.

FID and KID on Inception features, when the user supplies the feature extractor. The file
that works is the TorchScript ``inception-2015-12-05.pt`` that the metric tooling of the
StyleGAN2-ADA/StyleGAN3 code loads (a translation of TensorFlow's 2015 Inception v3, pool3
features): ``model(uint8 images [N, 3, H, W], return_features=True) -> float [N, 2048]``. Any
TorchScript module that maps uint8 (or float) [N, 3, 299, 299] images to [N, D] features
works; a module whose ``forward`` has no ``return_features`` argument is called without it.
Nothing is downloaded here: fetch the file yourself and pass ``--inception FILE``.

FID = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2}) (Heusel et al. 2017), computed without
scipy: Tr((S1 S2)^{1/2}) = Tr((sqrt(S1) S2 sqrt(S1))^{1/2}), whose argument is symmetric PSD,
so it is the sum of the square roots of its eigenvalues. KID is the unbiased MMD^2 with the
kernel k(x, y) = (x.y / d + 1)^3, averaged over random subsets (Binkowski et al. 2018); the
evaluation also takes it in the face classifier's HOG space, where no download is needed.
With the hundred LFW faces both are heavily biased upward (2048-d covariances from 100 samples);
compare them between checkpoints, not with published figures.
"""

from __future__ import annotations

import inspect
import os
import warnings
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from stylegan_trainer.quality.images import ArrayLike, _as_tensor, _float64

INCEPTION_SIZE = 299


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
