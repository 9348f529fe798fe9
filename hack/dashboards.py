"""Grafana dashboards as code: what StyleGAN runs cost and how their training goes.

Builds two dashboards with the Grafana Foundation SDK and writes them as JSON into the Helm
chart (``charts/stylegan-operator/dashboards/``), where the chart ships them to Grafana:

* ``stylegan-cost``: cost by run and by namespace over time, burn rate (how fast the cost
  counter grows, per hour), projected total against budget, GPU-hours and GPUs held, the
  cost of work lost to failures, prices.
* ``stylegan-training``: kimg against the target, progress and ETA, sec/kimg, images/s,
  losses, ADA's augment p, restarts and preemptions, the age of the last checkpoint, the
  phase over time.

Every time panel carries the :data:`MARKERS` annotations (attempts starting and ending,
phase changes); money panels show the currency's symbol through per-currency overrides, and
every panel has a unit.

Rates are PromQL's ``rate()`` of the counters (the exporters precompute none), over
:data:`SPEED_WINDOW`: the totals move once a reconcile (cost) or once a tick (kimg), so a
window of a few of those keeps the line from dropping to zero between two updates.

Usage::

    python hack/dashboards.py           # (re)write the JSON files
    python hack/dashboards.py --check   # exit 1, listing the files, when they have drifted

Every query uses only metrics that ``stylegan_operator.controller.metrics`` exports and
selects by the
template variables ``$namespace`` and ``$run`` (multi-value, "All" = ``.*``) and, for money,
``$currency`` (each money series exists once per currency; USD always). Run metrics carry
``namespace`` and ``run`` themselves, so the operator's scrape must keep them (``honor_labels``
/ ServiceMonitor ``honorLabels: true``); trainer metrics get them from their scrape target:
the pod's namespace as ``namespace`` and its ``stylegan.dev/run`` label as ``run``.

The output is deterministic (stable uids and panel ids, sorted keys, indent 2, trailing
newline), so the committed files diff cleanly and ``--check`` can guard them in CI.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar, get_args

from grafana_foundation_sdk.builders import (
    bargauge,
    common,
    dashboard,
    prometheus,
    statetimeline,
    timeseries,
)
from grafana_foundation_sdk.builders import stat as stat_panel
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import (
    BarGaugeDisplayMode,
    BigValueGraphMode,
    BigValueTextMode,
    LegendDisplayMode,
    LegendPlacement,
    LineInterpolation,
    SortOrder,
    TooltipDisplayMode,
    VisibilityMode,
    VizOrientation,
)
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DashboardLinkType,
    DataSourceRef,
    DynamicConfigValue,
    Threshold,
    ThresholdsMode,
    ValueMap,
    ValueMappingResult,
    VariableOption,
    VariableRefresh,
    VariableSort,
)

from stylegan_operator.api.fields import Currency
from stylegan_operator.controller.metrics import PHASES

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "charts" / "stylegan-operator" / "dashboards"
TAG = "stylegan"

# Panels and variables query the data source the user picks in the $datasource variable.
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")

RUN = 'namespace=~"$namespace", run=~"$run"'
MONEY = RUN + ', currency="$currency"'
BY_RUN = "namespace, run"
RUN_LEGEND = "{{namespace}}/{{run}}"

# Grafana palette names, from calm to alarming.
GREEN, ORANGE, RED, BLUE, PURPLE, GREY = "green", "orange", "red", "blue", "purple", "text"
# Seconds without a new checkpoint after which monitoring/alerts.yaml warns
# (StyleGANRunNoRecentCheckpoint); the checkpoint age panel turns red there too.
CHECKPOINT_STALE_S = 2 * 3600
SPEED_WINDOW = "15m"
"""The rate() window of speed and burn rate: several trainer ticks and reconcile intervals."""
PHASE_COLOURS = {"Pending": BLUE, "Running": GREEN, "Suspended": GREY, "Restarting": ORANGE,
                 "Succeeded": PURPLE, "Failed": RED}


MONEY_UNIT = "money"
"""A panel of money: unit per currency through :func:`in_currency` (Grafana units cannot
follow a template variable, so each allowed currency gets an override)."""
CURRENCY_LEGEND = "{{currency}}"
"""Money legends end with the series' currency code; the overrides match on it."""
CURRENCY_UNITS = {code: f"currency{code}" for code in get_args(Currency)}
"""The ISO codes ``spec.cost.currency`` allows -> Grafana's unit of that currency."""


