"""Prometheus metrics: what each run has cost, is spending and will cost; trainer progress.

Names follow DESIGN.md and the Prometheus conventions: prefix ``stylegan_``, base units
(seconds, bytes), ``_total`` on counters, money labelled with its ``currency`` (ISO 4217
code). Every money metric is exported twice when a run displays another currency than USD:
once in USD (so dashboards can add runs up) and once in the run's currency.

Run metrics are produced by :class:`RunCollector`, a custom collector over the latest
:class:`RunSample` of each run. The operator owns the cumulative totals (its
:class:`~stylegan_operator.cost.ledger.SpendLedger` lives in the run's status), so counters are
exported from those totals as ``CounterMetricFamily``; the collector also remembers the
highest value it has exported for each series and never exports less, so a counter never
goes down even if a total is recomputed lower or an exchange rate drops. Forgetting a
deleted run (:func:`remove_run`) drops all its series at once.

No rate is precomputed: what a run spends per hour is
``rate(stylegan_run_cost_total[10m]) * 3600`` and its speed ``rate(stylegan_run_kimg_total[15m])``
(windows of several reconcile intervals, since the totals move once per reconcile). Prices
(``stylegan_run_price_per_gpu_hour``) are gauges in the unit clouds publish them in.

Times are Unix timestamps, not ages, as Prometheus convention has it: a timestamp needs no
update between reconciles and stays true when the operator stops updating it; a query takes
the age as ``time() - stylegan_run_last_checkpoint_timestamp_seconds``.

Everything registers on a dedicated :data:`REGISTRY`, never on prometheus_client's global
one, so tests build their own and stay isolated. :class:`TrainerMetrics` is the trainer's
side (rank 0 exposes it from its own process): it lives in
``stylegan_common.trainer_metrics`` and is re-exported here; it imports neither torch nor
kopf. The operator's own health (:data:`HEALTH`) is described in ``health``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# The trainer's gauges live with the trainer (its rank 0 serves them); re-exported here so
# the operator's dashboards and tests describe both sides from one module.
from stylegan_common.trainer_metrics import TrainerMetrics, finite_or_none
from stylegan_operator.controller.health import OperatorHealth
from stylegan_operator.cost.pricing import USD
from stylegan_operator.reconcile.plan import RunSample

__all__ = [
    "HEALTH", "PHASES", "REGISTRY", "RUN_METRICS", "RunCollector", "RunMetrics", "RunSample",
    "TrainerMetrics", "remove_run", "update_run",
]  # fmt: skip

PHASES = ("Pending", "Running", "Suspended", "Restarting", "Succeeded", "Failed")
"""The run phases of DESIGN.md; ``stylegan_run_phase`` is 1 for the current one, 0 else."""

RUN_LABELS = ("namespace", "run")

Family = CounterMetricFamily | GaugeMetricFamily


def _unix_seconds(moment: datetime) -> float:
    """Seconds since the epoch; a naive time is taken as UTC (as Kubernetes writes them)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


