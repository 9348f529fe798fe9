"""Turning a trained generator into pictures: seeds, grids, style mixing, interpolation.

Everything here is a pure function of a generator ``G`` (the ``networks.Generator`` API:
``G(z, c, truncation_psi=, noise_mode=)``, ``G.mapping(z, c, truncation_psi=)``,
``G.synthesis(ws, noise_mode=)`` and the attributes ``z_dim``, ``c_dim``, ``num_ws``,
``img_resolution``, ``img_channels``) and of seeds. A seed picks its latent the way the
official tools do, ``np.random.RandomState(seed).randn(z_dim)``, so seed 7 shows the same
face on every machine and in every tool. The click command that drives these functions
lives in ``sample_commands``; the quality metrics in ``quality`` reuse ``generate_images``.

Glossary: ``z`` the input latent [N, z_dim]; ``ws`` the per-layer styles
[N, num_ws, w_dim] that the mapping network produces and the synthesis network consumes;
``truncation_psi`` pulls every w toward the average w (1 = no truncation, 0 = the mean face).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import PIL.Image
import torch

# np.random.RandomState accepts seeds in [0, 2**32 - 1].
MAX_SEED = 2**32 - 1

NOISE_MODES = ("const", "random", "none")


class GeneratorLike(Protocol):
    """What these functions need of a generator: ``networks.Generator`` or a test stand-in."""

    # Read-only properties, so a plain attribute or a submodule satisfies each of them.
    @property
    def z_dim(self) -> int: ...
    @property
    def c_dim(self) -> int: ...
    @property
    def num_ws(self) -> int: ...
    @property
    def img_resolution(self) -> int: ...
    @property
    def img_channels(self) -> int: ...
    @property
    def mapping(self) -> Callable[..., torch.Tensor]:
        """(z, c, truncation_psi=) -> ws [N, num_ws, w_dim]"""

    @property
    def synthesis(self) -> Callable[..., torch.Tensor]:
        """(ws, noise_mode=) -> images [N, C, H, W], about [-1, 1]"""

    def __call__(self, *args: Any, **kwargs: Any) -> torch.Tensor: ...


# The style-mixing groups of the StyleGAN paper (Karras et al. 2019, Fig. 3) as ws indices.
# num_ws = 2*log2(resolution) - 2: the 4x4 conv reads ws 0, the two convs at resolution 2^k read
# ws 2k-5 and 2k-4, and each toRGB shares the next conv's ws (the last toRGB has its own). So
# "coarse" (4x4-8x8: pose, face shape) is ws 0-3, "middle" (16x16-32x32: features, hair, eyes)
# ws 4-7 (16x16's first conv reads ws 3), "fine" (64x64 up: colours, micro-structure) ws 8 to
# the end. A 32x32 generator has 8 ws and so no fine group.
STYLE_GROUPS: dict[str, tuple[int, int | None]] = {
    "coarse": (0, 4),
    "middle": (4, 8),
    "fine": (8, None),
}


# ----------------------------------------------------------------------------------------------
# Inputs: seeds, devices, latents


def parse_seeds(spec: str) -> list[int]:
    """Parse a seed list such as ``"0-63"``, ``"1,5,9"`` or ``"0-3,10"`` (ranges inclusive).

    Order and repeats are kept as written. Raises ``ValueError`` naming the bad part.
    """
    if not spec or not spec.strip():
        raise ValueError("seeds: empty list; write e.g. '0-63', '1,5,9' or '0-3,10'")
    seeds: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        first, sep, last = part.partition("-")
        try:
            lo = int(first)
            hi = int(last) if sep else lo
        except ValueError:
            raise ValueError(
                f"seeds: cannot read {part!r} in {spec!r}; write integers or ranges "
                "like '0-63', '1,5,9' or '0-3,10'"
            ) from None
        if hi < lo:
            raise ValueError(f"seeds: range {part!r} runs backwards; write the low end first")
        if hi > MAX_SEED:
            raise ValueError(f"seeds: {hi} is above the largest seed {MAX_SEED}")
        seeds.extend(range(lo, hi + 1))
    return seeds


def parse_layers(spec: str, num_ws: int) -> list[int]:
    """Which ws a style-mixing column replaces: ``coarse``, ``middle``, ``fine`` or ``"0-3,6"``.

    Raises ``ValueError`` when the choice selects nothing or an index outside ``[0, num_ws)``.
    """
    name = spec.strip().lower()
    if name in STYLE_GROUPS:
        start, stop = STYLE_GROUPS[name]
        layers = list(range(start, min(stop if stop is not None else num_ws, num_ws)))
        if not layers:
            raise ValueError(
                f"mixing-layers: {name!r} is empty for a generator with {num_ws} ws "
                f"(coarse = ws 0-3, middle = ws 4-7, fine = ws 8 and up); choose another group "
                "or give indices like '0-3'"
            )
        return layers
    try:
        layers = parse_seeds(name)
    except ValueError as exc:
        raise ValueError(
            f"mixing-layers: {spec!r} is neither coarse/middle/fine nor a list like '0-3'"
        ) from exc
    bad = [i for i in layers if i >= num_ws]
    if bad:
        raise ValueError(f"mixing-layers: ws index {bad[0]} is out of range 0-{num_ws - 1}")
    return layers


def resolve_device(name: str) -> torch.device:
    """``'auto'`` (CUDA when present, else CPU), ``'cpu'``, ``'cuda'`` or ``'cuda:N'``.

    Raises ``ValueError`` naming ``device`` for an unknown name or a GPU that is not there.
    """
    name = name.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(f"device: {name!r} requested but no CUDA GPU is visible; use cpu")
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"device: {name!r} does not exist; {torch.cuda.device_count()} GPU(s) visible"
            )
        return device
    raise ValueError(f"device: unknown {name!r}; valid: auto, cpu, cuda, cuda:N")


def z_from_seeds(seeds: Sequence[int], z_dim: int) -> torch.Tensor:
    """One latent per seed, ``RandomState(seed).randn(z_dim)``: float32 [N, z_dim] on the CPU."""
    rows = [np.random.RandomState(seed).randn(z_dim) for seed in seeds]
    if not rows:
        return torch.zeros([0, z_dim])
    return torch.from_numpy(np.stack(rows)).float()


def _labels(G: GeneratorLike, n: int, device: torch.device) -> torch.Tensor | None:
    # Unconditional generators take no label; a conditional one gets the all-zero label, which is
    # what a user who did not ask for a class would expect to see averaged.
    c_dim = int(getattr(G, "c_dim", 0))
    return torch.zeros([n, c_dim], device=device) if c_dim > 0 else None


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Map generator output (~[-1, 1]) to uint8 [0, 255]; -1 -> 0, 1 -> 255, values clamped."""
    return (images * 127.5 + 128).clamp(0, 255).to(torch.uint8)