@dataclass(frozen=True)
class Query:
    """One PromQL target of a panel and the legend of the series it returns."""

    expr: str
    legend: str = RUN_LEGEND


Panel = timeseries.Panel | stat_panel.Panel | bargauge.Panel | statetimeline.Panel
AnyPanel = TypeVar("AnyPanel", timeseries.Panel, stat_panel.Panel, bargauge.Panel,
                   statetimeline.Panel)


# -- query helpers ---------------------------------------------------------------------
def by_run(aggregation: str, metric: str, selector: str = RUN, labels: str = BY_RUN) -> str:
    """``aggregation by (labels) (metric{selector})``: one series per run, whatever the
    scrape adds (job, instance, pod), so a second operator replica never doubles a line."""
    return f"{aggregation} by ({labels}) ({metric}{{{selector}}})"


def phase_code() -> str:
    """The run's phase as a number (1 + its index in PHASES), for a state timeline.

    ``stylegan_run_phase`` is one series per phase, 1 for the current one; weighting each by
    its code and adding them up leaves the current phase's code (0 for a phase the metric
    does not know, which maps to "Unknown").
    """
    terms = [
        f"{index} * " + by_run("max", "stylegan_run_phase", RUN + f', phase="{name}"')
        for index, name in enumerate(PHASES, start=1)
    ]
    return "\n+ ".join(terms)


# -- panel helpers ---------------------------------------------------------------------
def _targets(panel: AnyPanel, queries: Sequence[Query]) -> AnyPanel:
    for index, query in enumerate(queries):
        panel.with_target(
            prometheus.Dataquery()
            .expr(query.expr)
            .legend_format(query.legend)
            .ref_id(chr(ord("A") + index))
            .datasource(DATASOURCE)
        )
    return panel.datasource(DATASOURCE)


def _thresholds(*steps: tuple[float | None, str]) -> dashboard.ThresholdsConfig:
    return (dashboard.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE)
            .steps([Threshold(value=value, color=colour) for value, colour in steps]))


def graph(title: str, description: str, unit: str, queries: Sequence[Query], *,
          width: int = 12, height: int = 8) -> timeseries.Panel:
    """A time series panel whose legend is a table with each series' last value."""
    panel = (
        timeseries.Panel().title(title).description(description)
        .unit("short" if unit == MONEY_UNIT else unit)
        .span(width).height(height)
        .line_width(2).fill_opacity(10).line_interpolation(LineInterpolation.STEP_AFTER)
        .legend(common.VizLegendOptions().display_mode(LegendDisplayMode.TABLE)
                .placement(LegendPlacement.BOTTOM).show_legend(True).calcs(["lastNotNull"]))
        .tooltip(common.VizTooltipOptions().mode(TooltipDisplayMode.MULTI)
                 .sort(SortOrder.DESCENDING))
    )
    return _targets(in_currency(panel) if unit == MONEY_UNIT else panel, queries)


def single(title: str, description: str, unit: str, queries: Sequence[Query], *,
           width: int = 4, height: int = 4, decimals: int | None = 2) -> stat_panel.Panel:
    """A stat panel showing the latest value, with a sparkline."""
    panel = (
        stat_panel.Panel().title(title).description(description)
        .unit("short" if unit == MONEY_UNIT else unit)
        .span(width).height(height)
        .graph_mode(BigValueGraphMode.AREA).text_mode(BigValueTextMode.AUTO)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .thresholds(_thresholds((None, GREEN)))
    )
    if decimals is not None:
        panel.decimals(decimals)
    return _targets(in_currency(panel) if unit == MONEY_UNIT else panel, queries)


def share(title: str, description: str, queries: Sequence[Query], *, width: int = 12,
          height: int = 8, steps: Sequence[tuple[float | None, str]] = ((None, GREEN),)
          ) -> bargauge.Panel:
    """Horizontal bars of a fraction (0..1, shown in percent), coloured by ``steps``."""
    panel = (
        bargauge.Panel().title(title).description(description).unit("percentunit")
        .span(width).height(height).min(0).max(1)
        .display_mode(BarGaugeDisplayMode.GRADIENT).orientation(VizOrientation.HORIZONTAL)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .thresholds(_thresholds(*steps))
    )
    return _targets(panel, queries)


def in_currency(panel: AnyPanel) -> AnyPanel:
    """Give each money series its currency's unit, matched on the legend's last word."""
    for code, unit in sorted(CURRENCY_UNITS.items()):
        panel.override_by_regexp(f".* {code}$|^{code}$",
                                 [DynamicConfigValue(id_val="unit", value=unit)])
    return panel


