"""Fixtures and helpers for the real operator on the real control plane, shared by the
operator tests (tests/integration/operator) and the monitoring tests
(tests/integration/monitoring), which both run ``stylegan operator`` against the session's
cluster.

* ``crd`` installs ``manifests/crd`` once per session and waits until it is Established.
* ``operator_kubeconfig`` applies ``manifests/operator/namespace.yaml`` and
  ``manifests/rbac`` and writes a kubeconfig holding a token of the operator's
  ServiceAccount: the operator under test has exactly the rights the manifests grant, so a
  missing permission fails a test instead of hiding behind the admin account.
* :func:`token_kubeconfig` is the same kind of kubeconfig for any token (the trainers' own
  ServiceAccounts).
* :class:`Runs` reads the runs of one namespace and waits for phases with bounded waits;
  :func:`gpu_run` is a small GPU run manifest.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT, Kubectl, install_crd, wait_for

sys.path.insert(0, str(ROOT / "hack"))

import localcluster  # noqa: E402

MANIFESTS = ROOT / "manifests"
OPERATOR_NAMESPACE = "stylegan-system"
OPERATOR_ACCOUNT = "stylegan-operator"


@pytest.fixture(scope="session")
def crd(kubectl: Kubectl) -> str:
    return install_crd(kubectl)


def token_kubeconfig(admin_kubeconfig: Path, token: str, user: str) -> dict[str, Any]:
    """A kubeconfig (as a dict) for the cluster of ``admin_kubeconfig``, as ``token``."""
    admin = json.loads(admin_kubeconfig.read_text())
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": user,
        "clusters": admin["clusters"],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {
            "cluster": admin["clusters"][0]["name"], "user": user}}],
    }


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
    path = tmp_path_factory.mktemp("operator") / "kubeconfig"
    path.write_text(json.dumps(token_kubeconfig(cluster.kubeconfig, token, "operator")))
    path.chmod(0o600)
    return path


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
