"""``stylegan torchrun``: the workers' own exit codes (64, 75) get through torchrun.

Real torchrun, two CPU ranks over gloo, the tiny network of test_loop.py. Plain torchrun
turns a worker's 64 into 1 (shown here, so the problem is real); the launcher exits 64, a
run stopped by SIGTERM exits 75 after the trainer checkpointed, a finished one 0. The rule
that picks the code and the records behind it are tested on their own below.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from tests.support import ROOT, STYLEGAN, wait_for

from stylegan_common.errors import EXIT_CONFIG, EXIT_OK, EXIT_RETRYABLE
from stylegan_trainer.cli import worker_exits
from stylegan_trainer.cli.worker_exits import (
    EXIT_DIR_ENV,
    TERMINATION_LOG_ENV,
    WorkerExit,
    choose_exit_code,
    read_exits,
    record_exit,
    returncode_as_exit_code,
    termination_message,
    write_termination_message,
)

VENV_BIN = ROOT / ".venv" / "bin"
RUN_TIMEOUT_S = 150.0
TINY_SETS = ["z_dim=16", "w_dim=16", "channel_base=128", "channel_max=16", "mapping_layers=1"]


@pytest.fixture(scope="module")
def dataset_dir(noise_dataset: Callable[..., str]) -> str:
    return noise_dataset(12)


def _train_args(dataset: str, outdir: Path, **flags: Any) -> list[str]:
    """``stylegan train`` of the tiny network on two ranks (global batch 4: 2 per rank)."""
    values: dict[str, Any] = {
        "dataset": dataset, "preset": "cpu", "resolution": 8, "batch": 4, "kimg": 0.008,
        "outdir": str(outdir), "resume": "none", "progress-bar": "off", "device": "cpu",
        "grid-seeds": 4, "snapshot-kimg": 1.0, "tick-kimg": 1.0,
    }  # fmt: skip
    values.update({k.replace("_", "-"): v for k, v in flags.items()})
    args = [a for k, v in values.items() for a in (f"--{k}", str(v))]
    return [*args, *(a for s in TINY_SETS for a in ("--set", s))]


def _torchrun(launcher: bool, train_args: list[str]) -> list[str]:
    head = [str(STYLEGAN), "torchrun"] if launcher else [str(VENV_BIN / "torchrun")]
    return [*head, "--standalone", "--nproc-per-node", "2", "--no-python", "stylegan",
            "train", *train_args]  # fmt: skip


class Launch:
    """One launch in ``tmp_path``: its own TMPDIR and an empty termination log."""

    def __init__(self, tmp_path: Path, argv: list[str]) -> None:
        self.tmpdir = tmp_path / "tmp"
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        self.termination_log = tmp_path / "termination-log"
        self.termination_log.write_text("")  # Kubernetes makes the file; the launcher never does
        self.log = tmp_path / "log.txt"
        env = dict(os.environ, OMP_NUM_THREADS="1", TMPDIR=str(self.tmpdir),
                   PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
        env[TERMINATION_LOG_ENV] = str(self.termination_log)
        env.pop(EXIT_DIR_ENV, None)
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def wait(self) -> int:
        try:
            return self.proc.wait(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
            pytest.fail(f"ran past {RUN_TIMEOUT_S:.0f} s:\n{self.output()[-4000:]}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def exit_folders_left(self) -> list[Path]:
        """The launcher's folders still in TMPDIR (torchrun leaves its own there)."""
        return list(self.tmpdir.glob("stylegan-exits-*"))


# ---------------------------------------------------------------------------------------------
# Real torchrun, two ranks


@pytest.mark.timeout(2 * RUN_TIMEOUT_S + 30)
def test_a_bad_configuration_inside_the_workers_exits_64_where_torchrun_says_1(
    dataset_dir: str, tmp_path: Path
) -> None:
    # 3 images do not split over 2 ranks: a ConfigError each worker raises once started.
    train = _train_args(dataset_dir, tmp_path / "out", batch=3)
    plain = Launch(tmp_path / "plain", _torchrun(False, train))
    assert plain.wait() == 1
    error_lines = [line for line in plain.output().splitlines() if line.startswith("error: ")]
    assert error_lines, plain.output()[-4000:]  # the workers did refuse it, with 64

    ours = Launch(tmp_path / "ours", _torchrun(True, train))
    assert ours.wait() == EXIT_CONFIG, ours.output()[-4000:]
    assert "exiting 64 rather than torchrun's 1" in ours.output()
    message = ours.termination_log.read_text().strip()
    assert message and f"error: {message}" in ours.output().splitlines()
    assert "got 3" in message
    assert not ours.exit_folders_left()
    assert not (tmp_path / "out" / "checkpoints").exists()


@pytest.mark.timeout(RUN_TIMEOUT_S + 30)
def test_a_run_that_finishes_exits_0(dataset_dir: str, tmp_path: Path) -> None:
    launch = Launch(tmp_path, _torchrun(True, _train_args(dataset_dir, tmp_path / "out")))
    assert launch.wait() == EXIT_OK, launch.output()[-4000:]
    assert list((tmp_path / "out" / "checkpoints").glob("ckpt-*.pt"))
    assert launch.termination_log.read_text() == ""
    assert not launch.exit_folders_left()