def dashed(panel: timeseries.Panel, name_regexp: str) -> timeseries.Panel:
    """Draw the series whose display name matches ``name_regexp`` dashed (targets, limits)."""
    return panel.override_by_regexp(name_regexp, [
        DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}),
        DynamicConfigValue(id_val="custom.fillOpacity", value=0),
    ])


# -- annotations -----------------------------------------------------------------------
@dataclass(frozen=True)
class Marker:
    """A Prometheus annotation: a mark on every time panel wherever ``expr`` has a series."""

    name: str
    expr: str
    colour: str
    title: str  # Grafana's titleFormat: {{label}} templates
    text: str

    def query(self) -> dashboard.AnnotationQuery:
        return (dashboard.AnnotationQuery().name(self.name).datasource(DATASOURCE)
                .enable(True).icon_color(self.colour).expr(self.expr))

    def prometheus_fields(self) -> dict[str, object]:
        """What Grafana's Prometheus annotations read beside ``expr`` (the SDK has no
        builder for them): one point per step where the expression has a series."""
        return {"step": MARKER_STEP, "titleFormat": self.title, "textFormat": self.text,
                "tagKeys": "namespace,run", "useValueForTime": False}


MARKER_STEP = "1m"


def _became(selector: str, labels: str) -> str:
    """Series of ``stylegan_run_phase{selector}`` that are 1 now and were not one step ago."""
    now = f"max by ({labels}) (stylegan_run_phase{{{selector}}} == 1)"
    before = f"max by ({labels}) (stylegan_run_phase{{{selector}}} offset {MARKER_STEP} == 1)"
    return f"{now}\nunless {before}"


MARKERS = (
    Marker("Attempt started", _became(RUN + ', phase="Running"', BY_RUN), GREEN,
           RUN_LEGEND + " attempt started", "The run's pods are all Running."),
    Marker("Attempt ended",
           f"max by ({BY_RUN}) (stylegan_run_phase{{{RUN}, phase=\"Running\"}} "
           f"offset {MARKER_STEP} == 1)\nunless max by ({BY_RUN}) "
           f"(stylegan_run_phase{{{RUN}, phase=\"Running\"}} == 1)",
           RED, RUN_LEGEND + " attempt ended",
           "The run left Running (restarting, suspended, succeeded or failed)."),
    Marker("Phase changes", _became(RUN, BY_RUN + ", phase"), BLUE,
           RUN_LEGEND + " {{phase}}", "The run's phase became {{phase}}."),
)
"""Marks on every dashboard's time panels: attempts starting and ending, and phases."""


# -- dashboard skeleton ----------------------------------------------------------------
def _variables(with_currency: bool) -> list[dashboard.QueryVariable | dashboard.DatasourceVariable]:
    def query_variable(name: str, label: str, query: str) -> dashboard.QueryVariable:
        return (dashboard.QueryVariable(name).label(label).query(query).datasource(DATASOURCE)
                .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED).sort(VariableSort.ALPHABETICAL_ASC))

    def every(variable: dashboard.QueryVariable) -> dashboard.QueryVariable:
        # "All" sends a regex rather than a list of every value: shorter queries, and runs
        # created after the page loaded are included.
        return (variable.multi(True).include_all(True).all_value(".*")
                .current(VariableOption(selected=True, text="All", value="$__all")))

    variables: list[dashboard.QueryVariable | dashboard.DatasourceVariable] = [
        dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus"),
        every(query_variable("namespace", "Namespace",
                             "label_values(stylegan_run_phase, namespace)")),
        every(query_variable("run", "Run",
                             'label_values(stylegan_run_phase{namespace=~"$namespace"}, run)')),
    ]
    if with_currency:
        variables.append(
            query_variable("currency", "Currency",
                           f"label_values(stylegan_run_cost_total{{{RUN}}}, currency)")
            .current(VariableOption(selected=True, text="USD", value="USD"))
        )
    return variables


def _assemble(title: str, uid: str, description: str,
              rows: Sequence[tuple[str, Sequence[Panel]]], *,
              with_currency: bool) -> dashboard.Dashboard:
    """A dashboard of rows; panel ids are numbered in order so they never change."""
    board = (
        dashboard.Dashboard(title).uid(uid).description(description).tags([TAG])
        .time("now-24h", "now").refresh("1m").timezone("browser").editable()
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .link(dashboard.DashboardLink("StyleGAN").type(DashboardLinkType.DASHBOARDS)
              .tags([TAG]).as_dropdown(True).include_vars(True).keep_time(True))
    )
    for variable in _variables(with_currency):
        board.with_variable(variable)
    for marker in MARKERS:
        board.annotation(marker.query())
    panel_id = 0
    for row_title, panels in rows:
        panel_id += 1
        board.with_row(dashboard.Row(row_title).id(panel_id))
        for panel in panels:
            panel_id += 1
            board.with_panel(panel.id(panel_id))
    return board


