"""The ``stylegan`` command line: one click group whose subcommands load lazily.

Each subcommand lives next to the code it drives (training in
``stylegan_trainer.train_commands``, sampling and quality in
``stylegan_trainer.sample_commands``, plots in ``stylegan_trainer.plot_commands``, the resource
in ``stylegan_operator.commands``, planning in ``stylegan_operator.estimate``). Loading them
lazily keeps ``stylegan --help`` and the operator's start free of torch and matplotlib.

Exit codes shared by every subcommand (the trainer contract in DESIGN.md):
0 done, 64 bad configuration or input (never retried), 75 retryable failure.
"""

from __future__ import annotations

import importlib

import click

# name -> ("module:attribute", one-line help shown by `stylegan --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("stylegan_trainer.train_commands:train_cmd", "Train StyleGAN2 (alone or torchrun)."),
    "generate": ("stylegan_trainer.sample_commands:generate_cmd", "Turn a checkpoint into faces."),
    "dataset": ("stylegan_trainer.train_commands:dataset_cmd", "Convert an image folder to a zip."),
    "quality": (
        "stylegan_trainer.sample_commands:quality_cmd",
        "Measure FID/KID, precision, recall."),
    "plot": (
        "stylegan_trainer.plot_commands:plot_cmd",
        "Plot a run's losses, speed, quality and cost."),
    "benchmark": (
        "stylegan_trainer.train_commands:benchmark_cmd",
        "Measure sec/kimg on this device."),
    "demo": ("stylegan_trainer.train_commands:demo_cmd", "Train faces on CPU for ten minutes."),
    "crd": ("stylegan_operator.commands:crd_cmd", "Print the StyleGANRun CRD."),
    "render": ("stylegan_operator.commands:render_cmd", "Print the objects a run becomes."),
    "operator": ("stylegan_operator.runner:operator_cmd", "Run the operator (kopf)."),
    "estimate": ("stylegan_operator.estimate:estimate_cmd", "Plan a run's time and cost."),
    "runs": ("stylegan_operator.cluster_commands:runs_cmd", "List runs with progress and cost."),
    "logs": ("stylegan_operator.cluster_commands:logs_cmd", "Print a run's rank-0 trainer log."),
    "samples": (
        "stylegan_operator.cluster_commands:samples_cmd",
        "Fetch a run's latest image grid."),
}


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module only when it is invoked."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(n for n in COMMANDS if _available(n))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        target, _ = COMMANDS[cmd_name]
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                return None  # that part of the product is not built yet
            raise
        return getattr(module, attr, None)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(n, COMMANDS[n][1]) for n in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _available(name: str) -> bool:
    """True when the subcommand's module and attribute exist (without importing torch)."""
    module_name, attr = COMMANDS[name][0].split(":")
    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.origin is None:
        return False
    with open(spec.origin, encoding="utf-8") as fh:
        source = fh.read()
    return f"{attr} =" in source or f"def {attr}(" in source


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="stylegan-operator")
def main() -> None:
    """Train StyleGAN2 on Kubernetes GPU nodes and know what it costs."""


if __name__ == "__main__":
    main()
