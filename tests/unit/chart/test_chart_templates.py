"""The Helm chart rendered by the real helm: lint, golden output, RBAC, security, monitoring.

Golden files: tests/unit/chart/golden/<case>.yaml hold ``helm template stylegan-operator
charts/stylegan-operator --namespace stylegan-system`` for the default values and for each
``ci/*-values.yaml`` (rendered with the Prometheus Operator API available), without the
dashboard ConfigMaps: the dashboards are generated elsewhere (hack/dashboards.py) and change
on their own schedule, so the tests below check what the template does with them instead.
After an intended change to a template or to values.yaml, regenerate the files with

    STYLEGAN_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/chart

and review the diff.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support import ROOT, require_binary
from tests.unit.chart.helmtool import (
    CHART,
    CI_VALUES,
    MONITORING_API,
    documents,
    find,
    helm,
    manifest_rules,
    of_kind,
    render,
    rule_triples,
    template,
    template_args,
)

from stylegan_operator.controller.runner import operator_cmd
from stylegan_operator.cost.pricing import PriceCatalog
from stylegan_operator.reconcile import render as run_render

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("STYLEGAN_UPDATE_GOLDEN") == "1"
VALUE_SETS = {"default": None, **{p.name.removesuffix("-values.yaml"): p for p in CI_VALUES}}
MONITORING_KINDS = ("ServiceMonitor", "PodMonitor", "PrometheusRule")
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}


def render_set(case: str, **kwargs: Any) -> list[dict[str, Any]]:
    values = VALUE_SETS[case]
    return render(values=[values] if values else [], api_versions=[MONITORING_API], **kwargs)


def deployment(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return find(objects, "Deployment")


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (c,) = deployment(objects)["spec"]["template"]["spec"]["containers"]
    return c


# --------------------------------------------------------------------------- lint, golden
def test_ci_value_sets_exist() -> None:
    assert {"minimal", "monitoring", "namespaced"} <= set(VALUE_SETS)


@pytest.mark.parametrize("case", sorted(VALUE_SETS))
def test_helm_lint_strict_is_clean(case: str) -> None:
    values = VALUE_SETS[case]
    args = ["lint", "--strict", str(CHART)] + (["--values", str(values)] if values else [])
    proc = helm(*args, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "[WARNING]" not in output and "[ERROR]" not in output, output
    assert "1 chart(s) linted, 0 chart(s) failed" in output


def without_dashboards(text: str) -> str:
    """``helm template`` output without the dashboard ConfigMaps."""
    source = f"# Source: {CHART.name}/templates/monitoring/dashboards.yaml"
    return "---\n".join(p for p in text.split("---\n") if not p.startswith(source))


@pytest.mark.parametrize("case", sorted(VALUE_SETS))
def test_template_matches_golden(case: str) -> None:
    values = VALUE_SETS[case]
    text = without_dashboards(
        template(values=[values] if values else [], api_versions=[MONITORING_API]))
    golden = GOLDEN / f"{case}.yaml"
    if UPDATE:
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    assert golden.exists(), f"{golden} missing: run with STYLEGAN_UPDATE_GOLDEN=1"
    assert text == golden.read_text(), (
        f"helm template for {case} differs from {golden.name}; if intended, regenerate with "
        "STYLEGAN_UPDATE_GOLDEN=1 and review the diff"
    )


def test_chart_crd_is_a_byte_copy_of_the_generated_one() -> None:
    chart_crds = sorted(p.name for p in (CHART / "crds").iterdir())
    assert chart_crds == ["stylegan.dev_styleganruns.yaml"]
    generated = ROOT / "manifests" / "crd" / "stylegan.dev_styleganruns.yaml"
    assert (CHART / "crds" / chart_crds[0]).read_bytes() == generated.read_bytes(), (
        "charts/stylegan-operator/crds/ differs from manifests/crd/: copy it "
        "(cp manifests/crd/stylegan.dev_styleganruns.yaml charts/stylegan-operator/crds/)"
    )


# --------------------------------------------------------------------------- RBAC
def test_operator_cluster_role_equals_manifests_rbac() -> None:
    """One source of RBAC truth: the chart may not drift from manifests/rbac."""
    objects = render_set("default")
    role = find(objects, "ClusterRole", "stylegan-operator")
    expected = manifest_rules("cluster-role.yaml")["stylegan-operator"]
    assert rule_triples(role["rules"]) == rule_triples(expected)


def test_user_roles_equal_manifests_rbac() -> None:
    objects = render_set("default")
    expected = manifest_rules("user-roles.yaml")
    for suffix in ("run-view", "run-edit"):
        chart_role = find(objects, "ClusterRole", f"stylegan-operator-{suffix}")
        manifest_role = expected[f"stylegan-{suffix}"]
        assert rule_triples(chart_role["rules"]) == rule_triples(manifest_role)
        aggregation = {k: v for k, v in chart_role["metadata"]["labels"].items()
                       if k.startswith("rbac.authorization.k8s.io/aggregate-to-")}
        assert aggregation, f"{suffix} must aggregate into the built-in roles"


def test_cluster_mode_binds_the_cluster_role_to_the_operator_account() -> None:
    objects = render_set("default")
    account = find(objects, "ServiceAccount")["metadata"]["name"]
    binding = find(objects, "ClusterRoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io",
                                  "kind": "ClusterRole", "name": "stylegan-operator"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account,
                                    "namespace": "stylegan-system"}]
    assert "--all-namespaces" in container(objects)["args"]
    assert not of_kind(objects, "Role", "RoleBinding")


def test_namespaced_mode_grants_nothing_cluster_wide() -> None:
    objects = render_set("namespaced")
    served = yaml.safe_load(VALUE_SETS["namespaced"].read_text())["operator"]["watchNamespaces"]
    assert not of_kind(objects, "ClusterRoleBinding")
    # Only the aggregated user roles are cluster-scoped, and they bind nobody.
    assert {r["metadata"]["name"] for r in of_kind(objects, "ClusterRole")} == {
        "stylegan-operator-run-view", "stylegan-operator-run-edit"}
    roles = of_kind(objects, "Role")
    bindings = of_kind(objects, "RoleBinding")
    assert sorted(r["metadata"]["namespace"] for r in roles) == sorted(served)
    assert sorted(b["metadata"]["namespace"] for b in bindings) == sorted(served)
    # The ClusterRole's rules less the cluster-scoped ones (nodes: elastic runs then ask
    # for maxNodes, reconcile/capacity.py).
    expected = {t for t in rule_triples(manifest_rules("cluster-role.yaml")["stylegan-operator"])
                if t[1] != "nodes"}
    for role in roles:
        assert rule_triples(role["rules"]) == expected
    args = container(objects)["args"]
    assert [a for a in args if a.startswith("--namespace=")] == [f"--namespace={n}"
                                                                 for n in served]
    assert "--all-namespaces" not in args


@pytest.mark.parametrize("case", sorted(VALUE_SETS))
def test_no_rule_grants_wildcards_secrets_or_escalation(case: str) -> None:
    for role in of_kind(render_set(case), "ClusterRole", "Role"):
        for group, resource, verb, _ in rule_triples(role["rules"]):
            where = f"{role['kind']} {role['metadata']['name']}: {group}/{resource} {verb}"
            assert "*" not in (group, resource, verb), where
            assert resource not in ("secrets", "clusterroles", "clusterrolebindings",
                                    "customresourcedefinitions", "namespaces"), where
            # Nodes: read only, cluster-wide only (the free capacity of elastic runs).
            if resource == "nodes":
                assert role["kind"] == "ClusterRole" and verb in ("get", "list"), where
            assert verb not in ("escalate", "bind", "impersonate"), where


def test_rbac_can_be_left_to_the_user() -> None:
    objects = render_set("default", sets=["rbac.create=false"])
    assert not of_kind(objects, "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")


# --------------------------------------------------------------------------- Deployment
@pytest.mark.parametrize("case", sorted(VALUE_SETS))
def test_operator_pod_meets_the_restricted_pod_security_standard(case: str) -> None:
    objects = render_set(case)
    pod = deployment(objects)["spec"]["template"]["spec"]
    c = container(objects)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == run_render.RUN_AS_USER
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = c["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert not pod.get("hostNetwork") and not pod.get("hostPID")
    assert {m["mountPath"] for m in c["volumeMounts"]} >= {"/tmp"}  # writable scratch


def test_operator_deployment_is_one_replica_replaced_never_doubled() -> None:
    spec = deployment(render_set("default"))["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}


def test_operator_container_has_probes_resources_and_ports() -> None:
    c = container(render_set("default"))
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"healthz": 8080, "metrics": 9090}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "healthz"}, probe
    assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
    assert c["resources"]["limits"]["memory"]
    assert c["command"] == ["stylegan"] and c["args"][0] == "operator"


@pytest.mark.parametrize("case", sorted(VALUE_SETS))
def test_deployment_args_are_flags_stylegan_operator_accepts(case: str, tmp_path: Path) -> None:
    """Parse the rendered args with runner.py's own click command (without running it)."""
    objects = render_set(case)
    prices = tmp_path / "prices.yaml"
    prices.write_text(find(objects, "ConfigMap", "stylegan-operator-prices")["data"]["prices.yaml"])
    args = [f"--prices={prices}" if a.startswith("--prices=") else a
            for a in container(objects)["args"][1:]]
    ctx = operator_cmd.make_context("operator", list(args))
    params = ctx.params
    values = yaml.safe_load(VALUE_SETS[case].read_text()) if VALUE_SETS[case] else {}
    operator_values = values.get("operator", {})
    assert params["liveness_port"] == 8080 and params["metrics_port"] == 9090
    assert params["interval"] == operator_values.get("interval", 20)
    assert params["report_status"] is operator_values.get("reportStatus", True)
    assert params["trainer_image"] == "ghcr.io/stylegan-operator/trainer:0.1.0"
    assert params["namespaces"] == tuple(operator_values.get("watchNamespaces", ()))
    assert params["all_namespaces"] is not bool(operator_values.get("watchNamespaces"))


