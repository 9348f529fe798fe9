"""Fixtures every trainer unit test shares: one torch thread, a fixed seed, tiny datasets."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch


@pytest.fixture(autouse=True)
def _deterministic_single_thread() -> Iterator[None]:
    # One thread: tiny ops spread over two busy cores mostly wait on each other.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


def write_noise_images(root: Path, count: int, seed: int = 0, resolution: int = 8) -> Path:
    """``count`` random RGB PNGs (8x8 unless told) in ``root``: a dataset that takes no time
    to load."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    shape = (resolution, resolution, 3)
    for i in range(count):
        PIL.Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(root / f"{i}.png")
    return root


@pytest.fixture(scope="session")
def noise_dataset(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., str]:
    """``noise_dataset(count, seed=0, resolution=8)``: the folder of a fresh noise dataset."""

    def make(count: int, seed: int = 0, resolution: int = 8) -> str:
        return str(write_noise_images(tmp_path_factory.mktemp("noise"), count, seed, resolution))

    return make
