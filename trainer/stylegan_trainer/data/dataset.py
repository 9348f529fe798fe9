"""Training images: where they come from, how they are read, and in which order.

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
dataset once with ``stylegan dataset SRC DEST.zip --resolution R`` to skip that work).
``xflip`` doubles the dataset virtually: index ``i + n`` is image ``i`` mirrored.

The order is :class:`InfiniteSampler`'s: a fresh permutation of the (virtual) dataset per
epoch, drawn from the seed and the epoch number, walked by a global position. All ranks walk
the same global order and each keeps its slice of every global batch, so the sequence depends
only on the seed and the global batch size, and the position alone resumes it.

:class:`BatchLoader` serves those batches to the loop, either read in the training process
(``workers=0``) or decoded ahead by worker processes (``torch.utils.data.DataLoader``), which
keeps PNG/JPG decoding off the critical path of a GPU step. The sampler still decides: the
workers only decode the index batches it hands out, so what a step sees (and in which order)
does not depend on the worker count, and the sampler the checkpoint saves counts *consumed*
batches, never the ones decoded ahead. Datasets travel into the workers by fork, or pickled
under the spawn/forkserver start methods, so every dataset class pickles (a zip reopens its
handle in each process).
"""

from __future__ import annotations

import atexit
import io
import json
import os
import signal
import tempfile
import weakref
import zipfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import PIL.Image
import torch
import torch.utils.data

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


# ----------------------------------------------------------------------------------------------
# Order


