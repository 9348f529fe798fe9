"""Rank 0's Prometheus endpoint: the trainer's gauges, set from every tick's report.

``stylegan train --metrics-port N`` (option ``metrics_port``; 0, the default, is off) makes
rank 0 serve ``/metrics`` on port N; the operator's pods set 9400, the container port named
``metrics`` that the chart's PodMonitor scrapes. The other ranks serve nothing: their
numbers are rank 0's (every figure of a tick is reduced over the ranks first).

The gauges are set from the same :class:`~stylegan_trainer.progress.TickReport` that gives
the tick line and ``stats.jsonl``, through a tick hook of the reporter, so the three never
disagree. Names follow DESIGN.md: ``stylegan_trainer_seconds_per_kimg``,
``stylegan_trainer_kimg``, ``stylegan_trainer_images_per_second``,
``stylegan_trainer_loss{name}``, ``stylegan_trainer_augment_p`` and
``stylegan_trainer_gpu_memory_bytes``. The run's ``namespace``/``run`` labels are not
written here: Prometheus adds them from the pod's labels when it scrapes.

The metrics live on their own registry, never on prometheus_client's global one, so the
endpoint shows only these and tests stay isolated. This module imports neither torch nor
kopf: the operator re-exports :class:`TrainerMetrics` (``stylegan_operator.metrics``) for the
dashboards and tests that describe both sides.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Gauge, generate_latest, start_http_server

from stylegan_trainer.errors import ConfigError

if TYPE_CHECKING:  # progress imports torch; the operator imports this module without it
    from wsgiref.simple_server import WSGIServer

    from stylegan_trainer.progress import TickReport

DEFAULT_PORT = 9400
"""The port the operator's trainer pods serve on (container port ``metrics``)."""

LOSS_NAMES: Mapping[str, str] = {
    "Loss/G/loss": "G",
    "Loss/D/loss": "D",
    "Loss/r1_penalty": "r1",
    "Loss/pl_penalty": "pl",
}
"""The tick statistics exported as ``stylegan_trainer_loss{name}``, and their short names."""


def _finite(value: float | None) -> float | None:
    """The value when it is a finite number; None (leave the gauge alone) otherwise."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


class TrainerMetrics:
    """The trainer's gauges (rank 0 serves them); values that are None are left as they were."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.seconds_per_kimg = Gauge(
            "stylegan_trainer_seconds_per_kimg",
            "Wall seconds per thousand real images over the last tick.",
            registry=r,
        )
        self.kimg = Gauge("stylegan_trainer_kimg", "Thousands of real images shown.", registry=r)
        self.images_per_second = Gauge(
            "stylegan_trainer_images_per_second", "Real images shown per second.", registry=r
        )
        self.loss = Gauge(
            "stylegan_trainer_loss",
            "Latest value of each loss term (NaN when it diverged).",
            ["name"],
            registry=r,
        )
        self.augment_p = Gauge(
            "stylegan_trainer_augment_p", "ADA augmentation probability.", registry=r
        )
        self.gpu_memory_bytes = Gauge(
            "stylegan_trainer_gpu_memory_bytes",
            "Peak GPU memory allocated since the last tick.",
            registry=r,
        )

    def update(
        self,
        *,
        kimg: float | None = None,
        sec_per_kimg: float | None = None,
        images_per_second: float | None = None,
        losses: Mapping[str, float] | None = None,
        augment_p: float | None = None,
        gpu_memory_bytes: float | None = None,
    ) -> None:
        for gauge, value in (
            (self.kimg, kimg),
            (self.seconds_per_kimg, sec_per_kimg),
            (self.images_per_second, images_per_second),
            (self.augment_p, augment_p),
            (self.gpu_memory_bytes, gpu_memory_bytes),
        ):
            number = _finite(value)
            if number is not None:
                gauge.set(number)
        for name, value in (losses or {}).items():
            # A NaN loss is news (the run diverged), so it is exported as is.
            self.loss.labels(name=str(name)).set(float(value))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def tick_values(report: TickReport) -> dict[str, Any]:
    """The keyword arguments of :meth:`TrainerMetrics.update` for one tick's report."""
    speed = _finite(report.sec_per_kimg)
    return {
        "kimg": report.kimg,
        "sec_per_kimg": speed,
        # A tick of zero seconds (a clock too coarse) has no meaningful rate: left unset.
        "images_per_second": 1000.0 / speed if speed else None,
        "losses": {
            short: float(report.stats[key])
            for key, short in LOSS_NAMES.items()
            if key in report.stats
        },
        "augment_p": report.augment_p,
        "gpu_memory_bytes": report.gpumem_gb * 2**30,
    }


def check_port(port: Any) -> int:
    """``metrics_port`` as a port number (0: off); ``ConfigError`` naming the field otherwise."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(
            f"metrics_port: {port!r} is not a port number; give 1-65535 "
            f"(the operator's pods use {DEFAULT_PORT}) or 0 for no metrics endpoint"
        )
    return port


class MetricsExporter:
    """A reporter tick hook that sets the gauges, and the HTTP endpoint that serves them.

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
