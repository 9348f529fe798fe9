"""gs:// datasets against the real fake-gcs-server: downloaded once into a cache keyed by the
object's generation and CRC32C, reused on the next start, replaced when the object changes,
never cached when damaged in transit, opened through data.open_dataset, and refused by name
when missing."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
from google.cloud import storage

from stylegan_common.errors import EXIT_CONFIG, EXIT_RETRYABLE, DatasetError, StorageError
from stylegan_trainer.data.dataset import open_dataset
from stylegan_trainer.data.remote import download_dataset
from tests.integration.gcs.conftest import FlakyGCS

OBJECT = "datasets/faces.zip"
MIB = 1024 * 1024


ZIP_TIME = (2020, 1, 1, 0, 0, 0)
"""Every entry's timestamp: fixed, so the same arguments always give the same bytes (with the
clock's time two calls across a 2-second boundary differed, and the cache test failed)."""


def faces_zip(count: int, shade: int = 0) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(count):
            image = PIL.Image.fromarray(np.full([8, 8, 3], shade + i, dtype=np.uint8))
            png = io.BytesIO()
            image.save(png, format="PNG")
            archive.writestr(zipfile.ZipInfo(f"img{i:03d}.png", ZIP_TIME), png.getvalue())
    return buffer.getvalue()


def test_the_zip_helper_is_deterministic() -> None:
    """Same arguments, same bytes, whatever the clock says (and different shades differ)."""
    assert faces_zip(3) == faces_zip(3)
    with zipfile.ZipFile(io.BytesIO(faces_zip(2))) as archive:
        assert {info.date_time for info in archive.infolist()} == {ZIP_TIME}
    assert faces_zip(3, shade=1) != faces_zip(3)


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the objects whose media the client fetched (every download_to_file call)."""
    fetched: list[str] = []
    original = storage.Blob.download_to_file

    def counting(self: storage.Blob, *args: object, **kwargs: object) -> None:
        fetched.append(self.name)
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(storage.Blob, "download_to_file", counting)
    return fetched


def test_download_is_cached_by_generation_and_checksum(
    bucket: str, gcs_client: storage.Client, tmp_path: Path, downloads: list[str]
) -> None:
    blob = gcs_client.bucket(bucket).blob(OBJECT)
    blob.upload_from_string(faces_zip(3))
    uri = f"gs://{bucket}/{OBJECT}"

    first = download_dataset(uri, tmp_path)
    assert first.read_bytes() == faces_zip(3)
    assert first.is_relative_to(tmp_path / bucket / "datasets")
    assert f".g{blob.generation}." in first.name and first.suffix == ".zip"
    stamp = first.stat().st_mtime_ns

    # A restarted pod that kept its cache: same file, nothing fetched.
    assert download_dataset(uri, tmp_path) == first
    assert downloads == [OBJECT]
    assert first.stat().st_mtime_ns == stamp

    # The object is replaced: a new generation is fetched and the old copy dropped.
    blob.upload_from_string(faces_zip(5, shade=100))
    second = download_dataset(uri, tmp_path)
    assert second != first and not first.exists()
    assert second.read_bytes() == faces_zip(5, shade=100)
    assert downloads == [OBJECT, OBJECT]
    assert sorted(p.name for p in second.parent.iterdir() if not p.name.startswith(".")) == [
        second.name]  # fmt: skip


def test_a_partial_download_left_by_a_killed_pod_is_discarded(
    bucket: str, gcs_client: storage.Client, tmp_path: Path
) -> None:
    gcs_client.bucket(bucket).blob(OBJECT).upload_from_string(faces_zip(2))
    uri = f"gs://{bucket}/{OBJECT}"
    path = download_dataset(uri, tmp_path)
    path.unlink()
    leftover = path.with_name(f".{path.name}.x1y2z3.part")
    leftover.write_bytes(b"half a zip")

    assert download_dataset(uri, tmp_path) == path
    assert path.read_bytes() == faces_zip(2)
    assert not leftover.exists()


def test_open_dataset_reads_a_gs_zip_through_the_cache(
    bucket: str, gcs_client: storage.Client, tmp_path: Path
) -> None:
    gcs_client.bucket(bucket).blob(OBJECT).upload_from_string(faces_zip(4, shade=10))
    dataset = open_dataset(f"gs://{bucket}/{OBJECT}", 8, cache_dir=tmp_path)
    assert len(dataset) == 4
    image, _ = dataset[2]
    assert image.shape == (3, 8, 8) and int(image[0, 0, 0]) == 12


@pytest.mark.parametrize(
    ("uri", "complaint"),
    [
        ("gs://{bucket}/datasets/none.zip", "gs://{bucket}/datasets/none.zip does not exist"),
        ("gs://no-such-data-bucket/faces.zip", "bucket no-such-data-bucket of gs://no-such-data"),
        ("gs://{bucket}", "names a bucket, not an object"),
        ("gs://Not_A_Bucket/x.zip", "'Not_A_Bucket' is not a bucket name"),
    ],
)
def test_missing_or_malformed_datasets_are_refused_by_name(
    bucket: str, tmp_path: Path, uri: str, complaint: str
) -> None:
    with pytest.raises(DatasetError) as refused:
        download_dataset(uri.format(bucket=bucket), tmp_path)
    assert refused.value.exit_code == EXIT_CONFIG
    assert complaint.format(bucket=bucket) in str(refused.value)
    assert str(refused.value).startswith("dataset:")
    assert not any(tmp_path.iterdir())  # nothing half-made left in the cache


def test_a_dataset_damaged_in_transit_never_enters_the_cache(
    flaky_gcs: FlakyGCS, tmp_path: Path
) -> None:
    payload = faces_zip(3) + bytes(MIB)  # padding, so a body byte sits far past the headers
    storage.Client().bucket(flaky_gcs.bucket).blob(OBJECT).upload_from_string(payload)
    uri = f"gs://{flaky_gcs.bucket}/{OBJECT}"
    cache = tmp_path / "cache"
    flaky_gcs.relay.flip_once_after(MIB // 2)
    with pytest.raises(StorageError, match=f"cannot download {uri}") as damaged:
        download_dataset(uri, cache)
    assert damaged.value.exit_code == EXIT_RETRYABLE  # the next attempt may fare better
    assert flaky_gcs.relay.flips == 1
    assert not [p for p in cache.rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    assert download_dataset(uri, cache).read_bytes() == payload
