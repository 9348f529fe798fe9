"""Both expositions follow the Prometheus conventions, checked by promtool and by our rules.

``promtool check metrics`` (the linter Prometheus ships) reads the text each registry serves,
fed with realistic samples; the real endpoints are linted the same way in
tests/integration/monitoring. What promtool 2.42 does not check is asserted here: no
precomputed rate (PromQL's ``rate()`` does that), kimg exported as a counter, and a
``build_info`` gauge on each endpoint.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from stylegan_operator.controller.health import OperatorHealth
from stylegan_operator.controller.metrics import RunMetrics, TrainerMetrics
from tests.support import require_binary
from tests.unit.monitoring.exported import run_sample, trainer_update

RATE_NAME = re.compile(r"_per_(second|kimg|hour)$|_rate$|seconds_per_")


def operator_text() -> str:
    registry = CollectorRegistry(auto_describe=True)
    metrics = RunMetrics(registry)
    health = OperatorHealth(registry)
    health.observe_reconcile(0.04, "ok")
    health.observe_reconcile(1.5, "transient")
    health.count_api_error(503)
    health.count_api_error(None)
    health.watch_queue(lambda: (2, 1))
    metrics.update(run_sample("team-a", "faces", hours=2.0))
    return metrics.exposition().decode()


def trainer_text() -> str:
    metrics = TrainerMetrics()
    trainer_update(metrics, kimg=1200.0)
    return metrics.exposition().decode()


def promtool_check(text: str) -> tuple[int, str]:
    result = subprocess.run([require_binary("promtool"), "check", "metrics"], input=text,
                            capture_output=True, text=True, timeout=60)
    return result.returncode, (result.stdout + result.stderr).strip()


@pytest.mark.parametrize("text", [operator_text, trainer_text], ids=["operator", "trainer"])
def test_promtool_finds_nothing_to_complain_about(text: Callable[[], str]) -> None:
    assert promtool_check(text()) == (0, "")


def test_promtool_would_complain_about_a_counter_without_total() -> None:
    code, said = promtool_check("# HELP bad_seconds x\n# TYPE bad_seconds counter\nbad_seconds 1\n")
    assert code != 0 and 'should have "_total" suffix' in said


@pytest.mark.parametrize("text", [operator_text, trainer_text], ids=["operator", "trainer"])
def test_no_rate_is_precomputed_and_kimg_is_a_counter(text: Callable[[], str]) -> None:
    families = {f.name: f.type for f in text_string_to_metric_families(text())}
    rates = [name for name in families if RATE_NAME.search(name)
             and name != "stylegan_run_price_per_gpu_hour"]  # a price, in the unit clouds use
    assert rates == []
    # The kimg trained so far is a counter; a target is a setting, a gauge.
    kimg = [name for name in families if name.endswith("_kimg") and "target" not in name]
    assert kimg and all(families[name] == "counter" for name in kimg), families
    info = [name for name in families if name.endswith("_build_info")]
    assert len(info) == 1 and families[info[0]] == "gauge"


def test_operator_health_counts_what_happened() -> None:
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(operator_text()) for s in f.samples}
    assert samples[("stylegan_operator_reconcile_duration_seconds_count",
                    (("outcome", "ok"),))] == 1
    assert samples[("stylegan_operator_reconcile_errors_total", (("reason", "transient"),))] == 1
    assert samples[("stylegan_operator_reconcile_errors_total", (("reason", "error"),))] == 0
    assert samples[("stylegan_operator_api_request_errors_total", (("code", "503"),))] == 1
    assert samples[("stylegan_operator_api_request_errors_total", (("code", "none"),))] == 1
    assert samples[("stylegan_operator_reconcile_queue_depth", ())] == 2
    assert samples[("stylegan_operator_reconciles_in_flight", ())] == 1
