"""The trainer's Prometheus metrics: the names both programs agree on (DESIGN.md).

Rank 0 of the trainer sets and serves them (``stylegan_trainer.report.metrics_export``); the
operator's dashboards, alerts and tests read the same definitions, so a renamed metric fails
there first. Names: ``stylegan_trainer_kimg_total`` (a counter: the training position in
thousands of real images, from the resumed checkpoint on), ``stylegan_trainer_loss{name}``,
``stylegan_trainer_augment_p``, ``stylegan_trainer_gpu_memory_bytes`` and
``stylegan_trainer_build_info{version, torch_version}``; the run's ``namespace``/``run``
labels are added by Prometheus from the pod's labels when it scrapes.

No rate is precomputed (Prometheus convention): speed is
``rate(stylegan_trainer_kimg_total[15m])`` kimg per second, and its inverse the seconds per
kimg. Each attempt is a new pod, so a resumed run starts a new series rather than resetting
an old one. The window should span a few ticks, since the counter moves once a tick.

The metrics live on their own registry, never on prometheus_client's global one, so the
endpoint shows only these and tests stay isolated. Imports neither program, nor torch (its
version is read from the installed distribution's metadata).
"""


from __future__ import annotations

import math
from collections.abc import Mapping
from importlib import metadata
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from stylegan_common.errors import ConfigError

DEFAULT_PORT = 9400
"""The port the operator's trainer pods serve on (container port ``metrics``)."""

LOSS_NAMES: Mapping[str, str] = {
    "Loss/G/loss": "G",
    "Loss/D/loss": "D",
    "Loss/r1_penalty": "r1",
    "Loss/pl_penalty": "pl",
}
"""The tick statistics exported as ``stylegan_trainer_loss{name}``, and their short names."""


def finite_or_none(value: float | None) -> float | None:
    """The value when it is a finite number; None otherwise (metrics never carry NaN or
    infinities: a None gauge is left as it was, a None series is left out)."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def installed_version(distribution: str) -> str:
    """The installed version of a distribution, ``unknown`` when it is not installed."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


class TrainerMetrics:
    """The trainer's metrics (rank 0 serves them); values that are None are left as they were."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.build_info = Gauge(
            "stylegan_trainer_build_info",
            "Always 1: the trainer's version and the torch it runs on.",
            ["version", "torch_version"],
            registry=r,
        )
        self.build_info.labels(
            version=installed_version("stylegan-operator"),
            torch_version=installed_version("torch"),
        ).set(1)
        self.kimg = Counter(
            "stylegan_trainer_kimg",
            "Training position in thousands of real images shown (from the resumed checkpoint).",
            registry=r,
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
        self._kimg = 0.0

    def update(
        self,
        *,
        kimg: float | None = None,
        losses: Mapping[str, float] | None = None,
        augment_p: float | None = None,
        gpu_memory_bytes: float | None = None,
    ) -> None:
        position = finite_or_none(kimg)
        if position is not None and position > self._kimg:
            # A counter only goes up: it moves by the images trained since the last tick.
            self.kimg.inc(position - self._kimg)
            self._kimg = position
        for gauge, value in (
            (self.augment_p, augment_p),
            (self.gpu_memory_bytes, gpu_memory_bytes),
        ):
            number = finite_or_none(value)
            if number is not None:
                gauge.set(number)
        for name, value in (losses or {}).items():
            # A NaN loss is news (the run diverged), so it is exported as is.
            self.loss.labels(name=str(name)).set(float(value))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def check_port(port: Any) -> int:
    """``metrics_port`` as a port number (0: off); ``ConfigError`` naming the field otherwise."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(
            f"metrics_port: {port!r} is not a port number; give 1-65535 "
            f"(the operator's pods use {DEFAULT_PORT}) or 0 for no metrics endpoint"
        )
    return port


