"""What a training run tells the people and programs watching it (rank 0 only).

Per tick (at least every ``tick_kimg`` thousand images):

* one line on stdout in the layout of the official training loop, e.g.
  ``tick 12    kimg 48.0     time 5m 12s   sec/tick 25.1  sec/kimg 6.27  maintenance 0.3
  cpumem 1.52  gpumem 0.00  augment 0.041``;
* one JSON object appended to ``stats.jsonl`` (kimg, timestamp, sec/kimg, losses, augment p,
  ...), the machine-readable history;
* every line printed, and the error that ended the run, appended to ``log.txt`` with its
  time (``log_archive`` copies it and ``stats.jsonl`` beside the checkpoints);
* ``progress.json`` rewritten atomically: ``{kimg, total_kimg, sec_per_kimg, last_checkpoint,
  updated_at, error}``. The operator reads it; any other consumer can be added as a
  :class:`ProgressHook` without touching the loop.

A :class:`TickHook` gets each tick's whole :class:`TickReport` (losses, augment p, memory),
the record the tick line and ``stats.jsonl`` are made from; the Prometheus endpoint
(``metrics_export``) is one.

Between ticks a tqdm bar on stderr shows the ETA to the target kimg; it is off when stderr is
not a terminal unless forced. Non-zero ranks get a reporter that does nothing.
"""

from __future__ import annotations

import datetime
import json
import os
import resource
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

import torch

from stylegan_common.run_files import LOG_FILE, STATS_FILE

PROGRESS_FILE = "progress.json"
OPTIONS_FILE = "training_options.json"
PROGRESS_BAR_MODES = ("auto", "on", "off")


