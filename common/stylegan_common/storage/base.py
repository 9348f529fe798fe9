"""Where checkpoints live: a small object-store interface, and the registry of its backends.

The interface is the subset of an object store the checkpoint protocol needs (see
``checkpoint.py``): immutable objects written under new names, listing by prefix, deletion, and
one *pointer* object (``latest.json``) updated by compare-and-swap on a generation number, so
two writers can never both believe they moved it. Google Cloud Storage offers exactly this
(object generations and ``ifGenerationMatch``); the local implementation imitates it with a
lock file and ``os.replace``.

Besides checkpoints, a run keeps its sample grids there (``samples/fakes-<nimg>.png``,
``samples/reals.png``): :meth:`Storage.put_file` copies such a small local file in, create-only
like every other object.

Names are relative, ``/``-separated paths (``checkpoints/ckpt-000048000.pt``), never absolute
and never containing ``..``. ``open_storage(uri)`` picks the implementation: a plain path or
``file://`` gives ``local.LocalStorage``; ``gs://`` gives ``gcs.GCSStorage``. Both are named in
``_BUILTIN_BACKENDS`` by module path and imported on first use, so the backends import this
module and never the reverse; :func:`register_backend` adds others. Anything else is refused
with ``UnsupportedStorageError``.
"""

from __future__ import annotations

import abc
import importlib
import json
import mimetypes
import os
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from stylegan_common.errors import (
    StorageError,
    UnsupportedStorageError,
)

GENERATION_KEY = "generation"


def check_name(name: str) -> str:
    """Refuse names that could escape the storage root."""
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or name.endswith("/"):
        raise StorageError(f"storage: {name!r} is not a relative object name like 'dir/file.pt'")
    return str(path)


def read_local_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a local file to upload; ``StorageError`` naming it when it cannot be read."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise StorageError(f"storage: cannot read {path} to upload it: {exc}") from exc


def decode_pointer(raw: bytes, where: str) -> dict[str, Any]:
    """A pointer object's JSON; ``StorageError`` naming ``where`` when it is not an object."""
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise StorageError(f"storage: pointer {where} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise StorageError(f"storage: pointer {where} is not a JSON object")
    return data


def content_type_of(name: str) -> str:
    """The MIME type an object called ``name`` is served with (``image/png`` for grids)."""
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


class Storage(abc.ABC):
    """An object store holding a run's checkpoints; all names are relative to its root."""

    uri: str

    @abc.abstractmethod
    def write_bytes(self, name: str, data: bytes, create_only: bool = True) -> None:
        """Store ``data`` under ``name`` whole or not at all.

        With ``create_only`` an existing object is never replaced (``StorageError``).
        """

    @abc.abstractmethod
    def read_bytes(self, name: str) -> bytes:
        """The object's bytes; ``ObjectNotFound`` when it does not exist."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Sorted names of the objects starting with ``prefix`` (pointer lock files excluded)."""

    @abc.abstractmethod
    def delete(self, name: str) -> None:
        """Remove the object; deleting what is already gone is not an error."""

    @abc.abstractmethod
    def exists(self, name: str) -> bool: ...

    @abc.abstractmethod
    def read_pointer(self, name: str) -> tuple[dict[str, Any], int] | None:
        """The pointer's JSON and its generation, or ``None`` when there is no pointer yet."""

    @abc.abstractmethod
    def write_pointer(self, name: str, data: dict[str, Any], expected_generation: int) -> int:
        """Replace the pointer if its generation is still ``expected_generation`` (0: absent).

        Returns the new generation. Raises ``PreconditionFailed`` when another writer moved it.
        """

    def put_file(
        self, name: str, path: str | os.PathLike[str], content_type: str | None = None
    ) -> None:
        """Copy the small local file ``path`` (a sample grid) to ``name``, create-only.

        The file is read whole into memory, so this is for files of a few MB; checkpoints go
        through :meth:`write_bytes`. Like a create-only write it never replaces an object, but
        finding ``name`` already holding exactly these bytes (the same grid uploaded again by a
        retried or resumed snapshot) is success. Other bytes under ``name`` raise
        ``StorageError``; so do an unreadable ``path`` and a failed write. ``content_type``
        (guessed from the name when ``None``) is recorded by stores that keep one (GCS), so a
        browser shows a PNG instead of downloading it.
        """
        data = read_local_file(path)
        try:
            self.write_bytes(name, data, create_only=True)
        except StorageError:
            if self._holds(name, data):
                return
            raise

    def _holds(self, name: str, data: bytes) -> bool:
        """Whether ``name`` exists with exactly ``data`` (for small objects only)."""
        try:
            return self.read_bytes(name) == data
        except StorageError:
            return False


StorageFactory = Callable[[str], Storage]
"""Makes a storage from what follows ``scheme://`` for ``file``, from the whole URI otherwise."""

_BUILTIN_BACKENDS: dict[str, str] = {
    "file": "stylegan_common.storage.local:LocalStorage",
    "gs": "stylegan_common.storage.gcs:GCSStorage",
}
"""Backends shipped with the project, named by ``module:class`` and imported on first use, so
this module never imports a backend (each backend imports this one) and the GCS client
libraries load only for ``gs://`` URIs."""

_BACKENDS: dict[str, StorageFactory] = {}


def register_backend(scheme: str, factory: StorageFactory) -> None:
    """Let another module serve ``scheme://`` URIs (tests; a future S3 backend)."""
    _BACKENDS[scheme] = factory


def _backend(scheme: str) -> StorageFactory | None:
    """The factory for ``scheme``: registered, or built in and imported now; None if neither."""
    if scheme in _BACKENDS:
        return _BACKENDS[scheme]
    target = _BUILTIN_BACKENDS.get(scheme)
    if target is None:
        return None
    module_name, attr = target.split(":")
    try:
        factory: StorageFactory = getattr(importlib.import_module(module_name), attr)
    except ImportError:
        return None  # the backend's client libraries are not installed
    _BACKENDS[scheme] = factory
    return factory


def _gcs_missing(uri: str) -> Storage:
    raise UnsupportedStorageError(
        f"storage: {uri} needs the gs:// storage backend (google-cloud-storage), which is not "
        "installed; use a local path or file:// for checkpoints"
    )


def open_storage(uri: str) -> Storage:
    """The storage behind ``uri``: a path or ``file://`` (local), ``gs://`` (GCS)."""
    if not uri:
        raise UnsupportedStorageError("storage: empty URI; give a folder path, file:// or gs://")
    scheme, sep, rest = uri.partition("://")
    if not sep:
        scheme, rest = "file", uri
    factory = _backend(scheme)
    if factory is not None:
        return factory(rest if scheme == "file" else uri)
    if scheme == "gs":
        return _gcs_missing(uri)
    raise UnsupportedStorageError(
        f"storage: {uri} uses scheme {scheme!r}; valid are a path, file:// and gs://"
    )
