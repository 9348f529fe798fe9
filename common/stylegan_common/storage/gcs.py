"""Checkpoints and datasets on Google Cloud Storage (``gs://bucket/prefix``).

:class:`GCSStorage` implements the :class:`~stylegan_common.storage.Storage` interface that the
checkpoint protocol (``checkpoint.py``) is written against, with the object store's own
guarantees instead of imitations:

* create-only writes are uploads with ``ifGenerationMatch=0``, so an existing object is never
  replaced, even by a writer on another node;
* the pointer's generation is the object's real GCS generation, and moving the pointer is an
  upload with ``ifGenerationMatch=<generation read>`` (0: must not exist yet). GCS applies the
  condition atomically, so of two writers racing from the same generation exactly one wins and
  the other gets :class:`~stylegan_common.errors.PreconditionFailed` naming the object. (Copy,
  rewrite and compose preconditions are not enforced by the fake-gcs-server emulator the tests
  use, which is one more reason the pointer is moved by uploading, never by copying.)
* objects above 8 MiB go up as resumable uploads in ``chunk_size`` pieces; each request is
  retried on connection errors, 429 and 5xx with exponential backoff, for ``retry_timeout``
  seconds in all. Retrying a write is safe because every write is conditional (or, for the
  unconditional overwrite, idempotent). When the retries run out the error is a
  ``StorageError`` (exit 75): the pointer was not moved, so the previous checkpoint is intact.
* downloads are checked against the CRC32C the service records for the object.
* sample grids (``put_file``) go up the same create-only, retried way, recorded as
  ``image/png`` so the Cloud console and a browser show them as pictures.

Credentials come from the environment the way every Google client finds them (Application
Default Credentials: ``GOOGLE_APPLICATION_CREDENTIALS`` key file, GKE Workload Identity, the
metadata server; ``STORAGE_EMULATOR_HOST`` points the client at an emulator). Nothing here
reads, prints or logs them.

Configuration mistakes are found before any compute: constructing a ``GCSStorage`` lists one
object under its prefix, so a missing bucket (404), a missing permission (401/403), missing
credentials or a malformed URI raise :class:`StorageConfigError` (exit 64) with one line
naming the URI.

The trainer's dataset download (``stylegan_trainer.data.remote``) uses this module's client,
URI parsing and error translation.

``stylegan_common.storage.base`` names this backend for ``gs://`` and imports it on first use.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import google_crc32c
import requests
from google.api_core import exceptions as api_exceptions
from google.api_core.retry import Retry
from google.auth.exceptions import DefaultCredentialsError, GoogleAuthError
from google.cloud import storage as gcs
from google.cloud.storage.exceptions import DataCorruption, InvalidResponse
from google.cloud.storage.retry import DEFAULT_RETRY

from stylegan_common.errors import (
    EXIT_CONFIG,
    ConfigError,
    ObjectNotFound,
    PreconditionFailed,
    StorageError,
)
from stylegan_common.storage.base import (
    Storage,
    check_name,
    content_type_of,
    decode_pointer,
    read_local_file,
)

SCHEME = "gs://"
# Resumable upload chunks must be multiples of 256 KiB. 64 MiB: a 0.85 GB checkpoint goes up
# in 13 requests, so per-request latency costs little, and a failed chunk is cheap to resend.
CHUNK_QUANTUM = 256 * 1024
DEFAULT_CHUNK_SIZE = 256 * CHUNK_QUANTUM
DEFAULT_RETRY_TIMEOUT = 120.0  # seconds of retrying one operation before giving up (exit 75)
DEFAULT_HTTP_TIMEOUT = 60.0  # seconds one request may wait for the service
DOWNLOAD_ATTEMPTS = 3  # whole downloads repeated when the bytes arrive corrupted
READ_BLOCK = 8 * 1024 * 1024
# Bucket names: 3-63 characters (up to 222 with dots), lowercase letters, digits, '-', '_', '.',
# starting and ending with a letter or a digit.
_BUCKET_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
NETWORK_ERRORS = (
    api_exceptions.GoogleAPIError,  # includes RetryError, raised when the retries ran out
    requests.RequestException,
    InvalidResponse,
    DataCorruption,
    GoogleAuthError,
    ConnectionError,
    TimeoutError,
)


class StorageConfigError(StorageError, ConfigError):
    """The storage URI, bucket, permission or credentials are wrong: never retried (exit 64)."""

    exit_code = EXIT_CONFIG


# ----------------------------------------------------------------------------------------------
# URIs


@dataclass(frozen=True)
class GCSLocation:
    """``gs://bucket/prefix`` split into its bucket and its object-name prefix (no slashes
    at either end; empty for the bucket's root)."""

    bucket: str
    prefix: str = ""

    def key(self, name: str) -> str:
        """The full object name of ``name`` (relative to the prefix)."""
        return f"{self.prefix}/{name}" if self.prefix else name

    def uri(self, name: str = "") -> str:
        key = self.key(name) if name else self.prefix
        return f"{SCHEME}{self.bucket}/{key}" if key else f"{SCHEME}{self.bucket}"


