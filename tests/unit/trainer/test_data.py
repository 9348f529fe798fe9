"""Datasets (builtin:lfw, folders, zips), the folder-to-zip tool and the infinite sampler."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
from click.testing import CliRunner

from stylegan_common.errors import EXIT_CONFIG, ConfigError, DatasetError
from stylegan_trainer.data import dataset as data_module
from stylegan_trainer.data.convert import convert_folder
from stylegan_trainer.data.dataset import BUILTIN_LFW, open_dataset
from stylegan_trainer.data.loading import InfiniteSampler


def _png(path: Path, size: tuple[int, int], value: int = 0, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    PIL.Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode).save(path)


# ---------------------------------------------------------------------------------------------
# builtin:lfw


def test_builtin_lfw_is_100_grey_faces_at_the_requested_resolution() -> None:
    data = open_dataset(BUILTIN_LFW, 32)
    assert len(data) == 100 and data.resolution == 32 and data.label_dim == 0
    images, labels = data.batch(range(100))
    assert images.shape == (100, 3, 32, 32) and labels.shape == (100, 0)
    assert str(images.dtype) == "torch.uint8"
    assert (images[:, 0] == images[:, 1]).all() and (images[:, 1] == images[:, 2]).all()
    assert images.float().std() > 20  # real pictures, not a constant


def test_xflip_doubles_the_dataset_with_mirrored_copies() -> None:
    data = open_dataset(BUILTIN_LFW, 16, xflip=True)
    assert len(data) == 200
    assert np.array_equal(data.image(107), data.image(7)[:, :, ::-1])
    with pytest.raises(IndexError):
        data.image(200)


@pytest.mark.parametrize("resolution", [24, 0, 3])
def test_resolution_must_be_a_power_of_two(resolution: int) -> None:
    with pytest.raises(ConfigError, match="resolution: .* power of two"):
        open_dataset(BUILTIN_LFW, resolution)


# ---------------------------------------------------------------------------------------------
# Folders and zips


def test_folder_with_labels_grey_and_resize(tmp_path: Path) -> None:
    _png(tmp_path / "a.png", (8, 8), 1)
    _png(tmp_path / "sub" / "b.png", (8, 8), 2, mode="L")
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": [["a.png", 2], ["sub/b.png", 0]]}))
    data = open_dataset(str(tmp_path), 16)
    images, labels = data.batch([0, 1])
    assert images.shape == (2, 3, 16, 16)
    assert labels.tolist() == [[0, 0, 1], [1, 0, 0]]  # one-hot, classes 0..2
    native = open_dataset(str(tmp_path))
    assert native.resolution == 8


def test_missing_label_names_the_image(tmp_path: Path) -> None:
    _png(tmp_path / "a.png", (8, 8))
    _png(tmp_path / "b.png", (8, 8))
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": [["a.png", 0]]}))
    with pytest.raises(DatasetError, match="no label for b.png"):
        open_dataset(str(tmp_path), 8)


def test_non_square_images_are_named(tmp_path: Path) -> None:
    _png(tmp_path / "ok.png", (8, 8))
    _png(tmp_path / "wide.png", (16, 8))
    with pytest.raises(DatasetError, match=r"wide.png \(16x8\)"):
        open_dataset(str(tmp_path), 8)


def test_missing_empty_and_remote_datasets_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="nowhere does not exist") as missing:
        open_dataset(str(tmp_path / "nowhere"), 8)
    assert missing.value.exit_code == EXIT_CONFIG
    with pytest.raises(DatasetError, match=f"{tmp_path} holds no .png"):
        open_dataset(str(tmp_path), 8)
    with pytest.raises(DatasetError, match="not a built-in dataset"):
        open_dataset("builtin:ffhq", 8)


def test_remote_datasets_go_through_the_fetch_hook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _png(tmp_path / "src" / "a.png", (8, 8))
    convert_folder(tmp_path / "src", tmp_path / "cache" / "faces.zip")
    calls = []

    def fetch(uri: str, cache_dir: object) -> Path:
        calls.append((uri, cache_dir))
        return tmp_path / "cache" / "faces.zip"

    monkeypatch.setattr(data_module, "fetch_remote", fetch)
    data = open_dataset("gs://bucket/faces.zip", 8, cache_dir=str(tmp_path / "cache"))
    assert len(data) == 1 and calls == [("gs://bucket/faces.zip", str(tmp_path / "cache"))]


def test_convert_folder_refuses_by_name_and_writes_a_readable_zip(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for i in range(3):
        _png(src / f"face{i}.png", (8, 8), i)
    _png(src / "big.png", (16, 16))
    _png(src / "wide.jpg", (16, 8))
    (src / "broken.png").write_bytes(b"not a png")
    (src / "notes.txt").write_text("hello")
    dest = tmp_path / "out.zip"
    report = convert_folder(src, dest)
    assert report.resolution == 8
    assert report.written == ["face0.png", "face1.png", "face2.png"]
    assert set(report.refused) == {"big.png", "wide.jpg", "broken.png", "notes.txt"}
    assert "not square (16x8)" in report.refused["wide.jpg"]
    assert "unreadable" in report.refused["broken.png"]
    assert "differs" in report.refused["big.png"]
    with zipfile.ZipFile(dest) as archive:
        assert json.loads(archive.read("dataset.json"))["resolution"] == 8
    data = open_dataset(str(dest), 8)
    assert len(data) == 3
    with PIL.Image.open(src / "face1.png") as original:
        assert np.array_equal(data.image(1), np.asarray(original).transpose(2, 0, 1))


def test_converting_the_same_folder_twice_gives_the_same_bytes(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for i in range(3):
        _png(src / f"face{i}.png", (8, 8), i)
    first, second = tmp_path / "first.zip", tmp_path / "second.zip"
    convert_folder(src, first)
    os.utime(src / "face1.png", (0, 0))  # the sources' own times do not leak in either
    convert_folder(src, second)
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as archive:
        assert {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_convert_with_resolution_resizes_every_square_image(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _png(src / "a.png", (8, 8))
    _png(src / "b.jpg", (20, 20))
    report = convert_folder(src, tmp_path / "out.zip", resolution=16)
    assert report.written == ["a.png", "b.png"] and not report.refused
    assert open_dataset(str(tmp_path / "out.zip")).resolution == 16


def test_dataset_command_exit_64_when_nothing_usable(tmp_path: Path) -> None:
    from stylegan_trainer.cli.train_commands import dataset_cmd

    src = tmp_path / "src"
    _png(src / "wide.png", (16, 8))
    result = CliRunner().invoke(dataset_cmd, [str(src), str(tmp_path / "out.zip")])
    assert result.exit_code == EXIT_CONFIG
    assert "wide.png" in result.output and "not square" in result.output
    assert not (tmp_path / "out.zip").exists()
    _png(src / "ok.png", (8, 8))
    result = CliRunner().invoke(dataset_cmd, [str(src), str(tmp_path / "out.zip")])
    assert result.exit_code == 0, result.output
    assert "wrote 1 images" in result.output and "refused wide.png" in result.output


# ---------------------------------------------------------------------------------------------
# Sampler


def _take(sampler: InfiniteSampler, steps: int) -> list[int]:
    return [int(i) for _ in range(steps) for i in sampler.next_indices()]


def test_sampler_is_seeded_and_covers_each_epoch() -> None:
    a = _take(InfiniteSampler(10, seed=1, global_batch=5), 4)
    assert a == _take(InfiniteSampler(10, seed=1, global_batch=5), 4)
    assert a != _take(InfiniteSampler(10, seed=2, global_batch=5), 4)
    assert sorted(a[:10]) == list(range(10)) and sorted(a[10:]) == list(range(10))
    assert a[:10] != a[10:]  # a fresh permutation per epoch


def test_sampler_resumes_from_its_position() -> None:
    straight = InfiniteSampler(7, seed=3, global_batch=4)
    expected = _take(straight, 6)
    first = InfiniteSampler(7, seed=3, global_batch=4)
    head = _take(first, 3)
    resumed = InfiniteSampler(7, seed=0, global_batch=4)
    resumed.load_state_dict(first.state_dict())
    assert head + _take(resumed, 3) == expected


def test_rank_slices_make_up_the_single_rank_batch() -> None:
    single = InfiniteSampler(9, seed=5, global_batch=8)
    ranks = [InfiniteSampler(9, seed=5, global_batch=8, rank=r, world_size=2) for r in range(2)]
    for _ in range(3):
        whole = single.next_indices().tolist()
        assert ranks[0].next_indices().tolist() + ranks[1].next_indices().tolist() == whole
