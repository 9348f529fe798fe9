"""A run's history as TensorBoard event files, from the same ``stats.jsonl`` the plot reads.

``stylegan tensorboard RUN_DIR`` turns every tick of ``stats.jsonl`` (and every evaluated
snapshot of ``quality.jsonl``) into scalars of a ``SummaryWriter``: the losses under their
own names (``Loss/G/loss``, ``Loss/D/loss``, ``Loss/r1_penalty``, ...), speed and memory under
``Progress/``, ADA's ``Progress/augment_p``, and quality under ``Quality/``. The step is the
number of real images shown (kimg x 1000, as the official training code logs), and the wall
time the tick's own timestamp, so resumed runs line up.

Why an export rather than a writer in the loop: the statistics already outlive the pods
(``logs/attempt-<N>/stats.jsonl`` beside the checkpoints), so any run, old or remote, can be
viewed after the fact, and training needs no TensorBoard. An export rewrites the folder's
event files each time (the old ``events.out.tfevents.*`` there are removed first), so
running it again after more ticks gives one clean history, never two copies.

TensorBoard is an optional extra (``stylegan-operator[tensorboard]``); without it the command
says how to install it and exits 64.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stylegan_common.errors import ConfigError
from stylegan_trainer.report.plots import read_run

INSTALL_HINT = "pip install 'stylegan-operator[tensorboard]'"
EVENT_FILES = "events.out.tfevents.*"
PROGRESS_KEYS = {
    "sec_per_kimg": "Progress/sec_per_kimg",
    "sec_per_tick": "Progress/sec_per_tick",
    "augment_p": "Progress/augment_p",
    "cpumem_gb": "Progress/cpumem_gb",
    "gpumem_gb": "Progress/gpumem_gb",
    "maintenance_s": "Progress/maintenance_s",
}
QUALITY_KEYS = ("face_share", "precision", "recall", "kid", "fid")


@dataclass(frozen=True)
class Export:
    """What one export wrote."""

    logdir: Path
    ticks: int
    snapshots: int
    tags: tuple[str, ...]


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if number == number and abs(number) != float("inf") else None


def _walltime(record: Mapping[str, Any]) -> float | None:
    stamp = record.get("timestamp")
    if not isinstance(stamp, str):
        return None
    try:
        return datetime.datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return None


def tick_scalars(record: Mapping[str, Any]) -> dict[str, float]:
    """TensorBoard tag -> value for one line of ``stats.jsonl`` (finite numbers only)."""
    out = {tag: v for key, tag in PROGRESS_KEYS.items()
           if (v := _finite(record.get(key))) is not None}
    for key, value in record.items():
        number = _finite(value)
        if "/" in key and number is not None:  # the reduced statistics: Loss/..., Timing/...
            out[key] = number
    return out


def quality_scalars(record: Mapping[str, Any]) -> dict[str, float]:
    """``Quality/<name>`` -> value for one evaluated snapshot."""
    return {f"Quality/{key}": v for key in QUALITY_KEYS
            if (v := _finite(record.get(key))) is not None}


def export_run(run_dir: str | Path, logdir: str | Path | None = None) -> Export:
    """Write RUN_DIR's history as event files into ``logdir`` (default RUN_DIR/tensorboard)."""
    records = read_run(run_dir)
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise ConfigError(f"stylegan tensorboard needs TensorBoard: {INSTALL_HINT}") from exc
    target = Path(logdir) if logdir is not None else Path(run_dir) / "tensorboard"
    try:
        target.mkdir(parents=True, exist_ok=True)
        for old in target.glob(EVENT_FILES):
            old.unlink()
    except OSError as exc:
        raise ConfigError(f"--logdir {target}: cannot write there: {exc}") from exc
    tags: set[str] = set()
    with SummaryWriter(log_dir=str(target)) as writer:
        for rows, scalars in ((records.stats, tick_scalars),
                              (records.quality, quality_scalars)):
            for record in rows:
                step = round(float(record["kimg"]) * 1000)
                for tag, value in scalars(record).items():
                    writer.add_scalar(tag, value, global_step=step, walltime=_walltime(record))
                    tags.add(tag)
        if records.real_precision is not None:
            writer.add_scalar("Quality/real_precision", records.real_precision, global_step=0)
            tags.add("Quality/real_precision")
    return Export(target, len(records.stats), len(records.quality), tuple(sorted(tags)))
