"""The operator's own health on /metrics: build, reconciles, API errors, watches, queue.

Beside the runs' figures (:mod:`~stylegan_operator.controller.metrics`), whoever runs the
operator needs to see the operator itself:

* ``stylegan_operator_build_info{version, python_version, kopf_version}``: always 1; join
  on it to tell which version produced a series, and to see that the operator is up.
* ``stylegan_operator_reconcile_duration_seconds{outcome}``: a histogram of one reconcile
  of one run (read the run and what it owns, decide, apply), by outcome ``ok``,
  ``transient`` (an API failure a retry may fix) or ``error`` (anything else).
* ``stylegan_operator_reconcile_errors_total{reason}``: the reconciles that failed, by the
  same ``transient``/``error``.
* ``stylegan_operator_api_request_errors_total{code}``: API calls that failed, by HTTP
  status (``none`` when no reply came: a timeout or a lost connection). Counted where the
  failure surfaces as :class:`~stylegan_operator.kube.client.KubeError`; the replies the
  client takes as success (409 on create, 404 on delete) are not errors.
* ``stylegan_operator_watch_restarts_total``: watch streams kopf restarted because the API
  server expired their resourceVersion (410 Gone) or they went silent. kopf exposes no hook
  for this, only a DEBUG log line of ``kopf._cogs.clients.watching``; :func:`count_watch_restarts`
  counts those lines with a logger filter and drops them again unless that level was
  wanted, so the log reads as before.
* ``stylegan_operator_reconcile_queue_depth``: runs with a reconcile waiting behind the
  one in progress for the same run, and ``stylegan_operator_reconciles_in_flight``: runs
  being reconciled now. Both read :class:`ReconcileQueue` at scrape time.

Everything registers on the registry it is given (the operator's ``metrics.REGISTRY``),
never on prometheus_client's global one.
"""

from __future__ import annotations

import logging
import platform
from collections.abc import Callable, Iterator
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from stylegan_common.trainer_metrics import installed_version

WATCH_LOGGER: Final = "kopf._cogs.clients.watching"
WATCH_RESTART_MESSAGES: Final = ("Restarting the watch-stream", "is inactive, reconnecting")
"""The kopf (1.3x-1.4x) DEBUG lines that mean a watch stream is being re-opened."""

RECONCILE_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Seconds; a healthy reconcile makes a handful of API calls (tens of milliseconds)."""


class _QueueCollector(Collector):
    """Reads (waiting, in flight) from a callable at every scrape."""

    def __init__(self, depth: Callable[[], tuple[int, int]]) -> None:
        self._depth = depth

    def describe(self) -> Iterator[Metric]:
        yield from self._families(0, 0)

    def collect(self) -> Iterator[Metric]:
        waiting, running = self._depth()
        yield from self._families(waiting, running)

    @staticmethod
    def _families(waiting: int, running: int) -> list[Metric]:
        return [
            GaugeMetricFamily(
                "stylegan_operator_reconcile_queue_depth",
                "Runs with a reconcile waiting for the one in progress on the same run.",
                value=waiting,
            ),
            GaugeMetricFamily(
                "stylegan_operator_reconciles_in_flight",
                "Runs being reconciled right now.",
                value=running,
            ),
        ]


class OperatorHealth:
    """The operator's health metrics on one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.build_info = Gauge(
            "stylegan_operator_build_info",
            "Always 1: the operator's version, and the Python and kopf it runs on.",
            ["version", "python_version", "kopf_version"],
            registry=registry,
        )
        self.build_info.labels(
            version=installed_version("stylegan-operator"),
            python_version=platform.python_version(),
            kopf_version=installed_version("kopf"),
        ).set(1)
        self.reconcile_duration = Histogram(
            "stylegan_operator_reconcile_duration_seconds",
            "Wall time of one reconcile of one run, by outcome (ok, transient, error).",
            ["outcome"],
            buckets=RECONCILE_BUCKETS,
            registry=registry,
        )
        self.reconcile_errors = Counter(
            "stylegan_operator_reconcile_errors",
            "Reconciles that failed, by reason (transient: a retry may fix it; error: other).",
            ["reason"],
            registry=registry,
        )
        self.api_errors = Counter(
            "stylegan_operator_api_request_errors",
            "Kubernetes API calls that failed, by HTTP status (none: no reply came).",
            ["code"],
            registry=registry,
        )
        self.watch_restarts = Counter(
            "stylegan_operator_watch_restarts",
            "Watch streams kopf re-opened (resourceVersion expired, or the stream went silent).",
            registry=registry,
        )
        self._registry = registry
        self._queue: _QueueCollector | None = None
        # Series exist from the first scrape, so rate() and absent() work before any error.
        for outcome in ("ok", "transient", "error"):
            self.reconcile_duration.labels(outcome=outcome)
        for reason in ("transient", "error"):
            self.reconcile_errors.labels(reason=reason)

    def observe_reconcile(self, seconds: float, outcome: str) -> None:
        self.reconcile_duration.labels(outcome=outcome).observe(max(seconds, 0.0))
        if outcome != "ok":
            self.reconcile_errors.labels(reason=outcome).inc()

    def count_api_error(self, status: int | None) -> None:
        self.api_errors.labels(code=str(status) if status else "none").inc()

    def watch_queue(self, depth: Callable[[], tuple[int, int]]) -> None:
        """Export (waiting, in flight) from ``depth`` at every scrape (set once)."""
        if self._queue is None:
            self._queue = _QueueCollector(depth)
            self._registry.register(self._queue)


class WatchRestartFilter(logging.Filter):
    """Counts kopf's watch-restart lines; lets a record through only if its level was wanted.

    Installing it lowers the watching logger to DEBUG (else the lines never reach a filter),
    so records below ``pass_level`` (the level in force before) are dropped here.
    """

    def __init__(self, counter: Counter, pass_level: int) -> None:
        super().__init__()
        self.counter = counter
        self.pass_level = pass_level

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(text in message for text in WATCH_RESTART_MESSAGES):
            self.counter.inc()
        return record.levelno >= self.pass_level


def count_watch_restarts(health: OperatorHealth, name: str = WATCH_LOGGER) -> WatchRestartFilter:
    """Install the counting filter on kopf's watching logger (once); returns it."""
    log = logging.getLogger(name)
    for existing in log.filters:
        if isinstance(existing, WatchRestartFilter):
            return existing
    counting = WatchRestartFilter(health.watch_restarts, log.getEffectiveLevel())
    log.addFilter(counting)
    log.setLevel(logging.DEBUG)
    return counting
