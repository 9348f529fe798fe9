"""What every measure takes in: images or features as arrays or tensors, and grey levels.

Below the measures (faces, FID/KID, manifolds) and the evaluation that combines them: the
measures accept numpy arrays or torch tensors alike (:data:`ArrayLike`) and compute on CPU
tensors, and the face classifier, the memorisation check and the evaluation all compare
images as grey levels (LFW is grey).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

ArrayLike = np.ndarray | torch.Tensor


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


def _float64(x: ArrayLike) -> torch.Tensor:
    return _as_tensor(x).to(torch.float64)
