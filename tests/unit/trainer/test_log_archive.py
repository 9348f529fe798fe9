"""Rank 0's log.txt and stats.jsonl, copied beside the checkpoints (report/log_archive.py).

Real files and a real LocalStorage: the log keeps every line printed and the error that
ended a run, an archive copy follows the files as they grow, and a storage that cannot be
written costs a warning, never the run.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from stylegan_common.run_files import attempt_log, logged_attempts
from stylegan_common.storage import LocalStorage
from stylegan_trainer.report.log_archive import LogArchive, attempt_from_env
from stylegan_trainer.report.progress import Reporter


def test_the_log_keeps_every_line_and_the_final_error_with_their_times(tmp_path: Path) -> None:
    out = io.StringIO()
    reporter = Reporter(tmp_path, 10.0, progress_bar="off", out=out)
    reporter.log("training cpu at 8px")
    reporter.error("StorageError: bucket gone")
    lines = (tmp_path / "log.txt").read_text().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == [
        "training cpu at 8px", "error: StorageError: bucket gone"]
    assert lines[0][:4].isdigit() and "T" in lines[0].split(" ")[0]  # an ISO time first
    assert out.getvalue() == "training cpu at 8px\n"  # the error is the CLI's to print


def test_each_publish_replaces_the_copy_with_the_grown_files(tmp_path: Path) -> None:
    outdir, store = tmp_path / "scratch", LocalStorage(tmp_path / "bucket")
    reporter = Reporter(outdir, 10.0, progress_bar="off", out=io.StringIO())
    archive = LogArchive(store, outdir, attempt=3)
    reporter.log("first")
    assert archive.publish()
    reporter.log("second")
    assert archive.publish()  # a second upload of a grown file replaces the first
    assert store.read_bytes(attempt_log(3)) == (outdir / "log.txt").read_bytes()
    assert b"second" in store.read_bytes(attempt_log(3))
    assert logged_attempts(store.list("logs/")) == [3]


def test_nothing_is_copied_when_the_storage_is_the_outdir(tmp_path: Path) -> None:
    archive = LogArchive(LocalStorage(tmp_path), tmp_path, attempt=None)
    assert not archive.needed and archive.publish()
    assert not (tmp_path / "logs").exists()


def test_a_storage_that_cannot_be_written_warns_once_and_training_goes_on(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "bucket"
    blocker.write_text("a file where the storage's folder should be")
    outdir = tmp_path / "scratch"
    Reporter(outdir, 10.0, progress_bar="off", out=io.StringIO()).log("line")
    archive = LogArchive(LocalStorage(blocker), outdir, attempt=1)
    with caplog.at_level(logging.WARNING):
        assert archive.publish() is False
        assert archive.publish() is False
    warnings = [r for r in caplog.records if "was not copied" in r.getMessage()]
    assert len(warnings) == 1 and "training goes on" in warnings[0].getMessage()


@pytest.mark.parametrize(("value", "expected"), [("4", 4), ("", None), ("x", None)])
def test_the_attempt_comes_from_the_pods_environment(value: str, expected: int | None) -> None:
    assert attempt_from_env({"STYLEGAN_ATTEMPT": value}) == expected
