"""The order of the training images and the batches served to the loop.

This is separate from :mod:`stylegan_trainer.data.dataset`, which only reads images: here is
what decides which images a step sees (the seeded, resumable sampler) and the worker processes
that decode them ahead of the loop.

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
import signal
import weakref
from typing import Any

import numpy as np
import torch
import torch.utils.data

from stylegan_common.errors import ConfigError, DatasetError
from stylegan_trainer.data.dataset import ImageDataset

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
