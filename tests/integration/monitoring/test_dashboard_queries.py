"""Every panel of every dashboard shows data from a real Prometheus scraping the real operator.

The ``metrics_source`` fixture (conftest.py) is ``stylegan operator`` on the session's
control plane, with two runs on KWOK nodes whose cost comes from their pods' real lifetimes
and whose progress comes from the trainer's own reporting code; only the trainer's
exporter runs in this process instead of in a pod (conftest.py says why). Debian's
Prometheus (``prometheus_factory``) scrapes it every second. The test moves the runs on
between scrapes, waiting each time until Prometheus has the new kimg from both the
trainer's exporter and the operator, so counters have grown across several samples and
``rate``/``deriv`` panels have something to compute. Then every target of every dashboard
runs with its template variables filled in, as Grafana would send it, and must return at
least one series; with a single namespace selected it must return only that namespace's
series.

The figures are the operator's: the cost Prometheus scraped agrees with the run's
``status.cost`` within 1% (the cost of pods with known lifetimes is checked against
``status.cost`` within 1% in tests/integration/operator/test_cost_and_progress.py), and
the failed attempt shows as one restart and its lost work.

The same Prometheus loads monitoring/alerts.yaml: the rules must evaluate without error,
and the over-budget run must set off the budget alerts while the other run stays silent.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from collections.abc import Callable
from functools import partial
from typing import cast

import dashboards
import pytest
import yaml

from tests.integration.conftest import Runs
from tests.integration.monitoring.conftest import (
    JPY_PER_USD,
    JPY_RUN,
    LOST_WORK_USD,
    OVER_BUDGET_RUN,
    RESTARTED_RUN,
    OperatorOnCluster,
)
from tests.support import ROOT, Kubectl, Prometheus, require_binary, wait_for

RULES = ROOT / "monitoring" / "alerts.yaml"
SCRAPES_WITH_NEW_VALUES = 3
# Grafana's built-ins: a rate window that holds several 1 s scrapes, and a short range.
BUILTINS = {"__rate_interval": "30s", "__interval": "1s", "__range": "5m"}


def fill(expr: str, values: dict[str, str]) -> str:
    """``expr`` with ``$name`` / ``${name}`` replaced as Grafana interpolates them."""
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"no value for ${name} in {expr!r}")
        return values[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expr)


def all_targets() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, expr) for every target of every generated dashboard."""
    found = []
    for name, text in dashboards.render().items():
        for panel in json.loads(text)["panels"]:
            for target in panel.get("targets", []):
                found.append((name, panel["title"], target["expr"]))
    return found


def variable_queries() -> list[tuple[str, str, str]]:
    """(dashboard, variable, label_values query) for every query variable."""
    found = []
    for name, text in dashboards.render().items():
        for variable in json.loads(text)["templating"]["list"]:
            if variable["type"] == "query":
                found.append((name, variable["name"], variable["query"]))
    return found


def get_json(prom: Prometheus, path: str) -> dict:
    with urllib.request.urlopen(f"{prom.url}{path}", timeout=10) as response:
        return json.loads(response.read())["data"]


@pytest.fixture(scope="module")
def prometheus(module_prometheus_factory: Callable[[dict], Prometheus],
               metrics_source: OperatorOnCluster, tmp_path_factory: pytest.TempPathFactory,
               ) -> Prometheus:
    """Prometheus scraping the source, with samples from several updates already stored."""
    # One for the module: every test only reads what it scraped.
    rules = tmp_path_factory.mktemp("rules") / "alerts.yaml"
    rules.write_text(RULES.read_text())
    prom = module_prometheus_factory({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": metrics_source.scrape_configs(),
    })
    expected_targets = sum(len(c["static_configs"]) for c in metrics_source.scrape_configs())
    wait_for(lambda: len([t for t in prom.targets() if t["health"] == "up"])
             >= expected_targets, timeout=30, what="every scrape target up")
    for _ in range(SCRAPES_WITH_NEW_VALUES):
        kimg = metrics_source.advance()
        # Both exporters' new values stored: the operator's and a trainer's.
        wait_for(partial(prom.query, f"stylegan_trainer_kimg_total == {kimg} "
                                     f"and on (namespace, run) stylegan_run_kimg_total == {kimg}"),
                 timeout=30, what=f"Prometheus to scrape kimg {kimg}")
    return prom


