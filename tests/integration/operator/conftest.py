"""Fixtures for the operator on the real control plane: the CRD, RBAC, a running operator.

* ``crd`` installs ``manifests/crd`` once per session and waits until it is Established.
* ``operator_kubeconfig`` applies ``manifests/operator/namespace.yaml`` and
  ``manifests/rbac`` and writes a kubeconfig holding a token of the operator's
  ServiceAccount: the operator under test has exactly the rights the manifests grant, so a
  missing permission fails a test instead of hiding behind the admin account.
* ``operator`` starts ``stylegan operator --namespace <the test's namespace>`` as a
  subprocess (so a test can SIGKILL it and start it again) and, at the end, deletes the
  test's runs while it still runs (kopf removes its finalizer), then stops it.

Helpers (:class:`Runs`) read runs and wait for phases with bounded waits.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import ROOT, Kubectl, OperatorProcess, install_crd, wait_for

sys.path.insert(0, str(ROOT / "hack"))

import localcluster  # noqa: E402

MANIFESTS = ROOT / "manifests"
CRD = MANIFESTS / "crd" / "stylegan.dev_styleganruns.yaml"
STYLEGAN = ROOT / ".venv" / "bin" / "stylegan"
OPERATOR_NAMESPACE = "stylegan-system"
OPERATOR_ACCOUNT = "stylegan-operator"


@pytest.fixture(scope="session")
def crd(kubectl: Kubectl) -> str:
    return install_crd(kubectl)


@pytest.fixture(scope="session")
def operator_kubeconfig(
    cluster: localcluster.LocalCluster, kubectl: Kubectl, crd: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """A kubeconfig for the operator's ServiceAccount (manifests/rbac) on the test cluster."""
    kubectl("apply", "-f", str(MANIFESTS / "operator" / "namespace.yaml"))
    kubectl("apply", "-f", str(MANIFESTS / "rbac"))
    token = kubectl("create", "token", OPERATOR_ACCOUNT, "--duration=4h",
                    namespace=OPERATOR_NAMESPACE).stdout.strip()
    admin = json.loads(cluster.kubeconfig.read_text())
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "operator",
        "clusters": admin["clusters"],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {
            "cluster": admin["clusters"][0]["name"], "user": "operator"}}],
    }
    path = tmp_path_factory.mktemp("operator") / "kubeconfig"
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


@pytest.fixture
def operator(
    operator_kubeconfig: Path, namespace: str, kubectl: Kubectl, tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[OperatorProcess]:
    proc = OperatorProcess(operator_kubeconfig, namespace, tmp_path / "operator.log")
    proc.start()
    try:
        yield proc
    finally:
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            print(f"--- operator log ({proc.log_path}) ---\n{proc.log_tail(200)}")
        if proc.process is not None and proc.process.poll() is None:
            # Delete the runs while the operator runs, so kopf drops its finalizer.
            kubectl("delete", "styleganruns", "--all", "--wait=false", namespace=namespace,
                    check=False)
            wait_for(lambda: not kubectl.json("styleganruns", namespace=namespace)["items"],
                     timeout=60, what="the test's runs to be deleted")
        proc.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- helpers
@dataclass
class Runs:
    """Reads and waits on the runs (and what they own) of one namespace."""

    kubectl: Kubectl
    namespace: str

    def apply(self, manifest: dict[str, Any] | str) -> None:
        self.kubectl.apply(manifest, namespace=self.namespace)

    def get(self, name: str) -> dict[str, Any]:
        return self.kubectl.json("styleganrun", name, namespace=self.namespace)

    def status(self, name: str) -> dict[str, Any]:
        return self.get(name).get("status") or {}

    def condition(self, name: str, type_: str) -> dict[str, Any] | None:
        for cond in self.status(name).get("conditions") or []:
            if cond.get("type") == type_:
                return cond
        return None

    def wait_phase(self, name: str, phase: str, timeout: float = 60) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            status = self.status(name)
            return status if status.get("phase") == phase else None

        return wait_for(reached, timeout=timeout, interval=0.5,
                        what=f"run {name} phase {phase} (status: {self.status(name)})")  # type: ignore[return-value]

    def wait_status(self, name: str, predicate: Callable[[dict[str, Any]], Any],
                    what: str, timeout: float = 60) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            status = self.status(name)
            return status if predicate(status) else None

        return wait_for(reached, timeout=timeout, interval=0.5, what=what)  # type: ignore[return-value]

    def jobs(self, run: str) -> list[dict[str, Any]]:
        return self.kubectl.json("jobs", "-l", f"stylegan.dev/run={run}",
                                 namespace=self.namespace)["items"]

    def job_names(self, run: str) -> list[str]:
        return sorted(j["metadata"]["name"] for j in self.jobs(run))

    def pods(self, run: str, attempt: int | None = None) -> list[dict[str, Any]]:
        selector = f"stylegan.dev/run={run}"
        if attempt is not None:
            selector += f",stylegan.dev/attempt={attempt}"
        return self.kubectl.json("pods", "-l", selector, namespace=self.namespace)["items"]

    def running_pods(self, run: str, attempt: int, count: int, timeout: float = 60) -> list:
        def ready() -> list | None:
            pods = [p for p in self.pods(run, attempt)
                    if p["status"].get("phase") == "Running"
                    and not p["metadata"].get("deletionTimestamp")]
            return pods if len(pods) >= count else None

        return wait_for(ready, timeout=timeout, interval=0.5,  # type: ignore[return-value]
                        what=f"{count} running pods of {run} attempt {attempt}")

    def exit_pods(self, pods: list[dict[str, Any]], code: int) -> None:
        """Make kwok end these pods' containers with ``code``."""
        names = [p["metadata"]["name"] for p in pods]
        self.kubectl("annotate", "pod", *names, f"kwok.stylegan.dev/exit-code={code}",
                     "--overwrite", namespace=self.namespace)

    def events(self, name: str) -> list[dict[str, Any]]:
        items = self.kubectl.json(
            "events", "--field-selector",
            f"involvedObject.kind=StyleGANRun,involvedObject.name={name}",
            namespace=self.namespace)["items"]
        return sorted(items, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")


@pytest.fixture
def runs(kubectl: Kubectl, namespace: str) -> Runs:
    return Runs(kubectl, namespace)


def example(name: str, namespace: str) -> dict[str, Any]:
    """``manifests/examples/<name>.yaml`` moved into the test's namespace."""
    doc = yaml.safe_load((MANIFESTS / "examples" / f"{name}.yaml").read_text())
    doc["metadata"]["namespace"] = namespace
    return doc


def gpu_run(name: str, namespace: str, **spec_overrides: Any) -> dict[str, Any]:
    """A small GPU run: 2 nodes x 8 V100, no checkpoints, priced at 2.48 USD per GPU-hour."""
    spec: dict[str, Any] = {
        "model": {"resolution": 256, "preset": "paper256"},
        "training": {"kimg": 1000, "batchSize": 64},
        "dataset": {"uri": "gs://datasets/ffhq256.zip"},
        "resources": {"nodes": 2, "gpusPerNode": 8, "gpuType": "nvidia-tesla-v100"},
        "cost": {"pricePerGpuHour": 2.48},
        "runPolicy": {"backoffLimit": 3},
    }
    for key, value in spec_overrides.items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = value
    return {"apiVersion": "stylegan.dev/v1alpha1", "kind": "StyleGANRun",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}