# ----------------------------------------------------------------------------------------------
# Images


@torch.no_grad()
def generate_images(
    G: GeneratorLike,
    seeds: Sequence[int],
    truncation_psi: float = 1.0,
    noise_mode: str = "const",
    device: torch.device | str = "cpu",
    batch: int = 16,
) -> torch.Tensor:
    """One image per seed: uint8 [N, C, H, W] on the CPU, in seed order.

    ``noise_mode='const'`` (the default) makes an image a function of its seed alone.
    """
    if noise_mode not in NOISE_MODES:
        raise ValueError(f"noise-mode: unknown {noise_mode!r}; valid: {', '.join(NOISE_MODES)}")
    if batch < 1:
        raise ValueError(f"batch: must be at least 1, got {batch}")
    device = torch.device(device)
    z_all = z_from_seeds(seeds, int(G.z_dim))
    chunks = []
    for start in range(0, len(z_all), batch):
        z = z_all[start : start + batch].to(device)
        img = G(z, _labels(G, len(z), device), truncation_psi=truncation_psi, noise_mode=noise_mode)
        chunks.append(to_uint8(img).cpu())
    if not chunks:
        shape = [0, int(G.img_channels), int(G.img_resolution), int(G.img_resolution)]
        return torch.zeros(shape, dtype=torch.uint8)
    return torch.cat(chunks)


