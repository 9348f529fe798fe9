"""The checkpoint protocol (checkpoint.py) on gs:// against the real fake-gcs-server: save, list,
load and retention; two writers racing on latest.json; a late save of fewer images that leaves
latest.json where it is; a writer SIGKILLed in the middle of a large upload; an object corrupted
behind the trainer's back; a save that fails on the network; a bucket that does not exist."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
from typing import Any

import pytest
import torch
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from stylegan_common.errors import EXIT_CONFIG, EXIT_RETRYABLE, PreconditionFailed, StorageError
from stylegan_common.storage.gcs import CHUNK_QUANTUM, GCSStorage, StorageConfigError
from stylegan_trainer.train.checkpoint import (
    POINTER_NAME,
    list_checkpoints,
    load_checkpoint,
    load_latest,
    save_checkpoint,
)
from tests.integration.gcs.conftest import FlakyGCS

MIB = 1024 * 1024


def small_state(cur_nimg: int) -> dict[str, Any]:
    return {"cur_nimg": cur_nimg, "G": {"w": torch.full([4], float(cur_nimg))}, "tick": 1}


def direct_storage(flaky: FlakyGCS, **kwargs: Any) -> GCSStorage:
    """Storage on the flaky emulator that bypasses the relay (small objects only: resumable
    uploads are told to go through the relay)."""
    client = storage.Client(project="test", credentials=AnonymousCredentials(),
                            client_options={"api_endpoint": flaky.direct_url})
    return GCSStorage(f"gs://{flaky.bucket}/run", client=client, **kwargs)


def test_save_list_load_and_retention(bucket: str, gcs_client: storage.Client) -> None:
    store = GCSStorage(f"gs://{bucket}/runs/r1")
    names = [save_checkpoint(store, small_state(n), kimg=n / 1000, keep=2)
             for n in (1000, 2000, 3000)]
    assert names == ["checkpoints/ckpt-000001000.pt", "checkpoints/ckpt-000002000.pt",
                     "checkpoints/ckpt-000003000.pt"]
    assert list_checkpoints(store) == names[1:]  # keep=2 pruned the oldest
    assert sorted(b.name for b in gcs_client.list_blobs(bucket)) == [
        "runs/r1/checkpoints/ckpt-000002000.pt", "runs/r1/checkpoints/ckpt-000003000.pt",
        "runs/r1/latest.json"]  # fmt: skip

    state = load_latest(store)
    assert state is not None and state["cur_nimg"] == 3000
    assert state["_checkpoint_name"] == names[2]
    assert torch.equal(state["G"]["w"], torch.full([4], 3000.0))
    pointer, _ = store.read_pointer(POINTER_NAME)  # type: ignore[misc]
    assert [e["name"] for e in pointer["history"]] == [names[1]]
    assert load_checkpoint(f"gs://{bucket}/runs/r1")["cur_nimg"] == 3000


def test_two_writers_racing_on_latest_json_exactly_one_wins(bucket: str) -> None:
    writers = [GCSStorage(f"gs://{bucket}/run") for _ in range(2)]
    for round_ in range(4):
        # Both read the same generation, then both try to move the pointer from it.
        current = writers[0].read_pointer(POINTER_NAME)
        expected = 0 if current is None else current[1]
        start = threading.Barrier(2)
        outcomes: list[object] = [None, None]

        def write(i: int, expected: int = expected, round_: int = round_,
                  start: threading.Barrier = start, outcomes: list[object] = outcomes) -> None:
            start.wait()
            try:
                outcomes[i] = writers[i].write_pointer(
                    POINTER_NAME, {"round": round_, "writer": i}, expected)
            except PreconditionFailed as exc:
                outcomes[i] = exc

        threads = [threading.Thread(target=write, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        winners = [i for i, o in enumerate(outcomes) if isinstance(o, int)]
        losers = [o for o in outcomes if isinstance(o, PreconditionFailed)]
        assert len(winners) == 1 and len(losers) == 1, outcomes
        assert f"gs://{bucket}/run/{POINTER_NAME}" in str(losers[0])
        assert "another writer moved it" in str(losers[0])
        data, generation = writers[1].read_pointer(POINTER_NAME)  # type: ignore[misc]
        assert data == {"round": round_, "writer": winners[0]}
        assert generation == outcomes[winners[0]]


def test_latest_json_never_moves_back_to_a_checkpoint_of_fewer_images(
    bucket: str, gcs_client: storage.Client, caplog: pytest.LogCaptureFixture
) -> None:
    store = GCSStorage(f"gs://{bucket}/run")
    newer = save_checkpoint(store, small_state(2000), kimg=2.0)
    _, generation = store.read_pointer(POINTER_NAME)  # type: ignore[misc]
    # A second writer (an attempt that resumed from older work) saves fewer images later.
    late = GCSStorage(f"gs://{bucket}/run")
    with caplog.at_level(logging.WARNING, logger="stylegan_trainer.train.checkpoint"):
        older = save_checkpoint(late, small_state(1000), kimg=1.0)
    assert f"{POINTER_NAME} already names {newer} (nimg 2000), newer than {older}" in caplog.text
    pointer, unchanged = store.read_pointer(POINTER_NAME)  # type: ignore[misc]
    assert unchanged == generation  # the object generation on GCS: never rewritten
    assert pointer["checkpoint"]["name"] == newer and pointer["checkpoint"]["nimg"] == 2000
    assert gcs_client.bucket(bucket).blob(f"run/{older}").exists()  # written, unpointed
    assert load_latest(late)["cur_nimg"] == 2000  # type: ignore[index]
    assert save_checkpoint(late, small_state(3000), kimg=3.0) == "checkpoints/ckpt-000003000.pt"
    assert load_latest(store)["cur_nimg"] == 3000  # type: ignore[index]


CHILD_SAVES_A_LARGE_CHECKPOINT = textwrap.dedent("""
    import sys, torch
    from stylegan_trainer.train.checkpoint import save_checkpoint
    from stylegan_common.storage.gcs import GCSStorage
    store = GCSStorage(sys.argv[1], chunk_size=4 * 256 * 1024)
    state = {"cur_nimg": 2000, "G": {"w": torch.randn(6 * 1024 * 1024)}}  # 24 MiB
    save_checkpoint(store, state, kimg=2.0)
    print("finished", flush=True)
