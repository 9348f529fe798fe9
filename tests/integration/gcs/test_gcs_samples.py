"""Sample grids of a gs:// run, against the real fake-gcs-server: a short training run with
``checkpoint_uri=gs://...`` leaves every snapshot's grid (and reals.png) under
``<uri>/samples/`` as PNGs, kept when the checkpoints are pruned; the real ``stylegan samples``
CLI reads spec.checkpoints.uri of a StyleGANRun on the real API server and downloads the
newest grid, lists them all, and keeps its exit codes (75: no grid yet, 64: no such bucket).
The same run leaves rank 0's log and stats under ``<uri>/logs/attempt-<N>/``, and ``stylegan
logs`` reads them back once the pods are gone."""

from __future__ import annotations

import io
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import pytest
import torch
from google.cloud import storage

from stylegan_common.errors import EXIT_CONFIG, EXIT_OK, EXIT_RETRYABLE
from stylegan_trainer.report.progress import Reporter
from stylegan_trainer.train.loop import Trainer
from stylegan_trainer.train.options import TrainingOptions
from tests.integration.chart.conftest import cpu_run
from tests.integration.gcs.conftest import new_bucket
from tests.support import STYLEGAN, Kubectl, install_crd

# A network small enough that three steps take about a second (the one of test_loop.py).
TINY = {
    "z_dim": 16, "w_dim": 16, "channel_base": 128, "channel_max": 16, "mapping_layers": 1,
    "g_reg_interval": 2, "d_reg_interval": 2,
}  # fmt: skip
BATCH = 4
STEPS = 3
FAKES = ["fakes-000000004.png", "fakes-000000008.png", "fakes-000000012.png"]
ATTEMPT = 2
GRID_SIZE = (16, 16)  # 4 grid seeds (or the first 4 real images): 2 x 2 cells of 8x8


@dataclass(frozen=True)
class TrainedRun:
    bucket: str
    prefix: str
    outdir: Path

    @property
    def uri(self) -> str:
        return f"gs://{self.bucket}/{self.prefix}"


def emulator_env(url: str) -> dict[str, str]:
    env = dict(os.environ, STORAGE_EMULATOR_HOST=url, GOOGLE_CLOUD_PROJECT="test")
    env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)  # never a developer's real credentials
    return env


@pytest.fixture(scope="module")
def trained(fake_gcs: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrainedRun]:
    """One short run (cpu preset, 8x8, a snapshot every step, one checkpoint kept) whose
    checkpoints go to a fresh bucket of the emulator, as a pod's do."""
    root = tmp_path_factory.mktemp("gs-run")
    rng = np.random.default_rng(0)
    (root / "data").mkdir()
    for i in range(12):
        image = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
        PIL.Image.fromarray(image).save(root / "data" / f"{i}.png")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops on two busy cores mostly wait on each other
    with pytest.MonkeyPatch.context() as env:
        for key, value in emulator_env(fake_gcs.url).items():
            env.setenv(key, value)
        env.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
        env.setenv("STYLEGAN_ATTEMPT", str(ATTEMPT))  # as the operator sets it in a pod
        run = TrainedRun(new_bucket(storage.Client()), "runs/faces", root / "scratch")
        options = TrainingOptions(
            dataset=str(root / "data"), preset="cpu", resolution=8, batch=BATCH,
            kimg=STEPS * BATCH / 1000, outdir=str(run.outdir), checkpoint_uri=run.uri,
            keep_checkpoints=1, resume="none", progress_bar="off", device="cpu",
            tick_kimg=0.004, snapshot_kimg=0.004, grid_seeds=4, overrides=dict(TINY),
        )  # fmt: skip
        try:
            reporter = Reporter(run.outdir, STEPS * BATCH / 1000, progress_bar="off",
                                out=io.StringIO())
            assert Trainer(options, reporter=reporter).run() == EXIT_OK
        finally:
            torch.set_num_threads(threads)
        yield run


def blobs(client: storage.Client, run: TrainedRun, folder: str) -> dict[str, storage.Blob]:
    prefix = f"{run.prefix}/{folder}/"
    return {b.name[len(prefix) :]: b for b in client.list_blobs(run.bucket, prefix=prefix)}


def test_a_gs_run_leaves_every_grid_beside_its_checkpoints(
    trained: TrainedRun, gcs_client: storage.Client
) -> None:
    samples = blobs(gcs_client, trained, "samples")
    assert sorted(samples) == [*FAKES, "reals.png"]
    for name, blob in samples.items():
        data = blob.download_as_bytes()
        assert data == (trained.outdir / "samples" / name).read_bytes(), name
        with PIL.Image.open(io.BytesIO(data)) as image:
            assert (image.format, image.size, image.mode) == ("PNG", GRID_SIZE, "RGB"), name
        assert blob.content_type == "image/png", name
    # keep_checkpoints=1 pruned two checkpoints; the grids of all three snapshots stay.
    assert sorted(blobs(gcs_client, trained, "checkpoints")) == ["ckpt-000000012.pt"]


