"""Where a new attempt resumes from (issue 14), the operator's options and the trainer together.

The operator writes each attempt's options into an immutable ConfigMap when it creates the Job;
the trainer must still start from the newest checkpoint ``latest.json`` names when its pods
start (a Kueue re-admission, a SIGTERM checkpoint written while the old pods stopped), and use
``spec.checkpoints.resumeFrom`` only while the run's own folder holds no checkpoint. The options
come from the operator's real decision (``decide`` via the lifecycle tests' ``World``); the
checkpoints are real, written by real Trainers into ``gs://`` URIs served from local folders.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.unit.operator.test_lifecycle import T0, fail_attempt, running_world
from tests.unit.trainer.test_loop import BATCH
from tests.unit.trainer.test_loop import _options as tiny_options

from stylegan_common.errors import EXIT_CONFIG, ConfigError
from stylegan_common.storage import LocalStorage, register_backend
from stylegan_common.storage import base as storage_module
from stylegan_trainer.report.progress import SilentReporter
from stylegan_trainer.train import checkpoint as ckpt
from stylegan_trainer.train.loop import Trainer
from stylegan_trainer.train.options import TrainingOptions

RUN_URI = "gs://ckpt/faces"  # the lifecycle tests' spec.checkpoints.uri
RESUME_KEYS = ("resume", "resume_fallback", "checkpoint_uri", "keep_checkpoints")


@pytest.fixture(autouse=True)
def gs_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``gs://bucket/prefix`` served from ``tmp_path/gcs/bucket/prefix`` (the protocol is the
    same; the real emulator is tests/integration/gcs)."""
    root = tmp_path / "gcs"
    monkeypatch.setattr(storage_module, "_BACKENDS", {})
    register_backend("gs", lambda uri: LocalStorage(root / uri.removeprefix("gs://")))
    return root


@pytest.fixture(scope="module")
def dataset_dir(noise_dataset: Callable[..., str]) -> str:
    return noise_dataset(12)


def tiny(dataset: str, outdir: Path, steps: int, **changes: Any) -> TrainingOptions:
    """test_loop's tiny run, without augmentation."""
    return tiny_options(dataset, outdir, steps, **{"augment": "noaug", **changes})


def train(options: TrainingOptions) -> Trainer:
    trainer = Trainer(options, reporter=SilentReporter())
    assert trainer.run() == 0
    return trainer


def operator_options(progress: dict[str, Any], patch: dict[str, Any] | None = None) -> dict:
    """The train.yaml the operator writes for attempt 2 after attempt 1 failed with ``progress``
    in the run's status."""
    world = running_world(patch)
    world.status["progress"] = progress
    plan = fail_attempt(world, 1, T0 + timedelta(minutes=10))
    return yaml.safe_load(plan.created("ConfigMap")[0]["data"]["train.yaml"])


def attempt(rendered: dict, dataset: str, outdir: Path, steps: int) -> Trainer:
    """A Trainer on the tiny network with the resume options exactly as the operator wrote."""
    options = tiny(dataset, outdir, steps, **{k: rendered[k] for k in RESUME_KEYS if k in rendered})
    return Trainer(options, reporter=SilentReporter())


def test_an_attempt_made_when_the_status_named_an_older_checkpoint_resumes_from_the_newest(
    dataset_dir: str, tmp_path: Path
) -> None:
    train(tiny(dataset_dir, tmp_path / "a", 1, checkpoint_uri=RUN_URI))
    train(tiny(dataset_dir, tmp_path / "a", 2, checkpoint_uri=RUN_URI, resume="latest"))
    older = f"{RUN_URI}/{ckpt.checkpoint_name(1 * BATCH)}"
    # The status still names the older checkpoint: the newer one was written after the
    # trainer's last report (a SIGTERM checkpoint while the pods stopped).
    rendered = operator_options({"kimg": 0.008, "lastCheckpoint": {"uri": older, "kimg": 0.004}})
    assert rendered["checkpoint_uri"] == RUN_URI

    resumed = attempt(rendered, dataset_dir, tmp_path / "b", 3)
    assert resumed.cur_nimg == 2 * BATCH  # not 1 * BATCH, the checkpoint the status named
    assert resumed.last_checkpoint == ckpt.checkpoint_name(2 * BATCH)


def test_resume_from_is_used_only_while_the_runs_storage_is_empty(
    dataset_dir: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pretrained = "gs://pretrained/ffhq"
    train(tiny(dataset_dir, tmp_path / "p", 2, checkpoint_uri=pretrained))
    fallback = f"{pretrained}/{ckpt.checkpoint_name(2 * BATCH)}"
    # No lastCheckpoint in the status (the trainer never reported one): the operator knows
    # only resumeFrom, every time.
    rendered = operator_options({}, {"checkpoints": {"resumeFrom": fallback}})
    assert rendered["resume"] == "latest" and rendered["resume_fallback"] == fallback

    with caplog.at_level(logging.INFO, logger="stylegan_trainer.train.resume"):
        first = attempt(rendered, dataset_dir, tmp_path / "a2", 3)
    assert first.cur_nimg == 2 * BATCH  # the run's folder is empty: from resumeFrom
    assert f"holds no checkpoint yet; starting from {fallback}" in caplog.text
    assert first.run() == 0
    assert ckpt.load_latest(ckpt.open_storage(RUN_URI))["cur_nimg"] == 3 * BATCH

    second = attempt(rendered, dataset_dir, tmp_path / "a3", 4)
    assert second.cur_nimg == 3 * BATCH  # the run's own checkpoint, not resumeFrom again
    assert second.last_checkpoint == ckpt.checkpoint_name(3 * BATCH)


def test_a_missing_fallback_is_named_as_resume_fallback(dataset_dir: str, tmp_path: Path) -> None:
    missing = "gs://pretrained/none/ckpt-000000004.pt"
    options = tiny(dataset_dir, tmp_path, 1, checkpoint_uri=RUN_URI, resume="latest",
                   resume_fallback=missing)  # fmt: skip
    with pytest.raises(ConfigError, match=f"resume_fallback: checkpoint {missing} does not exist"):
        Trainer(options, reporter=SilentReporter())


def test_a_fallback_only_goes_with_resume_latest() -> None:
    options = TrainingOptions(resume="none", resume_fallback="gs://pretrained/ffhq.pt")
    with pytest.raises(ConfigError, match="resume_fallback: applies only with resume: latest, "
                       "not resume: none"):  # fmt: skip
        options.validate()


def test_the_train_command_takes_resume_fallback_and_refuses_it_without_latest() -> None:
    from click.testing import CliRunner

    from stylegan_trainer.cli.train_commands import train_cmd

    flags = ["--resume", "none", "--resume-fallback", "gs://pretrained/ffhq.pt"]
    result = CliRunner().invoke(train_cmd, flags)
    assert result.exit_code == EXIT_CONFIG
    assert result.output.strip().splitlines() == [
        "error: resume_fallback: applies only with resume: latest, not resume: none; "
        "drop resume_fallback or use resume: latest"
    ]
