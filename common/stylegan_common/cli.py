"""What every ``stylegan`` command shares: its exit codes and its output options.

Exit codes (README, "Exit codes"; the values are in :mod:`stylegan_common.errors`). click's
standalone mode ends a usage error (an unknown option, a bad choice, a missing argument) with
exit 2 and Ctrl-C with 1. This project gives bad input 64 (``EX_USAGE``) wherever it comes
from, because the operator, the Job's ``podFailurePolicy`` and scripts decide from the code
alone whether a retry can help; so :func:`run_command` runs a click command with
``standalone_mode=False`` and maps what click raises itself: ``UsageError`` (and its
``BadParameter``, ``NoSuchOption``, ``MissingParameter``) to 64 with click's own message,
``Abort`` (Ctrl-C, end of input at a prompt) to 130 as a shell reports SIGINT. ``--help``
and ``--version`` still exit 0.

Output options, as kubectl spells them: ``-o/--output`` is always a *format* (``table``,
``wide``, ``yaml``, ``json``, whichever fit the command), and a file to write is
``-f/--output-file`` (``--output-file`` alone where ``-f`` already means something else, such
as ``render -f`` (the manifest read) or ``logs -f`` (follow)). A command that writes a folder
takes ``--outdir``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from stylegan_common.errors import EXIT_CONFIG, EXIT_INTERRUPTED, EXIT_OK

F = TypeVar("F", bound=Callable[..., Any])


def run_command(
    command: click.Command, args: Sequence[str] | None = None, prog_name: str | None = None
) -> int:
    """Run ``command`` as a program would (``args`` default to ``sys.argv[1:]``); its exit code.

    A command that calls ``sys.exit`` itself still exits that way (``SystemExit`` passes).
    """
    try:
        result = command.main(
            args=list(args) if args is not None else None, prog_name=prog_name,
            standalone_mode=False,
        )  # fmt: skip
    except click.UsageError as exc:
        exc.show()
        return EXIT_CONFIG
    except click.ClickException as exc:  # a command's own error: it carries its exit code
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("Aborted!", err=True)
        return EXIT_INTERRUPTED
    # standalone_mode=False returns ctx.exit()'s code (--help: 0), else the callback's value.
    return result if isinstance(result, int) and not isinstance(result, bool) else EXIT_OK


def output_option(*formats: str, help: str) -> Callable[[F], F]:
    """``-o/--output FORMAT``, one of ``formats``; the first is the default."""
    return click.option(
        "-o", "--output", "output", type=click.Choice(formats), default=formats[0],
        show_default=True, help=help,
    )  # fmt: skip


def output_file_option(help: str, short: bool = True) -> Callable[[F], F]:
    """``-f/--output-file FILE`` (``short=False``: ``--output-file`` alone), a ``Path`` or None."""
    names = ("-f", "--output-file") if short else ("--output-file",)
    return click.option(
        *names, "output_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
        metavar="FILE", help=help,
    )  # fmt: skip