def test_image_tags_default_to_the_app_version_and_digests_win() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    from stylegan_operator import __version__

    assert chart["appVersion"] == __version__
    assert run_render.DEFAULT_TRAINER_IMAGE == f"ghcr.io/stylegan-operator/trainer:{__version__}"
    assert container(render_set("default"))["image"] == (
        f"ghcr.io/stylegan-operator/operator:{__version__}")
    digest = "sha256:" + "0" * 64
    assert container(render_set("namespaced"))["image"] == (
        f"ghcr.io/stylegan-operator/operator@{digest}")
    objects = render_set("default", sets=[f"trainerImage.digest={digest}"])
    assert f"--trainer-image=ghcr.io/stylegan-operator/trainer@{digest}" in container(
        objects)["args"]


# --------------------------------------------------------------------------- prices
@pytest.mark.parametrize("case", sorted(VALUE_SETS))
def test_price_configmap_is_a_catalog_the_operator_accepts(case: str) -> None:
    objects = render_set(case)
    cm = find(objects, "ConfigMap", "stylegan-operator-prices")
    catalog = PriceCatalog.from_dict(yaml.safe_load(cm["data"]["prices.yaml"]))
    values = yaml.safe_load(VALUE_SETS[case].read_text()) if VALUE_SETS[case] else {}
    assert catalog.currency == values.get("cost", {}).get("currency", "USD")
    mounted = {m["name"]: m["mountPath"] for m in container(objects)["volumeMounts"]}
    assert f"--prices={mounted['prices']}/prices.yaml" in container(objects)["args"]


