"""Rank 0's log and tick statistics, copied beside the checkpoints so they outlive the pod.

On Kubernetes the trainer's outdir is the pod's scratch folder: when an attempt fails, is
preempted or its Job is deleted, ``kubectl logs`` has nothing more to say. The Reporter keeps
every line in ``outdir/log.txt`` and every tick in ``outdir/stats.jsonl``; :class:`LogArchive`
uploads both to ``logs/attempt-<N>/`` under the checkpoint storage (names in
``stylegan_common.run_files``) at every tick and once more when the trainer exits, so the
last words of a failed attempt (its error line) are there too. ``stylegan logs RUN --attempt
N`` reads them back, ``gs://`` runs included.

Best effort by design, like the sample grids: a failed upload logs a warning once and
training goes on. An upload replaces the previous copy (the files only grow), so a
re-uploaded log never fails on "already exists". Nothing is copied when the storage is the
outdir itself (a local run without ``checkpoint_uri``): the files are already there.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stylegan_common.run_files import LOG_FILE, STATS_FILE, attempt_folder
from stylegan_common.storage import LocalStorage, Storage
from stylegan_trainer.report.status import ENV_ATTEMPT

log = logging.getLogger(__name__)


def attempt_from_env(env: Mapping[str, str] | None = None) -> int | None:
    """The pod's attempt number, None outside a StyleGANRun (or when it is not a number)."""
    value = (os.environ if env is None else env).get(ENV_ATTEMPT, "")
    return int(value) if value.isdigit() else None


class LogArchive:
    """A reporter tick hook (and an exit step) that copies log.txt and stats.jsonl."""

    def __init__(self, storage: Storage, outdir: str | os.PathLike[str],
                 attempt: int | None) -> None:
        self.storage = storage
        self.outdir = Path(outdir)
        self.folder = attempt_folder(attempt)
        self.failed = False

    @property
    def needed(self) -> bool:
        """False when the storage is the outdir: the files are already where they belong."""
        return not (isinstance(self.storage, LocalStorage)
                    and self.storage.root.resolve() == self.outdir.resolve())

    def __call__(self, report: Any) -> None:
        self.publish()

    def publish(self) -> bool:
        """Upload what exists of both files; True when they are in the storage."""
        if not self.needed:
            return True
        try:
            for name in (LOG_FILE, STATS_FILE):
                path = self.outdir / name
                if path.exists():
                    self.storage.write_bytes(f"{self.folder}/{name}", path.read_bytes(),
                                             create_only=False)
        except Exception as exc:  # whatever went wrong, training must go on
            if not self.failed:
                log.warning("the log was not copied to %s/%s (%s: %s); training goes on, it "
                            "stays in %s", self.storage.uri, self.folder, type(exc).__name__,
                            exc, self.outdir)
            self.failed = True
            return False
        self.failed = False
        return True
