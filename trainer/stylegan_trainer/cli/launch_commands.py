"""The ``stylegan torchrun`` command: torchrun, but exiting with the workers' own 64 or 75.

``stylegan torchrun ARGS...`` runs ``python -m torch.distributed.run ARGS...`` (this
interpreter's torch) as a child process and exits with what the workers meant rather than
what torchrun reports: torchrun turns every failed worker into exit 1, which would hide a
bad configuration (64, never retried) from the Job's ``podFailurePolicy``. How the codes
travel and which one wins is ``worker_exits``; this module runs the child. Trainer pods run
it (``stylegan_operator.reconcile.pods``) as their container's command.

Signals: SIGTERM and SIGINT are forwarded to torchrun, which forwards them to its workers,
and the launcher keeps waiting, so the pod's graceful stop still lets the trainer checkpoint
and exit 75. As PID 1 of a container the launcher would otherwise ignore SIGTERM (the kernel
gives PID 1 no default action). torchrun runs in its own process group so that Ctrl-C in a
terminal, or a signal to the launcher's whole group, reaches it once, through the launcher,
rather than twice: a second signal raises again inside torchrun's shutdown and abandons its
workers. So that it does not outlive a launcher killed outright (SIGKILL), torchrun is also
asked (Linux ``PR_SET_PDEATHSIG``) for a SIGTERM when the launcher dies.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import click

from stylegan_trainer.cli.worker_exits import (
    EXIT_DIR_ENV,
    WorkerExit,
    choose_exit_code,
    read_exits,
    returncode_as_exit_code,
    termination_message,
    write_termination_message,
)

FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT)
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def torchrun_argv(args: Sequence[str]) -> list[str]:
    """torchrun from the same interpreter, so the launcher and its workers share one torch."""
    return [sys.executable, "-m", "torch.distributed.run", *args]


def _terminate_with(parent: int) -> Any:
    """A ``preexec_fn``: the child gets SIGTERM when ``parent`` dies (Linux; else nothing)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork, not after

    def in_child() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the request was in place
            os.kill(os.getpid(), signal.SIGTERM)

    return in_child


class _Forwarder:
    """While open, SIGTERM and SIGINT go to the child (held until it exists)."""

    def __init__(self) -> None:
        self.child: subprocess.Popen[bytes] | None = None
        self.pending: list[int] = []
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.child is None:
            self.pending.append(signum)
        else:
            self.child.send_signal(signum)  # a no-op once the child has been reaped

    def __enter__(self) -> _Forwarder:
        self._previous = {s: signal.signal(s, self._handle) for s in FORWARDED_SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def run(self, argv: list[str], env: dict[str, str]) -> int:
        """Start ``argv``, pass it the signals that came early, wait for it: its return code."""
        self.child = subprocess.Popen(argv, env=env, process_group=0,
                                      preexec_fn=_terminate_with(os.getpid()))
        for signum in self.pending:
            self.child.send_signal(signum)
        return self.child.wait()  # retried after each handler (PEP 475)


def _explain(exits: list[WorkerExit], code: int, torchrun_code: int) -> str:
    ranks = [e.rank for e in exits if e.exit_code == code]
    if not ranks:  # torchrun refused its own command line
        return f"stylegan torchrun: exiting {code} for torchrun's usage error ({torchrun_code})"
    return (f"stylegan torchrun: rank{'s' if len(ranks) > 1 else ''} {', '.join(ranks)} "
            f"exited {code}; exiting {code} rather than torchrun's {torchrun_code}")


def launch(args: Sequence[str], env: dict[str, str] | None = None) -> int:
    """Run torchrun with ``args`` and return the exit code the workers call for."""
    env = dict(os.environ if env is None else env)
    with _Forwarder() as forwarder:
        folder = Path(tempfile.mkdtemp(prefix="stylegan-exits-"))  # mode 0700: ours alone
        try:
            env[EXIT_DIR_ENV] = str(folder)
            torchrun_code = returncode_as_exit_code(forwarder.run(torchrun_argv(args), env))
            exits = read_exits(folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        code = choose_exit_code(torchrun_code, (e.exit_code for e in exits))
        if code != torchrun_code:
            click.echo(_explain(exits, code, torchrun_code), err=True)
        if code != 0:
            write_termination_message(termination_message(exits, code), env)
    return code


@click.command(
    "torchrun",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def torchrun_cmd(args: tuple[str, ...]) -> None:
    """Run torchrun with ARGS; exit 64 or 75 when a worker did, else torchrun's own code.

    For example: stylegan torchrun --standalone --nproc-per-node 2 --no-python stylegan train
    --config run.yaml. A worker's 64 (bad configuration) wins over another's 75 (retryable),
    which wins over torchrun's code. torchrun's own help: torchrun --help.
    """
    sys.exit(launch(args))