def to_pil(image_uint8: torch.Tensor) -> PIL.Image.Image:
    """One uint8 [C, H, W] image (C = 1 or 3) as a PIL image ('L' or 'RGB')."""
    array = image_uint8.detach().cpu().numpy()
    if array.shape[0] == 1:
        return PIL.Image.fromarray(array[0], "L")
    if array.shape[0] == 3:
        return PIL.Image.fromarray(array.transpose(1, 2, 0), "RGB")
    raise ValueError(f"image: expected 1 or 3 channels, got shape {tuple(array.shape)}")


def make_grid(images_uint8: torch.Tensor, cols: int | None = None) -> PIL.Image.Image:
    """Tile uint8 [N, C, H, W] images row by row; ``cols`` defaults to ceil(sqrt(N)).

    Cells left over in the last row stay black.
    """
    if images_uint8.ndim != 4 or images_uint8.shape[0] == 0:
        raise ValueError(
            f"images: expected a non-empty [N, C, H, W] batch, got {tuple(images_uint8.shape)}"
        )
    n, c, h, w = images_uint8.shape
    cols = cols or math.ceil(math.sqrt(n))
    if cols < 1:
        raise ValueError(f"grid-cols: must be at least 1, got {cols}")
    rows = math.ceil(n / cols)
    canvas = torch.zeros([c, rows * h, cols * w], dtype=torch.uint8)
    for i, img in enumerate(images_uint8):
        r, k = divmod(i, cols)
        canvas[:, r * h : (r + 1) * h, k * w : (k + 1) * w] = img
    return to_pil(canvas)


def save_grid(
    G: GeneratorLike,
    seeds: Sequence[int],
    path: str,
    truncation_psi: float = 1.0,
    device: torch.device | str = "cpu",
    grid_cols: int | None = None,
) -> None:
    """Generate one image per seed and write them as a single grid PNG at ``path``."""
    images = generate_images(G, seeds, truncation_psi=truncation_psi, device=device)
    make_grid(images, cols=grid_cols).save(path)


# ----------------------------------------------------------------------------------------------
# Style mixing and interpolation


@torch.no_grad()
def _ws_from_seeds(
    G: GeneratorLike, seeds: Sequence[int], truncation_psi: float, device: torch.device
) -> torch.Tensor:
    z = z_from_seeds(seeds, int(G.z_dim)).to(device)
    return G.mapping(z, _labels(G, len(z), device), truncation_psi=truncation_psi)


@torch.no_grad()
def _synthesise(G: GeneratorLike, ws: torch.Tensor) -> torch.Tensor:
    return to_uint8(G.synthesis(ws, noise_mode="const")).cpu()