def parse_gs_uri(uri: str) -> GCSLocation:
    """Split ``gs://bucket/prefix``; ``StorageConfigError`` naming ``uri`` when it is not one."""
    if not isinstance(uri, str) or not uri.startswith(SCHEME):
        raise StorageConfigError(
            f"storage: {uri!r} is not a gs:// URI; expected gs://BUCKET or gs://BUCKET/PREFIX"
        )
    bucket, _, prefix = uri[len(SCHEME) :].partition("/")
    if not _BUCKET_PATTERN.match(bucket):
        raise StorageConfigError(
            f"storage: {uri}: {bucket!r} is not a bucket name (3-63 lowercase letters, digits, "
            "'-', '_' or '.', starting and ending with a letter or digit)"
        )
    prefix = prefix.strip("/")
    parts = prefix.split("/") if prefix else []
    if any(part in ("", ".", "..") for part in parts):
        raise StorageConfigError(
            f"storage: {uri}: the object prefix {prefix!r} has an empty, '.' or '..' segment"
        )
    return GCSLocation(bucket, prefix)


# ----------------------------------------------------------------------------------------------
# Checksums


def crc32c_base64(data: bytes) -> str:
    """CRC32C as GCS records it: big-endian bytes, base64."""
    return base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode("ascii")


def file_digests(path: Path) -> tuple[str, str]:
    """``(crc32c, md5)`` of a file, both base64 as GCS records them."""
    crc = google_crc32c.Checksum()
    md5 = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        while block := fh.read(READ_BLOCK):
            crc.update(block)
            md5.update(block)
    return base64.b64encode(crc.digest()).decode("ascii"), base64.b64encode(md5.digest()).decode()


def hex_of_base64(value: str) -> str:
    return base64.b64decode(value).hex()


# ----------------------------------------------------------------------------------------------
# Clients and errors


def make_client(uri: str, project: str | None = None) -> gcs.Client:
    """A client with the environment's credentials; ``StorageConfigError`` when there are none."""
    try:
        return gcs.Client(project=project) if project else gcs.Client()
    except DefaultCredentialsError:
        raise StorageConfigError(
            f"storage: no Google Cloud credentials to open {uri}: set "
            "GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, or run the pod with "
            "Workload Identity"
        ) from None