def test_monitoring_values_reprice_the_catalog() -> None:
    cm = find(render_set("monitoring"), "ConfigMap", "stylegan-operator-prices")
    catalog = PriceCatalog.from_dict(yaml.safe_load(cm["data"]["prices.yaml"]))
    assert catalog.unit_price("V100") == 2.48 and catalog.unit_price("V100", spot=True) == 0.74
    assert catalog.node_price("nvidia-tesla-v100") == 0.38
    assert catalog.unit_price("H100") == 9.8
    assert catalog.rate("EUR") == 0.93


def test_a_changed_price_rolls_the_operator_pod() -> None:
    def checksum(*sets: str) -> str:
        pod = deployment(render_set("default", sets=list(sets)))["spec"]["template"]
        return pod["metadata"]["annotations"]["checksum/prices"]

    base = checksum()
    assert checksum("cost.prices.V100=3") != base
    assert checksum("cost.currency=JPY") != base
    assert checksum("operator.interval=30") == base  # args roll the pod by themselves


# --------------------------------------------------------------------------- values schema
@pytest.mark.parametrize(
    ("setting", "field"),
    [
        ("cost.currency=usd", "/cost/currency"),
        ("cost.prices.V100=-1", "/cost/prices/V100"),
        ("cost.exchangeRates.USD=2", "/cost/exchangeRates/USD"),
        ("cost.discount=3", "/cost"),
        ("operator.watchNamespace=faces", "/operator"),
        ("operator.watchNamespaces[0]=Not_A_Namespace", "/operator/watchNamespaces/0"),
        ("operator.interval=0", "/operator/interval"),
        ("image.digest=latest", "/image/digest"),
        ("monitoring.serviceMonitor.interval=often", "/monitoring/serviceMonitor/interval"),
    ],
)
def test_schema_refuses_bad_values_naming_the_field(setting: str, field: str) -> None:
    proc = helm(*template_args(sets=[setting]), check=False)
    assert proc.returncode != 0, f"--set {setting} was accepted"
    assert field in proc.stderr, proc.stderr


