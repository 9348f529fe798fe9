"""Pictures of a run's history: losses, speed, quality and cost against kimg, in one PNG.

The trainer leaves two machine-readable histories in its run folder:

* ``stats.jsonl`` (``progress``): one object per tick with ``kimg``, ``time_s`` (seconds since
  this process started training), ``sec_per_kimg``, ``augment_p`` and the reduced losses
  (``Loss/G/loss``, ``Loss/D/loss``, ``Loss/r1_penalty``, ...);
* ``quality.jsonl`` (written by ``stylegan demo``): one object per evaluated snapshot with
  ``kimg``, ``face_share``, ``precision`` (and ``recall``), plus at most one object holding
  ``real_precision``, the precision of real faces against real faces: the ceiling to read
  the generated figure against.

:func:`read_run` parses them, :func:`build_figure` turns the records into a matplotlib figure
of stacked panels sharing the kimg axis (a panel whose data is missing is left out), and
:func:`plot_run` does both and saves a PNG. matplotlib is an optional extra
(``stylegan-operator[plot]``) imported only here and only when a figure is drawn, with the
non-interactive Agg backend, so ``stylegan --help`` and the trainer never load it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stylegan_common.errors import ConfigError
from stylegan_common.run_files import STATS_FILE

QUALITY_FILE = "quality.jsonl"
INSTALL_HINT = "pip install 'stylegan-operator[plot]'"

# One panel is this many inches high and the figure this wide, at DPI dots per inch: the
# PNG is WIDTH_IN*DPI x PANEL_HEIGHT_IN*DPI*panels pixels (no tight bbox, so sizes are exact).
WIDTH_IN = 8.0
PANEL_HEIGHT_IN = 2.4
DPI = 100

PANEL_LOSSES = "Losses"
PANEL_SPEED = "Speed and augmentation"
PANEL_QUALITY = "Quality per snapshot"
PANEL_COST = "Cost"


@dataclass(frozen=True)
class RunRecords:
    """The parsed histories of one run folder."""

    stats: list[dict[str, Any]]
    quality: list[dict[str, Any]] = field(default_factory=list)
    real_precision: float | None = None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of ``path``, one a line; blank lines are skipped.

    A last line that does not parse is dropped: the trainer may be writing it right now. A bad
    line before it is an error naming the file and line.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    records: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == len(lines):
                break
            raise ConfigError(f"{path}: line {number} is not JSON ({exc.msg})") from exc
        if not isinstance(record, dict):
            raise ConfigError(f"{path}: line {number} is not a JSON object")
        records.append(record)
    return records


def read_run(run_dir: str | Path) -> RunRecords:
    """Parse ``stats.jsonl`` (required, non-empty) and ``quality.jsonl`` (optional)."""
    run = Path(run_dir)
    stats_path = run / STATS_FILE
    if not stats_path.is_file():
        raise ConfigError(
            f"{stats_path}: missing; give a run folder the trainer wrote "
            f"(it appends one line per tick to {STATS_FILE})"
        )
    stats = [r for r in read_jsonl(stats_path) if _number(r.get("kimg")) is not None]
    if not stats:
        raise ConfigError(
            f"{stats_path}: no ticks with a kimg recorded yet; plot after the first tick"
        )
    quality: list[dict[str, Any]] = []
    real_precision = None
    quality_path = run / QUALITY_FILE
    if quality_path.is_file():
        for record in read_jsonl(quality_path):
            if _number(record.get("real_precision")) is not None:
                real_precision = float(record["real_precision"])
            elif _number(record.get("kimg")) is not None:
                quality.append(record)
    quality.sort(key=lambda r: float(r["kimg"]))
    return RunRecords(stats=stats, quality=quality, real_precision=real_precision)


def _number(value: Any) -> float | None:
    """``value`` as a finite float, else None (absent keys, nulls, NaN)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def series(records: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """(kimg, value) pairs of the records that hold a finite ``key``."""
    xs, ys = [], []
    for record in records:
        x, y = _number(record.get("kimg")), _number(record.get(key))
        if x is not None and y is not None:
            xs.append(x)
            ys.append(y)
    return xs, ys


def wall_seconds(stats: Sequence[Mapping[str, Any]]) -> list[float]:
    """Cumulative training wall time at each tick, across resumes.

    ``time_s`` counts from the start of the process that wrote the line, so it falls back
    when a run resumes; each later segment is added onto where the previous one ended. A
    tick without ``time_s`` carries the previous value.
    """
    total, offset, last = [], 0.0, 0.0
    for record in stats:
        t = _number(record.get("time_s"))
        if t is None:
            total.append(offset + last)
            continue
        if t < last:  # a new process: its clock restarted
            offset += last
        last = t
        total.append(offset + t)
    return total


def panels_for(records: RunRecords, price_per_hour: float | None) -> list[str]:
    """The panels the records can fill, top to bottom."""
    names = []
    if any(series(records.stats, k)[0] for k in ("Loss/G/loss", "Loss/D/loss")):
        names.append(PANEL_LOSSES)
    if any(series(records.stats, k)[0] for k in ("sec_per_kimg", "augment_p")):
        names.append(PANEL_SPEED)
    if any(series(records.quality, k)[0] for k in ("face_share", "precision")):
        names.append(PANEL_QUALITY)
    if price_per_hour is not None and any(
        _number(r.get("time_s")) is not None for r in records.stats
    ):
        names.append(PANEL_COST)
    return names


def _pyplot() -> Any:
    try:
        import matplotlib
    except ModuleNotFoundError as exc:
        raise ConfigError(f"plotting needs matplotlib: {INSTALL_HINT}") from exc
    matplotlib.use("Agg")  # files only: no display, works in pods and over ssh
    import matplotlib.pyplot as plt

    return plt


def build_figure(
    records: RunRecords, price_per_hour: float | None = None, cores: int | None = None
) -> Any:
    """A matplotlib ``Figure`` with one panel per kind of data present, sharing kimg.

    ``price_per_hour`` is USD per core-hour (an assumption the caller states); the cost panel
    shows cores x hours x price. ``cores`` defaults to 1. Each panel's Axes carries its panel
    name as its title.
    """
    if price_per_hour is not None and price_per_hour < 0:
        raise ConfigError(f"price per hour: {price_per_hour}; give a price of 0 or more USD")
    if cores is not None and cores < 1:
        raise ConfigError(f"cores: {cores}; give a whole number of 1 or more")
    names = panels_for(records, price_per_hour)
    plt = _pyplot()
    fig, axes = plt.subplots(
        len(names), 1, sharex=True, squeeze=False, layout="constrained",
        figsize=(WIDTH_IN, PANEL_HEIGHT_IN * len(names)), dpi=DPI,
    )  # fmt: skip
    draw = {
        PANEL_LOSSES: _draw_losses,
        PANEL_SPEED: _draw_speed,
        PANEL_QUALITY: _draw_quality,
        PANEL_COST: lambda ax, rec: _draw_cost(ax, rec, price_per_hour or 0.0, cores or 1),
    }
    for ax, name in zip(axes[:, 0], names, strict=True):
        draw[name](ax, records)
        ax.grid(True, alpha=0.3)
    axes[-1, 0].set_xlabel("training progress (kimg: thousands of real images shown to D)")
    fig.suptitle(f"Training run: {records.stats[-1].get('kimg', 0):.1f} kimg")
    return fig


def _few_points(xs: Sequence[float]) -> dict[str, Any]:
    """Markers for a line of one or two points, which would otherwise be invisible or bare."""
    return {"marker": "o", "markersize": 4} if len(xs) < 3 else {}


def _draw_losses(ax: Any, records: RunRecords) -> None:
    for key, label in (("Loss/G/loss", "G loss"), ("Loss/D/loss", "D loss")):
        xs, ys = series(records.stats, key)
        if xs:
            ax.plot(xs, ys, label=label, **_few_points(xs))
    ax.set_title(PANEL_LOSSES)
    ax.set_ylabel("loss (logistic, nats)")
    ax.legend(loc="upper right", fontsize="small")


def _draw_speed(ax: Any, records: RunRecords) -> None:
    # Tick 0 covers a handful of images plus start-up (workers, first allocations); its
    # sec/kimg says nothing about the steady speed and would squash the rest of the line.
    stats = [r for r in records.stats if r.get("tick") != 0] or records.stats
    xs, ys = series(stats, "sec_per_kimg")
    handles = []
    if xs:
        handles += ax.plot(xs, ys, color="tab:blue", label="sec/kimg", **_few_points(xs))
    ax.set_ylabel("seconds per kimg")
    ax.set_title(PANEL_SPEED)
    px, py = series(records.stats, "augment_p")
    if px:
        twin = ax.twinx()
        handles += twin.plot(px, py, color="tab:orange", label="augment p (ADA)", **_few_points(px))
        twin.set_ylabel("augment probability p")
        twin.set_ylim(bottom=0)
    ax.legend(handles=handles, loc="upper right", fontsize="small")


def _draw_quality(ax: Any, records: RunRecords) -> None:
    for key, label, marker in (("face_share", "face share", "o"), ("precision", "precision", "s")):
        xs, ys = series(records.quality, key)
        if xs:
            ax.plot(xs, ys, marker=marker, label=label)
    if records.real_precision is not None:
        ax.axhline(
            records.real_precision,
            color="grey",
            linestyle="--",
            label=f"precision real vs real ({records.real_precision:.2f})",
        )
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("fraction (0-1)")
    ax.set_title(f"{PANEL_QUALITY} (HOG features; see stylegan quality)")
    ax.legend(loc="best", fontsize="small")


def _draw_cost(ax: Any, records: RunRecords, price: float, cores: int) -> None:
    minutes = [s / 60 for s in wall_seconds(records.stats)]
    xs = [float(r["kimg"]) for r in records.stats]
    usd_per_minute = cores * price / 60
    ax.plot(xs, [m * usd_per_minute for m in minutes], color="tab:green")
    ax.set_ylabel("cost (USD)")
    ax.set_title(
        f"{PANEL_COST}: {cores} cores x wall hours x {price:g} USD per core-hour (assumed price)"
    )
    # The same line read as training wall time (cost is proportional to it): a right-hand
    # axis whose limits are the cost axis' limits converted to minutes.
    twin = ax.twinx()
    twin.set_ylabel("training wall time (min)")
    if usd_per_minute > 0:
        low, high = ax.get_ylim()
        twin.set_ylim(low / usd_per_minute, high / usd_per_minute)
    else:  # a free run: the cost line is flat at 0, so draw the time itself
        twin.plot(xs, minutes, color="tab:green", linestyle=":")


def plot_run(
    run_dir: str | Path,
    out_path: str | Path,
    price_per_hour: float | None = None,
    cores: int | None = None,
) -> Path:
    """Draw ``run_dir``'s history into the PNG ``out_path`` and return that path."""
    records = read_run(run_dir)
    fig = build_figure(records, price_per_hour=price_per_hour, cores=cores)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(out, dpi=DPI)
    finally:
        _pyplot().close(fig)
    return out
