"""Storage and the checkpoint protocol: create-only objects, CAS pointer, verified fallback."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from stylegan_common.errors import (
    EXIT_CONFIG,
    ConfigError,
    ObjectNotFound,
    PreconditionFailed,
    StorageError,
    UnsupportedStorageError,
)
from stylegan_common.storage import LocalStorage, open_storage, register_backend
from stylegan_common.storage import base as storage_module
from stylegan_trainer.train import checkpoint as ckpt


def _state(nimg: int, value: float = 1.0) -> dict:
    return {"cur_nimg": nimg, "G": {"w": torch.full([4], value)}, "tick": 1}


# ---------------------------------------------------------------------------------------------
# LocalStorage


def test_write_read_roundtrip_and_create_only(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    store.write_bytes("a/b.bin", b"hello")
    assert store.read_bytes("a/b.bin") == b"hello"
    assert store.exists("a/b.bin")
    with pytest.raises(StorageError, match="already exists"):
        store.write_bytes("a/b.bin", b"other")
    assert store.read_bytes("a/b.bin") == b"hello"
    store.write_bytes("a/b.bin", b"other", create_only=False)
    assert store.read_bytes("a/b.bin") == b"other"


def test_list_delete_and_missing(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    for name in ["x/2", "x/1", "y/1"]:
        store.write_bytes(name, b"")
    store.write_pointer("x/ptr.json", {"a": 1}, expected_generation=0)
    assert store.list("x/") == ["x/1", "x/2", "x/ptr.json"]  # lock file and temp files hidden
    store.delete("x/1")
    store.delete("x/1")  # already gone: fine
    assert not store.exists("x/1")
    with pytest.raises(ObjectNotFound):
        store.read_bytes("x/1")
    assert LocalStorage(tmp_path / "absent").list() == []


@pytest.mark.parametrize("name", ["", "/etc/passwd", "../up", "a/../../b", "dir/"])
def test_names_cannot_escape_the_root(tmp_path: Path, name: str) -> None:
    with pytest.raises(StorageError, match="relative object name"):
        LocalStorage(tmp_path).write_bytes(name, b"x")


def test_pointer_compare_and_swap(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    assert store.read_pointer("latest.json") is None
    assert store.write_pointer("latest.json", {"v": 1}, expected_generation=0) == 1
    assert store.write_pointer("latest.json", {"v": 2}, expected_generation=1) == 2
    with pytest.raises(PreconditionFailed, match="generation 2, not 1"):
        store.write_pointer("latest.json", {"v": 3}, expected_generation=1)
    data, generation = store.read_pointer("latest.json")
    assert (data["v"], generation) == (2, 2)
    assert json.loads((tmp_path / "latest.json").read_text())["generation"] == 2


def test_open_storage_schemes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(open_storage(str(tmp_path)), LocalStorage)
    assert open_storage(f"file://{tmp_path}").root == tmp_path
    with pytest.raises(UnsupportedStorageError, match="scheme 's3'") as s3:
        open_storage("s3://bucket/run")
    assert s3.value.exit_code == EXIT_CONFIG
    monkeypatch.setattr(storage_module, "_BACKENDS", {})
    register_backend("gs", lambda uri: LocalStorage(tmp_path / uri.removeprefix("gs://")))
    assert open_storage("gs://bucket/run").root == tmp_path / "bucket/run"


def test_gs_without_its_backend_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage_module, "_BACKENDS", {})
    # The backend's module cannot be imported (as when google-cloud-storage is absent).
    monkeypatch.setattr(storage_module, "_BUILTIN_BACKENDS", {"gs": "stylegan_absent_backend:X"})
    with pytest.raises(UnsupportedStorageError, match="gs:// storage backend") as gs:
        open_storage("gs://bucket/run")
    assert gs.value.exit_code == EXIT_CONFIG


# ---------------------------------------------------------------------------------------------
# Checkpoint protocol


def test_save_points_latest_at_a_new_object(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    name = ckpt.save_checkpoint(store, _state(48000), kimg=48.0)
    assert name == "checkpoints/ckpt-000048000.pt"
    pointer = json.loads((tmp_path / "latest.json").read_text())
    data = (tmp_path / name).read_bytes()
    assert pointer["checkpoint"]["name"] == name
    assert pointer["checkpoint"]["size"] == len(data)
    loaded = ckpt.load_latest(store)
    assert loaded["format"] == ckpt.CHECKPOINT_FORMAT
    assert torch.equal(loaded["G"]["w"], torch.ones(4))
    # Saving the same nimg again (a resumed run) never overwrites: a new name.
    again = ckpt.save_checkpoint(store, _state(48000, 2.0), kimg=48.0)
    assert again == "checkpoints/ckpt-000048000-r1.pt"
    assert torch.equal(ckpt.load_latest(store)["G"]["w"], torch.full([4], 2.0))


def test_torn_newest_falls_back_with_a_log_line(tmp_path: Path, caplog) -> None:
    store = LocalStorage(tmp_path)
    ckpt.save_checkpoint(store, _state(1000, 1.0), kimg=1.0)
    newest = ckpt.save_checkpoint(store, _state(2000, 2.0), kimg=2.0)
    path = tmp_path / newest
    path.write_bytes(path.read_bytes()[:-100])  # torn write
    with caplog.at_level(logging.WARNING):
        loaded = ckpt.load_latest(store)
    assert torch.equal(loaded["G"]["w"], torch.ones(4))
    assert loaded["_checkpoint_name"] == "checkpoints/ckpt-000001000.pt"
    assert "torn or corrupt" in caplog.text and "falling back" in caplog.text


def test_corrupt_bytes_of_the_same_size_are_detected(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    ckpt.save_checkpoint(store, _state(1000, 1.0), kimg=1.0)
    newest = ckpt.save_checkpoint(store, _state(2000, 2.0), kimg=2.0)
    data = bytearray((tmp_path / newest).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / newest).write_bytes(bytes(data))
    assert ckpt.load_latest(store)["cur_nimg"] == 1000


def test_every_checkpoint_torn_is_a_storage_error(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    name = ckpt.save_checkpoint(store, _state(1000), kimg=1.0)
    (tmp_path / name).write_bytes(b"garbage")
    with pytest.raises(StorageError, match="torn or missing"):
        ckpt.load_latest(store)


def test_retention_keeps_the_newest_and_what_the_pointer_names(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    names = [ckpt.save_checkpoint(store, _state(n * 1000), kimg=n, keep=2) for n in range(1, 6)]
    assert ckpt.list_checkpoints(store) == names[-2:]
    pointer = json.loads((tmp_path / "latest.json").read_text())
    assert [e["name"] for e in pointer["history"]] == [names[-2]]
    # A pointer-named object survives pruning even when it is not among the newest.
    assert ckpt.prune(store, keep=1, protected={names[-2]}) == []


def test_the_pointer_never_moves_back_to_a_checkpoint_of_fewer_images(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = LocalStorage(tmp_path)
    newer = ckpt.save_checkpoint(store, _state(8000, 8.0), kimg=8.0)
    _, generation = store.read_pointer(ckpt.POINTER_NAME)
    # An attempt that resumed from older work saves after the newer checkpoint was pointed at.
    with caplog.at_level(logging.WARNING, logger="stylegan_trainer.train.checkpoint"):
        older = ckpt.save_checkpoint(store, _state(4000, 4.0), kimg=4.0)
    assert older == "checkpoints/ckpt-000004000.pt" and store.exists(older)  # kept, unpointed
    pointer, unchanged = store.read_pointer(ckpt.POINTER_NAME)
    assert unchanged == generation and pointer["checkpoint"]["name"] == newer
    assert (
        f"latest.json already names {newer} (nimg 8000), newer than {older} (nimg 4000) just "
        "saved: keeping the pointer at the newer checkpoint"
    ) in caplog.text
    assert torch.equal(ckpt.load_latest(store)["G"]["w"], torch.full([4], 8.0))
    # Work past the pointer moves it again, the older save never entering the history.
    newest = ckpt.save_checkpoint(store, _state(9000, 9.0), kimg=9.0)
    pointer, _ = store.read_pointer(ckpt.POINTER_NAME)
    assert pointer["checkpoint"]["name"] == newest
    assert [e["name"] for e in pointer["history"]] == [newer]


def test_the_images_of_a_pointer_entry_without_nimg_come_from_its_name(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    newer = ckpt.save_checkpoint(store, _state(8000), kimg=8.0)
    pointer, generation = store.read_pointer(ckpt.POINTER_NAME)
    del pointer["checkpoint"]["nimg"]  # as written before entries carried nimg
    store.write_pointer(ckpt.POINTER_NAME, pointer, expected_generation=generation)
    assert ckpt.entry_nimg(pointer["checkpoint"]) == 8000
    assert ckpt.entry_nimg({"name": "elsewhere.pt", "kimg": 2.5}) == 2500
    ckpt.save_checkpoint(store, _state(4000), kimg=4.0)
    assert store.read_pointer(ckpt.POINTER_NAME)[0]["checkpoint"]["name"] == newer


def test_a_writer_that_read_the_pointer_before_another_moved_it_is_refused(
    tmp_path: Path,
) -> None:
    """The generation check still guards races: the newer-or-not decision is on what was read."""

    class Racing(LocalStorage):
        def read_pointer(self, name: str):  # type: ignore[no-untyped-def]
            seen = super().read_pointer(name)
            if not getattr(self, "raced", False):  # another writer moves it just after
                self.raced = True
                ckpt.save_checkpoint(LocalStorage(self.root), _state(6000), kimg=6.0)
            return seen

    ckpt.save_checkpoint(LocalStorage(tmp_path), _state(4000), kimg=4.0)
    with pytest.raises(PreconditionFailed, match="latest.json"):
        ckpt.save_checkpoint(Racing(tmp_path), _state(5000), kimg=5.0)
    assert ckpt.load_latest(LocalStorage(tmp_path))["cur_nimg"] == 6000


def test_no_pointer_means_no_checkpoint(tmp_path: Path) -> None:
    assert ckpt.load_latest(LocalStorage(tmp_path)) is None


def test_load_checkpoint_by_file_or_folder(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    name = ckpt.save_checkpoint(store, _state(3000), kimg=3.0)
    assert ckpt.load_checkpoint(str(tmp_path / name))["cur_nimg"] == 3000
    assert ckpt.load_checkpoint(f"file://{tmp_path}")["cur_nimg"] == 3000
    with pytest.raises(ConfigError, match="holds no latest.json"):
        ckpt.load_checkpoint(str(tmp_path / "empty"))


def test_foreign_format_is_refused(tmp_path: Path) -> None:
    torch.save({"format": "something-else"}, tmp_path / "x.pt")
    with pytest.raises(ConfigError, match="format 'something-else'"):
        ckpt.load_checkpoint(str(tmp_path / "x.pt"))


def test_rng_state_roundtrip_survives_weights_only_load(tmp_path: Path) -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    state = ckpt.capture_rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    store = LocalStorage(tmp_path)
    ckpt.save_checkpoint(store, {"cur_nimg": 0, "rng": state}, kimg=0.0)
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    ckpt.restore_rng_state(ckpt.load_latest(store)["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
