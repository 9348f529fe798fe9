"""Training images: where they come from and how they are read.

Sources (``open_dataset(uri, ...)``):

* a folder of PNG/JPG images (searched recursively),
* a zip of PNG/JPG images, optionally with a ``dataset.json`` in the StyleGAN layout
  ``{"labels": [["img.png", 3], ...]}`` (an integer label becomes a one-hot class vector, a
  list of numbers is used as it is),
* ``builtin:lfw``: the 100 face crops that ship inside scikit-image
  (``skimage.data.lfw_subset()``: entries 0-99 are faces, 100-199 are not; 25x25 grey),
  resized with PIL's bicubic filter to the requested power-of-two resolution and replicated to
  three channels,
* ``gs://bucket/path.zip``: downloaded once into a local cache by the GCS backend
  (:func:`fetch_remote`), then read as a zip.

Every image comes out as ``uint8 [3, R, R]``; the loop converts to float in [-1, 1]. Grey and
RGBA images become RGB. Square images of another size are resized on load (convert the
dataset once with ``stylegan dataset SRC DEST.zip --resolution R`` to skip that work, see
:mod:`stylegan_trainer.data.convert`).
``xflip`` doubles the dataset virtually: index ``i + n`` is image ``i`` mirrored.

The order in which training reads the images, and the worker processes that decode them, are
:mod:`stylegan_trainer.data.loading`'s. Every dataset class pickles, so that it can travel into
those workers (a zip reopens its handle in each process).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import PIL.Image
import torch

from stylegan_common.errors import ConfigError, DatasetError

BUILTIN_LFW = "builtin:lfw"
LFW_FACES = 100  # lfw_subset(): the first 100 entries are faces, the next 100 are not
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})
LABELS_FILE = "dataset.json"


def is_power_of_two(n: int) -> bool:
    return n >= 1 and (n & (n - 1)) == 0


def check_resolution(resolution: int, field_name: str = "resolution") -> int:
    """Raise ``ConfigError`` unless ``resolution`` is a power of two from 4 to 4096."""
    if (
        not isinstance(resolution, int)
        or not is_power_of_two(resolution)
        or not (4 <= resolution <= 4096)
    ):
        raise ConfigError(
            f"{field_name}: {resolution!r} is not a power of two from 4 to 4096 "
            "(e.g. 32, 64, 256, 1024)"
        )
    return resolution


def to_rgb_array(image: PIL.Image.Image, resolution: int | None) -> np.ndarray:
    """A PIL image as ``uint8 [3, R, R]``, resized (bicubic) when its size differs."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    if resolution is not None and image.size != (resolution, resolution):
        image = image.resize((resolution, resolution), PIL.Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1).copy()


# ----------------------------------------------------------------------------------------------
# Datasets


class ImageDataset:
    """Indexable images (``uint8 [3, R, R]``) with optional labels and a virtual x-flip."""

    # Whether the images are already decoded in memory: then worker processes would only add
    # a copy through shared memory, and ``data_workers: auto`` loads in-process.
    in_memory = False

    def __init__(
        self, name: str, raw_size: int, resolution: int, labels: np.ndarray | None, xflip: bool
    ) -> None:
        if raw_size < 1:
            raise DatasetError(f"dataset: {name} holds no images")
        self.name = name
        self.raw_size = raw_size
        self.resolution = resolution
        self.num_channels = 3
        self.xflip = xflip
        self._labels = labels

    def __len__(self) -> int:
        return self.raw_size * (2 if self.xflip else 1)

    @property
    def label_dim(self) -> int:
        return 0 if self._labels is None else int(self._labels.shape[1])

    @property
    def has_labels(self) -> bool:
        return self._labels is not None

    def _load_raw(self, raw_index: int) -> np.ndarray:
        raise NotImplementedError

    def image(self, index: int) -> np.ndarray:
        """Image ``index`` of the virtual dataset (``>= raw_size``: the mirrored copy)."""
        if not 0 <= index < len(self):
            raise IndexError(f"image index {index} outside [0, {len(self)})")
        raw = self._load_raw(index % self.raw_size)
        if index >= self.raw_size:
            raw = raw[:, :, ::-1].copy()
        return raw

    def label(self, index: int) -> np.ndarray:
        if self._labels is None:
            return np.zeros([0], dtype=np.float32)
        return self._labels[index % self.raw_size]

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(image uint8 [3, R, R], label float32 [label_dim])``."""
        return self.image(index), self.label(index)

    def batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``uint8 [N, 3, R, R]`` and labels ``float32 [N, label_dim]``."""
        images = np.stack([self.image(int(i)) for i in indices])
        labels = np.stack([self.label(int(i)) for i in indices]).astype(np.float32)
        return torch.from_numpy(images), torch.from_numpy(labels)

    def all_labels(self) -> np.ndarray:
        """Every raw image's label (``[raw_size, label_dim]``), to draw labels for fakes."""
        if self._labels is None:
            return np.zeros([self.raw_size, 0], dtype=np.float32)
        return self._labels


