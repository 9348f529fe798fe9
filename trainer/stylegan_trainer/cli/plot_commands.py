"""``stylegan plot`` and ``stylegan tensorboard``: a run folder's history as one PNG, or as
TensorBoard event files.

The drawing is ``stylegan_trainer.report.plots``, the export
``stylegan_trainer.report.tensorboard_export``.

Kept apart from ``sample_commands`` because that module imports torch and a plot needs only
the run's JSON lines and matplotlib. A missing or empty ``stats.jsonl``, a bad price or a
missing matplotlib ends with one line on stderr and exit 64 (the trainer contract).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from stylegan_common.cli import output_file_option
from stylegan_common.errors import ConfigError


@click.command("plot")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@output_file_option("PNG to write  [default: RUN_DIR/progress.png]")
@click.option(
    "--price-per-hour",
    type=float,
    default=None,
    metavar="USD",
    help="Assumed USD per core-hour; adds a cost panel (cores x hours x price).",
)
@click.option(
    "--cores",
    type=int,
    default=None,
    metavar="N",
    help="Cores the run held, for the cost panel  [default: 1]",
)
def plot_cmd(
    run_dir: Path, output_file: Path | None, price_per_hour: float | None, cores: int | None
) -> None:
    """Plot losses, speed, snapshot quality and cost against kimg from RUN_DIR."""
    from stylegan_trainer.report.plots import plot_run

    if cores is not None and price_per_hour is None:
        click.echo("error: --cores: only used with --price-per-hour USD", err=True)
        sys.exit(ConfigError.exit_code)
    try:
        written = plot_run(run_dir, output_file or run_dir / "progress.png",
                           price_per_hour=price_per_hour, cores=cores)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    click.echo(str(written))


@click.command("tensorboard")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--logdir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Folder for the event files  [default: RUN_DIR/tensorboard]",
)  # fmt: skip
def tensorboard_cmd(run_dir: Path, logdir: Path | None) -> None:
    """Export RUN_DIR's stats.jsonl (and quality.jsonl) as TensorBoard event files.

    RUN_DIR is a trainer's outdir, or a copy of logs/attempt-<N>/ from beside a run's
    checkpoints. Then: tensorboard --logdir LOGDIR.
    """
    from stylegan_trainer.report.tensorboard_export import export_run

    try:
        done = export_run(run_dir, logdir)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    click.echo(f"wrote {done.ticks} ticks and {done.snapshots} snapshots "
               f"({len(done.tags)} scalars) to {done.logdir}; view: tensorboard --logdir "
               f"{done.logdir}")
