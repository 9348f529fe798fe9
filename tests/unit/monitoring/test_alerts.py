"""The Prometheus alert rules: valid, tested by promtool, and only about exported metrics.

``promtool check rules`` and ``promtool test rules`` (Debian's Prometheus 2.42, installed by
``make tools``) run on the committed files. Because a promtool test that never expects an
alert would pass against any rules, each alert is also switched off in a copy of the rules
file, and promtool must then fail: every alert has a case where it fires.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support import ROOT, require_binary
from tests.unit.monitoring.exported import exported_metric_names, metric_names_in, unbalanced

RULES = ROOT / "monitoring" / "alerts.yaml"
RULE_TESTS = ROOT / "monitoring" / "alerts_test.yaml"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_binary("promtool"), *args], capture_output=True, text=True,
                          timeout=60)


def alert_rules() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def rule_cases() -> list[dict]:
    return [case for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
            for case in test.get("alert_rule_test", [])]


ALERT_NAMES = [rule["alert"] for rule in alert_rules()]


def test_promtool_accepts_the_rules_file() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_expected_alerts_exist() -> None:
    assert sorted(ALERT_NAMES) == sorted([
        "StyleGANRunProjectedOverBudget", "StyleGANRunBudgetNearlySpent",
        "StyleGANRunStalled", "StyleGANRunRestartingOften", "StyleGANRunNoRecentCheckpoint",
        "StyleGANRunLossNotFinite", "StyleGANRunFailed"])


@pytest.mark.parametrize("alert", ALERT_NAMES)
def test_each_alert_is_tested_firing_and_silent(alert: str) -> None:
    cases = [case for case in rule_cases() if case["alertname"] == alert]
    assert any(case.get("exp_alerts") for case in cases), f"{alert}: no case where it fires"
    assert any(not case.get("exp_alerts") for case in cases), f"{alert}: no silent case"


@pytest.mark.parametrize("alert", ALERT_NAMES)
def test_promtool_fails_when_an_alert_never_fires(alert: str, tmp_path: Path) -> None:
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alert:
                rule["expr"] = "vector(1) == 0"  # valid PromQL that is never true
    (tmp_path / "alerts.yaml").write_text(yaml.safe_dump(rules))
    (tmp_path / "alerts_test.yaml").write_text(RULE_TESTS.read_text())
    result = promtool("test", "rules", str(tmp_path / "alerts_test.yaml"))
    assert result.returncode != 0, f"the promtool tests still pass with {alert} switched off"
    assert alert in result.stdout + result.stderr


@pytest.mark.parametrize("rule", alert_rules(), ids=ALERT_NAMES)
def test_rules_use_only_exported_metrics(rule: dict) -> None:
    assert unbalanced(rule["expr"]) is None, f"{rule['alert']}: {unbalanced(rule['expr'])}"
    names = metric_names_in(rule["expr"])
    assert names, f"{rule['alert']} selects no metric"
    assert names <= exported_metric_names(), (
        f"{rule['alert']} uses {sorted(names - exported_metric_names())}, which "
        f"stylegan_operator.controller.metrics does not export")


@pytest.mark.parametrize("rule", alert_rules(), ids=ALERT_NAMES)
def test_rules_name_the_run_and_say_what_to_do(rule: dict) -> None:
    assert rule["labels"]["severity"] in {"warning", "critical"}
    assert "$labels.namespace" in rule["annotations"]["summary"]
    assert "$labels.run" in rule["annotations"]["summary"]
    assert rule["annotations"]["description"].strip()
    # Every alert keeps the run's identity: it aggregates by, or matches on, namespace+run.
    assert "(namespace, run" in rule["expr"]


@pytest.mark.parametrize("rule", alert_rules(), ids=ALERT_NAMES)
def test_every_alert_links_its_runbook_section(rule: dict) -> None:
    """``runbook_url`` points at a section of docs/runbooks.md that exists."""
    url = rule["annotations"]["runbook_url"]
    page, _, anchor = url.partition("#")
    assert page == "docs/runbooks.md" and anchor == rule["alert"].lower()
    headings = re.findall(r"^## (\S+)", (ROOT / page).read_text(), flags=re.M)
    assert rule["alert"] in headings, f"docs/runbooks.md has no '## {rule['alert']}' section"


def test_a_checkpoint_age_metric_if_exported_is_alerted_on() -> None:
    """Every checkpoint metric metrics.py exports is watched by an alert."""
    checkpoint_metrics = {n for n in exported_metric_names() if "checkpoint" in n}
    assert checkpoint_metrics == {"stylegan_run_last_checkpoint_timestamp_seconds"}
    used = set().union(*(metric_names_in(rule["expr"]) for rule in alert_rules()))
    assert checkpoint_metrics <= used, (
        f"{sorted(checkpoint_metrics - used)} exported but no alert watches checkpoint age")