def _training(progress: Path) -> bool:
    try:
        return bool(json.loads(progress.read_text()).get("kimg"))
    except (OSError, ValueError):
        return False


@pytest.mark.timeout(RUN_TIMEOUT_S + 30)
def test_sigterm_to_the_launcher_checkpoints_and_exits_75(dataset_dir: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    train = _train_args(dataset_dir, out, kimg=10, tick_kimg=0.004)  # a tick every step
    launch = Launch(tmp_path, _torchrun(True, train))
    wait_for(lambda: _training(out / "progress.json") or launch.proc.poll() is not None,
             timeout=RUN_TIMEOUT_S, what="the first training tick")
    assert launch.proc.poll() is None, launch.output()[-4000:]
    launch.proc.send_signal(signal.SIGTERM)  # the kubelet signals the container's PID 1 alone
    assert launch.wait() == EXIT_RETRYABLE, launch.output()[-4000:]
    assert "exiting 75 rather than torchrun's 1" in launch.output()
    assert list((out / "checkpoints").glob("ckpt-*.pt")), "the trainer did not checkpoint"
    assert not launch.exit_folders_left()


# ---------------------------------------------------------------------------------------------
# The rule and the records


@pytest.mark.parametrize(
    ("torchrun_code", "worker_codes", "expected"),
    [
        (0, [], 0),
        (1, [], 1),  # a worker crashed without a record: torchrun's code stands
        (1, [64], 64),
        (1, [75, 64], 64),  # the refused configuration wins over the ranks stopped for it
        (1, [75, 75], 75),
        (1, [1, 75], 75),
        (1, [3], 1),  # other codes carry no meaning the operator acts on
        (143, [75], 75),
        (2, [], 64),  # torchrun's own argparse usage error is bad input like any other
    ],
)
def test_choose_exit_code(torchrun_code: int, worker_codes: list[int], expected: int) -> None:
    assert choose_exit_code(torchrun_code, worker_codes) == expected


def test_a_child_killed_by_a_signal_exits_as_a_shell_says() -> None:
    assert returncode_as_exit_code(-signal.SIGTERM) == 143
    assert returncode_as_exit_code(64) == 64


def test_records_round_trip_and_junk_is_ignored(tmp_path: Path) -> None:
    env = {EXIT_DIR_ENV: str(tmp_path), "RANK": "10"}
    assert record_exit(0, "", env) is None  # success leaves nothing
    assert record_exit(75, "", env) == tmp_path / "rank-10"
    record_exit(64, "resolution: 48 is not a power of two\nmore", dict(env, RANK="2"))
    (tmp_path / "rank-7").write_text('{"exit_code": 6')  # cut short
    (tmp_path / "rank-8").write_text('{"exit_code": true}')
    (tmp_path / ".rank-9.partial").write_text('{"exit_code": 64}')
    exits = read_exits(tmp_path)
    assert exits == [WorkerExit("2", 64, "resolution: 48 is not a power of two\nmore"),
                     WorkerExit("10", 75, "")]
    assert termination_message(exits, 64) == "resolution: 48 is not a power of two"
    assert termination_message(exits, 75) == ""
    assert record_exit(64, "x", {"RANK": "0"}) is None  # no launcher listening
    assert record_exit(64, "x", {EXIT_DIR_ENV: str(tmp_path / "gone")}) is None


def test_the_termination_log_is_written_only_where_it_exists(tmp_path: Path) -> None:
    log = tmp_path / "termination-log"
    assert not write_termination_message("batch: no", {TERMINATION_LOG_ENV: str(log)})
    assert not log.exists()
    log.write_text("old")
    assert write_termination_message("batch: no", {TERMINATION_LOG_ENV: str(log)})
    assert log.read_text() == "batch: no\n"
    assert not write_termination_message("", {TERMINATION_LOG_ENV: str(log)})
    assert worker_exits.DEFAULT_TERMINATION_LOG == "/dev/termination-log"


def test_train_records_its_code_for_a_listening_launcher(
    dataset_dir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stylegan_trainer.cli.train_commands import train_cmd

    monkeypatch.setenv(EXIT_DIR_ENV, str(tmp_path))
    monkeypatch.setenv("RANK", "1")
    result = CliRunner().invoke(train_cmd, ["--dataset", dataset_dir, "--resolution", "48"])
    assert result.exit_code == EXIT_CONFIG
    (record,) = read_exits(tmp_path)
    assert record.rank == "1" and record.exit_code == EXIT_CONFIG
    assert result.output.strip() == f"error: {record.message}"


def test_launcher_help_is_its_own_and_torchrun_comes_from_this_interpreter() -> None:
    from stylegan_trainer.cli.launch_commands import torchrun_argv, torchrun_cmd

    result = CliRunner().invoke(torchrun_cmd, ["--help"])
    assert result.exit_code == 0 and "exit 64 or 75 when a worker did" in result.output
    assert torchrun_argv(["--standalone"]) == [
        sys.executable, "-m", "torch.distributed.run", "--standalone"]