@torch.no_grad()
def style_mixing_grid(
    G: GeneratorLike,
    row_seeds: Sequence[int],
    col_seeds: Sequence[int],
    layers: range | Sequence[int],
    truncation_psi: float = 1.0,
    device: torch.device | str = "cpu",
) -> PIL.Image.Image:
    """The StyleGAN style-mixing figure as one image.

    The top row shows the column seeds' images, the left column the row seeds' images (the
    top-left cell is black). Cell (row i, column j) is row seed i's ws with the ws indices in
    ``layers`` taken from column seed j: with ``layers`` = coarse (ws 0-3, see ``STYLE_GROUPS``)
    the column gives pose and face shape and the row keeps the rest.
    """
    if not row_seeds or not col_seeds:
        raise ValueError("mixing-rows/mixing-cols: both need at least one seed")
    device = torch.device(device)
    layers = list(layers)
    num_ws = int(G.num_ws)
    if any(not 0 <= i < num_ws for i in layers):
        raise ValueError(f"mixing-layers: {layers} falls outside ws 0-{num_ws - 1}")
    row_ws = _ws_from_seeds(G, row_seeds, truncation_psi, device)
    col_ws = _ws_from_seeds(G, col_seeds, truncation_psi, device)
    row_img = _synthesise(G, row_ws)
    col_img = _synthesise(G, col_ws)
    cells = [torch.zeros_like(row_img[0])]
    cells.extend(col_img)
    for i in range(len(row_seeds)):
        mixed = row_ws[i : i + 1].repeat(len(col_seeds), 1, 1)
        mixed[:, layers] = col_ws[:, layers]
        cells.append(row_img[i])
        cells.extend(_synthesise(G, mixed))
    return make_grid(torch.stack(cells), cols=len(col_seeds) + 1)


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation between the rows of ``a`` and ``b`` (lerp if parallel)."""
    a_unit = a / a.norm(dim=-1, keepdim=True)
    b_unit = b / b.norm(dim=-1, keepdim=True)
    dot = (a_unit * b_unit).sum(dim=-1, keepdim=True).clamp(-1.0, 1.0)
    omega = torch.acos(dot)
    sin_omega = torch.sin(omega)
    # Nearly parallel latents make sin(omega) ~ 0; there slerp and lerp agree anyway.
    safe = sin_omega.abs() > 1e-6
    wa = torch.where(safe, torch.sin((1 - t) * omega) / sin_omega, torch.full_like(dot, 1 - t))
    wb = torch.where(safe, torch.sin(t * omega) / sin_omega, torch.full_like(dot, t))
    return wa * a + wb * b


@torch.no_grad()
def interpolation_frames(
    G: GeneratorLike,
    seeds: Sequence[int],
    frames_per_pair: int = 30,
    truncation_psi: float = 1.0,
    device: torch.device | str = "cpu",
    space: str = "w",
) -> list[PIL.Image.Image]:
    """Frames that walk from each seed to the next and back to the first (a GIF that loops).

    ``space='w'`` interpolates linearly between the (truncated) ws, the StyleGAN paper's choice
    for a perceptually even walk; ``space='z'`` interpolates spherically between the latents,
    which keeps every z at a typical Gaussian norm. Frame ``k * frames_per_pair`` is exactly
    seed ``k``'s image; there are ``frames_per_pair * len(seeds)`` frames.
    """
    if len(seeds) < 2:
        raise ValueError("interpolate: give at least two seeds, e.g. '0,1,2'")
    if frames_per_pair < 1:
        raise ValueError(f"frames: must be at least 1, got {frames_per_pair}")
    if space not in ("w", "z"):
        raise ValueError(f"space: unknown {space!r}; valid: w, z")
    device = torch.device(device)
    z = z_from_seeds(seeds, int(G.z_dim)).to(device)
    c = _labels(G, 1, device)
    frames = []
    for k in range(len(seeds)):
        z0, z1 = z[k : k + 1], z[(k + 1) % len(seeds) : (k + 1) % len(seeds) + 1]
        if space == "w":
            w0 = G.mapping(z0, c, truncation_psi=truncation_psi)
            w1 = G.mapping(z1, c, truncation_psi=truncation_psi)
        for step in range(frames_per_pair):
            t = step / frames_per_pair
            if space == "w":
                ws = torch.lerp(w0, w1, t)
            else:
                ws = G.mapping(slerp(z0, z1, t), c, truncation_psi=truncation_psi)
            frames.append(to_pil(_synthesise(G, ws)[0]))
    return frames


def save_gif(frames: Sequence[PIL.Image.Image], path: str, fps: float = 15.0) -> None:
    """Write frames as a looping GIF."""
    if not frames:
        raise ValueError("frames: nothing to write")
    duration_ms = max(1, round(1000 / fps))
    frames[0].save(
        path, save_all=True, append_images=list(frames[1:]), duration=duration_ms, loop=0
    )