class ArrayDataset(ImageDataset):
    """Images already decoded into memory (the built-in dataset, tests)."""

    in_memory = True

    def __init__(
        self, name: str, images: np.ndarray, labels: np.ndarray | None = None, xflip: bool = False
    ) -> None:
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[2] != images.shape[3]:
            raise DatasetError(f"dataset: {name} images must be uint8 [N, 3, R, R]")
        super().__init__(name, len(images), int(images.shape[2]), labels, xflip)
        self._images = images.astype(np.uint8, copy=False)

    def _load_raw(self, raw_index: int) -> np.ndarray:
        return self._images[raw_index]


class _FileDataset(ImageDataset):
    """Images read on demand from named members (a folder's files or a zip's entries)."""

    def __init__(
        self, name: str, members: list[str], resolution: int, labels: np.ndarray | None, xflip: bool
    ) -> None:
        super().__init__(name, len(members), resolution, labels, xflip)
        self.members = members

    def _open_member(self, member: str) -> PIL.Image.Image:
        raise NotImplementedError

    def _load_raw(self, raw_index: int) -> np.ndarray:
        member = self.members[raw_index]
        try:
            with self._open_member(member) as image:
                return to_rgb_array(image, self.resolution)
        except (OSError, ValueError) as exc:
            raise DatasetError(f"dataset: cannot read {member} in {self.name}: {exc}") from exc


class FolderDataset(_FileDataset):
    def __init__(
        self,
        root: Path,
        members: list[str],
        resolution: int,
        labels: np.ndarray | None,
        xflip: bool,
    ) -> None:
        super().__init__(str(root), members, resolution, labels, xflip)
        self.root = root

    def _open_member(self, member: str) -> PIL.Image.Image:
        return PIL.Image.open(self.root / member)


class ZipDataset(_FileDataset):
    def __init__(
        self,
        path: Path,
        members: list[str],
        resolution: int,
        labels: np.ndarray | None,
        xflip: bool,
    ) -> None:
        super().__init__(str(path), members, resolution, labels, xflip)
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        self._zip_pid = -1

    def _archive(self) -> zipfile.ZipFile:
        # One handle per process: a handle inherited through fork would share its file offset.
        if self._zip is None or self._zip_pid != os.getpid():
            self._zip = zipfile.ZipFile(self.path)
            self._zip_pid = os.getpid()
        return self._zip

    def _open_member(self, member: str) -> PIL.Image.Image:
        return PIL.Image.open(io.BytesIO(self._archive().read(member)))

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_zip"] = None
        return state


# ----------------------------------------------------------------------------------------------
# Opening a dataset


def fetch_remote(uri: str, cache_dir: str | os.PathLike[str] | None) -> Path:
    """Hook for remote datasets: copy ``uri`` (``gs://bucket/path.zip``) into ``cache_dir``.

    Delegates to :func:`stylegan_trainer.data.remote.download_dataset` (downloaded once per object
    generation, verified, reused from the cache); imported here so that local runs never load
    google-cloud-storage.
    """
    from stylegan_trainer.data.remote import download_dataset

    return download_dataset(uri, cache_dir)


