"""The chart installed, upgraded and uninstalled by the real helm on the local control plane.

The release goes into a namespace that enforces the ``restricted`` Pod Security level; the
operator's pod must be admitted there, land on a CPU node (the GPU nodes are tainted) and
become Running and Ready (kwok runs it). An upgrade with changed values must reach the
cluster: a new price catalog, a new operator flag, a new pod. Uninstalling keeps the CRD
and the runs, as Helm does for ``crds/``.
"""

from __future__ import annotations

import pytest
import yaml

from tests.integration.chart.conftest import Releases, cpu_run, unique
from tests.support import Kubectl, wait_for

pytestmark = pytest.mark.cluster

CRD = "styleganruns.stylegan.dev"


def operator_pods(kubectl: Kubectl, namespace: str, release: str) -> list[dict]:
    pods = kubectl.json("pods", "-l", f"app.kubernetes.io/instance={release}",
                        namespace=namespace)["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def running_pod(kubectl: Kubectl, namespace: str, release: str) -> dict:
    def ready() -> dict | None:
        pods = operator_pods(kubectl, namespace, release)
        if len(pods) != 1 or pods[0]["status"].get("phase") != "Running":
            return None
        conditions = {c["type"]: c["status"] for c in pods[0]["status"].get("conditions", [])}
        return pods[0] if conditions.get("Ready") == "True" else None

    return wait_for(ready, timeout=90, what=f"one Running, Ready pod of {release}")  # type: ignore[return-value]


def test_install_upgrade_uninstall(kubectl: Kubectl, namespace: str, releases: Releases) -> None:
    release = releases.install(unique("sg"), namespace)

    # Installed: the CRD (from crds/), the operator on a CPU node, the catalog, the notes.
    crd = kubectl.json("crd", CRD)
    assert any(c["type"] == "Established" and c["status"] == "True"
               for c in crd["status"]["conditions"])
    pod = running_pod(kubectl, namespace, release.name)
    node = kubectl.json("node", pod["spec"]["nodeName"])
    assert "nvidia.com/gpu" not in node["status"]["capacity"], pod["spec"]["nodeName"]
    assert pod["spec"]["nodeName"].startswith("cpu-")
    assert pod["spec"]["serviceAccountName"] == release.fullname
    prices = kubectl.json("configmap", f"{release.fullname}-prices", namespace=namespace)
    assert yaml.safe_load(prices["data"]["prices.yaml"])["currency"] == "USD"
    assert f"rollout status deployment/{release.fullname}" in release.notes
    assert "stylegan runs" in release.notes and "kubectl get sgrun" in release.notes
    service = kubectl.json("service", f"{release.fullname}-metrics", namespace=namespace)
    endpoints = kubectl.json("endpointslices", "-l",
                             f"kubernetes.io/service-name={service['metadata']['name']}",
                             namespace=namespace)["items"]
    assert [a["targetRef"]["name"] for e in endpoints for a in e.get("endpoints") or []] == [
        pod["metadata"]["name"]]

    # A run made while the chart is installed (no operator runs for real here).
    run = unique("kept")
    kubectl.apply(cpu_run(run, namespace))

    # Upgrade: a new catalog and a new flag reach the cluster, through a new pod.
    release.upgrade("cost.currency=EUR", "operator.interval=45")
    prices = kubectl.json("configmap", f"{release.fullname}-prices", namespace=namespace)
    assert yaml.safe_load(prices["data"]["prices.yaml"])["currency"] == "EUR"
    deployment = kubectl.json("deployment", release.fullname, namespace=namespace)
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--interval=45" in args and "--interval=20" not in args
    new_pod = running_pod(kubectl, namespace, release.name)
    assert new_pod["metadata"]["uid"] != pod["metadata"]["uid"]
    assert new_pod["spec"]["containers"][0]["args"] == args
    history = release.helm("history", release.name, "-o", "json").stdout
    assert [r["status"] for r in yaml.safe_load(history)] == ["superseded", "deployed"]

    # Uninstall: the release's objects go; the CRD and the run stay.
    release.uninstall()
    releases.installed.remove(release)
    assert kubectl("get", "deployment", release.fullname, namespace=namespace,
                   check=False).returncode != 0
    assert kubectl("get", "clusterrole", release.fullname, check=False).returncode != 0
    wait_for(lambda: not operator_pods(kubectl, namespace, release.name), timeout=60,
             what="the operator pod to go")
    assert kubectl.json("crd", CRD)["metadata"]["name"] == CRD
    assert kubectl.json("styleganrun", run, namespace=namespace)["metadata"]["name"] == run
    kubectl("delete", "styleganrun", run, namespace=namespace)