class InfiniteSampler:
    """An endless, seeded, resumable stream of dataset indices, split across ranks.

    Epoch ``e`` is a permutation of ``range(size)`` drawn from ``(seed, e)``; the stream is the
    epochs one after another, and ``position`` counts the indices handed out globally. Each call
    to :meth:`next_indices` advances by one *global* batch and returns this rank's contiguous
    slice of it, so the union over ranks is exactly what one rank with the whole batch would see.
    """

    def __init__(
        self, size: int, seed: int, global_batch: int, rank: int = 0, world_size: int = 1
    ) -> None:
        if size < 1:
            raise DatasetError("dataset: the sampler needs at least one image")
        if global_batch % world_size != 0:
            raise ConfigError(f"batch: {global_batch} does not split across {world_size} ranks")
        self.size = size
        self.seed = seed
        self.global_batch = global_batch
        self.rank = rank
        self.world_size = world_size
        self.position = 0
        self._epoch = -1
        self._order = np.empty(0, dtype=np.int64)

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            self._order = np.random.default_rng([self.seed, epoch]).permutation(self.size)
            self._epoch = epoch
        return self._order

    def peek_global(self, count: int) -> np.ndarray:
        """The next ``count`` global indices, without moving."""
        out = np.empty(count, dtype=np.int64)
        for k in range(count):
            epoch, offset = divmod(self.position + k, self.size)
            out[k] = self._permutation(epoch)[offset]
        return out

    def next_global(self) -> np.ndarray:
        """The next global batch of indices (the same on every rank)."""
        batch = self.peek_global(self.global_batch)
        self.position += self.global_batch
        return batch

    def _rank_slice(self, batch: np.ndarray) -> np.ndarray:
        per_rank = self.global_batch // self.world_size
        return batch[self.rank * per_rank : (self.rank + 1) * per_rank]

    def next_indices(self) -> np.ndarray:
        """This rank's slice of the next global batch."""
        return self._rank_slice(self.next_global())

    def peek_indices(self) -> np.ndarray:
        """This rank's slice of the next global batch, without moving."""
        return self._rank_slice(self.peek_global(self.global_batch))

    def __iter__(self) -> InfiniteSampler:
        return self

    def __next__(self) -> np.ndarray:
        return self.next_indices()

    def state_dict(self) -> dict[str, int]:
        return {"position": self.position, "seed": self.seed, "size": self.size}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume at ``state['position']``; the seed of the checkpoint wins."""
        self.position = int(state["position"])
        self.seed = int(state.get("seed", self.seed))
        self._epoch = -1


# ----------------------------------------------------------------------------------------------
# Loading: in the training process, or ahead in worker processes

# Batches each worker may hold decoded ahead of the loop (DataLoader's prefetch_factor): with
# W workers at most 2 W batches wait, enough to hide decoding jitter and bounded in memory
# (at 1024x1024 a batch of 4 per GPU is 12 MiB of /dev/shm).
PREFETCH_PER_WORKER = 2
# How long close() lets a worker finish before killing it (they ignore SIGTERM, see below).
WORKER_EXIT_SECONDS = 10.0


class _BatchReader(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """What a worker holds: the dataset, read one whole batch per request.

    ``__getitems__`` gets the batch sampler's list of indices and returns them with the batch,
    so that the loop can check it received exactly the batch its own sampler expects.
    """

    def __init__(self, dataset: ImageDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.dataset[index]

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        images, labels = self.dataset.batch(indices)
        return torch.tensor(indices, dtype=torch.int64), images, labels


class _IndexBatches:
    """The DataLoader's batch sampler: this rank's slice of every global batch, endlessly.

    It walks its own copy of the loop's sampler, so handing indices to the workers ahead of
    time never moves the position that a checkpoint saves.
    """

    def __init__(self, cursor: InfiniteSampler) -> None:
        self.cursor = cursor

    def __iter__(self) -> Any:
        while True:
            yield self.cursor.next_indices().tolist()


def _as_read(batch: Any) -> Any:
    """The collate function: ``__getitems__`` already returns the whole batch."""
    return batch


# Loaders with running workers. At interpreter exit multiprocessing stops leftover daemonic
# children with SIGTERM and then waits for them without a timeout; the workers ignore SIGTERM
# (below), so every loader still open is closed first. atexit runs its functions last-in
# first-out, and this module registers after torch and multiprocessing did.
_RUNNING: weakref.WeakSet[BatchLoader] = weakref.WeakSet()


@atexit.register
def _close_running_loaders() -> None:
    for loader in list(_RUNNING):
        loader.close()


def _init_worker(worker_id: int) -> None:
    # torchrun stops a rank by signalling its whole process group, so SIGTERM reaches the
    # workers too. A worker that died of it would make the DataLoader's SIGCHLD handler raise
    # in the middle of the step that is about to write the preemption checkpoint; ignoring it
    # leaves the stopping to the rank, which shuts its workers down (close()), and a worker
    # whose rank is gone exits on its own (the DataLoader's parent watchdog).
    del worker_id
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class BatchLoader:
    """This rank's batches in ``sampler`` order: ``next()`` -> ``(uint8 images, labels)``.

    ``workers=0`` reads each batch in the calling process when it is asked for. With
    ``workers > 0`` a ``DataLoader`` starts that many processes on the first ``next()``; its
    batch sampler walks a copy of ``sampler`` from the position at that moment, and the workers
    decode up to ``PREFETCH_PER_WORKER`` batches each ahead of the loop. ``sampler`` itself
    advances one global batch per batch *returned*, so its ``state_dict()`` is the position of
    the first batch not yet consumed, whatever was decoded ahead. Moving ``sampler`` (resume)
    needs ``close()`` first; the next ``next()`` restarts the workers from the new position.
    ``pin_memory`` puts the batches in page-locked memory for an asynchronous copy to a GPU.
    """

    def __init__(
        self,
        dataset: ImageDataset,
        sampler: InfiniteSampler,
        workers: int = 0,
        pin_memory: bool = False,
    ) -> None:
        if workers < 0:
            raise ConfigError(f"data_workers: {workers} must be >= 0")
        self.dataset = dataset
        self.sampler = sampler
        self.workers = workers
        self.pin_memory = pin_memory
        self._cursor: InfiniteSampler | None = None
        self._iterator: Any = None

    @property
    def running(self) -> bool:
        return self._iterator is not None

    @property
    def batches_ahead(self) -> int:
        """Global batches handed to the workers but not yet returned by ``next()``."""
        if self._cursor is None:
            return 0
        return (self._cursor.position - self.sampler.position) // self.sampler.global_batch

    @property
    def worker_pids(self) -> list[int]:
        workers = getattr(self._iterator, "_workers", None) or []
        return [int(w.pid) for w in workers if w.pid is not None]

    def _start(self) -> None:
        s = self.sampler
        cursor = InfiniteSampler(s.size, s.seed, s.global_batch, s.rank, s.world_size)
        cursor.load_state_dict(s.state_dict())
        loader = torch.utils.data.DataLoader(
            _BatchReader(self.dataset),
            batch_sampler=_IndexBatches(cursor),
            num_workers=self.workers,
            collate_fn=_as_read,
            pin_memory=self.pin_memory,
            # The stream never ends, so the one iterator lives for the whole run anyway;
            # persistent workers keep it so should anything iterate the loader again.
            persistent_workers=True,
            prefetch_factor=PREFETCH_PER_WORKER,
            worker_init_fn=_init_worker,
            # Its own generator: the workers' base seed must not be drawn from torch's global
            # generator, which the loop reseeds per step and saves in checkpoints.
            generator=torch.Generator().manual_seed(s.seed),
        )
        self._cursor = cursor
        self._iterator = iter(loader)
        _RUNNING.add(self)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next batch of this rank: ``uint8 [N, 3, R, R]`` and ``float32 [N, label_dim]``."""
        if self.workers == 0:
            return self.dataset.batch(self.sampler.next_indices())
        if self._iterator is None:
            self._start()
        indices, images, labels = next(self._iterator)
        if not np.array_equal(indices.numpy(), self.sampler.peek_indices()):
            raise RuntimeError(
                f"data loader out of step with the sampler at position {self.sampler.position}: "
                "it was moved while the workers ran (close() the loader first)"
            )
        # Advance only now: a batch lost to a failing worker is not counted as consumed.
        self.sampler.next_indices()
        return images, labels

    def close(self) -> None:
        """Stop the workers and wait for them (killing any that do not exit in time)."""
        iterator, self._iterator, self._cursor = self._iterator, None, None
        _RUNNING.discard(self)
        if iterator is None:
            return
        processes = list(getattr(iterator, "_workers", None) or [])
        shutdown = getattr(iterator, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()  # asks each worker to exit, joins them, stops the pin-memory thread
        for process in processes:
            process.join(WORKER_EXIT_SECONDS)
            if process.is_alive():
                process.kill()  # a stuck worker: SIGTERM is ignored there, SIGKILL is not
                process.join(WORKER_EXIT_SECONDS)

    def __enter__(self) -> BatchLoader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ----------------------------------------------------------------------------------------------
# `stylegan dataset`: folder -> zip


class NothingUsable(DatasetError):
    """``convert_folder`` found no usable image; ``report`` says why for each file."""

    def __init__(self, message: str, report: ConversionReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class ConversionReport:
    """What ``convert_folder`` wrote, and every file it refused with the reason."""

    written: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    resolution: int | None = None


def _scan_folder(src: Path, report: ConversionReport) -> dict[str, tuple[int, int]]:
    sizes: dict[str, tuple[int, int]] = {}
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        name = path.relative_to(src).as_posix()
        if name == LABELS_FILE:
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            report.refused[name] = f"not an image ({path.suffix or 'no suffix'})"
            continue
        try:
            with PIL.Image.open(path) as image:
                image.verify()
            with PIL.Image.open(path) as image:
                sizes[name] = image.size
        except Exception as exc:  # PIL raises many types for broken files
            report.refused[name] = f"unreadable ({type(exc).__name__}: {exc})"
    return sizes


def _pick_resolution(
    sizes: dict[str, tuple[int, int]], resolution: int | None, report: ConversionReport
) -> int | None:
    square = {n: s for n, s in sizes.items() if s[0] == s[1]}
    for name, (w, h) in sizes.items():
        if w != h:
            report.refused[name] = f"not square ({w}x{h})"
    if resolution is not None or not square:
        return resolution
    common, _ = Counter(s[0] for s in square.values()).most_common(1)[0]
    if not is_power_of_two(common) or common < 4:
        for name in square:
            report.refused[name] = f"{common}x{common} is not a power of two; pass --resolution"
        return None
    for name, (w, _) in square.items():
        if w != common:
            report.refused[name] = (
                f"size {w}x{w} differs from the dataset's {common}x{common} "
                "(pass --resolution to resize)"
            )
    return common


def convert_folder(
    src: str | os.PathLike[str], dest: str | os.PathLike[str], resolution: int | None = None
) -> ConversionReport:
    """Write the usable images of folder ``src`` as PNGs into the zip ``dest``.

    Refuses (by file name, with the reason) what is unreadable, not square, or of another size
    than the majority when no ``resolution`` is given (with one, square images are resized).
    Labels in ``src/dataset.json`` are carried over. Raises ``DatasetError`` when ``src`` is
    missing, ``NothingUsable`` (with the report) when nothing usable remains; the zip is then
    not written.
    """
    src_path, dest_path = Path(src), Path(dest)
    if resolution is not None:
        check_resolution(resolution)
    if not src_path.is_dir():
        raise DatasetError(f"dataset: source folder {src_path} does not exist")
    if dest_path.suffix.lower() != ".zip":
        raise ConfigError(f"dataset: destination {dest_path} must end in .zip")
    report = ConversionReport()
    sizes = _scan_folder(src_path, report)
    report.resolution = _pick_resolution(sizes, resolution, report)
    taken: dict[str, str] = {}
    for name in sorted(n for n in sizes if n not in report.refused):
        out_name = str(PurePosixPath(name).with_suffix(".png"))
        if out_name in taken:
            report.refused[name] = f"becomes {out_name}, like {taken[out_name]}"
        else:
            taken[out_name] = name
    usable = sorted(taken.values())
    if not usable or report.resolution is None:
        raise NothingUsable(
            f"dataset: nothing usable in {src_path} ({len(report.refused)} files refused)", report
        )
    labels_out: list[list[Any]] | None = None
    labels_path = src_path / LABELS_FILE
    if labels_path.is_file():
        try:
            raw = json.loads(labels_path.read_text(encoding="utf-8")).get("labels")
        except (OSError, ValueError) as exc:
            raise DatasetError(f"dataset: cannot read {labels_path}: {exc}") from exc
        table = {str(n): v for n, v in (raw or [])}
        labels_out = [] if raw is not None else None
    dest_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=dest_path.name + ".", suffix=".tmp", dir=dest_path.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
            for name in usable:
                with PIL.Image.open(src_path / name) as image:
                    pixels = to_rgb_array(image, report.resolution)
                out_name = str(PurePosixPath(name).with_suffix(".png"))
                buffer = io.BytesIO()
                PIL.Image.fromarray(pixels.transpose(1, 2, 0)).save(buffer, format="PNG")
                archive.writestr(out_name, buffer.getvalue())
                report.written.append(out_name)
                if labels_out is not None:
                    if name not in table:
                        raise DatasetError(f"dataset: {labels_path} has no label for {name}")
                    labels_out.append([out_name, table[name]])
            meta = {"labels": labels_out, "resolution": report.resolution}
            archive.writestr(LABELS_FILE, json.dumps(meta))
        os.replace(tmp, dest_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return report
