"""``stylegan tensorboard``: a run folder's stats.jsonl as TensorBoard event files.

The run folder is the synthetic one of test_plots.py; the event files are written by torch's
real SummaryWriter and read back with TensorBoard's own EventAccumulator.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from tensorboard.backend.event_processing import event_accumulator as accumulator
from tests.unit.trainer.test_plots import make_run

from stylegan_common.errors import EXIT_CONFIG
from stylegan_operator.cli.main import main
from stylegan_trainer.report.tensorboard_export import export_run, tick_scalars


def read_scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    events = accumulator.EventAccumulator(str(logdir))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)]
            for tag in events.Tags()["scalars"]}


def test_losses_speed_and_quality_land_at_their_image_counts(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", ticks=4)
    done = export_run(run)
    assert done.logdir == run / "tensorboard" and (done.ticks, done.snapshots) == (4, 2)
    scalars = read_scalars(done.logdir)
    assert [step for step, _ in scalars["Loss/G/loss"]] == [8, 1008, 2008, 3008]
    assert [value for _, value in scalars["Loss/G/loss"]] == pytest.approx(
        [4.0, 3.7, 3.4, 3.1])
    assert scalars["Progress/sec_per_kimg"][0][1] == pytest.approx(100.0)
    assert scalars["Quality/face_share"] == [(2008, pytest.approx(0.4)),
                                             (4008, pytest.approx(0.9))]
    assert scalars["Quality/real_precision"][0][1] == pytest.approx(0.72)


def test_a_second_export_replaces_the_first_instead_of_doubling_it(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", ticks=3)
    export_run(run, tmp_path / "tb")
    export_run(make_run(tmp_path / "run", ticks=5), tmp_path / "tb")  # five ticks by now
    assert len(list((tmp_path / "tb").glob("events.out.tfevents.*"))) == 1
    assert len(read_scalars(tmp_path / "tb")["Loss/D/loss"]) == 5


def test_non_finite_values_and_non_statistics_are_left_out() -> None:
    got = tick_scalars({"kimg": 1.0, "tick": 3, "Loss/G/loss": float("nan"),
                        "Loss/D/loss": 0.5, "augment_p": 0.1, "timestamp": "x"})
    assert got == {"Loss/D/loss": 0.5, "Progress/augment_p": 0.1}


def test_the_command_names_a_folder_without_stats_and_exits_64(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["tensorboard", str(tmp_path)])
    assert result.exit_code == EXIT_CONFIG
    assert "stats.jsonl: missing" in result.output


def test_the_command_says_where_it_wrote(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", ticks=2)
    result = CliRunner().invoke(main, ["tensorboard", str(run), "--logdir", str(tmp_path / "tb")])
    assert result.exit_code == 0, result.output
    assert "wrote 2 ticks and 2 snapshots" in result.output
    assert f"tensorboard --logdir {tmp_path / 'tb'}" in result.output
