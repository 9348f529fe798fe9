"""Prometheus metrics: names, units, labels, counters that never go down, isolation."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

from stylegan_operator.controller.metrics import (
    PHASES,
    REGISTRY,
    RunMetrics,
    RunSample,
    TrainerMetrics,
    remove_run,
    update_run,
)
from stylegan_operator.cost.budget import Projection
from stylegan_operator.cost.spend import SpendSnapshot, TypeSpend

NOW = datetime(2024, 5, 1, tzinfo=UTC)


def snapshot(cost_usd: float = 46.0, gpu_seconds: float = 72000.0) -> SpendSnapshot:
    v100 = TypeSpend("nvidia-tesla-v100", gpu_seconds, gpu_seconds / 8, cost_usd, 2.48)
    cpu = TypeSpend("cpu", 7200.0, 3600.0, 0.1, 0.03)
    return SpendSnapshot(
        gpu_seconds=gpu_seconds,
        node_seconds=gpu_seconds / 8 + 3600,
        cost_usd=cost_usd + 0.1,
        cost=(cost_usd + 0.1) * 109,
        currency="JPY",
        burn_rate_usd_per_hour=19.84,
        burn_rate_per_hour=19.84 * 109,
        by_type={"nvidia-tesla-v100": v100, "cpu": cpu},
        running_pods=1,
    )


def sample(run: str = "faces", **overrides: object) -> RunSample:
    fields: dict[str, object] = {
        "namespace": "team-a",
        "run": run,
        "phase": "Running",
        "spend": snapshot(),
        "currency": "JPY",
        "exchange_rate": 109.0,
        "projection": Projection(3600.0 * 10, NOW, 250.0, 204.0),
        "budget_usd": 500.0,
        "kimg": 1200.5,
        "target_kimg": 25000.0,
        "restarts": 2,
        "preemptions": 1,
        "lost_work_cost_usd": 3.5,
    }
    fields.update(overrides)
    return RunSample(**fields)  # type: ignore[arg-type]


def scrape(metrics: RunMetrics | TrainerMetrics) -> dict[str, dict[tuple, float]]:
    """name -> {sorted label items: value}, from the text the registry exposes."""
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def types(metrics: RunMetrics | TrainerMetrics) -> dict[str, str]:
    return {f.name: f.type for f in text_string_to_metric_families(metrics.exposition().decode())}


def labels(**kv: str) -> tuple:
    return tuple(sorted(kv.items()))


RUN = {"namespace": "team-a", "run": "faces"}


def test_run_metrics_have_the_design_names_types_and_labels() -> None:
    metrics = RunMetrics()
    metrics.update(sample())
    got = scrape(metrics)
    kinds = types(metrics)
    for name in (
        "stylegan_run_gpu_seconds",
        "stylegan_run_cost",
        "stylegan_run_restarts",
        "stylegan_run_preemptions",
        "stylegan_run_lost_work_cost",
        "stylegan_run_kimg",
    ):
        assert kinds[name] == "counter"
        assert f"{name}_total" in got
    for name in (
        "stylegan_run_price_per_gpu_hour",
        "stylegan_run_projected_cost",
        "stylegan_run_budget",
        "stylegan_run_eta_seconds",
        "stylegan_run_target_kimg",
        "stylegan_run_phase",
    ):
        assert kinds[name] == "gauge"
    assert all(n.startswith("stylegan_run_") for n in got)

    v100 = got["stylegan_run_gpu_seconds_total"]
    assert v100 == {labels(**RUN, gpu_type="nvidia-tesla-v100"): 72000.0}  # cpu has no GPUs
    cost = got["stylegan_run_cost_total"]
    assert cost[labels(**RUN, currency="USD")] == pytest.approx(46.1)
    assert cost[labels(**RUN, currency="JPY")] == pytest.approx(46.1 * 109)
    price = got["stylegan_run_price_per_gpu_hour"]
    assert price[labels(**RUN, gpu_type="nvidia-tesla-v100", currency="USD")] == 2.48
    assert price[labels(**RUN, gpu_type="nvidia-tesla-v100", currency="JPY")] == pytest.approx(
        270.32
    )
    assert got["stylegan_run_projected_cost"][labels(**RUN, currency="USD")] == 250.0
    assert got["stylegan_run_budget"][labels(**RUN, currency="JPY")] == pytest.approx(54500)
    assert got["stylegan_run_eta_seconds"] == {labels(**RUN): 36000.0}
    assert got["stylegan_run_kimg_total"] == {labels(**RUN): 1200.5}
    assert got["stylegan_run_target_kimg"] == {labels(**RUN): 25000.0}
    assert got["stylegan_run_restarts_total"] == {labels(**RUN): 2.0}
    assert got["stylegan_run_preemptions_total"] == {labels(**RUN): 1.0}
    assert got["stylegan_run_lost_work_cost_total"][labels(**RUN, currency="USD")] == 3.5
    phases = got["stylegan_run_phase"]
    assert {dict(k)["phase"] for k in phases} == set(PHASES)
    assert [dict(k)["phase"] for k, v in phases.items() if v == 1.0] == ["Running"]


def test_a_usd_run_exports_money_once() -> None:
    metrics = RunMetrics()
    metrics.update(sample(currency="USD", exchange_rate=1.0))
    cost = scrape(metrics)["stylegan_run_cost_total"]
    assert list(cost) == [labels(**RUN, currency="USD")]


def test_counters_never_go_down() -> None:
    metrics = RunMetrics()
    metrics.update(sample())
    metrics.update(
        sample(spend=snapshot(cost_usd=10.0, gpu_seconds=100.0), restarts=1, exchange_rate=100.0)
    )
    got = scrape(metrics)
    assert got["stylegan_run_gpu_seconds_total"][labels(**RUN, gpu_type="nvidia-tesla-v100")] == (
        72000.0
    )
    assert got["stylegan_run_cost_total"][labels(**RUN, currency="JPY")] == pytest.approx(
        46.1 * 109
    )
    assert got["stylegan_run_restarts_total"][labels(**RUN)] == 2.0
    metrics.update(sample(spend=snapshot(cost_usd=100.0), restarts=3))
    got = scrape(metrics)
    assert got["stylegan_run_cost_total"][labels(**RUN, currency="USD")] == pytest.approx(100.1)
    assert got["stylegan_run_restarts_total"][labels(**RUN)] == 3.0


def test_missing_values_are_left_out_never_nan() -> None:
    metrics = RunMetrics()
    metrics.update(
        sample(
            projection=Projection(None, None, 46.1, 0.0),
            budget_usd=None,
            kimg=None,
            target_kimg=float("nan"),
        )
    )
    got = scrape(metrics)
    assert "stylegan_run_eta_seconds" not in got
    assert "stylegan_run_budget" not in got
    assert "stylegan_run_kimg_total" not in got and "stylegan_run_target_kimg" not in got
    assert all(not math.isnan(v) for series in got.values() for v in series.values())


def test_the_last_checkpoint_is_a_unix_timestamp_gauge_absent_before_the_first() -> None:
    metrics = RunMetrics()
    metrics.update(sample())
    assert "stylegan_run_last_checkpoint_timestamp_seconds" not in scrape(metrics)
    written = datetime(2024, 5, 1, 11, 30, 15, tzinfo=UTC)
    metrics.update(sample(last_checkpoint_time=written))
    got = scrape(metrics)["stylegan_run_last_checkpoint_timestamp_seconds"]
    assert got == {labels(**RUN): 1714563015.0}
    assert types(metrics)["stylegan_run_last_checkpoint_timestamp_seconds"] == "gauge"
    # A naive time is UTC, as Kubernetes writes them.
    metrics.update(sample(last_checkpoint_time=written.replace(tzinfo=None)))
    assert scrape(metrics)["stylegan_run_last_checkpoint_timestamp_seconds"] == got


def test_remove_run_forgets_only_that_run() -> None:
    metrics = RunMetrics()
    metrics.update(sample("faces"))
    metrics.update(sample("cats"))
    metrics.remove_run("team-a", "faces")
    runs = {dict(k)["run"] for series in scrape(metrics).values() for k in series}
    assert runs == {"cats"}
    # A new run of the same name starts its counters afresh.
    metrics.update(sample("faces", restarts=0))
    assert scrape(metrics)["stylegan_run_restarts_total"][labels(**RUN)] == 0.0


def test_registries_are_isolated_from_each_other_and_the_global_one() -> None:
    first, second = RunMetrics(), RunMetrics()
    first.update(sample())
    assert "stylegan_run_cost_total" in scrape(first)
    assert "stylegan_run_cost_total" not in scrape(second)
    global_text = prometheus_client.generate_latest(prometheus_client.REGISTRY).decode()
    assert "stylegan_" not in global_text
    assert REGISTRY is not prometheus_client.REGISTRY


def test_module_functions_drive_the_operator_registry() -> None:
    update_run(sample("module-test"))
    text = prometheus_client.generate_latest(REGISTRY).decode()
    assert 'run="module-test"' in text
    remove_run("team-a", "module-test")
    assert 'run="module-test"' not in prometheus_client.generate_latest(REGISTRY).decode()


def test_trainer_metrics_names_units_and_labels() -> None:
    metrics = TrainerMetrics()
    metrics.update(
        kimg=12.0,
        losses={"G": 1.5, "D": 0.4},
        augment_p=0.12,
        gpu_memory_bytes=6.2 * 2**30,
    )
    metrics.update(kimg=None, augment_p=float("nan"))  # None and NaN leave values as they were
    got = scrape(metrics)
    assert got["stylegan_trainer_kimg_total"] == {(): 12.0}
    assert got["stylegan_trainer_augment_p"] == {(): 0.12}
    assert got["stylegan_trainer_gpu_memory_bytes"] == {(): pytest.approx(6.2 * 2**30)}
    assert got["stylegan_trainer_loss"] == {(("name", "D"),): 0.4, (("name", "G"),): 1.5}
    assert types(metrics)["stylegan_trainer_kimg"] == "counter"
    assert {t for n, t in types(metrics).items() if n != "stylegan_trainer_kimg"} == {"gauge"}
    info = got["stylegan_trainer_build_info"]
    assert list(info.values()) == [1.0] and dict(next(iter(info)))["torch_version"]
