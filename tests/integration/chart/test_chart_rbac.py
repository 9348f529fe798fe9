"""The chart's RBAC on the real API server: enough for the operator, and nothing more.

For both ways of installing (serving every namespace through a ClusterRole, or listed
namespaces through Roles), the chart is installed and then:

* ``stylegan operator`` runs as a LOCAL process whose kubeconfig holds a token of the
  chart's ServiceAccount, so the chart's rules are all it has; it must reconcile a run end
  to end (Job, Service, the trainer's status Role; Pending -> Running -> Succeeded);
* ``kubectl auth can-i --list --as=system:serviceaccount:NS:SA`` lists what the account may
  do, which must be exactly manifests/rbac's rules, with no wildcard, no secrets, and no
  rights outside the served namespaces when namespaces are listed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.integration.chart.conftest import (
    LocalOperator,
    Release,
    Releases,
    cpu_run,
    make_namespace,
    service_account_kubeconfig,
    unique,
)
from tests.support import Kubectl, wait_for
from tests.unit.chart.helmtool import manifest_rules, rule_triples

pytestmark = pytest.mark.cluster

_CAN_I_ROW = re.compile(
    r"^(?P<resource>\S*)\s+\[(?P<urls>[^\]]*)\]\s+\[(?P<names>[^\]]*)\]\s+\[(?P<verbs>[^\]]*)\]$"
)
# What every authenticated account may do (system:basic-user, system:discovery, ...).
_SELF_REVIEWS = {"selfsubjectaccessreviews", "selfsubjectrulesreviews", "selfsubjectreviews"}
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}


@dataclass
class Installed:
    mode: str
    release: Release
    served: str  # the namespace the operator serves and the runs live in
    other: str  # a namespace it does not serve (in "namespaced" mode)
    account: str

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.release.namespace}:{self.account}"


@pytest.fixture(scope="module", params=["cluster", "namespaced"])
def installed(request: pytest.FixtureRequest, cluster, kubectl: Kubectl) -> Iterator[Installed]:
    mode = request.param
    home = make_namespace(kubectl, unique("t-chart"))
    served = make_namespace(kubectl, unique("t-runs"))
    other = make_namespace(kubectl, unique("t-other"))
    releases = Releases(cluster.kubeconfig)
    sets = [f"operator.watchNamespaces={{{served}}}"] if mode == "namespaced" else []
    try:
        release = releases.install(unique("sgr"), home, *sets)
        yield Installed(mode, release, served, other, release.fullname)
    finally:
        releases.cleanup()
        for name in (home, served, other):
            kubectl("delete", "namespace", name, "--wait=false", check=False)


def can_i_list(kubectl: Kubectl, user: str, namespace: str) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) the user may use in ``namespace``; self-reviews and
    non-resource URLs (granted to every authenticated account) left out."""
    out = kubectl("auth", "can-i", "--list", f"--as={user}", namespace=namespace).stdout
    facts: set[tuple[str, str, str]] = set()
    for line in out.splitlines()[1:]:
        match = _CAN_I_ROW.match(line.rstrip())
        assert match, f"cannot read can-i row {line!r}"
        if not match.group("resource"):
            continue  # a non-resource URL (/healthz, /version, ...)
        name, _, sub = match.group("resource").partition("/")
        resource, _, group = name.partition(".")
        if resource in _SELF_REVIEWS:
            continue
        assert not match.group("names"), f"unexpected resourceNames in {line!r}"
        for verb in match.group("verbs").split():
            facts.add((group, f"{resource}/{sub}" if sub else resource, verb))
    return facts


def expected_grants(mode: str = "cluster") -> set[tuple[str, str, str]]:
    """The ClusterRole's rules; served namespaces get them less the cluster-scoped nodes
    (read for elastic runs' free capacity only when every namespace is served)."""
    rules = manifest_rules("cluster-role.yaml")["stylegan-operator"]
    return {(group, resource, verb) for group, resource, verb, _ in rule_triples(rules)
            if mode == "cluster" or resource != "nodes"}


def can_i(kubectl: Kubectl, user: str, *args: str) -> bool:
    proc = kubectl("auth", "can-i", *args, f"--as={user}", check=False)
    return proc.stdout.strip() == "yes"


def test_the_account_may_do_exactly_what_manifests_rbac_grants(
    kubectl: Kubectl, installed: Installed,
) -> None:
    grants = can_i_list(kubectl, installed.user, installed.served)
    assert grants == expected_grants(installed.mode)
    for group, resource, verb in grants:
        assert "*" not in (group, resource, verb)
        assert resource not in ("secrets", "namespaces")
        assert resource != "nodes" or verb in ("get", "list")
    assert can_i(kubectl, installed.user, "list", "nodes") == (installed.mode == "cluster")
    if installed.mode == "namespaced":
        # Outside the served namespace the account is any other account.
        assert can_i_list(kubectl, installed.user, installed.other) == set()
    else:
        writes = {g for g in grants if g[2] in WRITE_VERBS}
        assert can_i_list(kubectl, installed.user, installed.other) == grants
        assert writes == {g for g in expected_grants(installed.mode) if g[2] in WRITE_VERBS}