# --------------------------------------------------------------------------- monitoring
def test_monitoring_objects_render_only_when_asked() -> None:
    assert not of_kind(render_set("default"), *MONITORING_KINDS)
    objects = render_set("monitoring")
    assert sorted(o["kind"] for o in of_kind(objects, *MONITORING_KINDS)) == sorted(
        MONITORING_KINDS)
    monitor = find(objects, "ServiceMonitor")
    service = find(objects, "Service")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


@pytest.mark.parametrize("kind", ["serviceMonitor", "podMonitor", "prometheusRule"])
def test_monitoring_fails_clearly_without_the_prometheus_operator(kind: str) -> None:
    proc = helm(*template_args(sets=[f"monitoring.{kind}.enabled=true"]), check=False)
    assert proc.returncode != 0
    assert "Prometheus Operator" in proc.stderr and MONITORING_API in proc.stderr, proc.stderr


def test_chart_alerts_are_a_byte_copy_of_the_tested_ones() -> None:
    source = ROOT / "monitoring" / "alerts.yaml"
    assert (CHART / "rules" / "alerts.yaml").read_bytes() == source.read_bytes(), (
        "charts/stylegan-operator/rules/alerts.yaml differs from monitoring/alerts.yaml: copy "
        "it (cp monitoring/alerts.yaml charts/stylegan-operator/rules/alerts.yaml)"
    )