def test_every_panel_query_returns_data(prometheus: Prometheus,
                                        metrics_source: OperatorOnCluster) -> None:
    everything = {"namespace": ".*", "run": ".*", "currency": "USD", **BUILTINS}
    targets = all_targets()
    assert len(targets) >= 30
    for board, title, expr in targets:
        query = fill(expr, everything)
        # Bounded wait per query (fails naming the panel): a rate() needs two samples
        # inside its window.
        wait_for(partial(prometheus.query, query), timeout=20,
                 what=f"data for {board} / {title}: {query}")

    runs = {run for _, run in metrics_source.runs}
    cost_by_run = fill(next(e for b, t, e in targets if t == "Cost by run"),
                       everything)
    assert {s["metric"]["run"] for s in prometheus.query(cost_by_run)} == runs


def test_selecting_one_namespace_and_currency_narrows_every_query(
        prometheus: Prometheus, metrics_source: OperatorOnCluster) -> None:
    for namespace, run in metrics_source.runs:
        selected = {"namespace": namespace, "run": run, "currency": "USD", **BUILTINS}
        for board, title, expr in all_targets():
            query = fill(expr, selected)
            series = cast(list[dict], wait_for(
                partial(prometheus.query, query), timeout=20,
                what=f"{board} / {title} for {namespace}/{run}"))
            labels = [s["metric"] for s in series]
            assert all(m.get("namespace", namespace) == namespace for m in labels), title
            assert all(m.get("run", run) == run for m in labels), title
    # Only the run that displays JPY has JPY series.
    jpy = prometheus.query('stylegan_run_cost_total{currency="JPY"}')
    assert {s["metric"]["run"] for s in jpy} == {JPY_RUN}


def test_variable_queries_offer_the_runs_namespaces_and_currencies(
        prometheus: Prometheus, metrics_source: OperatorOnCluster) -> None:
    offered: dict[str, set[str]] = {}
    for _board, variable, query in variable_queries():
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", query)
        assert match, query
        series = prometheus.query(fill(match.group(1), {"namespace": ".*", "run": ".*"}))
        offered[variable] = {s["metric"][match.group(2)] for s in series}
    assert offered["namespace"] == {namespace for namespace, _ in metrics_source.runs}
    assert offered["run"] == {run for _, run in metrics_source.runs}
    assert offered["currency"] == {"USD", "JPY"}


def test_alert_rules_evaluate_and_the_over_budget_run_alerts(prometheus: Prometheus) -> None:
    groups = cast(list[dict], wait_for(lambda: get_json(prometheus, "/api/v1/rules")["groups"],
                                       timeout=30, what="rule groups loaded"))
    in_file = sum(len(group["rules"]) for group in yaml.safe_load(RULES.read_text())["groups"])
    assert in_file == 7 and sum(len(group["rules"]) for group in groups) == in_file

    def rule_health() -> dict[str, str]:
        return {rule["name"]: rule["health"]
                for group in get_json(prometheus, "/api/v1/rules")["groups"]
                for rule in group["rules"]}

    health = cast(dict[str, str], wait_for(
        lambda: (h := rule_health()) and "unknown" not in h.values() and h,
        timeout=30, what="every rule evaluated"))
    assert set(health.values()) == {"ok"}, health

    def budget_alerts() -> set[tuple[str, str]]:
        alerts = get_json(prometheus, "/api/v1/alerts")["alerts"]
        return {(a["labels"]["alertname"], a["labels"]["run"]) for a in alerts}

    expected = {("StyleGANRunBudgetNearlySpent", OVER_BUDGET_RUN),
                ("StyleGANRunProjectedOverBudget", OVER_BUDGET_RUN)}
    wait_for(lambda: expected <= budget_alerts(), timeout=30, what=f"alerts {expected}")
    assert not {alert for alert in budget_alerts() if alert[1] != OVER_BUDGET_RUN}