def format_time(seconds: float) -> str:
    """Durations as the official loop prints them: ``42s``, ``5m 12s``, ``3h 04m``, ``2d 05h``."""
    s = int(round(max(seconds, 0.0)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {(s // 60) % 60:02d}m"
    return f"{s // 86400}d {(s // 3600) % 24:02d}h"


def cpu_memory_bytes() -> int:
    """Resident memory of this process now (``/proc``), else its peak (``getrusage``)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return peak_cpu_memory_bytes()


def peak_cpu_memory_bytes() -> int:
    """Peak resident memory of this process (Linux reports kilobytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) * (1 if sys.platform == "darwin" else 1024)


def peak_gpu_memory_bytes(device: torch.device) -> int:
    if device.type != "cuda":
        return 0
    return int(torch.cuda.max_memory_allocated(device))


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    """Replace ``path`` with ``obj`` as JSON so a reader never sees half a file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + target.name + ".", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, indent=1, sort_keys=True)
            fh.write("\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class TickReport:
    """One tick's figures; ``stats`` holds the losses and other reduced scalars."""

    tick: int
    kimg: float
    total_kimg: float
    time_s: float
    sec_per_tick: float
    sec_per_kimg: float
    maintenance_s: float
    cpumem_gb: float
    gpumem_gb: float
    augment_p: float
    stats: Mapping[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        record = {k: v for k, v in asdict(self).items() if k != "stats"}
        record["timestamp"] = utc_now()
        record.update({name: value for name, value in sorted(self.stats.items())})
        return record


def format_tick_line(report: TickReport) -> str:
    """The official loop's tick line."""
    return (
        f"tick {report.tick:<5d} kimg {report.kimg:<8.1f} time {format_time(report.time_s):<12s} "
        f"sec/tick {report.sec_per_tick:<7.1f} sec/kimg {report.sec_per_kimg:<7.2f} "
        f"maintenance {report.maintenance_s:<6.1f} cpumem {report.cpumem_gb:<6.2f} "
        f"gpumem {report.gpumem_gb:<6.2f} augment {report.augment_p:.3f}"
    ).rstrip()


class ProgressHook(Protocol):
    """Something that wants the progress record whenever it changes (the operator's feed)."""

    def __call__(self, progress: Mapping[str, Any]) -> None: ...


class TickHook(Protocol):
    """Something that wants every tick's full report (e.g. the Prometheus gauges)."""

    def __call__(self, report: TickReport) -> None: ...


class ProgressFile:
    """A hook that rewrites ``progress.json`` atomically with every change."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __call__(self, progress: Mapping[str, Any]) -> None:
        write_json_atomic(self.path, dict(progress))


def wants_progress_bar(mode: str, stream: TextIO) -> bool:
    """``on``: always; ``off``: never; ``auto``: only when ``stream`` is a terminal."""
    if mode not in PROGRESS_BAR_MODES:
        raise ValueError(f"progress_bar: {mode!r} is not one of {', '.join(PROGRESS_BAR_MODES)}")
    if mode == "auto":
        return bool(getattr(stream, "isatty", lambda: False)())
    return mode == "on"


class Reporter:
    """Rank 0's reporting: tick lines, ``stats.jsonl``, the progress record and its hooks."""

    def __init__(
        self,
        outdir: str | os.PathLike[str],
        total_kimg: float,
        progress_bar: str = "auto",
        hooks: Sequence[ProgressHook] = (),
        out: TextIO | None = None,
        tick_hooks: Sequence[TickHook] = (),
    ) -> None:
        self.outdir = Path(outdir)
        self.total_kimg = total_kimg
        self.out = out or sys.stdout
        self.hooks: list[ProgressHook] = [ProgressFile(self.outdir / PROGRESS_FILE), *hooks]
        self.tick_hooks: list[TickHook] = list(tick_hooks)
        self.progress: dict[str, Any] = {
            "kimg": 0.0,
            "total_kimg": total_kimg,
            "sec_per_kimg": None,
            "last_checkpoint": None,
            "last_checkpoint_at": None,
            "updated_at": utc_now(),
            "error": None,
        }
        self._bar: Any = None
        if wants_progress_bar(progress_bar, sys.stderr):
            from tqdm import tqdm

            self._bar = tqdm(
                total=round(total_kimg * 1000), unit="img", unit_scale=True, file=sys.stderr,
                desc="train", dynamic_ncols=True, leave=False,
            )  # fmt: skip

    def log(self, message: str) -> None:
        """A line for the operator of the run (stdout, above the bar), kept in ``log.txt``."""
        if self._bar is not None:
            self._bar.write(message, file=self.out)
        else:
            print(message, file=self.out, flush=True)
        self._keep(message)

    def _keep(self, line: str) -> None:
        """Append ``line`` to outdir/log.txt, the copy that outlives the pod (log_archive)."""
        try:
            self.outdir.mkdir(parents=True, exist_ok=True)
            with open(self.outdir / LOG_FILE, "a", encoding="utf-8") as fh:
                fh.write(f"{utc_now()} {line}\n")
        except OSError:
            pass  # the line is on stdout already; a full scratch disk must not stop training

    def advance(self, cur_nimg: int) -> None:
        """Move the bar to ``cur_nimg`` images."""
        if self._bar is not None:
            self._bar.n = cur_nimg
            self._bar.refresh()

    def write_options(self, options: Mapping[str, Any]) -> None:
        """``training_options.json``, written once per output folder (a resume keeps the first)."""
        path = self.outdir / OPTIONS_FILE
        if not path.exists():
            write_json_atomic(path, dict(options))

    def tick(self, report: TickReport) -> None:
        self.log(format_tick_line(report))
        self.outdir.mkdir(parents=True, exist_ok=True)
        with open(self.outdir / STATS_FILE, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(report.to_json(), sort_keys=True) + "\n")
        for hook in self.tick_hooks:
            hook(report)
        self.update(kimg=report.kimg, sec_per_kimg=report.sec_per_kimg)

    def checkpoint(self, name: str) -> None:
        # The checkpoint's own time, kept apart from updated_at (which every tick moves), so
        # consumers can tell how old the newest checkpoint is.
        self.update(last_checkpoint=name, last_checkpoint_at=utc_now())

    def error(self, message: str) -> None:
        self._keep(f"error: {message}")
        self.update(error=message)

    def update(self, **changes: Any) -> None:
        """Merge ``changes`` into the progress record and hand it to every hook."""
        self.progress.update(changes, updated_at=utc_now())
        for hook in self.hooks:
            hook(dict(self.progress))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class SilentReporter(Reporter):
    """What non-zero ranks use: same interface, writes nothing."""

    def __init__(self, total_kimg: float = 0.0) -> None:
        self.total_kimg = total_kimg
        self.hooks = []
        self.tick_hooks = []
        self.progress = {}
        self._bar = None
        self.out = sys.stdout

    def log(self, message: str) -> None:
        return None

    def write_options(self, options: Mapping[str, Any]) -> None:
        return None

    def tick(self, report: TickReport) -> None:
        return None

    def update(self, **changes: Any) -> None:
        return None

    def _keep(self, line: str) -> None:
        return None