@pytest.mark.parametrize(
    "request_args",
    [
        ("get", "secrets"),
        ("list", "secrets"),
        ("create", "clusterroles"),
        ("create", "clusterrolebindings"),
        ("bind", "roles"),
        ("escalate", "roles"),
        ("patch", "nodes"),
        ("delete", "nodes"),
        ("get", "namespaces"),
        ("create", "customresourcedefinitions"),
        ("update", "styleganruns"),
        ("create", "pods"),
        ("delete", "pods"),
        ("impersonate", "serviceaccounts"),
    ],
)
def test_the_account_may_not(kubectl: Kubectl, installed: Installed,
                             request_args: tuple[str, str]) -> None:
    for namespace in (installed.served, installed.other):
        assert not can_i(kubectl, installed.user, *request_args, "-n", namespace), (
            f"{installed.user} may {' '.join(request_args)} in {namespace}")


def test_the_account_is_namespaced_unless_it_serves_every_namespace(
    kubectl: Kubectl, installed: Installed,
) -> None:
    everywhere = can_i(kubectl, installed.user, "list", "styleganruns.stylegan.dev", "-A")
    assert everywhere is (installed.mode == "cluster")
    bindings = kubectl.json("clusterrolebindings", "-l",
                            f"app.kubernetes.io/instance={installed.release.name}")["items"]
    assert bool(bindings) is (installed.mode == "cluster")
    notes = installed.release.notes
    if installed.mode == "namespaced":
        assert f"It serves the namespaces: {installed.served}." in notes
        assert f"change its metadata.namespace to {installed.served}" in notes
    else:
        assert "It serves StyleGANRuns in every namespace." in notes


def test_a_local_operator_with_only_the_charts_rbac_reconciles_a_run(
    kubectl: Kubectl, installed: Installed, tmp_path: Path, cluster,
) -> None:
    config = service_account_kubeconfig(kubectl, cluster.kubeconfig, installed.release.namespace,
                                        installed.account, tmp_path / "kubeconfig")
    operator = LocalOperator(config, installed.served, tmp_path / "operator.log").start()
    name, ns = unique("e2e"), installed.served
    try:
        kubectl.apply(cpu_run(name, ns))
        wait_for(lambda: kubectl("get", "job", f"{name}-a1", namespace=ns,
                                 check=False).returncode == 0, timeout=60, what="the Job")
        assert kubectl.json("service", f"{name}-workers", namespace=ns)["spec"][
            "clusterIP"] == "None"
        role = kubectl.json("role", f"{name}-status", namespace=ns)
        assert role["rules"] == [{"apiGroups": ["stylegan.dev"],
                                  "resources": ["styleganruns/status"],
                                  "resourceNames": [name], "verbs": ["get", "patch"]}]

        def pods(phase: str) -> list[dict] | None:
            items = kubectl.json("pods", "-l", f"stylegan.dev/run={name}", namespace=ns)["items"]
            ready = [p for p in items if p["status"].get("phase") == phase]
            return ready if len(ready) == 2 else None

        running = wait_for(lambda: pods("Running"), timeout=60, what="2 running trainer pods")
        wait_for(lambda: phase_of(kubectl, name, ns) == "Running", timeout=60,
                 what="phase Running")
        kubectl("annotate", "pod", *[p["metadata"]["name"] for p in running],  # type: ignore[union-attr]
                "kwok.stylegan.dev/exit-code=0", namespace=ns)
        wait_for(lambda: phase_of(kubectl, name, ns) == "Succeeded", timeout=90,
                 what="phase Succeeded")
        log = operator.log_tail(400)
        assert "Forbidden" not in log, log  # kube.py reports "403 Forbidden"
        # The operator's Events reached the run.
        events = kubectl.json("events", "--field-selector",
                              f"involvedObject.kind=StyleGANRun,involvedObject.name={name}",
                              namespace=ns)["items"]
        assert events, "no Event on the run"
    except BaseException:
        print(f"--- operator log ---\n{operator.log_tail(200)}")
        raise
    finally:
        kubectl("delete", "styleganrun", name, "--wait=false", namespace=ns, check=False)
        wait_for(lambda: kubectl("get", "styleganrun", name, namespace=ns,
                                 check=False).returncode != 0, timeout=60,
                 what="the run to be deleted (kopf drops its finalizer)")
        operator.stop()


def phase_of(kubectl: Kubectl, name: str, namespace: str) -> str | None:
    run = kubectl.json("styleganrun", name, namespace=namespace)
    return (run.get("status") or {}).get("phase")


def test_the_status_role_grants_the_trainer_one_run_only(
    kubectl: Kubectl, installed: Installed,
) -> None:
    """What the trainer's Role (made by the operator) allows, checked on a Role built the
    same way by the lifecycle code, bound to a test account."""
    from stylegan_operator.reconcile.children import build_status_role, build_status_role_binding

    ns = installed.served
    meta = {"name": "faces", "namespace": ns, "uid": "00000000-0000-0000-0000-000000000001"}
    account = unique("trainer")
    kubectl("create", "serviceaccount", account, namespace=ns)
    for obj in (build_status_role(meta),
                build_status_role_binding(meta, account)):
        obj = dict(obj)
        obj["metadata"] = {k: v for k, v in obj["metadata"].items() if k != "ownerReferences"}
        kubectl.apply(yaml.safe_dump(obj), namespace=ns)
    user = f"system:serviceaccount:{ns}:{account}"
    assert can_i(kubectl, user, "patch", "styleganruns.stylegan.dev/faces", "--subresource=status",
                 "-n", ns)
    assert not can_i(kubectl, user, "patch", "styleganruns.stylegan.dev/other",
                     "--subresource=status", "-n", ns)
    assert not can_i(kubectl, user, "patch", "styleganruns.stylegan.dev/faces", "-n", ns)
    assert not can_i(kubectl, user, "get", "secrets", "-n", ns)
