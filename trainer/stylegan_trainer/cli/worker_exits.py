"""Carrying the workers' exit codes through torchrun: the record a rank leaves, the code chosen.

torchrun (``torch.distributed.run``) ends with 1 whenever a worker fails, whatever the
worker's own code was, so a Job's ``podFailurePolicy`` that fails at once on exit 64 of the
trainer container (``stylegan_operator.reconcile.jobs``) would never see a 64 and a typo would
be retried on the whole GPU group. ``stylegan torchrun`` (``launch_commands``) therefore gives
its workers a private folder in ``EXIT_DIR_ENV``; ``stylegan train`` writes its nonzero exit
code there as ``rank-<RANK>`` (JSON: ``exit_code``, ``message``) just before it exits, and
the launcher picks the code the pod exits with by :func:`choose_exit_code`:

* 64 if any rank recorded 64: one rank's bad configuration is the whole run's, retrying
  cannot help, and the ranks torchrun stopped because of it (SIGTERM, recorded as 75 or not
  at all) must not hide it;
* else 75 if any rank recorded 75 (retryable: checkpoint I/O, preempted by SIGTERM);
* else torchrun's own code: a worker that crashed (a traceback, an OOM kill) records
  nothing and torchrun's 1 says "failed, counts against the retries" already; but torchrun's
  own usage error (argparse's 2: an unknown or missing torchrun option, before any worker
  starts) becomes 64, the project's code for bad input (README, "Exit codes").

The record is written to a temporary name and renamed, so the launcher never reads half a
record from a worker killed while writing it; unreadable records are ignored. The first line
of the chosen record's message becomes the container's termination message when the pod has
one (Kubernetes' ``/dev/termination-log``): the operator quotes it when it fails a run on
exit 64, where otherwise the tail of the log would be torchrun's failure report.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from stylegan_common.errors import EXIT_CONFIG, EXIT_RETRYABLE

EXIT_DIR_ENV = "STYLEGAN_EXIT_DIR"
"""Names the launcher's private folder of exit records; unset, ``stylegan train`` writes none."""
TERMINATION_LOG_ENV = "STYLEGAN_TERMINATION_LOG"
"""Overrides where the termination message goes (tests); Kubernetes' default path otherwise."""
DEFAULT_TERMINATION_LOG = "/dev/termination-log"
RECORD_PREFIX = "rank-"
MAX_MESSAGE_CHARS = 1024  # Kubernetes keeps 4096 bytes of a termination message
PRECEDENCE = (EXIT_CONFIG, EXIT_RETRYABLE)
"""Worker codes that replace torchrun's, first match wins."""
ARGPARSE_USAGE = 2
"""What torchrun's argparse exits with for a bad command line (a failed worker gives 1)."""


@dataclass(frozen=True)
class WorkerExit:
    """What one rank recorded: its exit code and the one-line reason (may be empty)."""

    rank: str
    exit_code: int
    message: str = ""


def record_exit(code: int, message: str = "", env: dict[str, str] | None = None) -> Path | None:
    """Leave ``code`` for the launcher when one is listening and the code is not 0.

    Returns the record's path, or None when nothing was written. Never raises: the exit
    code itself still leaves the process, recording it is a courtesy to the launcher.
    """
    env = os.environ if env is None else env
    folder = env.get(EXIT_DIR_ENV)
    if not folder or code == 0:
        return None
    rank = env.get("RANK", "0")
    path = Path(folder) / f"{RECORD_PREFIX}{rank}"
    partial = Path(folder) / f".{RECORD_PREFIX}{rank}.partial"
    try:
        partial.write_text(json.dumps({"exit_code": code, "message": message}), encoding="utf-8")
        os.replace(partial, path)
    except OSError:
        return None
    return path


def read_exits(folder: Path) -> list[WorkerExit]:
    """The records in ``folder``, by rank; partial and unreadable ones left out."""
    out: list[WorkerExit] = []
    for path in sorted(folder.glob(f"{RECORD_PREFIX}*")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            code = data["exit_code"]
            message = data.get("message") or ""
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
        if isinstance(code, int) and not isinstance(code, bool) and isinstance(message, str):
            out.append(WorkerExit(path.name[len(RECORD_PREFIX):], code, message))
    return sorted(out, key=lambda e: (len(e.rank), e.rank))  # rank 2 before rank 10


def choose_exit_code(torchrun_code: int, worker_codes: Iterable[int]) -> int:
    """64 if any worker said 64, else 75 if any said 75, else torchrun's own code (its usage
    error 2 as 64)."""
    codes = set(worker_codes)
    fallback = EXIT_CONFIG if torchrun_code == ARGPARSE_USAGE else torchrun_code
    return next((code for code in PRECEDENCE if code in codes), fallback)


def returncode_as_exit_code(returncode: int) -> int:
    """A child's return code as a shell reports it: killed by signal N is 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def termination_message(exits: Iterable[WorkerExit], chosen: int) -> str:
    """The first line of the lowest rank's message among those that recorded ``chosen``."""
    for worker in exits:
        if worker.exit_code == chosen and worker.message.strip():
            return worker.message.strip().splitlines()[0][:MAX_MESSAGE_CHARS]
    return ""


def write_termination_message(text: str, env: dict[str, str] | None = None) -> bool:
    """Write ``text`` to the termination log if that file already exists and is writable.

    Kubernetes creates the file for every container; elsewhere (a laptop, CI) there is none,
    and a launcher running as root must not create ``/dev/termination-log``, hence no
    ``O_CREAT``. Returns whether it was written.
    """
    env = os.environ if env is None else env
    if not text:
        return False
    path = env.get(TERMINATION_LOG_ENV) or DEFAULT_TERMINATION_LOG
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    except OSError:
        return False
    return True
