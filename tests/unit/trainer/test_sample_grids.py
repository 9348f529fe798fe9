"""Sample grids beside the checkpoints: copied at every snapshot when the checkpoint storage is
not the outdir, kept whatever ``keep_checkpoints`` prunes, and never able to stop training or
cost a checkpoint when the copy fails. ``Storage.put_file`` is create-only, and a second upload
of the same bytes is success. (The gs:// version of the same runs against the real
fake-gcs-server in ``tests/integration/gcs/test_gcs_samples.py``.)"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stylegan_common.errors import EXIT_OK, StorageError
from stylegan_common.storage import LocalStorage
from stylegan_trainer.report.progress import SilentReporter
from stylegan_trainer.train import checkpoint as ckpt
from stylegan_trainer.train.loop import Trainer
from stylegan_trainer.train.options import TrainingOptions

# The network of test_loop.py: small enough that a few steps take about a second.
TINY = {
    "z_dim": 16, "w_dim": 16, "channel_base": 128, "channel_max": 16, "mapping_layers": 1,
    "g_reg_interval": 2, "d_reg_interval": 2,
}  # fmt: skip
BATCH = 4
GRIDS = ["fakes-000000004.png", "fakes-000000008.png", "fakes-000000012.png", "reals.png"]


@pytest.fixture(scope="module")
def dataset_dir(noise_dataset: Callable[..., str]) -> str:
    return noise_dataset(12)


def options(
    dataset: str, outdir: Path, checkpoints: Path | None, steps: int = 3, **changes: Any
) -> TrainingOptions:
    """A snapshot every step (4 images), one checkpoint kept."""
    values: dict[str, Any] = dict(
        dataset=dataset, preset="cpu", resolution=8, batch=BATCH, kimg=steps * BATCH / 1000,
        outdir=str(outdir), resume="none", progress_bar="off", device="cpu", tick_kimg=0.004,
        snapshot_kimg=0.004, grid_seeds=4, keep_checkpoints=1, overrides=dict(TINY),
        checkpoint_uri=None if checkpoints is None else str(checkpoints),
    )  # fmt: skip
    values.update(changes)
    return TrainingOptions(**values)


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "stylegan_trainer.train.snapshots" and r.levelno == logging.WARNING
    ]


def test_grids_are_copied_beside_checkpoints_and_never_pruned(
    dataset_dir: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outdir, store = tmp_path / "scratch", tmp_path / "checkpoints"
    with caplog.at_level(logging.WARNING):
        assert (
            Trainer(options(dataset_dir, outdir, store), reporter=SilentReporter()).run() == EXIT_OK
        )
    assert warnings(caplog) == []
    assert names(outdir / "samples") == GRIDS
    assert names(store / "samples") == GRIDS  # three snapshots' grids; one checkpoint kept
    assert ckpt.list_checkpoints(LocalStorage(store)) == ["checkpoints/ckpt-000000012.pt"]
    for grid in GRIDS:
        assert (store / "samples" / grid).read_bytes() == (outdir / "samples" / grid).read_bytes()


def test_a_failing_upload_logs_a_warning_and_training_goes_on(
    dataset_dir: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outdir, store = tmp_path / "scratch", tmp_path / "checkpoints"
    store.mkdir()
    # A file where the samples folder should be: every grid upload fails for real (the
    # storage cannot make the folder), while checkpoints/ and latest.json are unaffected.
    (store / "samples").write_text("not a folder")
    trainer = Trainer(options(dataset_dir, outdir, store), reporter=SilentReporter())
    with caplog.at_level(logging.WARNING):
        assert trainer.run() == EXIT_OK
    assert trainer.cur_nimg == 3 * BATCH
    pointer = json.loads((store / "latest.json").read_text())
    assert pointer["checkpoint"]["name"] == "checkpoints/ckpt-000000012.pt"
    assert names(outdir / "samples") == GRIDS  # the local grids are all there
    messages = warnings(caplog)
    assert len(messages) == 4, messages  # reals.png and the three fakes
    assert all("training goes on" in m and "StorageError" in m for m in messages)
    assert (
        f"fakes-000000012.png was not copied to {store}/samples/fakes-000000012.png"
        in (messages[-1])
    )


def test_no_copy_when_the_checkpoints_are_the_outdir(
    dataset_dir: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A claim serves as both (the operator renders outdir == checkpoint_uri): the grids are
    # already beside the checkpoints, and copying them onto themselves would collide.
    with caplog.at_level(logging.WARNING):
        assert (
            Trainer(options(dataset_dir, tmp_path, tmp_path), reporter=SilentReporter()).run() == 0
        )
    assert warnings(caplog) == []
    assert names(tmp_path / "samples") == GRIDS


def test_a_new_pod_adds_its_grids_and_leaves_the_earlier_ones(
    dataset_dir: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = tmp_path / "checkpoints"
    first = Trainer(options(dataset_dir, tmp_path / "pod1", store), reporter=SilentReporter())
    assert first.run() == EXIT_OK
    before = {g: (store / "samples" / g).stat().st_mtime_ns for g in GRIDS}
    # A restarted attempt: a fresh scratch folder, the same storage, one step further. It draws
    # reals.png again but finds it in the storage already, and adds only its own grid.
    again = Trainer(
        options(dataset_dir, tmp_path / "pod2", store, steps=4, resume="latest"),
        reporter=SilentReporter(),
    )
    assert again.cur_nimg == 3 * BATCH
    with caplog.at_level(logging.WARNING):
        assert again.run() == EXIT_OK
    assert warnings(caplog) == []
    assert names(tmp_path / "pod2" / "samples") == ["fakes-000000016.png", "reals.png"]
    assert names(store / "samples") == sorted([*GRIDS, "fakes-000000016.png"])
    assert {g: (store / "samples" / g).stat().st_mtime_ns for g in GRIDS} == before


def test_put_file_is_create_only_and_idempotent(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "store")
    grid = tmp_path / "grid.png"
    grid.write_bytes(b"\x89PNG one")
    store.put_file("samples/fakes-000000004.png", grid)
    store.put_file("samples/fakes-000000004.png", grid)  # the same bytes again: success
    assert store.read_bytes("samples/fakes-000000004.png") == b"\x89PNG one"
    grid.write_bytes(b"\x89PNG two")
    with pytest.raises(StorageError, match="already exists"):
        store.put_file("samples/fakes-000000004.png", grid)
    assert store.read_bytes("samples/fakes-000000004.png") == b"\x89PNG one"
    with pytest.raises(StorageError, match=f"cannot read {tmp_path / 'gone.png'} to upload it"):
        store.put_file("samples/gone.png", tmp_path / "gone.png")
    assert not store.exists("samples/gone.png")
