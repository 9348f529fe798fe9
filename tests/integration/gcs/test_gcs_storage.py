"""GCSStorage against the real fake-gcs-server: objects, create-only writes (simple and
resumable), the pointer's compare-and-swap on real generations, bad URIs, missing buckets,
refused permissions, and network failures in the middle of an upload."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from stylegan_common.errors import (
    EXIT_CONFIG,
    EXIT_RETRYABLE,
    DatasetError,
    ObjectNotFound,
    PreconditionFailed,
    StorageError,
)
from stylegan_common.storage import open_storage
from stylegan_common.storage.gcs import CHUNK_QUANTUM, GCSStorage, StorageConfigError, parse_gs_uri
from stylegan_trainer.data.remote import download_dataset
from tests.integration.gcs.conftest import FlakyGCS

MIB = 1024 * 1024
RESUMABLE_SIZE = 9 * MIB  # above the client's 8 MiB multipart limit: a resumable upload


def test_objects_round_trip_list_exists_delete(bucket: str) -> None:
    store = GCSStorage(f"gs://{bucket}/runs/a")
    store.write_bytes("checkpoints/ckpt-2.pt", b"two")
    store.write_bytes("checkpoints/ckpt-1.pt", b"one")
    store.write_bytes("notes.txt", b"n")
    # A sibling prefix that merely starts with the same letters is not ours.
    GCSStorage(f"gs://{bucket}/runs/ab").write_bytes("checkpoints/x.pt", b"x")

    assert store.read_bytes("checkpoints/ckpt-1.pt") == b"one"
    assert store.list("checkpoints/") == ["checkpoints/ckpt-1.pt", "checkpoints/ckpt-2.pt"]
    assert store.list() == ["checkpoints/ckpt-1.pt", "checkpoints/ckpt-2.pt", "notes.txt"]
    assert store.exists("notes.txt") and not store.exists("missing.txt")

    store.delete("notes.txt")
    store.delete("notes.txt")  # already gone: not an error
    assert not store.exists("notes.txt")
    with pytest.raises(ObjectNotFound, match=f"gs://{bucket}/runs/a/notes.txt does not exist"):
        store.read_bytes("notes.txt")


def test_create_only_never_replaces_small_or_resumable_objects(
    bucket: str, gcs_client: storage.Client
) -> None:
    store = GCSStorage(f"gs://{bucket}/run", chunk_size=4 * CHUNK_QUANTUM)
    store.write_bytes("small.pt", b"first")
    with pytest.raises(PreconditionFailed, match=f"gs://{bucket}/run/small.pt already exists"):
        store.write_bytes("small.pt", b"second")
    assert store.read_bytes("small.pt") == b"first"

    big = os.urandom(RESUMABLE_SIZE)
    store.write_bytes("big.pt", big)
    with pytest.raises(PreconditionFailed, match="big.pt already exists") as refused:
        store.write_bytes("big.pt", os.urandom(RESUMABLE_SIZE))
    assert refused.value.exit_code == EXIT_RETRYABLE
    assert store.read_bytes("big.pt") == big
    assert gcs_client.bucket(bucket).get_blob("run/big.pt").size == RESUMABLE_SIZE

    store.write_bytes("small.pt", b"replaced", create_only=False)
    assert store.read_bytes("small.pt") == b"replaced"


def test_pointer_compare_and_swap_uses_the_objects_real_generation(
    bucket: str, gcs_client: storage.Client
) -> None:
    store = GCSStorage(f"gs://{bucket}/run")
    assert store.read_pointer("latest.json") is None

    first = store.write_pointer("latest.json", {"step": 1}, expected_generation=0)
    assert first == gcs_client.bucket(bucket).get_blob("run/latest.json").generation
    assert store.read_pointer("latest.json") == ({"step": 1}, first)

    with pytest.raises(PreconditionFailed, match=r"latest.json is no longer at generation 0"):
        store.write_pointer("latest.json", {"step": 99}, expected_generation=0)
    second = store.write_pointer("latest.json", {"step": 2}, expected_generation=first)
    assert second != first
    with pytest.raises(PreconditionFailed, match=f"gs://{bucket}/run/latest.json"):
        store.write_pointer("latest.json", {"step": 99}, expected_generation=first)
    assert store.read_pointer("latest.json") == ({"step": 2}, second)


def test_a_pointer_that_is_not_json_is_a_storage_error(bucket: str, gcs_client: storage.Client
                                                       ) -> None:
    gcs_client.bucket(bucket).blob("run/latest.json").upload_from_string(b"{torn")
    with pytest.raises(StorageError, match=f"pointer gs://{bucket}/run/latest.json is not JSON"):
        GCSStorage(f"gs://{bucket}/run").read_pointer("latest.json")


@pytest.mark.parametrize(
    ("uri", "complaint"),
    [
        ("s3://bucket/run", "is not a gs:// URI"),
        ("/plain/path", "is not a gs:// URI"),
        ("gs://", "is not a bucket name"),
        ("gs://Bad_Bucket/run", "'Bad_Bucket' is not a bucket name"),
        ("gs://bucket/a//b", "empty, '.' or '..' segment"),
        ("gs://bucket/a/../b", "empty, '.' or '..' segment"),
    ],
)
def test_malformed_uris_are_configuration_errors(uri: str, complaint: str) -> None:
    with pytest.raises(StorageConfigError, match=complaint) as bad:
        parse_gs_uri(uri)
    assert bad.value.exit_code == EXIT_CONFIG
    assert uri in str(bad.value) and "\n" not in str(bad.value)


def test_missing_bucket_fails_when_opened_naming_the_bucket(gcs_client: storage.Client) -> None:
    with pytest.raises(StorageConfigError) as missing:
        open_storage("gs://no-such-bucket-here/run")
    message = str(missing.value)
    assert missing.value.exit_code == EXIT_CONFIG
    assert "bucket no-such-bucket-here of gs://no-such-bucket-here/run does not exist" in message
    assert "\n" not in message


def test_open_storage_gives_gcs_storage_for_gs_uris(bucket: str) -> None:
    store = open_storage(f"gs://{bucket}/runs/x/")
    assert isinstance(store, GCSStorage) and store.uri == f"gs://{bucket}/runs/x"


def test_chunk_size_must_be_a_multiple_of_256_kib(bucket: str) -> None:
    with pytest.raises(StorageConfigError, match="chunk_size 1000 .* multiple of 262144"):
        GCSStorage(f"gs://{bucket}/run", chunk_size=1000)


class _Forbidding(BaseHTTPRequestHandler):
    """Answers every request the way GCS answers a caller without the IAM permission."""

    def _refuse(self) -> None:
        body = json.dumps({"error": {"code": 403, "message": "caller does not have "
                                     "storage.objects.list access"}}).encode()
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = _refuse

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def forbidding_client() -> Iterator[storage.Client]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Forbidding)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield storage.Client(
            project="test", credentials=AnonymousCredentials(),
            client_options={"api_endpoint": f"http://127.0.0.1:{server.server_address[1]}"},
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()


def test_refused_permission_is_a_configuration_error(forbidding_client: storage.Client) -> None:
    with pytest.raises(StorageConfigError) as refused:
        GCSStorage("gs://private-bucket/run", client=forbidding_client)
    assert refused.value.exit_code == EXIT_CONFIG
    assert "no permission to list gs://private-bucket/run (HTTP 403)" in str(refused.value)
    with pytest.raises(DatasetError, match=r"no permission to read gs://private-bucket/d.zip"):
        download_dataset("gs://private-bucket/d.zip", client=forbidding_client)


def test_a_connection_cut_mid_upload_is_retried(flaky_gcs: FlakyGCS) -> None:
    store = GCSStorage(f"gs://{flaky_gcs.bucket}/run", chunk_size=4 * CHUNK_QUANTUM,
                       retry_timeout=30)
    data = os.urandom(RESUMABLE_SIZE)
    flaky_gcs.relay.cut_once_after(3 * MIB)  # inside the third of nine 1 MiB chunks
    store.write_bytes("big.pt", data)
    assert flaky_gcs.relay.cuts == 1
    assert store.read_bytes("big.pt") == data


def test_a_network_that_stays_down_gives_a_retryable_error(flaky_gcs: FlakyGCS) -> None:
    store = GCSStorage(f"gs://{flaky_gcs.bucket}/run", retry_timeout=2)
    flaky_gcs.relay.go_down()
    with pytest.raises(StorageError) as down:
        store.write_bytes("ckpt.pt", b"data")
    assert down.value.exit_code == EXIT_RETRYABLE
    assert not isinstance(down.value, StorageConfigError)
    assert f"cannot write gs://{flaky_gcs.bucket}/run/ckpt.pt after retrying" in str(down.value)


def test_a_download_damaged_in_transit_is_detected_and_fetched_again(
    flaky_gcs: FlakyGCS,
) -> None:
    store = GCSStorage(f"gs://{flaky_gcs.bucket}/run")
    data = os.urandom(2 * MIB)
    store.write_bytes("ckpt.pt", data)
    flaky_gcs.relay.flip_once_after(MIB)  # well past the response headers: a body byte
    assert store.read_bytes("ckpt.pt") == data
    assert flaky_gcs.relay.flips == 1
