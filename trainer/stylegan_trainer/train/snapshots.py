"""Snapshots: the sample grids of a run, their copies beside the checkpoints, and the collective
that tells every rank whether rank 0's snapshot (grid + checkpoint) worked.

Separate from the loop because it is all output: outdir/samples/ holds ``reals.png`` (once)
and ``fakes-<cur_nimg>.png`` (every snapshot); when the checkpoints live elsewhere the grids
are copied there too, best effort. The checkpoint itself is the Trainer's state (loop.py),
written by checkpoint.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from stylegan_common.errors import StorageError
from stylegan_common.storage import LocalStorage, Storage
from stylegan_trainer.data.dataset import ImageDataset
from stylegan_trainer.model.generator import Generator
from stylegan_trainer.report.progress import Reporter
from stylegan_trainer.train.distributed import DistContext, broadcast_object
from stylegan_trainer.train.options import TrainingOptions

# Sample grids: outdir/<SAMPLES_DIR>/ and, when checkpoints live elsewhere, the same name there.
SAMPLES_DIR = "samples"

log = logging.getLogger(__name__)


class SnapshotWriter:
    """Writes the grids of one run into its outdir and copies them to its checkpoint storage."""

    def __init__(
        self, options: TrainingOptions, storage: Storage, reporter: Reporter, ctx: DistContext
    ) -> None:
        self.options = options
        self.storage = storage
        self.reporter = reporter
        self.ctx = ctx

    def save_reals_grid(self, dataset: ImageDataset) -> None:
        """The first ``grid_seeds`` real images, once per outdir and once in the checkpoint
        storage (a new pod's empty scratch folder draws it again, but uploads only if missing)."""
        from stylegan_trainer.sampling.generate import make_grid

        path = Path(self.options.outdir) / SAMPLES_DIR / "reals.png"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            count = min(self.options.grid_seeds, dataset.raw_size)
            images, _ = dataset.batch(range(count))
            make_grid(images).save(path)
        self.publish_sample(path, only_if_missing=True)

    def save_fakes_grid(self, G_ema: Generator, cur_nimg: int) -> Path:
        """G_ema on seeds 0..grid_seeds-1 with constant noise: grids of a run compare."""
        from stylegan_trainer.sampling.generate import save_grid

        path = Path(self.options.outdir) / SAMPLES_DIR / f"fakes-{cur_nimg:09d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_grid(G_ema, list(range(self.options.grid_seeds)), str(path), device=self.ctx.device)
        return path

    def _samples_beside_checkpoints(self) -> bool:
        """Whether outdir/samples already is the checkpoint storage's ``samples/`` (no
        checkpoint_uri, or a claim serving as both): then there is nothing to copy."""
        storage = self.storage
        return (
            isinstance(storage, LocalStorage)
            and storage.root.resolve() == Path(self.options.outdir).resolve()
        )

    def publish_sample(self, path: Path, only_if_missing: bool = False) -> bool:
        """Copy the grid ``path`` to ``samples/<its name>`` in the checkpoint storage.

        A run on Kubernetes writes outdir in the pod's scratch folder, which dies with the pod;
        next to the checkpoints (``gs://...``) the grids outlive it and ``stylegan samples``
        finds them. Best effort by design: a failed upload logs a warning and returns False,
        it never raises, so it can neither stop training nor cost a checkpoint (the snapshot
        writes the checkpoint first). Grids are never pruned: ``keep_checkpoints`` applies to
        checkpoints only, and a grid is a small fraction of a checkpoint (about 0.1 MB at
        32x32; 32 images at 1024x1024 are 6144x6144 pixels, tens of MB). Returns True when
        the grid is in the storage (or the storage is outdir itself).
        """
        if self._samples_beside_checkpoints():
            return True
        name = f"{SAMPLES_DIR}/{path.name}"
        try:
            if only_if_missing and self.storage.exists(name):
                return True
            self.storage.put_file(name, path, "image/png")
        except Exception as exc:  # whatever went wrong, training must go on
            log.warning(
                "sample grid %s was not copied to %s/%s (%s: %s); training goes on, the grid "
                "stays in %s",
                path.name, self.storage.uri, name, type(exc).__name__, exc, path.parent,
            )  # fmt: skip
            return False
        return True

    def snapshot(
        self, G_ema: Generator, cur_nimg: int, save_checkpoint: Callable[[], str]
    ) -> str | None:
        """Rank 0 writes the sample grid and a checkpoint; every rank learns whether it worked.

        ``save_checkpoint`` writes the checkpoint and returns its name; every rank gets that
        name back (None if rank 0 wrote none), or ``StorageError`` when the snapshot failed.
        The grid is copied to the checkpoint storage after the checkpoint, and a failed copy
        only logs a warning (see :meth:`publish_sample`).
        """
        error: str | None = None
        name: str | None = None
        if self.ctx.is_main:
            try:
                grid = self.save_fakes_grid(G_ema, cur_nimg)
                name = save_checkpoint()
                self.reporter.log(f"checkpoint {name} at kimg {cur_nimg / 1000:.1f}")
                self.publish_sample(grid)
            except StorageError as exc:
                error = str(exc)
            except OSError as exc:
                error = f"cannot write a snapshot in {self.options.outdir}: {exc}"
        if self.ctx.distributed:
            # Every rank learns the name too: run() decides on it, and all ranks must agree.
            error, name = broadcast_object((error, name))  # type: ignore[misc]
        if error is not None:
            raise StorageError(error)
        return name
