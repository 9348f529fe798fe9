"""Reporting: the tick line, stats.jsonl, progress.json and its hooks."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from stylegan_trainer.report.progress import (
    PROGRESS_FILE,
    STATS_FILE,
    Reporter,
    SilentReporter,
    TickReport,
    format_tick_line,
    format_time,
    wants_progress_bar,
)


def _report(**changes) -> TickReport:
    values = dict(
        tick=12, kimg=48.0, total_kimg=100.0, time_s=312.0, sec_per_tick=25.1,
        sec_per_kimg=6.27, maintenance_s=0.3, cpumem_gb=1.52, gpumem_gb=0.0,
        augment_p=0.041, stats={"Loss/G/loss": 1.25, "Loss/D/loss": 0.5},
    )  # fmt: skip
    values.update(changes)
    return TickReport(**values)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (42.4, "42s"),
        (312, "5m 12s"),
        (3600 * 3 + 240, "3h 04m"),
        (86400 * 2 + 5 * 3600, "2d 05h"),
    ],
)
def test_format_time(seconds: float, text: str) -> None:
    assert format_time(seconds) == text


def test_tick_line_has_the_official_fields_in_order() -> None:
    line = format_tick_line(_report())
    squeezed = re.sub(r"\s+", " ", line)
    assert squeezed == (
        "tick 12 kimg 48.0 time 5m 12s sec/tick 25.1 sec/kimg 6.27 maintenance 0.3 "
        "cpumem 1.52 gpumem 0.00 augment 0.041"
    )


def test_reporter_writes_stats_progress_and_calls_hooks(tmp_path: Path) -> None:
    seen: list[dict] = []
    out = io.StringIO()
    reporter = Reporter(
        tmp_path, total_kimg=100.0, progress_bar="off", hooks=[seen.append], out=out
    )
    reporter.tick(_report(tick=1, kimg=4.0))
    reporter.tick(_report(tick=2, kimg=8.0))
    reporter.checkpoint("checkpoints/ckpt-000008000.pt")
    lines = [json.loads(x) for x in (tmp_path / STATS_FILE).read_text().splitlines()]
    assert [x["kimg"] for x in lines] == [4.0, 8.0]
    assert (
        lines[0]["Loss/G/loss"] == 1.25 and "timestamp" in lines[0] and "sec_per_kimg" in lines[0]
    )
    progress = json.loads((tmp_path / PROGRESS_FILE).read_text())
    assert progress["kimg"] == 8.0 and progress["total_kimg"] == 100.0
    assert progress["last_checkpoint"] == "checkpoints/ckpt-000008000.pt"
    assert set(progress) == {
        "kimg",
        "total_kimg",
        "sec_per_kimg",
        "last_checkpoint",
        "last_checkpoint_at",
        "updated_at",
        "error",
    }
    assert seen[-1] == progress
    # A later tick moves updated_at but not the checkpoint's own time.
    written_at = progress["last_checkpoint_at"]
    reporter.tick(_report(tick=3, kimg=12.0))
    progress = json.loads((tmp_path / PROGRESS_FILE).read_text())
    assert progress["last_checkpoint_at"] == written_at
    assert [x.split()[:2] for x in out.getvalue().splitlines()] == [
        ["tick", "1"], ["tick", "2"], ["tick", "3"]]
    reporter.error("disk full")
    assert json.loads((tmp_path / PROGRESS_FILE).read_text())["error"] == "disk full"


def test_training_options_are_written_once(tmp_path: Path) -> None:
    reporter = Reporter(tmp_path, total_kimg=1.0, progress_bar="off", out=io.StringIO())
    reporter.write_options({"seed": 1})
    reporter.write_options({"seed": 2})  # a resumed run keeps the first
    assert json.loads((tmp_path / "training_options.json").read_text()) == {"seed": 1}


def test_silent_reporter_writes_nothing(tmp_path: Path) -> None:
    reporter = SilentReporter()
    reporter.tick(_report())
    reporter.checkpoint("x")
    reporter.write_options({"a": 1})
    assert list(tmp_path.iterdir()) == []


def test_progress_bar_modes() -> None:
    assert wants_progress_bar("on", io.StringIO()) is True
    assert wants_progress_bar("off", io.StringIO()) is False
    assert wants_progress_bar("auto", io.StringIO()) is False  # not a terminal
    with pytest.raises(ValueError, match="progress_bar"):
        wants_progress_bar("sometimes", io.StringIO())
