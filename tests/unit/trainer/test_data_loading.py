"""BatchLoader: worker processes decode, the sampler decides; datasets pickle; clean shutdown."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.support import process_gone

from stylegan_common.errors import ConfigError
from stylegan_trainer.data import dataset as data_module
from stylegan_trainer.data.convert import convert_folder
from stylegan_trainer.data.dataset import ImageDataset, open_dataset
from stylegan_trainer.data.loading import PREFETCH_PER_WORKER, BatchLoader, InfiniteSampler

IMAGES = 10


@pytest.fixture(scope="module")
def labelled_zip(
    noise_dataset: Callable[..., str], tmp_path_factory: pytest.TempPathFactory
) -> str:
    """A zip of 10 noise PNGs with class labels, as `stylegan dataset` writes it."""
    src = Path(noise_dataset(IMAGES, seed=7))
    labels = [[f"{i}.png", i % 3] for i in range(IMAGES)]
    (src / "dataset.json").write_text(json.dumps({"labels": labels}))
    dest = tmp_path_factory.mktemp("zip") / "noise.zip"
    convert_folder(src, dest)
    return str(dest)


def _batches(dataset: ImageDataset, workers: int, steps: int) -> list[tuple[torch.Tensor, ...]]:
    # Rank 1 of 2 with a global batch of 8 over 20 virtual images (x-flip): 6 steps walk 48
    # indices, across two epoch boundaries, one of them inside a global batch.
    sampler = InfiniteSampler(len(dataset), seed=3, global_batch=8, rank=1, world_size=2)
    with BatchLoader(dataset, sampler, workers) as loader:
        batches = [loader.next() for _ in range(steps)]
        assert sampler.position == steps * 8  # consumed batches only, whatever ran ahead
        pids = loader.worker_pids
    assert len(pids) == workers and all(process_gone(pid) for pid in pids)
    return batches


def test_batches_do_not_depend_on_the_worker_count(labelled_zip: str) -> None:
    dataset = open_dataset(labelled_zip, 8, xflip=True)
    assert len(dataset) == 2 * IMAGES and dataset.label_dim == 3
    in_process = _batches(dataset, 0, 6)
    with_workers = _batches(dataset, 2, 6)
    reference = InfiniteSampler(len(dataset), seed=3, global_batch=8, rank=1, world_size=2)
    for (images0, labels0), (images2, labels2) in zip(in_process, with_workers, strict=True):
        expected_images, expected_labels = dataset.batch(reference.next_indices())
        assert images0.shape == (4, 3, 8, 8) and images0.dtype == torch.uint8
        assert torch.equal(images0, expected_images) and torch.equal(images2, expected_images)
        assert torch.equal(labels0, expected_labels) and torch.equal(labels2, expected_labels)


def test_workers_run_ahead_within_the_bound_and_leave_on_close(labelled_zip: str) -> None:
    dataset = open_dataset(labelled_zip, 8)
    sampler = InfiniteSampler(len(dataset), seed=0, global_batch=4)
    loader = BatchLoader(dataset, sampler, workers=2)
    assert loader.worker_pids == []  # nothing starts before the first batch
    loader.next()
    pids = loader.worker_pids
    assert len(pids) == 2 and all(Path(f"/proc/{pid}").exists() for pid in pids)
    assert 1 <= loader.batches_ahead <= 2 * PREFETCH_PER_WORKER
    assert sampler.position == 4
    sampler.load_state_dict({"position": 0})  # moved behind the running workers' back
    with pytest.raises(RuntimeError, match="out of step with the sampler.*close"):
        loader.next()
    loader.close()
    assert not loader.running and all(process_gone(pid) for pid in pids)
    images, _ = loader.next()  # restarts from the sampler's position
    assert torch.equal(images, dataset.batch(InfiniteSampler(len(dataset), 0, 4).next_indices())[0])
    loader.close()


def test_a_loader_left_open_does_not_hold_up_the_interpreter_exit(labelled_zip: str) -> None:
    # multiprocessing's exit handler would SIGTERM the workers (which ignore it) and wait for
    # them forever; the loader's own exit handler closes them first.
    script = (
        "from stylegan_trainer.data.dataset import open_dataset\n"
        "from stylegan_trainer.data.loading import BatchLoader, InfiniteSampler\n"
        f"dataset = open_dataset({labelled_zip!r}, 8)\n"
        "loader = BatchLoader(dataset, InfiniteSampler(len(dataset), 0, 4), workers=2)\n"
        "loader.next()\n"
        "print(*loader.worker_pids)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    pids = [int(p) for p in done.stdout.split()]
    assert len(pids) == 2 and all(process_gone(pid) for pid in pids)


def test_every_dataset_kind_pickles_into_a_worker(
    labelled_zip: str, noise_dataset: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(data_module, "fetch_remote", lambda uri, cache_dir: Path(labelled_zip))
    datasets = [
        open_dataset(noise_dataset(3), 8),
        open_dataset(labelled_zip, 8, xflip=True),
        open_dataset("gs://bucket/noise.zip", 8),  # the download cache is a zip on disk
        data_module.ArrayDataset(
            "mem", np.arange(2 * 3 * 8 * 8, dtype=np.uint8).reshape(2, 3, 8, 8)
        ),
    ]
    for dataset in datasets:
        dataset.image(0)  # a zip opens its handle here: the copy must not carry it
        clone = pickle.loads(pickle.dumps(dataset))
        assert type(clone) is type(dataset) and len(clone) == len(dataset)
        for index in (0, len(dataset) - 1):
            assert np.array_equal(clone.image(index), dataset.image(index))
        assert np.array_equal(clone.all_labels(), dataset.all_labels())


def test_negative_worker_count_is_a_config_error(labelled_zip: str) -> None:
    dataset = open_dataset(labelled_zip, 8)
    with pytest.raises(ConfigError, match="data_workers: -1 must be >= 0"):
        BatchLoader(dataset, InfiniteSampler(len(dataset), 0, 4), workers=-1)