# -- the dashboards --------------------------------------------------------------------
def cost_dashboard() -> dashboard.Dashboard:
    # Money keeps its currency label to the end, so the legend names it and the currency
    # overrides (:func:`in_currency`) give each value its symbol.
    run_money = f"{BY_RUN}, currency"
    cost = by_run("sum", "stylegan_run_cost_total", MONEY, run_money)
    budget = by_run("sum", "stylegan_run_budget", MONEY, run_money)
    projected = by_run("sum", "stylegan_run_projected_cost", MONEY, run_money)
    lost = by_run("sum", "stylegan_run_lost_work_cost_total", MONEY, run_money)

    def total(metric: str, legend: str) -> Query:
        return Query(by_run("sum", metric, MONEY, "currency"), f"{legend} {CURRENCY_LEGEND}")

    burn_total = (f"3600 * sum by (currency) "
                  f"(rate(stylegan_run_cost_total{{{MONEY}}}[{SPEED_WINDOW}]))")
    overview: list[Panel] = [
        single("Cost so far", "What the selected runs have cost: every pod of every attempt, "
               "from binding to its end, at the catalog's prices.", MONEY_UNIT,
               [total("stylegan_run_cost_total", "cost")]),
        single("Burn rate per hour", "How fast the selected runs' cost grew per hour over "
               f"the last {SPEED_WINDOW}.", MONEY_UNIT,
               [Query(burn_total, f"burn rate {CURRENCY_LEGEND}")]),
        single("Projected total", "Cost so far plus remaining kimg x measured sec/kimg x the "
               "current price.", MONEY_UNIT, [total("stylegan_run_projected_cost", "projected")]),
        single("Budget", "The sum of the selected runs' budgets.", MONEY_UNIT,
               [total("stylegan_run_budget", "budget")]),
        single("GPU-hours", "GPU-hours the selected runs' pods have held.", "h",
               [Query(f"sum(stylegan_run_gpu_seconds_total{{{RUN}}}) / 3600", "GPU-hours")],
               decimals=1),
        single("Lost work", "Cost of training redone after failures: the kimg since the last "
               "checkpoint of each failed attempt.", MONEY_UNIT,
               [total("stylegan_run_lost_work_cost_total", "lost work")]),
    ]
    over_time: list[Panel] = [
        graph("Cost by run", "Cumulative cost of each run.", MONEY_UNIT,
              [Query(cost, f"{RUN_LEGEND} {CURRENCY_LEGEND}")]),
        graph("Cost by namespace", "Cumulative cost of the selected runs, added up per "
              "namespace.", MONEY_UNIT,
              [Query(by_run("sum", "stylegan_run_cost_total", MONEY, "namespace, currency"),
                     "{{namespace}} " + CURRENCY_LEGEND)]),
        graph("Burn rate per hour", "How fast each run's cost grew, per hour (rate over "
              f"{SPEED_WINDOW}).", MONEY_UNIT, [
                  Query(f"3600 * sum by ({run_money}) "
                        f"(rate(stylegan_run_cost_total{{{MONEY}}}[{SPEED_WINDOW}]))",
                        f"{RUN_LEGEND} {CURRENCY_LEGEND}"),
              ]),
        dashed(graph("Projected total against budget", "Solid: cost so far plus the "
                     "projected rest of the run. Dashed: the run's budget.", MONEY_UNIT, [
                         Query(projected, f"{RUN_LEGEND} projected {CURRENCY_LEGEND}"),
                         Query(budget, f"{RUN_LEGEND} budget {CURRENCY_LEGEND}"),
                     ]), ".* budget .*"),
    ]
    budget_rows: list[Panel] = [
        share("Budget spent and projected", "Cost so far and projected total as a share of "
              "each run's budget (orange from 90%, red from 100%).", [
                  Query(f"{cost}\n/ {budget}", RUN_LEGEND + " spent"),
                  Query(f"{projected}\n/ {budget}", RUN_LEGEND + " projected"),
              ], steps=((None, GREEN), (0.9, ORANGE), (1.0, RED))),
        share("Share of cost lost to failures", "Lost work as a share of each run's cost.",
              [Query(f"{lost}\n/ {cost}")], steps=((None, GREEN), (0.1, ORANGE), (0.25, RED))),
    ]
    gpu_rows: list[Panel] = [
        graph("GPU-hours by run and GPU type", "Cumulative GPU-hours held by each run's "
              "pods, every attempt included.", "h",
              [Query(by_run("sum", "stylegan_run_gpu_seconds_total", RUN, BY_RUN + ", gpu_type")
                     + " / 3600", RUN_LEGEND + " {{gpu_type}}")], width=8),
        graph("GPUs held", "GPU-seconds per second: how many GPUs each run holds.", "short",
              [Query(f"sum by ({BY_RUN}, gpu_type) "
                     f"(rate(stylegan_run_gpu_seconds_total{{{RUN}}}[$__rate_interval]))",
                     RUN_LEGEND + " {{gpu_type}}")], width=8),
        graph("Lost work", "Cumulative cost of work lost to failures, per run.", MONEY_UNIT,
              [Query(lost, f"{RUN_LEGEND} {CURRENCY_LEGEND}")], width=8),
        graph("Price per GPU-hour", "The price each run is charged per GPU-hour (per "
              "vCPU-hour for gpu_type cpu).", MONEY_UNIT,
              [Query(by_run("max", "stylegan_run_price_per_gpu_hour", MONEY,
                            f"{BY_RUN}, gpu_type, currency"),
                     f"{RUN_LEGEND} {{{{gpu_type}}}} {CURRENCY_LEGEND}")],
              width=24, height=6),
    ]
    return _assemble(
        "StyleGAN / Cost", "stylegan-cost",
        "What StyleGAN runs have cost, are spending and will cost, against their budgets.",
        [("Overview", overview), ("Cost over time", over_time), ("Budget", budget_rows),
         ("GPU time, lost work and prices", gpu_rows)],
        with_currency=True,
    )