def test_prometheus_rule_ships_the_tested_alerts_and_passes_promtool(tmp_path: Path) -> None:
    rule = find(render_set("monitoring"), "PrometheusRule")
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(rule["spec"]))
    proc = subprocess.run([require_binary("promtool"), "check", "rules", str(rules)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    shipped = yaml.safe_load((ROOT / "monitoring" / "alerts.yaml").read_text())["groups"]
    groups = {g["name"]: g["rules"] for g in rule["spec"]["groups"]}
    for group in shipped:  # the tested rules, untouched (their {{ $labels }} included)
        assert groups[group["name"]] == group["rules"]
    assert {r["alert"] for r in groups["stylegan-operator"]} == {"StyleGANOperatorDown"}
    down = next(r for r in groups["stylegan-operator"] if r["alert"] == "StyleGANOperatorDown")
    assert 'job="stylegan-operator-metrics", namespace="stylegan-system"' in down["expr"]
    assert groups["stylegan-additional"][0]["record"] == "namespace:stylegan_run_cost_usd:sum"


def test_runbook_base_url_replaces_the_page_path_of_every_alert() -> None:
    base = "https://wiki.example/ml/stylegan-runbooks"
    rule = find(render_set("monitoring", sets=[
        f"monitoring.prometheusRule.runbookBaseUrl={base}/"]), "PrometheusRule")
    alerts = [r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
    assert len(alerts) >= 8
    for alert in alerts:
        assert alert["annotations"]["runbook_url"] == f"{base}#{alert['alert'].lower()}"
    # Without it the links stay relative to the repository, as the tested file has them.
    plain = find(render_set("monitoring"), "PrometheusRule")
    assert all(r["annotations"]["runbook_url"].startswith("docs/runbooks.md#")
               for g in plain["spec"]["groups"] for r in g["rules"] if "alert" in r)


def test_service_monitor_keeps_the_runs_labels() -> None:
    monitor = find(render_set("monitoring"), "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["honorLabels"] is True


def test_pod_monitor_labels_trainer_series_by_run() -> None:
    monitor = find(render_set("monitoring"), "PodMonitor")
    assert monitor["spec"]["selector"]["matchExpressions"] == [
        {"key": run_render.LABEL_RUN, "operator": "Exists"}]
    relabel = monitor["spec"]["podMetricsEndpoints"][0]["relabelings"]
    assert {"sourceLabels": ["__meta_kubernetes_pod_label_stylegan_dev_run"],
            "targetLabel": "run"} in relabel
    assert monitor["spec"]["namespaceSelector"] == {"any": True}


def _chart_copy_with_dashboards(tmp_path: Path, dashboards: dict[str, Any]) -> Path:
    chart = tmp_path / "stylegan-operator"
    shutil.copytree(CHART, chart, ignore=shutil.ignore_patterns("dashboards"))
    (chart / "dashboards").mkdir()
    for name, body in dashboards.items():
        (chart / "dashboards" / name).write_text(json.dumps(body, indent=2))
    return chart


def test_dashboards_become_labelled_configmaps(tmp_path: Path) -> None:
    bodies = {"cost.json": {"title": "StyleGAN cost", "panels": []},
              "Training_Progress.json": {"title": "Training", "panels": [{"id": 1}]}}
    chart = _chart_copy_with_dashboards(tmp_path, bodies)
    objects = render(chart=chart)
    maps = {m["metadata"]["name"]: m for m in of_kind(objects, "ConfigMap")
            if m["metadata"]["labels"].get("grafana_dashboard") == "1"}
    assert sorted(maps) == ["stylegan-operator-dashboard-cost",
                            "stylegan-operator-dashboard-training-progress"]
    for cm in maps.values():
        ((filename, text),) = cm["data"].items()
        assert json.loads(text) == bodies[filename]
    assert not [m for m in of_kind(render(chart=chart, sets=["dashboards.enabled=false"]),
                                   "ConfigMap") if "grafana_dashboard" in m["metadata"]["labels"]]


def test_the_chart_dashboards_ship_unchanged() -> None:
    files = sorted((CHART / "dashboards").glob("*.json"))
    maps = [m for m in of_kind(render_set("default"), "ConfigMap")
            if m["metadata"]["labels"].get("grafana_dashboard") == "1"]
    assert len(maps) == len(files)
    shipped = {name: text for m in maps for name, text in m["data"].items()}
    for path in files:
        assert json.loads(shipped[path.name]) == json.loads(path.read_text())


def test_no_dashboard_files_render_no_dashboard_configmaps(tmp_path: Path) -> None:
    chart = _chart_copy_with_dashboards(tmp_path, {})
    maps = [m for m in of_kind(render(chart=chart), "ConfigMap")
            if "grafana_dashboard" in m["metadata"]["labels"]]
    assert maps == []


# --------------------------------------------------------------------------- everything
@pytest.mark.parametrize("case", sorted(VALUE_SETS))
def test_every_object_carries_the_release_labels(case: str) -> None:
    for obj in render_set(case):
        labels = obj["metadata"].get("labels") or {}
        where = f"{obj['kind']} {obj['metadata']['name']}"
        assert labels.get("app.kubernetes.io/instance") == "stylegan-operator", where
        assert labels.get("app.kubernetes.io/part-of") == "stylegan-operator", where
        assert labels.get("app.kubernetes.io/managed-by") == "Helm", where


def test_long_release_names_still_give_valid_object_names() -> None:
    release = "a-release-name-that-goes-on-and-on-up-to-helm-s-limit"  # 53 characters
    for obj in documents(template(release=release)):
        assert len(obj["metadata"]["name"]) <= 63, obj["metadata"]["name"]


# --------------------------------------------------------------------------- helm test
def helm_test_pod(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (pod,) = [o for o in of_kind(objects, "Pod")
              if o["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"]
    return pod


def run_test_script(pod: dict[str, Any], url: str) -> subprocess.CompletedProcess[str]:
    """The helm test pod's own script, run here with its Service URL pointed at ``url``."""
    (c,) = pod["spec"]["containers"]
    assert c["command"] == ["python", "-c"]
    (script,) = c["args"]
    (in_cluster,) = [line.split('"')[1] for line in script.splitlines() if "url = " in line]
    return subprocess.run([shutil.which("python3") or "python3", "-c",
                           script.replace(in_cluster, url)],
                          capture_output=True, text=True, timeout=60, check=False)


def serving(body: bytes) -> Any:
    """A local HTTP server that answers every GET with ``body`` (a context manager)."""
    import contextlib
    import http.server
    import threading

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802  # the name http.server calls
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    @contextlib.contextmanager
    def run() -> Any:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/metrics"
        finally:
            server.shutdown()
            server.server_close()

    return run()


def test_helm_test_pod_asks_the_metrics_service_it_renders() -> None:
    objects = render_set("default")
    pod = helm_test_pod(objects)
    service = find(objects, "Service")
    (c,) = pod["spec"]["containers"]
    (port,) = service["spec"]["ports"]
    expected = (f"http://{service['metadata']['name']}.{service['metadata']['namespace']}.svc:"
                f"{port['port']}/metrics")
    assert f'url = "{expected}"' in c["args"][0]
    assert pod["metadata"]["annotations"]["helm.sh/hook-delete-policy"] == (
        "before-hook-creation,hook-succeeded")
    assert c["image"] == container(objects)["image"]  # no other image to pull
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_helm_test_passes_on_the_operators_metrics_and_fails_on_anything_else() -> None:
    from stylegan_operator.controller import metrics

    pod = helm_test_pod(render_set("default", sets=["tests.attempts=2"]))
    with serving(metrics.RUN_METRICS.exposition()) as url:
        answered = run_test_script(pod, url)
    assert answered.returncode == 0, answered.stdout + answered.stderr
    assert "the operator answers" in answered.stdout
    with serving(b"# some other exporter\nup 1\n") as url:
        other = run_test_script(pod, url)
    assert other.returncode == 1 and "not with the operator's metrics" in other.stderr
    nobody = run_test_script(pod, "http://127.0.0.1:9/metrics")  # the discard port: refused
    assert nobody.returncode == 1 and "no answer from" in nobody.stderr
    assert nobody.stdout.count("attempt ") == 2  # tests.attempts tries, then gives up


@pytest.mark.parametrize("setting", ["tests.enabled=false", "metrics.service.enabled=false"])
def test_no_helm_test_pod_without_the_service_or_when_turned_off(setting: str) -> None:
    assert not of_kind(render_set("default", sets=[setting]), "Pod")
