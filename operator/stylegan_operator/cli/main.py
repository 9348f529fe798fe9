"""The ``stylegan`` command line: one click group whose subcommands load lazily.

Each subcommand lives next to the code it drives: training, sampling, quality and plots in
``stylegan_trainer.cli``; the resource, the cluster and planning in ``stylegan_operator.cli``.
Loading them lazily keeps ``stylegan --help`` and the operator's start free of torch and
matplotlib.

One distribution, two installs (README, "Install"): ``pip install stylegan-operator`` is the
operator and the cluster commands, without torch; ``pip install 'stylegan-operator[trainer]'``
adds the trainer. Without the extra the trainer's commands are still listed (under their own
heading) and each answers with one line that names the extra to install, exit 64.

Exit codes shared by every subcommand (README, "Exit codes"; ``stylegan_common.errors``):
0 done, 1 a bug, 64 bad configuration or input (never retried), 75 retryable failure, 130
interrupted. The group runs through ``stylegan_common.cli.run_command``, so click's own usage
errors (unknown option, bad choice, missing argument), in the group or in any subcommand,
exit 64 with click's message rather than click's 2.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Sequence
from typing import Any, NamedTuple

import click

from stylegan_common.cli import run_command
from stylegan_common.errors import EXIT_CONFIG


class Entry(NamedTuple):
    """Where a subcommand lives and what ``stylegan --help`` says of it."""

    target: str
    """``module:attribute`` of the click command."""
    help: str
    """The one-line help shown by ``stylegan --help``."""
    extra: str | None = None
    """The optional dependency group it needs (``pip install 'stylegan-operator[extra]'``)."""


TRAINER = "trainer"
_TRAINER_CLI = "stylegan_trainer.cli"
_OPERATOR_CLI = "stylegan_operator.cli"

COMMANDS: dict[str, Entry] = {
    "train": Entry(f"{_TRAINER_CLI}.train_commands:train_cmd",
                   "Train StyleGAN2 (alone or torchrun).", TRAINER),
    "torchrun": Entry(f"{_TRAINER_CLI}.launch_commands:torchrun_cmd",
                      "torchrun, exiting with the workers' 64 or 75.", TRAINER),
    "generate": Entry(f"{_TRAINER_CLI}.sample_commands:generate_cmd",
                      "Turn a checkpoint into faces.", TRAINER),
    "serve": Entry(f"{_TRAINER_CLI}.serve_commands:serve_cmd",
                   "Serve a checkpoint's faces over HTTP.", TRAINER),
    "dataset": Entry(f"{_TRAINER_CLI}.train_commands:dataset_cmd",
                     "Convert an image folder to a zip.", TRAINER),
    "quality": Entry(f"{_TRAINER_CLI}.sample_commands:quality_cmd",
                     "Measure FID/KID, precision, recall.", TRAINER),
    "plot": Entry(f"{_TRAINER_CLI}.plot_commands:plot_cmd",
                  "Plot a run's losses, speed, quality and cost.", TRAINER),
    "tensorboard": Entry(f"{_TRAINER_CLI}.plot_commands:tensorboard_cmd",
                         "Export a run's stats as TensorBoard event files.", TRAINER),
    "benchmark": Entry(f"{_TRAINER_CLI}.train_commands:benchmark_cmd",
                       "Measure sec/kimg on this device.", TRAINER),
    "demo": Entry(f"{_TRAINER_CLI}.train_commands:demo_cmd",
                  "Train faces on CPU for ten minutes.", TRAINER),
    "crd": Entry(f"{_OPERATOR_CLI}.resource_commands:crd_cmd", "Print the StyleGANRun CRD."),
    "render": Entry(f"{_OPERATOR_CLI}.resource_commands:render_cmd",
                    "Print the objects a run becomes."),
    "operator": Entry("stylegan_operator.controller.runner:operator_cmd",
                      "Run the operator (kopf)."),
    "estimate": Entry(f"{_OPERATOR_CLI}.estimate_command:estimate_cmd",
                      "Plan a run's time and cost."),
    "runs": Entry(f"{_OPERATOR_CLI}.cluster_commands:runs_cmd",
                  "List runs with progress and cost."),
    "logs": Entry(f"{_OPERATOR_CLI}.cluster_commands:logs_cmd",
                  "Print a run's rank-0 trainer log."),
    "samples": Entry(f"{_OPERATOR_CLI}.cluster_commands:samples_cmd",
                     "Fetch a run's latest image grid."),
}

EXTRA_PROBES: dict[str, str] = {TRAINER: "torch"}
"""The module whose presence says an extra is installed (found without importing it)."""


def extra_installed(extra: str | None) -> bool:
    """Whether the optional dependencies ``extra`` names are importable (None: always)."""
    return extra is None or importlib.util.find_spec(EXTRA_PROBES[extra]) is not None


def _needs_extra(name: str, extra: str) -> click.Command:
    """A stand-in for a command whose extra is missing: one line naming it, exit 64."""

    @click.command(name=name, context_settings={"ignore_unknown_options": True},
                   add_help_option=False)
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def missing(args: tuple[str, ...]) -> None:
        click.echo(
            f"stylegan {name}: needs the {extra} dependencies ({EXTRA_PROBES[extra]} and "
            f"friends), which are not installed; "
            f"pip install 'stylegan-operator[{extra}]'", err=True)
        raise SystemExit(EXIT_CONFIG)

    return missing


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module only when it is invoked, and exits
    with the project's codes (``run_command``) when run as the program."""

    def main(  # type: ignore[override]
        self, args: Sequence[str] | None = None, prog_name: str | None = None,
        complete_var: str | None = None, standalone_mode: bool = True, **extra: Any,
    ) -> Any:
        if not standalone_mode:  # run_command's own call, or a caller that maps errors itself
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        sys.exit(run_command(self, args, prog_name))

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        if not extra_installed(entry.extra):
            assert entry.extra is not None
            return _needs_extra(cmd_name, entry.extra)
        module_name, attr = entry.target.split(":")
        command: click.Command = getattr(importlib.import_module(module_name), attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        ready = [(n, COMMANDS[n].help) for n in sorted(COMMANDS)
                 if extra_installed(COMMANDS[n].extra)]
        with formatter.section("Commands"):
            formatter.write_dl(ready)
        for extra in sorted({e.extra for e in COMMANDS.values() if e.extra}):
            if extra_installed(extra):
                continue
            rows = [(n, COMMANDS[n].help) for n in sorted(COMMANDS) if COMMANDS[n].extra == extra]
            with formatter.section(f"Needs pip install 'stylegan-operator[{extra}]'"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="stylegan-operator")
def main() -> None:
    """Train StyleGAN2 on Kubernetes GPU nodes and know what it costs."""


if __name__ == "__main__":
    main()
