"""The trainer's exceptions and the exit codes of every ``stylegan`` command.

The trainer contract (DESIGN.md) gives every way a training process can end one exit code,
because the operator decides from that code alone whether to retry a pod; every other
command uses the same codes (README, "Exit codes", lists exactly the ``EXIT_*`` names here,
and a test holds it to them):

* ``EXIT_OK`` (0): training reached its target, or stopped at its time bound; a command did
  what was asked (``--help`` included).
* ``EXIT_FAILURE`` (1): an unexpected failure, a bug (Python prints the traceback); also
  torchrun's own code when a rank failed without saying why.
* ``EXIT_CONFIG`` (64, ``EX_USAGE``): the configuration or the input is wrong, click's usage
  errors (unknown option, bad choice, missing argument) included. Retrying cannot help, so
  the operator fails the run. Raised *before* any compute, with one line naming the field,
  option or file and what would be valid.
* ``EXIT_RETRYABLE`` (75, ``EX_TEMPFAIL``): something outside the configuration failed (a
  checkpoint write, a preemption, the API server or the storage out of reach). A new attempt
  resumes from the latest checkpoint; a command may simply be run again.
* ``EXIT_INTERRUPTED`` (130, 128 + SIGINT): stopped by Ctrl-C, as a shell reports it.

Every exception here carries its ``exit_code`` so the command layer needs no mapping table.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 64
EXIT_RETRYABLE = 75
EXIT_INTERRUPTED = 130


class TrainerError(Exception):
    """Base class of the trainer's own failures; ``exit_code`` is what the process returns."""

    exit_code: int = EXIT_FAILURE


class ConfigError(TrainerError):
    """A bad option, preset, resume target or flag combination: never retried (exit 64)."""

    exit_code = EXIT_CONFIG


class DatasetError(ConfigError):
    """The dataset is missing, empty, unreadable or of the wrong shape (exit 64)."""


class StorageError(TrainerError):
    """Reading or writing checkpoints failed; a later attempt may succeed (exit 75)."""

    exit_code = EXIT_RETRYABLE


class ObjectNotFound(StorageError):
    """The named object does not exist in the storage."""


class PreconditionFailed(StorageError):
    """A compare-and-swap pointer write lost the race: another writer moved the pointer."""


class UnsupportedStorageError(StorageError, ConfigError):
    """The storage URI names a scheme this build cannot open: a configuration error (exit 64)."""

    exit_code = EXIT_CONFIG


class Preempted(TrainerError):
    """The process was asked to stop (SIGTERM) before training completed (exit 75)."""

    exit_code = EXIT_RETRYABLE