def training_dashboard() -> dashboard.Dashboard:
    kimg = by_run("max", "stylegan_run_kimg_total")
    trainer_speed = (f"max by ({BY_RUN}) "
                     f"(rate(stylegan_trainer_kimg_total{{{RUN}}}[{SPEED_WINDOW}]))")
    target = by_run("max", "stylegan_run_target_kimg")
    phase_names = {str(i): ValueMappingResult(text=name, color=PHASE_COLOURS.get(name, GREY),
                                              index=i)
                   for i, name in enumerate(PHASES, start=1)}
    phase_names["0"] = ValueMappingResult(text="Unknown", color=GREY, index=0)
    phase_timeline = _targets(
        statetimeline.Panel().title("Phase").description(
            "The run's phase over time (Pending, Running, Suspended, Restarting, Succeeded, "
            "Failed).").span(8).height(8).show_value(VisibilityMode.AUTO)
        .mappings([ValueMap(options=phase_names)]),
        [Query(phase_code())])
    progress: list[Panel] = [
        share("Progress", "kimg shown as a share of the run's target kimg.",
              [Query(f"{kimg}\n/ {target}")], width=8, steps=((None, BLUE), (1.0, GREEN))),
        single("Time left", "Remaining kimg x measured sec/kimg.", "dtdurations",
               [Query(by_run("max", "stylegan_run_eta_seconds"))], width=8, height=8,
               decimals=None),
        phase_timeline,
    ]
    speed: list[Panel] = [
        dashed(graph("kimg against target", "Thousands of real images shown: the "
                     "operator's figure, the trainer's live one, and the target (dashed).",
                     "short", [
                         Query(kimg, RUN_LEGEND),
                         Query(by_run("max", "stylegan_trainer_kimg_total"),
                               RUN_LEGEND + " trainer"),
                         Query(target, RUN_LEGEND + " target"),
                     ]), ".* target"),
        graph("Seconds per kimg", "Wall seconds per thousand real images, from the "
              f"trainer's kimg counter over {SPEED_WINDOW}.", "s",
              [Query(f"1 / {trainer_speed}")], width=6),
        dashed(graph("Images per second", "Solid: from the trainer's kimg counter. Dashed: "
                     "from the run's kimg as the operator reports it.", "short", [
                         Query(f"1000 * {trainer_speed}"),
                         Query(f"1000 * max by ({BY_RUN}) "
                               f"(rate(stylegan_run_kimg_total{{{RUN}}}[{SPEED_WINDOW}]))",
                               RUN_LEGEND + " from kimg"),
                     ], width=6), ".* from kimg"),
    ]
    health: list[Panel] = [
        graph("Losses", "Latest value of each loss term (a gap is a NaN: the run diverged).",
              "short", [Query(by_run("max", "stylegan_trainer_loss", RUN, BY_RUN + ", name"),
                             RUN_LEGEND + " {{name}}")], width=8),
        graph("Augment p", "ADA's augmentation probability.", "percentunit",
              [Query(by_run("max", "stylegan_trainer_augment_p"))], width=8),
        graph("GPU memory peak", "Peak GPU memory allocated since the last tick.", "bytes",
              [Query(by_run("max", "stylegan_trainer_gpu_memory_bytes"))], width=8),
    ]
    failures: list[Panel] = [
        single("Restarts", "Attempts restarted after a failure.", "short",
               [Query(f"sum(stylegan_run_restarts_total{{{RUN}}})", "restarts")],
               width=4, decimals=0),
        single("Preemptions", "Attempts lost to preemption or disruption (not counted "
               "against backoffLimit).", "short",
               [Query(f"sum(stylegan_run_preemptions_total{{{RUN}}})", "preemptions")],
               width=4, decimals=0),
        single("Last checkpoint age", "Time since each run's newest checkpoint was written: "
               "what a failure now would throw away. Orange from 1 h, red from 2 h (the "
               "StyleGANRunNoRecentCheckpoint alert's threshold). No value before the first "
               "checkpoint.", "dtdurations",
               [Query("time() - " + by_run("max",
                                           "stylegan_run_last_checkpoint_timestamp_seconds"))],
               width=4, decimals=None)
        .thresholds(_thresholds((None, GREEN), (3600, ORANGE), (CHECKPOINT_STALE_S, RED))),
        graph("Restarts and preemptions", "Cumulative count of each, per run.", "short", [
            Query(by_run("max", "stylegan_run_restarts_total"), RUN_LEGEND + " restarts"),
            Query(by_run("max", "stylegan_run_preemptions_total"), RUN_LEGEND + " preemptions"),
        ], height=4),
    ]
    return _assemble(
        "StyleGAN / Training", "stylegan-training",
        "How StyleGAN runs train: kimg against target, speed, losses, augmentation, "
        "restarts, checkpoint age and phase.",
        [("Progress", progress), ("Speed", speed), ("Losses and augmentation", health),
         ("Restarts, preemptions and checkpoints", failures)],
        with_currency=False,
    )