@pytest.mark.cluster
def test_stylegan_samples_fetches_and_lists_the_grids_of_a_gs_run(
    trained: TrainedRun, fake_gcs: Any, kubectl: Kubectl, namespace: str, cluster: Any,
    gcs_client: storage.Client, tmp_path: Path,
) -> None:  # fmt: skip
    install_crd(kubectl)
    for name, uri in (("faces", trained.uri), ("fresh", f"gs://{trained.bucket}/runs/fresh"),
                      ("lost", "gs://no-such-grids-bucket/run")):  # fmt: skip
        run = cpu_run(name, namespace)
        run["spec"]["checkpoints"] = {"uri": uri, "keep": 1}
        kubectl.apply(run)

    def stylegan(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(STYLEGAN), "samples", *args, "-n", namespace, "--kubeconfig",
             str(cluster.kubeconfig)],
            capture_output=True, text=True, timeout=120, cwd=tmp_path,
            env=emulator_env(fake_gcs.url),
        )  # fmt: skip

    newest = blobs(gcs_client, trained, "samples")[FAKES[-1]].download_as_bytes()
    fetched = stylegan("faces", "-f", "grid.png")
    assert fetched.returncode == 0, fetched.stderr
    assert fetched.stdout == "wrote grid.png\n"
    assert (tmp_path / "grid.png").read_bytes() == newest
    default = stylegan("faces")  # the default name carries the grid's kimg
    assert default.returncode == 0, default.stderr
    assert default.stdout == "wrote faces-0.012kimg.png\n"
    assert (tmp_path / "faces-0.012kimg.png").read_bytes() == newest

    listed = stylegan("faces", "--list")
    assert listed.returncode == 0, listed.stderr
    assert [line.split() for line in listed.stdout.splitlines()] == [
        ["KIMG", "GRID"],
        *[[f"{(i + 1) * BATCH / 1000:g}", f"{trained.uri}/samples/{grid}"]
          for i, grid in enumerate(FAKES)],
    ]  # fmt: skip

    empty = stylegan("fresh")  # nothing trained there yet: a retry may find a grid
    assert empty.returncode == EXIT_RETRYABLE, empty.stderr
    assert f"gs://{trained.bucket}/runs/fresh: no sample grid yet" in empty.stderr
    lost = stylegan("lost", "--list")  # a bucket that does not exist: a bad request
    assert lost.returncode == EXIT_CONFIG, lost.stderr
    assert "bucket no-such-grids-bucket of gs://no-such-grids-bucket/run does not exist" in (
        lost.stderr
    )


def test_a_gs_run_leaves_its_log_and_stats_beside_its_checkpoints(
    trained: TrainedRun, gcs_client: storage.Client
) -> None:
    logs = blobs(gcs_client, trained, f"logs/attempt-{ATTEMPT}")
    assert sorted(logs) == ["log.txt", "stats.jsonl"]
    for name, blob in logs.items():  # the final copy, made when the trainer exited
        assert blob.download_as_bytes() == (trained.outdir / name).read_bytes(), name
    log = logs["log.txt"].download_as_text()
    assert " training cpu at 8px" in log.splitlines()[0]
    assert log.splitlines()[-1].endswith(f"done at kimg {STEPS * BATCH / 1000:.1f}")
    assert len(logs["stats.jsonl"].download_as_text().splitlines()) == STEPS


def test_stylegan_logs_reads_an_attempts_log_after_its_pods_are_gone(
    trained: TrainedRun, fake_gcs: Any, kubectl: Kubectl, namespace: str, cluster: Any,
    tmp_path: Path,
) -> None:  # fmt: skip
    install_crd(kubectl)
    run = cpu_run("logged", namespace)
    run["spec"]["checkpoints"] = {"uri": trained.uri, "keep": 1}
    kubectl.apply(run)

    def stylegan(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(STYLEGAN), "logs", "logged", *args, "-n", namespace, "--kubeconfig",
             str(cluster.kubeconfig)],
            capture_output=True, text=True, timeout=120, cwd=tmp_path,
            env=emulator_env(fake_gcs.url),
        )  # fmt: skip

    kept = (trained.outdir / "log.txt").read_text()
    asked = stylegan("--attempt", str(ATTEMPT))
    assert (asked.returncode, asked.stdout) == (EXIT_OK, kept), asked.stderr
    last = stylegan("--attempt", str(ATTEMPT), "--tail", "1")
    assert last.stdout == kept.splitlines(keepends=True)[-1]
    missing = stylegan("--attempt", "5")
    assert missing.returncode == EXIT_CONFIG, missing.stderr
    assert f"no log of attempt 5 under {trained.uri}/logs/ (attempts with a log: 2)" in (
        missing.stderr)
    # No Job and no attempt yet: nothing to read anywhere, a retry may find one.
    assert stylegan().returncode == EXIT_RETRYABLE
    # The run says it is on attempt 2 but its pods are gone: the archived log answers.
    kubectl("patch", "styleganrun", "logged", "-n", namespace, "--subresource=status",
            "--type=merge", "-p", f'{{"status": {{"attempt": {ATTEMPT}}}}}')
    fallback = stylegan()
    assert (fallback.returncode, fallback.stdout) == (EXIT_OK, kept), fallback.stderr
    assert f"the pod of attempt {ATTEMPT} is gone" in fallback.stderr
