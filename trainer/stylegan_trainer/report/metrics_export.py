"""Rank 0's Prometheus endpoint: the trainer's metrics, set from every tick's report.

``stylegan train --metrics-port N`` (option ``metrics_port``; 0, the default, is off) makes
rank 0 serve ``/metrics`` on port N; the operator's pods set 9400, the container port named
``metrics`` that the chart's PodMonitor scrapes. The other ranks serve nothing: their
numbers are rank 0's (every figure of a tick is reduced over the ranks first).

The metrics are set from the same :class:`~stylegan_trainer.report.progress.TickReport` that gives
the tick line and ``stats.jsonl``, through a tick hook of the reporter, so the three never
disagree. The metrics themselves, and their names, are
:class:`stylegan_common.trainer_metrics.TrainerMetrics`, which the operator's dashboards and
tests read too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import start_http_server

from stylegan_common.errors import ConfigError
from stylegan_common.trainer_metrics import (
    LOSS_NAMES,
    TrainerMetrics,
    check_port,
)

if TYPE_CHECKING:  # progress imports torch; keep this module importable without it
    from wsgiref.simple_server import WSGIServer

    from stylegan_trainer.report.progress import TickReport


def tick_values(report: TickReport) -> dict[str, Any]:
    """The keyword arguments of :meth:`TrainerMetrics.update` for one tick's report."""
    return {
        "kimg": report.kimg,
        "losses": {
            short: float(report.stats[key])
            for key, short in LOSS_NAMES.items()
            if key in report.stats
        },
        "augment_p": report.augment_p,
        "gpu_memory_bytes": report.gpumem_gb * 2**30,
    }


class MetricsExporter:
    """A reporter tick hook that sets the metrics, and the HTTP endpoint that serves them.

    The endpoint stays up after training returns, so a last scrape sees the final tick; it
    runs on a daemon thread and ends with the process, or with :meth:`close`.
    """

    def __init__(self, metrics: TrainerMetrics | None = None) -> None:
        self.metrics = metrics if metrics is not None else TrainerMetrics()
        self._server: WSGIServer | None = None

    def __call__(self, report: TickReport) -> None:
        self.metrics.update(**tick_values(report))

    @property
    def port(self) -> int | None:
        """The port being served, None when not serving."""
        return None if self._server is None else int(self._server.server_address[1])

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        """Serve ``/metrics`` on ``addr:port`` (once; a second call changes nothing).

        Port 0 takes any free port (see :attr:`port`); the trainer never asks for it, since
        ``metrics_port: 0`` means no endpoint, but tests do.

        A port that cannot be bound is a configuration error (exit 64): each pod has its own
        network namespace, so only a wrong ``metrics_port`` makes it busy.
        """
        if self._server is not None:
            return
        try:
            self._server, _thread = start_http_server(
                check_port(port), addr=addr, registry=self.metrics.registry
            )
        except OSError as exc:
            raise ConfigError(
                f"metrics_port: cannot serve metrics on {addr}:{port}: {exc.strerror or exc}; "
                "choose a free port, or 0 for none"
            ) from exc

    def close(self) -> None:
        """Stop serving (tests; a training process just exits)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
