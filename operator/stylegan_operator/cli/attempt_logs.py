"""The logs a run's attempts left beside their checkpoints, for ``stylegan logs --attempt``.

The trainer's rank 0 copies its ``log.txt`` to ``logs/attempt-<N>/`` under
``spec.checkpoints.uri`` at every tick and when it exits (names in
``stylegan_common.run_files``), so the log of a failed, preempted or finished attempt can be
read after its pods are gone, ``gs://`` runs included. This module reads it back; picking
*which* attempt is :func:`wanted_attempt`, pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stylegan_common.run_files import attempt_log, logged_attempts


def wanted_attempt(run: Mapping[str, Any], attempt: int | None) -> int | None:
    """The attempt asked for, else the run's current one (``status.attempt``), else None."""
    if attempt is not None:
        return attempt
    current = (run.get("status") or {}).get("attempt")
    return int(current) if isinstance(current, int) and current > 0 else None


def last_lines(data: bytes, tail: int | None) -> bytes:
    """The last ``tail`` lines of ``data`` (all of it for None), as ``kubectl logs --tail``."""
    if tail is None:
        return data
    if tail == 0:
        return b""
    lines = data.splitlines(keepends=True)
    return b"".join(lines[-tail:])


def read_attempt_log(storage: Any, attempt: int) -> bytes | None:
    """The archived ``log.txt`` of ``attempt`` from an open storage, None when there is none."""
    from stylegan_common.errors import ObjectNotFound

    try:
        return bytes(storage.read_bytes(attempt_log(attempt)))
    except ObjectNotFound:
        return None


def archived_attempts(storage: Any) -> list[int]:
    """The attempts that left a log in the storage, oldest first."""
    return logged_attempts(storage.list("logs/"))
