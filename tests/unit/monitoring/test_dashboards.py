"""The Grafana dashboards: committed JSON equals the generator's, and every query is sane.

"Sane" here: brackets pair up, every metric a query names is one that
``stylegan_operator.controller.metrics`` really exports (collected from a live registry), every
query
honours the ``$namespace`` and ``$run`` selection, and every ``$variable`` is defined.
Whether each query returns data from a real Prometheus is the integration test's job
(tests/integration/monitoring/test_dashboard_queries.py).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dashboards
import pytest

from stylegan_operator.controller.metrics import PHASES
from tests.support import ROOT
from tests.unit.monitoring.exported import exported_metric_names, metric_names_in, unbalanced

COMMITTED = ROOT / "charts" / "stylegan-operator" / "dashboards"
BUILTIN_VARIABLES = {"__rate_interval", "__interval", "__range"}


def load(name: str) -> dict:
    return json.loads((COMMITTED / f"{name}.json").read_text())


def panels(board: dict) -> list[dict]:
    return [p for p in board["panels"] if p["type"] != "row"]


def targets(board: dict) -> list[tuple[str, str]]:
    """(panel title, expr) for every target of every panel."""
    return [(p["title"], t["expr"]) for p in panels(board) for t in p["targets"]]


def variables(board: dict) -> dict[str, dict]:
    return {v["name"]: v for v in board["templating"]["list"]}


BOARDS = sorted(dashboards.DASHBOARDS)
ALL_TARGETS = [(name, title, expr) for name in BOARDS for title, expr in targets(load(name))]


# -- generated, committed, deterministic -----------------------------------------------
def test_committed_files_equal_a_fresh_generation() -> None:
    fresh = dashboards.render()
    assert sorted(fresh) == sorted(p.name for p in COMMITTED.glob("*.json"))
    for name, text in fresh.items():
        assert (COMMITTED / name).read_text() == text, (
            f"{name} drifted: run .venv/bin/python hack/dashboards.py")
    assert dashboards.drift() == []


def test_generation_is_deterministic_sorted_and_newline_terminated() -> None:
    first, second = dashboards.render(), dashboards.render()
    assert first == second
    for text in first.values():
        assert text.endswith("}\n") and not text.endswith("\n\n")
        assert text == json.dumps(json.loads(text), sort_keys=True, indent=2) + "\n"


def test_check_mode_passes_on_a_fresh_copy_and_fails_on_each_kind_of_drift(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "dashboards"
    shutil.copytree(COMMITTED, out)
    assert dashboards.main(["--check", "--outdir", str(out)]) == 0

    cost = out / "stylegan-cost.json"
    text = cost.read_text()
    cost.write_text(text.replace("stylegan_run_projected_cost", "stylegan_run_projected"))
    assert dashboards.main(["--check", "--outdir", str(out)]) == 1
    assert "stylegan-cost.json: differs" in capsys.readouterr().err

    cost.unlink()
    assert dashboards.main(["--check", "--outdir", str(out)]) == 1
    assert "stylegan-cost.json: missing" in capsys.readouterr().err

    dashboards.main(["--outdir", str(out)])
    (out / "hand-made.json").write_text("{}\n")
    assert dashboards.main(["--check", "--outdir", str(out)]) == 1
    assert "hand-made.json: not generated" in capsys.readouterr().err


def test_the_script_runs_standalone_in_check_mode() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "hack" / "dashboards.py"), "--check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


# -- structure -------------------------------------------------------------------------
@pytest.mark.parametrize("name", BOARDS)
def test_uid_is_the_file_name_and_stable(name: str) -> None:
    board = load(name)
    assert board["uid"] == name
    assert "stylegan" in board["tags"]


def test_the_two_dashboards_exist() -> None:
    assert BOARDS == ["stylegan-cost", "stylegan-training"]


@pytest.mark.parametrize("name", BOARDS)
def test_panel_ids_and_ref_ids_are_unique_and_layout_does_not_overlap(name: str) -> None:
    board = load(name)
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) and i > 0 for i in ids)
    occupied: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {(grid["x"] + dx, grid["y"] + dy)
                 for dx in range(grid["w"]) for dy in range(grid["h"])}
        assert not cells & occupied, f"{panel['title']} overlaps another panel"
        occupied |= cells
    for panel in panels(board):
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)) and all(refs), panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["title"] and panel["description"], panel["id"]


@pytest.mark.parametrize("name", BOARDS)
def test_namespace_and_run_variables_come_from_label_values(name: str) -> None:
    found = variables(load(name))
    assert found["datasource"]["type"] == "datasource"
    namespace, run = found["namespace"], found["run"]
    assert namespace["query"] == "label_values(stylegan_run_phase, namespace)"
    assert run["query"] == 'label_values(stylegan_run_phase{namespace=~"$namespace"}, run)'
    for variable in (namespace, run):
        assert variable["type"] == "query"
        assert variable["multi"] and variable["includeAll"] and variable["allValue"] == ".*"


def test_only_the_cost_dashboard_has_a_currency_variable_defaulting_to_usd() -> None:
    currency = variables(load("stylegan-cost"))["currency"]
    assert currency["query"].startswith("label_values(stylegan_run_cost_total{")
    assert currency["query"].endswith(", currency)")
    assert currency["current"]["value"] == "USD" and not currency["multi"]
    assert "currency" not in variables(load("stylegan-training"))


@pytest.mark.parametrize("name", BOARDS)
def test_variable_queries_name_exported_metrics(name: str) -> None:
    for variable in variables(load(name)).values():
        if variable["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"])
        assert match, variable["query"]
        assert metric_names_in(match.group(1)) <= exported_metric_names()


# -- every query -----------------------------------------------------------------------
@pytest.mark.parametrize(("name", "title", "expr"), ALL_TARGETS,
                         ids=[f"{n}:{t}" for n, t, _ in ALL_TARGETS])
def test_every_query_is_balanced_and_names_only_exported_metrics(
        name: str, title: str, expr: str) -> None:
    assert unbalanced(expr) is None, f"{title}: {unbalanced(expr)} in {expr}"
    names = metric_names_in(expr)
    assert names, f"{title}: selects no metric: {expr}"
    unknown = names - exported_metric_names()
    assert not unknown, (
        f"{title}: {sorted(unknown)} not exported by stylegan_operator.controller.metrics")


@pytest.mark.parametrize(("name", "title", "expr"), ALL_TARGETS,
                         ids=[f"{n}:{t}" for n, t, _ in ALL_TARGETS])
def test_every_query_follows_the_selection_and_uses_defined_variables(
        name: str, title: str, expr: str) -> None:
    defined = set(variables(load(name))) | BUILTIN_VARIABLES
    used = set(re.findall(r"\$\{?(\w+)", expr))
    assert used <= defined, f"{title}: undefined {sorted(used - defined)}"
    # Every selector of every metric carries the namespace and run filters.
    selectors = re.findall(r"stylegan_\w+(\{[^}]*\})?", expr)
    assert selectors and all('namespace=~"$namespace"' in s and 'run=~"$run"' in s
                             for s in selectors), f"{title}: a selector ignores $namespace/$run"
    money = {"stylegan_run_cost_total", "stylegan_run_projected_cost",
             "stylegan_run_budget", "stylegan_run_lost_work_cost_total",
             "stylegan_run_price_per_gpu_hour"}
    if metric_names_in(expr) & money:
        # Money exists once per currency: without the filter runs would be counted twice.
        assert expr.count('currency="$currency"') == len(selectors), title


def test_the_queries_cover_what_the_issue_asks_for() -> None:
    def used(name: str) -> set[str]:
        return set().union(*(metric_names_in(expr) for _, expr in targets(load(name))))

    assert used("stylegan-cost") >= {
        "stylegan_run_cost_total", "stylegan_run_projected_cost", "stylegan_run_budget",
        "stylegan_run_gpu_seconds_total", "stylegan_run_lost_work_cost_total"}
    assert used("stylegan-training") >= {
        "stylegan_run_kimg_total", "stylegan_run_target_kimg", "stylegan_trainer_kimg_total",
        "stylegan_trainer_loss",
        "stylegan_trainer_augment_p", "stylegan_run_restarts_total",
        "stylegan_run_preemptions_total", "stylegan_run_phase"}
    cost_sums = [expr for _, expr in targets(load("stylegan-cost"))
                 if "stylegan_run_cost_total" in expr]
    assert any("by (namespace, run, currency)" in e for e in cost_sums)
    assert any("by (namespace, currency)" in e for e in cost_sums)
    # Burn rate and speed come from rate() of the counters: the exporters precompute none.
    assert any(e.startswith("3600 * sum") and "rate(stylegan_run_cost_total" in e
               for e in cost_sums)
    speeds = [expr for _, expr in targets(load("stylegan-training"))
              if "rate(stylegan_trainer_kimg_total" in expr]
    assert any(e.startswith("1 / ") for e in speeds) and any(e.startswith("1000 * ")
                                                              for e in speeds)


def test_phase_timeline_maps_every_phase_to_its_name() -> None:
    [timeline] = [p for p in panels(load("stylegan-training")) if p["type"] == "state-timeline"]
    [expr] = [t["expr"] for t in timeline["targets"]]
    texts = {int(code): result["text"]
             for code, result in timeline["fieldConfig"]["defaults"]["mappings"][0]["options"]
             .items()}
    assert texts == {0: "Unknown", **{i: p for i, p in enumerate(PHASES, start=1)}}
    for code, phase in enumerate(PHASES, start=1):
        assert f'{code} * max by (namespace, run) (stylegan_run_phase{{' in expr
        assert f'phase="{phase}"' in expr


# -- units, currency and annotations ---------------------------------------------------
MONEY_METRICS = {"stylegan_run_cost_total", "stylegan_run_projected_cost", "stylegan_run_budget",
                 "stylegan_run_lost_work_cost_total", "stylegan_run_price_per_gpu_hour"}


@pytest.mark.parametrize("name", BOARDS)
def test_every_panel_has_a_unit_and_money_shows_its_currency(name: str) -> None:
    for panel in panels(load(name)):
        if panel["type"] == "state-timeline":
            continue  # its values are mapped to phase names
        unit = panel["fieldConfig"]["defaults"].get("unit")
        assert unit and unit != "none", f"{panel['title']}: no unit"
        exprs = [t["expr"] for t in panel["targets"]]
        money = set().union(*(metric_names_in(e) for e in exprs)) & MONEY_METRICS
        if not money or panel["type"] == "bargauge":  # shares of a budget are percentages
            continue
        overrides = {o["matcher"]["options"]: o["properties"][0]["value"]
                     for o in panel["fieldConfig"]["overrides"]
                     if o["properties"][0]["id"] == "unit"}
        for code in ("USD", "EUR", "JPY", "GBP"):
            unit_of = [u for pattern, u in overrides.items() if re.search(pattern, f"x {code}")]
            assert unit_of == [f"currency{code}"], f"{panel['title']}: {code} -> {unit_of}"
        for target in panel["targets"]:
            assert target["legendFormat"].endswith("{{currency}}"), panel["title"]
            assert "currency" in re.findall(r"by \(([^)]*)\)", target["expr"])[-1]


@pytest.mark.parametrize("name", BOARDS)
def test_attempts_and_phase_changes_are_marked_on_the_time_panels(name: str) -> None:
    markers = {a["name"]: a for a in load(name)["annotations"]["list"]}
    assert {"Attempt started", "Attempt ended", "Phase changes"} <= set(markers)
    for marker in markers.values():
        assert marker["datasource"]["uid"] == "${datasource}" and marker["enable"]
        assert marker["titleFormat"].startswith("{{namespace}}/{{run}}")
        assert unbalanced(marker["expr"]) is None
        assert metric_names_in(marker["expr"]) <= exported_metric_names()
        assert 'namespace=~"$namespace"' in marker["expr"] and 'run=~"$run"' in marker["expr"]


def test_marker_queries_are_valid_promql(tmp_path: Path) -> None:
    """promtool parses each marker's query (with the selection filled in) as a rule."""
    import yaml

    from tests.support import require_binary

    rules = [{"record": f"stylegan:marker_{i}",
              "expr": m.expr.replace("$namespace", ".*").replace("$run", ".*")}
             for i, m in enumerate(dashboards.MARKERS)]
    path = tmp_path / "markers.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "markers", "rules": rules}]}))
    result = subprocess.run([require_binary("promtool"), "check", "rules", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
