"""Rank 0's Prometheus endpoint: gauges from each tick's report, served over HTTP."""

from __future__ import annotations

import io
import json
import math
import socket
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from prometheus_client.parser import text_string_to_metric_families
from tests.support import free_port

from stylegan_common.errors import EXIT_OK, ConfigError
from stylegan_common.trainer_metrics import TrainerMetrics, check_port
from stylegan_trainer.report.metrics_export import MetricsExporter, tick_values
from stylegan_trainer.report.progress import Reporter, TickReport
from stylegan_trainer.train.loop import Trainer
from stylegan_trainer.train.options import TrainingOptions

TINY = {
    "z_dim": 16, "w_dim": 16, "channel_base": 128, "channel_max": 16, "mapping_layers": 1,
    "g_reg_interval": 2, "d_reg_interval": 2,
}  # fmt: skip
BATCH = 4


def _report(**changes: Any) -> TickReport:
    values: dict[str, Any] = dict(
        tick=3, kimg=12.0, total_kimg=100.0, time_s=200.0, sec_per_tick=50.0, sec_per_kimg=25.0,
        maintenance_s=0.5, cpumem_gb=1.5, gpumem_gb=2.0, augment_p=0.125,
        stats={"Loss/G/loss": 1.5, "Loss/D/loss": 0.25, "Loss/r1_penalty": 0.01,
               "Loss/signs/real": 0.4},
    )  # fmt: skip
    values.update(changes)
    return TickReport(**values)


def _scrape_text(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def _scrape_http(port: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        return _scrape_text(response.read().decode())


# ---------------------------------------------------------------------------------------------
# From a tick report to the gauges


def test_tick_values_carry_position_memory_and_short_loss_names() -> None:
    values = tick_values(_report())
    assert values["kimg"] == 12.0
    assert not {"sec_per_kimg", "images_per_second"} & set(values)  # no precomputed rates
    assert values["gpu_memory_bytes"] == 2 * 2**30
    assert values["augment_p"] == 0.125
    # Only the loss terms, under the names the dashboards use; signs are not losses.
    assert values["losses"] == {"G": 1.5, "D": 0.25, "r1": 0.01}


def test_kimg_is_a_counter_that_follows_the_position_and_never_goes_down() -> None:
    metrics = TrainerMetrics()
    exporter = MetricsExporter(metrics)
    exporter(_report(kimg=5000.0))  # resumed at 5,000 kimg: the counter starts there
    exporter(_report(kimg=5004.0))
    exporter(_report(kimg=float("nan")))
    exporter(_report(kimg=4000.0))  # never happens in one process; still no decrease
    got = _scrape_text(metrics.exposition().decode())
    assert got["stylegan_trainer_kimg_total"] == {(): 5004.0}
    assert "stylegan_trainer_images_per_second" not in got


def test_the_reporter_hands_every_tick_to_its_tick_hooks(tmp_path: Path) -> None:
    seen: list[TickReport] = []
    reporter = Reporter(
        tmp_path, 100.0, progress_bar="off", out=io.StringIO(), tick_hooks=[seen.append]
    )
    reporter.tick(_report(tick=0))
    reporter.tick(_report(tick=1, kimg=16.0))
    assert [r.tick for r in seen] == [0, 1]
    stats = [json.loads(line) for line in (tmp_path / "stats.jsonl").read_text().splitlines()]
    assert [s["kimg"] for s in stats] == [r.kimg for r in seen]


@pytest.mark.parametrize("port", [-1, 65536, "9400", 94.0, True])
def test_a_bad_metrics_port_names_the_field(port: Any) -> None:
    with pytest.raises(ConfigError, match="metrics_port"):
        check_port(port)
    with pytest.raises(ConfigError, match="metrics_port"):
        TrainingOptions(metrics_port=port).validate()


def test_a_busy_port_is_a_configuration_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = int(busy.getsockname()[1])
        with pytest.raises(ConfigError, match=f"metrics_port: cannot serve metrics on .*:{port}"):
            MetricsExporter().serve(port, addr="127.0.0.1")


def test_the_exporter_serves_its_registry_until_closed() -> None:
    exporter = MetricsExporter()
    exporter.serve(0, addr="127.0.0.1")
    port = exporter.port
    assert port
    try:
        exporter(_report())
        got = _scrape_http(port)
        assert got["stylegan_trainer_loss"][(("name", "G"),)] == 1.5
        # Its own registry: none of prometheus_client's default process/python series.
        assert not [name for name in got if not name.startswith("stylegan_trainer_")]
        exporter.serve(0)  # a second call keeps the first endpoint
        assert exporter.port == port
    finally:
        exporter.close()
    assert exporter.port is None
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


# ---------------------------------------------------------------------------------------------
# A real (tiny) training run


@pytest.fixture
def dataset_dir(noise_dataset: Callable[..., str]) -> str:
    return noise_dataset(8)


def _options(dataset: str, outdir: Path, steps: int, **changes: Any) -> TrainingOptions:
    values: dict[str, Any] = dict(
        dataset=dataset, preset="cpu", resolution=8, batch=BATCH, kimg=steps * BATCH / 1000,
        outdir=str(outdir), resume="none", progress_bar="off", device="cpu",
        tick_kimg=0.004, snapshot_kimg=1.0, grid_seeds=4, overrides=dict(TINY),
    )  # fmt: skip
    values.update(changes)
    return TrainingOptions(**values)


def test_a_training_run_serves_its_tick_figures_over_http(dataset_dir: str, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    port = free_port()
    trainer = Trainer(_options(dataset_dir, tmp_path, 3, metrics_port=port))
    assert trainer.metrics is not None
    try:
        assert trainer.run() == EXIT_OK
        assert trainer.metrics.port == port
        got = _scrape_http(port)
    finally:
        trainer.metrics.close()
    last = json.loads((tmp_path / "stats.jsonl").read_text().splitlines()[-1])

    def value(metric: str, **labels: str) -> float:
        return got[metric][tuple(sorted(labels.items()))]

    assert value("stylegan_trainer_kimg_total") == pytest.approx(3 * BATCH / 1000) == last["kimg"]
    for name, key in (("G", "Loss/G/loss"), ("D", "Loss/D/loss")):
        assert math.isfinite(value("stylegan_trainer_loss", name=name))
        assert value("stylegan_trainer_loss", name=name) == pytest.approx(last[key])
    assert 0.0 <= value("stylegan_trainer_augment_p") <= 1.0
    assert value("stylegan_trainer_augment_p") == pytest.approx(last["augment_p"])
    assert value("stylegan_trainer_gpu_memory_bytes") == 0.0  # a CPU run holds no GPU memory


def test_without_a_metrics_port_nothing_is_served(dataset_dir: str, tmp_path: Path) -> None:
    trainer = Trainer(_options(dataset_dir, tmp_path, 1))
    assert trainer.metrics is None
    assert trainer.reporter.tick_hooks == []
