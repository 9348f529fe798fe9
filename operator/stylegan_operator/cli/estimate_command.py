"""``stylegan estimate``: the command around ``stylegan_operator.cost.estimate``.

Reads the options, a price catalog (``--catalog``) and optionally a benchmark file, and prints
the table (or JSON). Bad input is exit 64, naming the option.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import yaml

from stylegan_common.cli import output_option
from stylegan_common.errors import EXIT_CONFIG
from stylegan_operator.cost.calibration import (
    DEFAULT_KIMG,
    PRESET_LABEL,
    PRESETS,
    SOURCES,
    load_benchmark,
)
from stylegan_operator.cost.estimate import (
    EstimateRequest,
    estimate,
    estimate_from_benchmark,
    readme_rows,
)
from stylegan_operator.cost.estimate_table import render_notes, render_table
from stylegan_operator.cost.pricing import DEFAULT_CATALOG, CostError, PriceCatalog

# --------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------


class EstimateInputError(click.ClickException):
    """Bad input: exit code 64, the trainer contract's "bad configuration"."""

    exit_code = EXIT_CONFIG


def _load_catalog(path: Path | None) -> PriceCatalog:
    if path is None:
        return DEFAULT_CATALOG
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CostError(f"--catalog {path}: cannot read YAML: {exc}") from None
    return PriceCatalog.from_dict(data or {})


_HELP = """Plan a run: time and cost of training StyleGAN2, before any run.

\b
Figures come from published training speeds (StyleGAN2 README, StyleGAN2-ADA
PyTorch README, StyleGAN3 configs.md) or from --from-benchmark, and prices from
the cost catalog (GCP us-central1 list prices; V100 2.48 USD per GPU-hour).
Without --gpus it prints 1, 2, 4 and 8 GPUs per node.

\b
Assumptions, marked in the basis column:
  published     the published figure for that GPU count
  interpolated  linear in 1/gpus between two published GPU counts
  extrapolated  from the nearest published count, 0.95 efficiency per doubling
  scaled        another GPU's figure x a throughput ratio: A100/V100 as measured
                in StyleGAN3 configs.md (1.20-1.65x); H100 = A100 x 1.64, L4 =
                V100 x 0.33, T4 = V100 x 0.36 from memory bandwidth (assumptions)
Several nodes are assumed to scale like one DGX-1. Raw s/kimg figures
(configs.md, benchmarks) leave out snapshots and metrics: see --overhead.

\b
Examples:
  stylegan estimate                          # config F, 1024x1024, 25000 kimg, V100
  stylegan estimate --gpus 8 --currency JPY
  stylegan estimate --preset paper256 --gpu A100 --gpus 8 --spot
  stylegan estimate --from-benchmark bench.json --gpu H100 --gpus 8 --nodes 2
  stylegan estimate --table
"""


@click.command("estimate", help=_HELP)
@click.option(
    "--resolution", type=int, default=None, help="Output resolution (default: the preset's, 1024)."
)
@click.option(
    "--preset",
    type=click.Choice(PRESETS),
    default="stylegan2",
    show_default=True,
    help="Training configuration (stylegan2 = config F).",
)
@click.option(
    "--kimg",
    type=float,
    default=DEFAULT_KIMG,
    show_default=True,
    help="Training length, thousands of real images.",
)
@click.option(
    "--gpu",
    "gpu",
    default="V100",
    show_default=True,
    help="GPU type: V100, A100, A100-80GB, H100, L4, T4 or a node label value.",
)
@click.option(
    "--gpus", type=int, default=None, help="GPUs per node (default: rows for 1, 2, 4, 8)."
)
@click.option("--nodes", type=int, default=1, show_default=True, help="Nodes.")
@click.option(
    "--currency",
    default=None,
    help="Display currency: USD, EUR, GBP, JPY (default: the catalog's).",
)
@click.option(
    "--price", type=float, default=None, help="USD per GPU-hour, instead of the catalog's."
)
@click.option("--spot", is_flag=True, help="Use spot prices.")
@click.option(
    "--source",
    type=click.Choice(sorted(k for k in SOURCES if k != "benchmark")),
    default=None,
    help="Use only this calibration source.",
)
@click.option(
    "--overhead",
    type=float,
    default=0.0,
    show_default=True,
    help="Extra time fraction for snapshots/metrics (configs.md: up to 0.05).",
)
@click.option(
    "--from-benchmark",
    "benchmark",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="JSON printed by `stylegan benchmark -o json`.",
)
@click.option(
    "--catalog",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Price catalog YAML (the chart's `cost:` values).",
)
@click.option(
    "--table", is_flag=True, help="Print the StyleGAN2 README training-time table, priced."
)
@output_option("table", "json", "yaml", help="A table with notes for people, or the rows as "
               "JSON or YAML for scripts.")
def estimate_cmd(
    resolution: int | None,
    preset: str,
    kimg: float,
    gpu: str,
    gpus: int | None,
    nodes: int,
    currency: str | None,
    price: float | None,
    spot: bool,
    source: str | None,
    overhead: float,
    benchmark: Path | None,
    catalog: Path | None,
    table: bool,
    output: str,
) -> None:
    try:
        prices = _load_catalog(catalog)
        if currency is not None:
            prices.rate(currency, "--currency")
        if table:
            rows = readme_rows(prices, currency=currency, price_per_gpu_hour_usd=price, spot=spot)
        else:
            point = load_benchmark(benchmark) if benchmark else None
            counts = (gpus,) if gpus is not None else (1, 2, 4, 8)
            rows = []
            for count in counts:
                request = EstimateRequest(
                    preset=preset,
                    resolution=resolution,
                    kimg=kimg,
                    gpu_type=gpu,
                    gpus_per_node=count,
                    nodes=nodes,
                    currency=currency,
                    price_per_gpu_hour_usd=price,
                    spot=spot,
                    source=source,
                    overhead=overhead,
                )
                rows.append(
                    estimate_from_benchmark(point, request, prices)
                    if point
                    else estimate(request, prices)
                )
    except CostError as exc:
        raise EstimateInputError(str(exc)) from None
    if output == "json":
        click.echo(json.dumps({"rows": [r.to_json() for r in rows]}, indent=2))
        return
    if output == "yaml":
        click.echo(yaml.safe_dump({"rows": [r.to_json() for r in rows]}, sort_keys=False), nl=False)
        return
    title = (
        "StyleGAN2 README training times (NVIDIA DGX-1, Tesla V100), priced"
        if table
        else f"Estimate: {PRESET_LABEL.get(rows[0].preset, rows[0].preset)}, "
        f"{rows[0].resolution}x{rows[0].resolution}, {rows[0].kimg:,.0f} kimg, "
        f"{'spot' if spot else 'on-demand'}"
    )
    click.echo(title)
    click.echo(render_table(rows))
    click.echo(render_notes(rows, prices))