DASHBOARDS: dict[str, Callable[[], dashboard.Dashboard]] = {
    "stylegan-cost": cost_dashboard,
    "stylegan-training": training_dashboard,
}
"""File stem (also the dashboard's uid) -> builder."""


# -- output ----------------------------------------------------------------------------
def to_json(board: dashboard.Dashboard) -> str:
    """The dashboard's JSON: sorted keys, indent 2, trailing newline (deterministic)."""
    data = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    fields = {marker.name: marker.prometheus_fields() for marker in MARKERS}
    for annotation in data.get("annotations", {}).get("list", []):
        annotation.update(fields.get(annotation.get("name"), {}))
    return json.dumps(data, sort_keys=True, indent=2) + "\n"


def render() -> dict[str, str]:
    """File name -> JSON text, for every dashboard."""
    return {f"{stem}.json": to_json(build()) for stem, build in DASHBOARDS.items()}


def drift(out_dir: Path = OUT_DIR) -> list[str]:
    """What differs between ``out_dir`` and freshly generated dashboards (empty: nothing)."""
    wanted = render()
    problems = [f"{out_dir / name}: missing" for name in sorted(wanted)
                if not (out_dir / name).exists()]
    problems += [f"{out_dir / name}: differs from what hack/dashboards.py generates"
                 for name, text in sorted(wanted.items())
                 if (out_dir / name).exists() and (out_dir / name).read_text() != text]
    problems += [f"{path}: not generated by hack/dashboards.py"
                 for path in sorted(out_dir.glob("*.json")) if path.name not in wanted]
    return problems


def write(out_dir: Path = OUT_DIR) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render().items():
        path = out_dir / name
        path.write_text(text)
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 when the committed JSON has drifted")
    parser.add_argument("--outdir", type=Path, default=OUT_DIR,
                        help=f"output folder (default: {OUT_DIR.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    if args.check:
        problems = drift(args.outdir)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("run: .venv/bin/python hack/dashboards.py", file=sys.stderr)
        return 1 if problems else 0
    for path in write(args.outdir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
