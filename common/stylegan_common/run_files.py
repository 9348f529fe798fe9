"""The names of what a run keeps beside its checkpoints, which the trainer writes and the CLI reads.

Under ``spec.checkpoints.uri`` (a ``gs://`` prefix or a claim's folder), next to the
checkpoints and ``latest.json``:

* ``logs/attempt-<N>/log.txt``: rank 0's log of attempt N (every line it printed, and the
  error that ended it), and ``logs/attempt-<N>/stats.jsonl``: its tick statistics. A run
  outside Kubernetes has no attempt number and writes ``logs/local/``. They are re-uploaded
  at every tick and when the trainer exits, so the log of a failed or preempted attempt
  outlives its pod (``stylegan logs RUN --attempt N``).

Plain names and pure functions: both programs import them, neither imports the other.
"""

from __future__ import annotations

import re
from typing import Final

LOGS_DIR: Final = "logs"
LOG_FILE: Final = "log.txt"
STATS_FILE: Final = "stats.jsonl"
LOCAL_ATTEMPT: Final = "local"
_ATTEMPT_DIR: Final = re.compile(rf"^{LOGS_DIR}/attempt-(?P<n>\d+)/{re.escape(LOG_FILE)}$")


def attempt_folder(attempt: int | None) -> str:
    """``logs/attempt-<N>`` (``logs/local`` without an attempt number)."""
    label = LOCAL_ATTEMPT if attempt is None else f"attempt-{attempt}"
    return f"{LOGS_DIR}/{label}"


def attempt_log(attempt: int | None) -> str:
    """The object name of an attempt's ``log.txt``."""
    return f"{attempt_folder(attempt)}/{LOG_FILE}"


def logged_attempts(names: list[str]) -> list[int]:
    """The attempt numbers that have a ``log.txt`` among object names, in order."""
    found = (_ATTEMPT_DIR.match(name) for name in names)
    return sorted({int(match.group("n")) for match in found if match})
