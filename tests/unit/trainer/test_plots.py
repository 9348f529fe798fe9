"""``stylegan plot`` and ``stylegan_trainer.report.plots``: a run folder's history drawn as one PNG.

The run folders here are synthetic (a few ticks of ``stats.jsonl`` in the trainer's layout and
a ``quality.jsonl`` in the demo's); the figure is rendered for real with matplotlib's Agg
backend and read back as pixels.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
from click.testing import CliRunner

from stylegan_common.errors import EXIT_CONFIG, ConfigError
from stylegan_operator.cli.main import main
from stylegan_trainer.report import plots


def _write_lines(path: Path, records: list[dict[str, object]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def make_run(root: Path, quality: bool = True, ticks: int = 6) -> Path:
    """A run folder as the trainer (and, with ``quality``, the demo) leaves it."""
    root.mkdir(parents=True, exist_ok=True)
    stats = [{
        "tick": t, "kimg": t * 1.0 + 0.008, "time_s": 1.0 + 24.0 * t,
        "sec_per_kimg": 100.0 if t == 0 else 24.0 + (t % 2),
        "augment_p": 0.008 * t, "Loss/G/loss": 4.0 - 0.3 * t, "Loss/D/loss": 0.4 + 0.05 * t,
        "Loss/r1_penalty": 0.1, "timestamp": "2026-01-01T00:00:00+00:00",
    } for t in range(ticks)]  # fmt: skip
    _write_lines(root / plots.STATS_FILE, stats)
    if quality:
        _write_lines(root / plots.QUALITY_FILE, [
            {"checkpoint": "ckpt-000002008.pt", "kimg": 2.008, "face_share": 0.4,
             "precision": 0.2, "recall": 0.0},
            {"checkpoint": "ckpt-000004008.pt", "kimg": 4.008, "face_share": 0.9,
             "precision": 0.5, "recall": 0.01},
            {"real_precision": 0.72},
        ])  # fmt: skip
    return root


def panel_titles(fig: object) -> list[str]:
    return [ax.get_title() for ax in fig.axes if ax.get_title()]  # type: ignore[attr-defined]


def test_png_has_the_size_of_its_panels_and_every_panel_draws_data(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    records = plots.read_run(run)
    fig = plots.build_figure(records, price_per_hour=0.0475, cores=2)
    out = tmp_path / "progress.png"
    fig.savefig(out, dpi=plots.DPI)

    titles = panel_titles(fig)
    assert [t.split(" (")[0].split(":")[0] for t in titles] == [
        plots.PANEL_LOSSES,
        plots.PANEL_SPEED,
        plots.PANEL_QUALITY,
        plots.PANEL_COST,
    ]
    assert "assumed price" in titles[-1]
    image = np.asarray(PIL.Image.open(out).convert("RGB")).astype(int)
    height, width, _ = image.shape
    assert (width, height) == (
        round(plots.WIDTH_IN * plots.DPI),
        round(plots.PANEL_HEIGHT_IN * plots.DPI * 4),
    )
    # Data lines are coloured; frames, grid and text are grey or black. Each panel's area
    # must hold more coloured pixels than its legend alone draws (measured: legends 0-214,
    # data 1,281-3,443 in this run), so a panel with its lines missing fails.
    colour = image.max(axis=2) - image.min(axis=2) > 60
    for ax in fig.axes:
        if not ax.get_title():
            continue  # a twin axis shares its panel's area
        box = ax.get_window_extent()
        rows = slice(height - int(box.y1), height - int(box.y0))
        cols = slice(int(box.x0), int(box.x1))
        assert colour[rows, cols].sum() > 600, f"panel {ax.get_title()!r} looks blank"


def test_quality_panel_is_left_out_without_quality_jsonl(tmp_path: Path) -> None:
    with_quality = plots.build_figure(plots.read_run(make_run(tmp_path / "a")))
    without = plots.build_figure(plots.read_run(make_run(tmp_path / "b", quality=False)))
    assert len(without.axes) == len(with_quality.axes) - 1
    assert not any(t.startswith(plots.PANEL_QUALITY) for t in panel_titles(without))
    assert not any(t.startswith(plots.PANEL_COST) for t in panel_titles(without))  # no price


def test_real_precision_is_drawn_as_a_dashed_reference(tmp_path: Path) -> None:
    records = plots.read_run(make_run(tmp_path / "run"))
    assert records.real_precision == 0.72 and len(records.quality) == 2
    fig = plots.build_figure(records)
    quality_ax = next(ax for ax in fig.axes if ax.get_title().startswith(plots.PANEL_QUALITY))
    dashed = [ln for ln in quality_ax.get_lines() if ln.get_linestyle() == "--"]
    assert [list(ln.get_ydata()) for ln in dashed] == [[0.72, 0.72]]


def test_cli_writes_the_png_and_prints_its_path(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    out = tmp_path / "figs" / "p.png"
    result = CliRunner().invoke(
        main, ["plot", str(run), "-f", str(out), "--price-per-hour", "0.05", "--cores", "2"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    assert PIL.Image.open(out).size == (800, 960)
    default = CliRunner().invoke(main, ["plot", str(run)])
    assert default.exit_code == 0, default.output
    assert PIL.Image.open(run / "progress.png").size == (800, 720)  # no price: no cost panel


@pytest.mark.parametrize("content", [None, "", "\n\n", '{"tick": 0}\n'])
def test_cli_refuses_a_missing_or_empty_stats_file_with_64(
    tmp_path: Path, content: str | None
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    if content is not None:
        (run / plots.STATS_FILE).write_text(content)
    result = CliRunner().invoke(main, ["plot", str(run)])
    assert result.exit_code == EXIT_CONFIG, result.output
    assert str(run / plots.STATS_FILE) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (run / "progress.png").exists()


def test_a_bad_line_is_named_but_a_half_written_last_line_is_dropped(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", quality=False)
    stats = run / plots.STATS_FILE
    with stats.open("a") as fh:
        fh.write('{"tick": 6, "kimg": 6.0')  # the trainer is writing this one
    assert len(plots.read_run(run).stats) == 6
    stats.write_text('{"kimg": 1}\nnot json\n{"kimg": 2}\n')
    with pytest.raises(ConfigError, match=r"stats\.jsonl: line 2 is not JSON"):
        plots.read_run(run)


def test_cli_without_matplotlib_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = make_run(tmp_path / "run")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now fails
    result = CliRunner().invoke(main, ["plot", str(run)])
    assert result.exit_code == EXIT_CONFIG, result.output
    assert "pip install 'stylegan-operator[plot]'" in result.stderr


def test_cost_grows_with_wall_time_across_a_resume() -> None:
    # A resumed process restarts time_s; the wall time keeps adding up.
    stats = [
        {"kimg": 1, "time_s": 10.0},
        {"kimg": 2, "time_s": 20.0},
        {"kimg": 3, "time_s": 5.0},
        {"kimg": 4},
        {"kimg": 5, "time_s": 15.0},
    ]
    assert plots.wall_seconds(stats) == [10.0, 20.0, 25.0, 25.0, 35.0]


def test_negative_price_is_refused() -> None:
    records = plots.RunRecords(stats=[{"kimg": 1.0, "time_s": 3.0}])
    with pytest.raises(ConfigError, match="price"):
        plots.build_figure(records, price_per_hour=-1.0)