class RunCollector(Collector):
    """Yields the ``stylegan_run_*`` families from the latest sample of every run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[tuple[str, str], RunSample] = {}
        self._floor: dict[tuple[str, tuple[str, ...]], float] = {}

    def set_run(self, sample: RunSample) -> None:
        with self._lock:
            self._runs[(sample.namespace, sample.run)] = sample
            # Raise the counters' floors now, so a lower total is never exported even if
            # no scrape came between the two updates.
            self._fill(self._families(), sample)

    def remove_run(self, namespace: str, run: str) -> None:
        with self._lock:
            self._runs.pop((namespace, run), None)
            for key in [k for k in self._floor if tuple(k[1][:2]) == (namespace, run)]:
                del self._floor[key]

    def runs(self) -> list[tuple[str, str]]:
        with self._lock:
            return sorted(self._runs)

    def _monotonic(self, name: str, labels: tuple[str, ...], value: float) -> float:
        key = (name, labels)
        kept = max(self._floor.get(key, 0.0), max(value, 0.0))
        self._floor[key] = kept
        return kept

    def describe(self) -> Iterator[Metric]:
        # Describing without samples lets registration check for name clashes cheaply.
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            samples = list(self._runs.values())
            families = self._families()
            for sample in samples:
                self._fill(families, sample)
        yield from families

    @staticmethod
    def _families() -> list[Family]:
        money = [*RUN_LABELS, "currency"]
        return [
            CounterMetricFamily(
                "stylegan_run_gpu_seconds",
                "GPU-seconds the run's pods have held (every attempt), by GPU type.",
                labels=[*RUN_LABELS, "gpu_type"],
            ),
            CounterMetricFamily(
                "stylegan_run_node_seconds",
                "Node-seconds the run's pods have held (one pod per node), by GPU type.",
                labels=[*RUN_LABELS, "gpu_type"],
            ),
            CounterMetricFamily(
                "stylegan_run_cost", "Money the run has cost so far.", labels=money
            ),
            GaugeMetricFamily(
                "stylegan_run_price_per_gpu_hour",
                "Price applied per GPU-hour (per vCPU-hour for gpu_type=cpu).",
                labels=[*RUN_LABELS, "gpu_type", "currency"],
            ),
            GaugeMetricFamily(
                "stylegan_run_projected_cost",
                "Cost so far plus remaining kimg x measured sec/kimg x current price.",
                labels=money,
            ),
            GaugeMetricFamily("stylegan_run_budget", "The run's budget.", labels=money),
            GaugeMetricFamily(
                "stylegan_run_eta_seconds",
                "Seconds of training left at the measured speed.",
                labels=list(RUN_LABELS),
            ),
            CounterMetricFamily(
                "stylegan_run_kimg",
                "Thousands of real images trained so far (the highest reached: work lost to a "
                "failure is redone, not counted twice).",
                labels=list(RUN_LABELS),
            ),
            GaugeMetricFamily(
                "stylegan_run_target_kimg", "Training length in kimg.", labels=list(RUN_LABELS)
            ),
            CounterMetricFamily(
                "stylegan_run_restarts",
                "Attempts restarted after a failure.",
                labels=list(RUN_LABELS),
            ),
            CounterMetricFamily(
                "stylegan_run_preemptions",
                "Attempts lost to preemption or disruption.",
                labels=list(RUN_LABELS),
            ),
            CounterMetricFamily(
                "stylegan_run_lost_work_cost",
                "Cost of training lost to failures (kimg since the last checkpoint).",
                labels=money,
            ),
            GaugeMetricFamily(
                "stylegan_run_last_checkpoint_timestamp_seconds",
                "Unix time the run's newest checkpoint was written (absent before the first).",
                labels=list(RUN_LABELS),
            ),
            GaugeMetricFamily(
                "stylegan_run_phase",
                "1 for the run's current phase, 0 for the others.",
                labels=[*RUN_LABELS, "phase"],
            ),
        ]

    def _fill(self, families: list[Family], sample: RunSample) -> None:
        by_name = {f.name: f for f in families}
        run = (sample.namespace, sample.run)
        rate = finite_or_none(sample.exchange_rate) or 1.0
        currencies = [(USD, 1.0)] + ([(sample.currency, rate)] if sample.currency != USD else [])

        def counter(name: str, labels: tuple[str, ...], value: float | None) -> None:
            number = finite_or_none(value)
            if number is not None:
                by_name[name].add_metric(list(labels), self._monotonic(name, labels, number))

        def gauge(name: str, labels: tuple[str, ...], value: float | None) -> None:
            number = finite_or_none(value)
            if number is not None:
                by_name[name].add_metric(list(labels), number)

        for gpu_type, spend in sample.spend.by_type.items():
            if gpu_type != "cpu":
                counter("stylegan_run_gpu_seconds", (*run, gpu_type), spend.unit_seconds)
            counter("stylegan_run_node_seconds", (*run, gpu_type), spend.node_seconds)
        prices = dict(sample.price_per_gpu_hour_usd) or {
            k: t.price_per_unit_hour_usd for k, t in sample.spend.by_type.items()
        }
        projected = sample.projection.projected_cost if sample.projection else None
        for code, factor in currencies:
            counter("stylegan_run_cost", (*run, code), sample.spend.cost_usd * factor)
            counter("stylegan_run_lost_work_cost", (*run, code), sample.lost_work_cost_usd * factor)
            for gpu_type, price in sorted(prices.items()):
                gauge("stylegan_run_price_per_gpu_hour", (*run, gpu_type, code), price * factor)
            if projected is not None:
                gauge("stylegan_run_projected_cost", (*run, code), projected * factor)
            if sample.budget_usd is not None:
                gauge("stylegan_run_budget", (*run, code), sample.budget_usd * factor)
        if sample.projection and sample.projection.remaining_seconds is not None:
            gauge("stylegan_run_eta_seconds", run, sample.projection.remaining_seconds)
        counter("stylegan_run_kimg", run, sample.kimg)
        gauge("stylegan_run_target_kimg", run, sample.target_kimg)
        if sample.last_checkpoint_time is not None:
            gauge(
                "stylegan_run_last_checkpoint_timestamp_seconds",
                run,
                _unix_seconds(sample.last_checkpoint_time),
            )
        counter("stylegan_run_restarts", run, sample.restarts)
        counter("stylegan_run_preemptions", run, sample.preemptions)
        phases = PHASES if sample.phase in PHASES else (*PHASES, sample.phase)
        for phase in phases:
            gauge("stylegan_run_phase", (*run, phase), 1.0 if phase == sample.phase else 0.0)


class RunMetrics:
    """A registry with the run collector on it: what the operator serves on /metrics."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.collector = RunCollector()
        self.registry.register(self.collector)

    def update(self, sample: RunSample) -> None:
        self.collector.set_run(sample)

    def remove_run(self, namespace: str, run: str) -> None:
        self.collector.remove_run(namespace, run)

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)


REGISTRY = CollectorRegistry(auto_describe=True)
"""The operator's registry (not prometheus_client's global one)."""

RUN_METRICS = RunMetrics(REGISTRY)
HEALTH = OperatorHealth(REGISTRY)
"""The operator's own health (reconciles, API errors, watches, queue): see ``health``."""


def update_run(sample: RunSample, metrics: RunMetrics = RUN_METRICS) -> None:
    """Publish a run's latest numbers."""
    metrics.update(sample)


def remove_run(namespace: str, run: str, metrics: RunMetrics = RUN_METRICS) -> None:
    """Forget a deleted run: all its series disappear from the next scrape."""
    metrics.remove_run(namespace, run)