""")


def test_writer_killed_during_a_large_upload_leaves_latest_loadable(flaky_gcs: FlakyGCS) -> None:
    uri = f"gs://{flaky_gcs.bucket}/run"
    store = direct_storage(flaky_gcs)
    first = save_checkpoint(store, small_state(1000), kimg=1.0)
    _, generation_before = store.read_pointer(POINTER_NAME)  # type: ignore[misc]

    # Held still a third of the way through the 24 MiB upload, then killed: deterministic.
    midway = flaky_gcs.relay.stall_after(8 * MIB)
    env = dict(os.environ, STORAGE_EMULATOR_HOST=flaky_gcs.url, OMP_NUM_THREADS="1")
    child = subprocess.Popen([sys.executable, "-c", CHILD_SAVES_A_LARGE_CHECKPOINT, uri],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert midway.wait(timeout=120), "the child's upload never reached 8 MiB"
        child.send_signal(signal.SIGKILL)
        _, stderr = child.communicate(timeout=30)
    finally:
        flaky_gcs.relay.resume()
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL, stderr.decode()[-2000:]

    # The pointer never moved; the torn upload never became an object.
    _, generation_after = store.read_pointer(POINTER_NAME)  # type: ignore[misc]
    assert generation_after == generation_before
    assert list_checkpoints(store) == [first]
    state = load_latest(store)
    assert state is not None and state["cur_nimg"] == 1000
    # The next attempt saves under the name the killed one never finished.
    assert save_checkpoint(store, small_state(2000), kimg=2.0) == "checkpoints/ckpt-000002000.pt"
    assert load_latest(store)["cur_nimg"] == 2000  # type: ignore[index]


def test_corrupted_checkpoint_is_detected_and_the_previous_one_used(
    bucket: str, gcs_client: storage.Client, caplog: pytest.LogCaptureFixture
) -> None:
    store = GCSStorage(f"gs://{bucket}/run")
    older = save_checkpoint(store, small_state(1000), kimg=1.0)
    newer = save_checkpoint(store, small_state(2000), kimg=2.0)
    blob = gcs_client.bucket(bucket).blob(f"run/{newer}")
    damaged = bytearray(blob.download_as_bytes())
    damaged[len(damaged) // 2] ^= 0xFF  # same size, one flipped byte
    blob.upload_from_string(bytes(damaged))  # out of band: a valid object, wrong contents

    with caplog.at_level(logging.WARNING, logger="stylegan_trainer.train.checkpoint"):
        state = load_latest(store)
    assert state is not None and state["cur_nimg"] == 1000
    assert state["_checkpoint_name"] == older
    assert f"checkpoint {newer} is torn or corrupt" in caplog.text
    assert f"falling back to the previous checkpoint {older}" in caplog.text


def test_a_save_that_fails_on_the_network_keeps_the_previous_checkpoint(
    flaky_gcs: FlakyGCS,
) -> None:
    through_relay = GCSStorage(f"gs://{flaky_gcs.bucket}/run", retry_timeout=2,
                               chunk_size=4 * CHUNK_QUANTUM)
    save_checkpoint(through_relay, small_state(1000), kimg=1.0)
    flaky_gcs.relay.go_down()
    with pytest.raises(StorageError) as failed:
        save_checkpoint(through_relay, small_state(2000), kimg=2.0)
    assert failed.value.exit_code == EXIT_RETRYABLE

    state = load_latest(direct_storage(flaky_gcs))
    assert state is not None and state["cur_nimg"] == 1000


def test_a_bucket_that_does_not_exist_is_named_before_training(
    gcs_client: storage.Client,
) -> None:
    with pytest.raises(StorageConfigError) as missing:
        load_checkpoint("gs://no-such-checkpoints/run-7")
    assert missing.value.exit_code == EXIT_CONFIG
    assert "bucket no-such-checkpoints of gs://no-such-checkpoints/run-7 does not exist" in str(
        missing.value
    )
