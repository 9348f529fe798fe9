"""Where the dashboards' data comes from: a live exporter of the real operator metrics.

``metrics_source`` serves ``stylegan_operator.metrics.REGISTRY`` (filled through
``update_run``, as the operator does) and one ``TrainerMetrics`` registry per run (as each
run's rank 0 does) over HTTP, and says how Prometheus should scrape them. Tests use only
the :class:`MetricsSource` interface, so the same tests can later point at the operator
running on the control plane by overriding this fixture.

Two runs in two namespaces: one displays JPY (its money series come in USD and JPY), one
USD only, so a query that forgets ``currency="$currency"`` or the namespace selection would
return the wrong series.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol
from wsgiref.simple_server import WSGIServer

import pytest
from prometheus_client import start_http_server

from stylegan_operator import metrics
from stylegan_operator.metrics import TrainerMetrics
from tests.unit.monitoring.exported import run_sample, trainer_update


class MetricsSource(Protocol):
    """What the monitoring integration tests need from whatever exports the metrics."""

    runs: list[tuple[str, str]]
    """(namespace, run) of every run it exports."""

    def scrape_configs(self) -> list[dict]:
        """Prometheus ``scrape_configs`` entries (1 s interval) that reach the exporters."""
        ...

    def advance(self) -> float:
        """Move every run on (more kimg, more cost); returns the new kimg of the first run."""
        ...


@dataclass(frozen=True)
class Run:
    namespace: str
    name: str
    currency: str
    gpus: int
    budget_usd: float
    start_hours: float


RUNS = (
    # 8 V100s for 10 h at 2.48 USD: 198.40 USD of a 5,000 USD budget, shown in JPY.
    Run("vision", "faces-256", "JPY", gpus=8, budget_usd=5000.0, start_hours=10.0),
    # 4 V100s for 90 h: 892.80 USD of a 950 USD budget (94%: the nearly-spent alert).
    Run("research", "faces-1024", "USD", gpus=4, budget_usd=950.0, start_hours=90.0),
)


@dataclass
class LocalExporter:
    """The operator's registry and the runs' trainer registries on local HTTP ports."""

    step: int = 0
    servers: list[WSGIServer] = field(default_factory=list)
    trainers: dict[tuple[str, str], TrainerMetrics] = field(default_factory=dict)
    runs: list[tuple[str, str]] = field(
        default_factory=lambda: [(r.namespace, r.name) for r in RUNS])

    def start(self) -> None:
        self.servers.append(self._serve(metrics.REGISTRY))
        for run in RUNS:
            trainer = TrainerMetrics()
            self.trainers[(run.namespace, run.name)] = trainer
            self.servers.append(self._serve(trainer.registry))
        self.advance()

    @staticmethod
    def _serve(registry: object) -> WSGIServer:
        server, _thread = start_http_server(0, addr="127.0.0.1", registry=registry)  # type: ignore[arg-type]
        return server

    def _target(self, server: WSGIServer) -> str:
        return f"127.0.0.1:{server.server_port}"

    def scrape_configs(self) -> list[dict]:
        operator, *trainers = self.servers
        return [
            # The run metrics carry their own namespace/run labels: keep them.
            {"job_name": "stylegan-operator", "scrape_interval": "1s", "honor_labels": True,
             "static_configs": [{"targets": [self._target(operator)]}]},
            # Trainers get namespace/run from their target, as the pod relabelling gives them.
            {"job_name": "stylegan-trainer", "scrape_interval": "1s",
             "static_configs": [
                 {"targets": [self._target(server)],
                  "labels": {"namespace": run.namespace, "run": run.name}}
                 for run, server in zip(RUNS, trainers, strict=True)]},
        ]

    def advance(self) -> float:
        """One more reconcile: each run trained 6 more minutes (10 kimg) and paid for them."""
        self.step += 1
        first_kimg = 0.0
        for index, run in enumerate(RUNS):
            kimg = 1200.0 * (index + 1) + 10.0 * self.step
            metrics.update_run(run_sample(
                run.namespace, run.name, hours=run.start_hours + 0.1 * self.step,
                gpus=run.gpus, kimg=kimg, budget_usd=run.budget_usd,
                restarts=index + self.step // 3, currency=run.currency))
            trainer_update(self.trainers[(run.namespace, run.name)], kimg=kimg)
            first_kimg = first_kimg or kimg
        return first_kimg

    def stop(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()
        for namespace, name in self.runs:
            metrics.remove_run(namespace, name)


@pytest.fixture
def metrics_source() -> Iterator[MetricsSource]:
    exporter = LocalExporter()
    exporter.start()
    try:
        yield exporter
    finally:
        exporter.stop()
