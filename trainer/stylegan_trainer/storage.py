"""Where checkpoints live: a small object-store interface and its local-disk implementation.

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
``file://`` gives :class:`LocalStorage`; ``gs://`` is served by the GCS backend
(``stylegan_trainer.gcs``, imported on first use, registers itself through
:func:`register_backend`); anything else is refused with ``UnsupportedStorageError``.
"""

from __future__ import annotations

import abc
import contextlib
import fcntl
import json
import mimetypes
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from stylegan_trainer.errors import (
    ObjectNotFound,
    PreconditionFailed,
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


class LocalStorage(Storage):
    """Objects as files under a root folder.

    Objects are written to a temporary file in the destination folder and then linked
    (create-only) or renamed into place, so a reader never sees half an object. The pointer's
    generation is an integer stored in its own JSON; the compare-and-swap holds an exclusive
    ``flock`` on ``<name>.lock`` while it reads, compares and ``os.replace``-s.
    """

    LOCK_SUFFIX = ".lock"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.uri = str(self.root)

    def _path(self, name: str) -> Path:
        return self.root / check_name(name)

    def _write_temp(self, target: Path, data: bytes) -> Path:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(
                prefix="." + target.name + ".", suffix=".tmp", dir=target.parent
            )
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise StorageError(f"storage: cannot write {target}: {exc}") from exc
        return Path(tmp)

    def write_bytes(self, name: str, data: bytes, create_only: bool = True) -> None:
        target = self._path(name)
        tmp = self._write_temp(target, data)
        try:
            if create_only:
                try:
                    os.link(tmp, target)  # fails if target exists: create-only, atomic
                except FileExistsError:
                    raise StorageError(f"storage: {target} already exists (create-only)") from None
            else:
                os.replace(tmp, target)
        except OSError as exc:
            raise StorageError(f"storage: cannot write {target}: {exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)

    def read_bytes(self, name: str) -> bytes:
        path = self._path(name)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise ObjectNotFound(f"storage: {path} does not exist") from None
        except OSError as exc:
            raise StorageError(f"storage: cannot read {path}: {exc}") from exc

    def list(self, prefix: str = "") -> list[str]:
        if not self.root.is_dir():
            return []
        names = []
        for path in self.root.rglob("*"):
            if not path.is_file() or path.name.startswith("."):
                continue
            name = path.relative_to(self.root).as_posix()
            if name.startswith(prefix) and not name.endswith(self.LOCK_SUFFIX):
                names.append(name)
        return sorted(names)

    def delete(self, name: str) -> None:
        path = self._path(name)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"storage: cannot delete {path}: {exc}") from exc

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()

    @contextlib.contextmanager
    def _locked(self, name: str) -> Iterator[None]:
        lock_path = self._path(name + self.LOCK_SUFFIX)
        try:
            lock_path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StorageError(f"storage: cannot lock {lock_path}: {exc}") from exc
        try:
            # flock is released by the kernel if the process dies: no stale locks to break.
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _read_pointer_unlocked(self, name: str) -> tuple[dict[str, Any], int] | None:
        try:
            raw = self.read_bytes(name)
        except ObjectNotFound:
            return None
        data = decode_pointer(raw, str(self._path(name)))
        return data, int(data.get(GENERATION_KEY, 0))

    def read_pointer(self, name: str) -> tuple[dict[str, Any], int] | None:
        return self._read_pointer_unlocked(name)

    def write_pointer(self, name: str, data: dict[str, Any], expected_generation: int) -> int:
        with self._locked(name):
            current = self._read_pointer_unlocked(name)
            generation = 0 if current is None else current[1]
            if generation != expected_generation:
                raise PreconditionFailed(
                    f"storage: pointer {self._path(name)} is at generation {generation}, "
                    f"not {expected_generation}: another writer moved it"
                )
            new_generation = generation + 1
            body = dict(data, **{GENERATION_KEY: new_generation})
            self.write_bytes(name, json.dumps(body, indent=1).encode(), create_only=False)
        return new_generation


StorageFactory = Callable[[str], Storage]
_BACKENDS: dict[str, StorageFactory] = {}


def register_backend(scheme: str, factory: StorageFactory) -> None:
    """Let another module (the GCS backend) serve ``scheme://`` URIs."""
    _BACKENDS[scheme] = factory


def _load_gcs_backend() -> None:
    """Import the GCS backend, which registers itself; absent libraries leave gs:// unserved."""
    try:
        import stylegan_trainer.gcs  # noqa: F401
    except ImportError:
        return


def _gcs_missing(uri: str) -> Storage:
    raise UnsupportedStorageError(
        f"storage: {uri} needs the gs:// storage backend (google-cloud-storage), which is not "
        "built yet; use a local path or file:// for checkpoints"
    )


def open_storage(uri: str) -> Storage:
    """The storage behind ``uri``: a path or ``file://`` (local), ``gs://`` (GCS hook)."""
    if not uri:
        raise UnsupportedStorageError("storage: empty URI; give a folder path, file:// or gs://")
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return LocalStorage(uri)
    if scheme == "file":
        return LocalStorage(rest)
    if scheme == "gs" and scheme not in _BACKENDS:
        _load_gcs_backend()
    if scheme in _BACKENDS:
        return _BACKENDS[scheme](uri)
    if scheme == "gs":
        return _gcs_missing(uri)
    raise UnsupportedStorageError(
        f"storage: {uri} uses scheme {scheme!r}; valid are a path, file:// and gs://"
    )