def load_lfw_faces(resolution: int | None) -> np.ndarray:
    """The 100 LFW face crops of scikit-image as ``uint8 [100, 3, R, R]`` (bicubic resize).

    ``resolution=None`` keeps the crops' own 25x25.
    """
    if resolution is not None:
        check_resolution(resolution)
    from skimage.data import lfw_subset  # scikit-image is heavy; load it only when asked

    crops = np.asarray(lfw_subset())[:LFW_FACES]
    if crops.dtype != np.uint8:  # shipped as floats in [0, 1]
        crops = np.clip(np.rint(crops.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    size = resolution or int(crops.shape[-1])
    out = np.empty([len(crops), 3, size, size], dtype=np.uint8)
    for i, crop in enumerate(crops):
        image = PIL.Image.fromarray(crop, mode="L")
        if image.size != (size, size):
            image = image.resize((size, size), PIL.Image.Resampling.BICUBIC)
        out[i] = np.asarray(image, dtype=np.uint8)[None]  # grey replicated to 3 channels
    return out


def parse_labels(raw: Any, members: Sequence[str], source: str) -> np.ndarray | None:
    """Labels in the StyleGAN ``dataset.json`` layout, aligned with ``members``.

    Integer labels become one-hot vectors of ``max + 1`` classes. Raises ``DatasetError``
    naming ``source`` when the file is malformed or misses an image.
    """
    if raw is None:
        return None
    try:
        table = {str(PurePosixPath(str(name))): value for name, value in raw}
    except (TypeError, ValueError):
        raise DatasetError(
            f"{source}: 'labels' must be a list of [file name, label] pairs or null"
        ) from None
    missing = [m for m in members if m not in table]
    if missing:
        raise DatasetError(f"{source}: no label for {missing[0]} ({len(missing)} images lack one)")
    values = [table[m] for m in members]
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        if min(values) < 0:
            raise DatasetError(f"{source}: class labels must be integers >= 0")
        onehot = np.zeros([len(values), max(values) + 1], dtype=np.float32)
        onehot[np.arange(len(values)), values] = 1.0
        return onehot
    try:
        vectors = np.asarray(values, dtype=np.float32)
    except ValueError:
        raise DatasetError(
            f"{source}: labels must all be class integers or all number lists of one length"
        ) from None
    return vectors.reshape(len(values), -1)


def _shown(bad: list[str]) -> str:
    return ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")


def _check_shapes(name: str, sizes: dict[str, tuple[int, int]], resolution: int | None) -> int:
    """Every image must be square (and, without a target ``resolution``, of one size).

    Returns the resolution to serve; raises ``DatasetError`` naming the first offending files.
    """
    bad = [f"{m} ({w}x{h})" for m, (w, h) in sizes.items() if w != h]
    if bad:
        raise DatasetError(
            f"dataset: {name} has images that are not square: {_shown(bad)}; "
            "convert it with `stylegan dataset SRC DEST.zip --resolution N`"
        )
    if resolution is not None:
        return resolution
    first = next(iter(sizes.values()))[0]
    odd = [f"{m} ({w}x{h})" for m, (w, h) in sizes.items() if w != first]
    if odd:
        raise DatasetError(
            f"dataset: {name} mixes image sizes ({first}x{first} and {_shown(odd)}); "
            "give a resolution or convert it with `stylegan dataset --resolution N`"
        )
    return first


def _open_folder(root: Path, resolution: int | None, xflip: bool) -> FolderDataset:
    members = sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not members:
        raise DatasetError(f"dataset: folder {root} holds no .png/.jpg images")
    sizes: dict[str, tuple[int, int]] = {}
    for m in members:
        try:
            with PIL.Image.open(root / m) as image:
                sizes[m] = image.size
        except OSError as exc:
            raise DatasetError(f"dataset: cannot read {root / m}: {exc}") from exc
    resolution = _check_shapes(str(root), sizes, resolution)
    labels = None
    labels_path = root / LABELS_FILE
    if labels_path.is_file():
        try:
            meta = json.loads(labels_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DatasetError(f"dataset: cannot read {labels_path}: {exc}") from exc
        labels = parse_labels(meta.get("labels"), members, str(labels_path))
    return FolderDataset(root, members, resolution, labels, xflip)


def _open_zip(path: Path, resolution: int | None, xflip: bool) -> ZipDataset:
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"dataset: {path} is not a readable zip: {exc}") from exc
    with archive:
        names = archive.namelist()
        members = sorted(n for n in names if PurePosixPath(n).suffix.lower() in IMAGE_SUFFIXES)
        if not members:
            raise DatasetError(f"dataset: zip {path} holds no .png/.jpg images")
        meta: dict[str, Any] = {}
        if LABELS_FILE in names:
            try:
                meta = json.loads(archive.read(LABELS_FILE))
            except ValueError as exc:
                raise DatasetError(f"dataset: {path}/{LABELS_FILE} is not JSON: {exc}") from exc
        # A zip written by `stylegan dataset` records its resolution; trust it and skip the scan.
        if isinstance(meta.get("resolution"), int):
            resolution = resolution or int(meta["resolution"])
        else:
            sizes: dict[str, tuple[int, int]] = {}
            for m in members:
                try:
                    with PIL.Image.open(io.BytesIO(archive.read(m))) as image:
                        sizes[m] = image.size
                except OSError as exc:
                    raise DatasetError(f"dataset: cannot read {m} in {path}: {exc}") from exc
            resolution = _check_shapes(str(path), sizes, resolution)
        labels = parse_labels(meta.get("labels"), members, f"{path}/{LABELS_FILE}")
    return ZipDataset(path, members, resolution, labels, xflip)


def open_dataset(
    uri: str,
    resolution: int | None = None,
    xflip: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
) -> ImageDataset:
    """Open ``uri`` (folder, zip, ``builtin:lfw``, ``gs://``) at ``resolution``.

    ``resolution=None`` serves the images at their own size (which must then be one size).
    Raises ``DatasetError`` (exit 64) naming the path when it is missing, empty or unreadable.
    """
    if resolution is not None:
        check_resolution(resolution)
    if not uri:
        raise DatasetError("dataset: empty URI; give a folder, a .zip, builtin:lfw or gs://...")
    if uri == BUILTIN_LFW:
        return ArrayDataset(BUILTIN_LFW, load_lfw_faces(resolution), xflip=xflip)
    if uri.startswith("builtin:"):
        raise DatasetError(
            f"dataset: {uri!r} is not a built-in dataset; the only one is {BUILTIN_LFW}"
        )
    if uri.startswith("gs://"):
        path = fetch_remote(uri, cache_dir)
    elif uri.startswith("file://"):
        path = Path(uri[len("file://") :])
    elif "://" in uri:
        raise DatasetError(f"dataset: {uri} uses an unknown scheme; use a path, file://, gs://")
    else:
        path = Path(uri)
    if path.is_dir():
        return _open_folder(path, resolution, xflip)
    if path.is_file():
        return _open_zip(path, resolution, xflip)
    raise DatasetError(f"dataset: {path} does not exist (expected a folder or a .zip)")