def _first_line(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def translate_error(exc: BaseException, action: str, uri: str) -> StorageError:
    """One line naming ``uri`` for a failed ``action``, in the class that fixes the exit code."""
    if isinstance(exc, (api_exceptions.Forbidden, api_exceptions.Unauthorized)):
        return StorageConfigError(
            f"storage: no permission to {action} {uri} (HTTP {exc.code}); grant the pod's "
            "service account roles/storage.objectAdmin on the bucket"
        )
    if isinstance(exc, api_exceptions.NotFound):
        return ObjectNotFound(f"storage: {uri} does not exist")
    if isinstance(exc, api_exceptions.PreconditionFailed):
        return PreconditionFailed(f"storage: {uri} changed under us (precondition failed)")
    return StorageError(f"storage: cannot {action} {uri} after retrying: {_first_line(exc)}")


def bounded_retry(timeout: float) -> Retry:
    """The client's default retry policy (429, 5xx, connection errors) for ``timeout`` s in all."""
    return DEFAULT_RETRY.with_timeout(timeout)


# ----------------------------------------------------------------------------------------------
# The storage


class GCSStorage(Storage):
    """A run's checkpoints under ``gs://bucket/prefix`` (see the module docstring).

    ``client`` defaults to one built from the environment's credentials. ``check=False`` skips
    the startup probe (one list request) that turns a missing bucket or permission into a
    ``StorageConfigError`` before training.
    """

    def __init__(
        self,
        uri: str,
        client: gcs.Client | None = None,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        retry_timeout: float = DEFAULT_RETRY_TIMEOUT,
        http_timeout: float = DEFAULT_HTTP_TIMEOUT,
        check: bool = True,
    ) -> None:
        self.location = parse_gs_uri(uri)
        self.uri = self.location.uri()
        if chunk_size < CHUNK_QUANTUM or chunk_size % CHUNK_QUANTUM:
            raise StorageConfigError(
                f"storage: chunk_size {chunk_size} for {self.uri} must be a positive multiple "
                f"of {CHUNK_QUANTUM} (256 KiB)"
            )
        self.chunk_size = chunk_size
        self._retry = bounded_retry(retry_timeout)
        self._timeout = http_timeout
        self._client = client if client is not None else make_client(self.uri)
        self._bucket = self._client.bucket(self.location.bucket)
        if check:
            self.check_access()

    # -- helpers ---------------------------------------------------------------------------

    def _key(self, name: str) -> str:
        return self.location.key(check_name(name))

    def _blob(self, name: str, generation: int | None = None) -> gcs.Blob:
        # No chunk_size here: a chunked download skips the checksum and the response headers
        # that carry the generation. Uploads set it (see _upload).
        return self._bucket.blob(self._key(name), generation=generation)

    def _holding(self, name: str, data: bytes) -> gcs.Blob | None:
        """The object ``name`` when it holds exactly ``data`` (size and CRC32C), else ``None``."""
        try:
            current = self._bucket.get_blob(
                self._key(name), retry=self._retry, timeout=self._timeout
            )
        except NETWORK_ERRORS:
            return None
        if current is None or current.size != len(data) or current.crc32c != crc32c_base64(data):
            return None
        return current

    def _upload(self, name: str, data: bytes, if_generation_match: int | None,
                content_type: str) -> gcs.Blob:
        blob = self._bucket.blob(self._key(name), chunk_size=self.chunk_size)
        # Conditional uploads are safe to retry; the unconditional overwrite writes the same
        # bytes again, which is idempotent too, so every upload gets the bounded retry.
        blob.upload_from_string(
            data, content_type=content_type, if_generation_match=if_generation_match,
            checksum="crc32c", retry=self._retry, timeout=self._timeout,
        )  # fmt: skip
        return blob

    # -- Storage ---------------------------------------------------------------------------

    def check_access(self) -> None:
        """List one object under the prefix: a missing bucket or permission fails here (exit 64)."""
        try:
            next(iter(self._bucket.list_blobs(
                prefix=self.location.key(""), max_results=1, retry=self._retry,
                timeout=self._timeout)), None)  # fmt: skip
        except api_exceptions.NotFound:
            raise StorageConfigError(
                f"storage: bucket {self.location.bucket} of {self.uri} does not exist; create it "
                "or fix the checkpoints URI"
            ) from None
        except NETWORK_ERRORS as exc:
            raise translate_error(exc, "list", self.uri) from None

    def write_bytes(self, name: str, data: bytes, create_only: bool = True) -> None:
        self._write(name, data, create_only, "application/octet-stream")

    def put_file(
        self, name: str, path: str | os.PathLike[str], content_type: str | None = None
    ) -> None:
        """Upload a small local file (a sample grid) create-only, served as ``content_type``.

        The same conditional upload, bounded retry and "our own retried upload landed" check as
        :meth:`write_bytes`, so uploading the same grid twice is success and other bytes under
        the name are :class:`~stylegan_common.errors.PreconditionFailed`.
        """
        data = read_local_file(path)
        self._write(name, data, True, content_type or content_type_of(name))

    def _write(self, name: str, data: bytes, create_only: bool, content_type: str) -> None:
        uri = self.location.uri(check_name(name))
        try:
            self._upload(name, data, 0 if create_only else None, content_type)
        except api_exceptions.PreconditionFailed:
            # A retried upload whose first attempt landed (the answer was lost) meets its own
            # object: that is success, not a collision.
            if self._holding(name, data) is not None:
                return
            raise PreconditionFailed(f"storage: {uri} already exists (create-only)") from None
        except NETWORK_ERRORS as exc:
            raise translate_error(exc, "write", uri) from None

    def _download(self, name: str) -> tuple[bytes, gcs.Blob]:
        """The object's bytes and the blob, whose generation and CRC32C come from the same
        response; repeated when the bytes arrive corrupted."""
        uri = self.location.uri(check_name(name))
        for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
            blob = self._blob(name)
            try:
                data = blob.download_as_bytes(
                    checksum="crc32c", retry=self._retry, timeout=self._timeout
                )
            except api_exceptions.NotFound:
                raise ObjectNotFound(f"storage: {uri} does not exist") from None
            except DataCorruption as exc:
                if attempt == DOWNLOAD_ATTEMPTS:
                    raise translate_error(exc, "read", uri) from None
                continue
            except NETWORK_ERRORS as exc:
                raise translate_error(exc, "read", uri) from None
            if blob.crc32c:
                return data, blob  # the response's x-goog-hash, which the client checked
            # Without that header the client checks nothing; compare with the object's record
            # so that a verification is never silently skipped.
            expected = self._recorded_crc32c(name, blob.generation)
            if expected is None or expected == crc32c_base64(data):
                return data, blob
            if attempt == DOWNLOAD_ATTEMPTS:
                raise StorageError(
                    f"storage: {uri} arrived corrupted {DOWNLOAD_ATTEMPTS} times (CRC32C "
                    f"{crc32c_base64(data)}, recorded {expected})"
                )
        raise AssertionError("unreachable")

    def _recorded_crc32c(self, name: str, generation: Any) -> str | None:
        try:
            blob = self._blob(name, generation=int(generation) if generation else None)
            blob.reload(retry=self._retry, timeout=self._timeout)
        except NETWORK_ERRORS:
            return None
        return blob.crc32c

    def read_bytes(self, name: str) -> bytes:
        return self._download(name)[0]

    def list(self, prefix: str = "") -> list[str]:
        if prefix.startswith("/") or ".." in PurePosixPath(prefix).parts:
            raise StorageError(f"storage: list prefix {prefix!r} must be relative, without '..'")
        root = self.location.key("")
        try:
            keys = [b.name for b in self._bucket.list_blobs(
                prefix=root + prefix, retry=self._retry, timeout=self._timeout)]  # fmt: skip
        except NETWORK_ERRORS as exc:
            raise translate_error(exc, "list", self.location.uri(prefix)) from None
        # Folder placeholders ("name/") made by consoles are not objects of ours.
        return sorted(k[len(root) :] for k in keys if not k.endswith("/"))

    def delete(self, name: str) -> None:
        try:
            self._blob(name).delete(retry=self._retry, timeout=self._timeout)
        except api_exceptions.NotFound:
            return  # already gone (perhaps by our own earlier, retried request)
        except NETWORK_ERRORS as exc:
            raise translate_error(exc, "delete", self.location.uri(check_name(name))) from None

    def exists(self, name: str) -> bool:
        try:
            return bool(self._blob(name).exists(retry=self._retry, timeout=self._timeout))
        except NETWORK_ERRORS as exc:
            raise translate_error(exc, "stat", self.location.uri(check_name(name))) from None

    def read_pointer(self, name: str) -> tuple[dict[str, Any], int] | None:
        uri = self.location.uri(check_name(name))
        try:
            raw, blob = self._download(name)
        except ObjectNotFound:
            return None
        if blob.generation is None:
            raise StorageError(f"storage: {uri} was served without x-goog-generation")
        return decode_pointer(raw, uri), int(blob.generation)

    def write_pointer(self, name: str, data: dict[str, Any], expected_generation: int) -> int:
        uri = self.location.uri(check_name(name))
        body = json.dumps(data, indent=1).encode()
        try:
            blob = self._upload(name, body, expected_generation, "application/json")
        except api_exceptions.PreconditionFailed:
            # Our own retried upload may have landed first; identical bytes mean we won.
            # (A rival writing byte-identical JSON would leave the same state, so that is fine.)
            ours = self._holding(name, body)
            if ours is not None and ours.generation is not None:
                return int(ours.generation)
            raise PreconditionFailed(
                f"storage: pointer {uri} is no longer at generation {expected_generation}: "
                "another writer moved it"
            ) from None
        except NETWORK_ERRORS as exc:
            raise translate_error(exc, "write", uri) from None
        if blob.generation is None:
            raise StorageError(f"storage: the upload of {uri} returned no generation")
        return int(blob.generation)
