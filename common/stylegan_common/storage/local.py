"""Checkpoint storage in a local folder (a path or ``file://``): the object store imitated.

Objects are files under a root folder; the pointer's compare-and-swap holds an ``flock``
while it reads, compares and replaces (see :class:`LocalStorage`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stylegan_common.errors import ObjectNotFound, PreconditionFailed, StorageError
from stylegan_common.storage.base import GENERATION_KEY, Storage, check_name, decode_pointer


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
