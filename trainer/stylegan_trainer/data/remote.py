"""Training images from Google Cloud Storage: a ``gs://`` dataset zip kept in a local cache.

:func:`download_dataset` copies the zip into a cache folder keyed by the object's generation and
CRC32C, so a restarted pod that kept its cache volume does not download again, and two ranks on
one node never download it twice (an ``flock`` on the cache entry). The client, URI parsing and
error translation are the checkpoint backend's (``stylegan_common.storage.gcs``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from google.api_core import exceptions as api_exceptions
from google.cloud import storage as gcs

from stylegan_common.errors import DatasetError, StorageError
from stylegan_common.storage.gcs import (
    DEFAULT_RETRY_TIMEOUT,
    NETWORK_ERRORS,
    GCSLocation,
    StorageConfigError,
    bounded_retry,
    file_digests,
    hex_of_base64,
    make_client,
    parse_gs_uri,
    translate_error,
)


def default_cache_dir() -> Path:
    """``$STYLEGAN_DATASET_CACHE``; else ``stylegan-operator/datasets`` in the user's cache."""
    explicit = os.environ.get("STYLEGAN_DATASET_CACHE")
    if explicit:
        return Path(explicit)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "stylegan-operator" / "datasets"


def cached_path(cache_dir: Path, location: GCSLocation, generation: int, crc32c_hex: str) -> Path:
    """Where one version of an object lives in the cache: the bucket and the object's folders,
    then ``<stem>.g<generation>.<crc32c>.<suffix>`` so another version is another file."""
    key = PurePosixPath(location.prefix)
    return (
        cache_dir / location.bucket / key.parent
        / f"{key.stem}.g{generation}.{crc32c_hex}{key.suffix}"
    )  # fmt: skip


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """An advisory lock, so the ranks on one node download a dataset once between them."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released by the kernel if the process dies
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _remove_other_versions(target: Path, stem: str, suffix: str) -> None:
    """Older cached versions of the object and partial downloads left by a killed process."""
    version = rf"{re.escape(stem)}\.g\d+\.[0-9a-f]+{re.escape(suffix)}"
    ours = re.compile(rf"^(?:{version}|\.{version}\..+\.part)$")
    for path in target.parent.iterdir():
        if path != target and ours.match(path.name):
            path.unlink(missing_ok=True)


def _dataset_metadata(client: gcs.Client, location: GCSLocation, uri: str) -> gcs.Blob:
    """The object's metadata (generation, size, checksums); ``DatasetError`` if it is missing."""
    bucket = client.bucket(location.bucket)
    retry = bounded_retry(DEFAULT_RETRY_TIMEOUT)
    try:
        blob = bucket.get_blob(location.prefix, retry=retry)
        if blob is None:
            # A missing object and a missing bucket both answer 404 here; listing tells them
            # apart (and needs only the object-read role, unlike a bucket lookup).
            next(iter(bucket.list_blobs(max_results=1, retry=retry)), None)
    except api_exceptions.NotFound:
        raise DatasetError(f"dataset: bucket {location.bucket} of {uri} does not exist") from None
    except (api_exceptions.Forbidden, api_exceptions.Unauthorized) as exc:
        raise DatasetError(
            f"dataset: no permission to read {uri} (HTTP {exc.code}); grant the pod's service "
            "account roles/storage.objectViewer on the bucket"
        ) from None
    except NETWORK_ERRORS as exc:
        raise translate_error(exc, "stat", uri) from None
    if blob is None:
        raise DatasetError(f"dataset: {uri} does not exist")
    return blob


def download_dataset(
    uri: str, cache_dir: str | os.PathLike[str] | None = None, client: gcs.Client | None = None
) -> Path:
    """The local copy of the dataset object ``uri`` (``gs://bucket/path/data.zip``).

    Downloaded once per object version into ``cache_dir`` (:func:`default_cache_dir` when
    ``None``), to a temporary file that is verified (CRC32C, else MD5) and then renamed, so the
    cache only ever holds whole, verified files. Later calls cost one metadata request. Raises
    ``DatasetError`` (exit 64) naming ``uri`` when it is malformed, missing or forbidden, and
    ``StorageError`` (exit 75) when the network fails or the bytes arrive corrupted.
    """
    try:
        location = parse_gs_uri(uri)
    except StorageConfigError as exc:
        raise DatasetError(str(exc).replace("storage:", "dataset:", 1)) from None
    if not location.prefix:
        raise DatasetError(f"dataset: {uri} names a bucket, not an object like gs://BUCKET/data.zip")
    if client is None:
        try:
            client = make_client(uri)
        except StorageConfigError as exc:
            raise DatasetError(str(exc).replace("storage:", "dataset:", 1)) from None
    blob = _dataset_metadata(client, location, uri)
    recorded = blob.crc32c or blob.md5_hash
    if blob.generation is None or recorded is None:
        raise StorageError(f"dataset: {uri} has no generation or checksum in its metadata")
    generation = int(blob.generation)
    target = cached_path(Path(cache_dir or default_cache_dir()), location, generation,
                         hex_of_base64(recorded))
    if target.is_file() and target.stat().st_size == blob.size:
        return target  # verified when it was renamed into place
    key = PurePosixPath(location.prefix)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(f"dataset: cannot create cache folder {target.parent}: {exc}") from None
    with _exclusive(target.parent / f".{key.name}.lock"):
        if target.is_file() and target.stat().st_size == blob.size:
            return target  # another rank on this node fetched it while we waited
        _remove_other_versions(target, key.stem, key.suffix)
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".part", dir=target.parent
        )
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as fh:
                pinned = client.bucket(location.bucket).blob(location.prefix, generation=generation)
                pinned.download_to_file(fh, checksum="crc32c",
                                        retry=bounded_retry(DEFAULT_RETRY_TIMEOUT))
                fh.flush()
                os.fsync(fh.fileno())
            crc, md5 = file_digests(tmp)
            got, want = (crc, blob.crc32c) if blob.crc32c else (md5, blob.md5_hash)
            if got != want or tmp.stat().st_size != blob.size:
                raise StorageError(
                    f"dataset: {uri} arrived corrupted ({tmp.stat().st_size} bytes, checksum "
                    f"{got}; recorded {blob.size} bytes, {want})"
                )
            os.replace(tmp, target)
        except api_exceptions.NotFound:
            # Replaced while we downloaded: the next attempt fetches the new generation.
            raise StorageError(f"dataset: {uri} generation {generation} was replaced while "
                               "downloading") from None
        except NETWORK_ERRORS as exc:
            raise translate_error(exc, "download", uri) from None
        except OSError as exc:
            raise StorageError(f"dataset: cannot write {target}: {exc}") from None
        finally:
            tmp.unlink(missing_ok=True)
    return target