def scraped_status_cost(prometheus: Prometheus, kubectl: Kubectl, namespace: str,
                        run: str) -> float | None:
    """The run's ``status.cost`` if a sample of its scraped cost (same currency) agrees with
    it within 1%, else None.

    The status and the counter come from the same reconcile (every 2 s); the counter moves
    16 USD a reconcile, more than 1% of the totals here, so only that reconcile's sample
    agrees. Callers read afresh until Prometheus has scraped it.
    """
    status = Runs(kubectl, namespace).status(run)
    cost, currency = float(status["cost"]), status["currency"]
    series = prometheus.query(f'stylegan_run_cost_total{{namespace="{namespace}", '
                              f'run="{run}", currency="{currency}"}}[20s]')
    scraped = [float(value) for _, value in series[0]["values"]] if series else []
    return cost if any(abs(value - cost) <= 0.01 * cost for value in scraped) else None


def test_the_scraped_cost_is_the_runs_status_cost(
        prometheus: Prometheus, metrics_source: OperatorOnCluster, kubectl: Kubectl) -> None:
    for namespace, run in metrics_source.runs:
        cost = wait_for(partial(scraped_status_cost, prometheus, kubectl, namespace, run),
                        timeout=30, interval=0.5,
                        what=f"{run}'s status.cost among its scraped costs (1%)")
        assert cast(float, cost) > 0
    # The JPY run's two money series are one figure at the catalog's exchange rate.
    (ratio,) = prometheus.query(f'stylegan_run_cost_total{{run="{JPY_RUN}", currency="JPY"}} '
                                f'/ ignoring (currency) '
                                f'stylegan_run_cost_total{{run="{JPY_RUN}", currency="USD"}}')
    assert float(ratio["value"][1]) == pytest.approx(JPY_PER_USD)


def test_the_failed_attempt_shows_as_a_restart_and_its_lost_work(
        prometheus: Prometheus, metrics_source: OperatorOnCluster) -> None:
    restarts = {s["metric"]["run"]: float(s["value"][1])
                for s in prometheus.query("stylegan_run_restarts_total")}
    assert restarts == {run: float(run == RESTARTED_RUN) for _, run in metrics_source.runs}
    lost = {(s["metric"]["run"], s["metric"]["currency"]): float(s["value"][1])
            for s in prometheus.query("stylegan_run_lost_work_cost_total")}
    # 2 kimg past the checkpoint x 34 s/kimg on 8 GPUs at 1 USD per GPU-second.
    assert lost[(RESTARTED_RUN, "USD")] == pytest.approx(LOST_WORK_USD) == 544.0
    assert lost[(RESTARTED_RUN, "JPY")] == pytest.approx(LOST_WORK_USD * JPY_PER_USD)
    assert lost[(OVER_BUDGET_RUN, "USD")] == 0.0


def _lint(text: str) -> str:
    """What ``promtool check metrics`` says about an exposition ('' when it is clean)."""
    result = subprocess.run([require_binary("promtool"), "check", "metrics"], input=text,
                            capture_output=True, text=True, timeout=60)
    problems = (result.stdout + result.stderr).strip()
    assert (result.returncode == 0) == (not problems), problems
    return problems


def test_promtool_finds_no_problem_on_either_metrics_endpoint(
        prometheus: Prometheus, metrics_source: OperatorOnCluster) -> None:
    """Both real /metrics endpoints, as Prometheus scraped them, pass promtool's linter; a
    badly named counter in the same text does not, so the check can fail."""
    assert metrics_source.operator is not None
    operator = _get(f"http://127.0.0.1:{metrics_source.operator.metrics_port}/metrics")
    trainers = [_get(f"http://127.0.0.1:{t.port}/metrics")
                for t in metrics_source.trainers.values()]
    for text in (operator, *trainers):
        assert _lint(text) == ""
    assert "counter metrics should have" in _lint(
        operator + "# HELP stylegan_run_oops x\n# TYPE stylegan_run_oops counter\n"
                   "stylegan_run_oops 1\n")
    # Who produced the series, and the operator's own health, are on the same page.
    assert 'stylegan_operator_build_info{' in operator
    assert all("stylegan_trainer_build_info{" in text for text in trainers)
    ok = re.search(r'^stylegan_operator_reconcile_duration_seconds_count\{outcome="ok"\} (\S+)$',
                   operator, flags=re.M)
    assert ok and float(ok.group(1)) > 0, "no successful reconcile counted"
    for name in ("stylegan_operator_reconcile_errors_total",
                 "stylegan_operator_api_request_errors_total",
                 "stylegan_operator_watch_restarts_total",
                 "stylegan_operator_reconcile_queue_depth"):
        assert f"# TYPE {name} " in operator, name


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()
