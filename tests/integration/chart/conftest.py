"""Fixtures for the Helm chart on the real control plane: releases, tokens, a local operator.

* ``releases`` installs the chart with the real helm (``--wait``) and uninstalls whatever a
  test left installed.
* :func:`service_account_kubeconfig` writes a kubeconfig holding a token of a
  ServiceAccount (``kubectl create token``), so a process has exactly the rights the chart
  granted that account.
* :class:`LocalOperator` runs ``.venv/bin/stylegan operator`` as a local process with such
  a kubeconfig: the chart's RBAC is then the only thing between it and the API server.
"""

from __future__ import annotations

import copy
import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import ROOT, Kubectl, OperatorProcess, install_crd, wait_for
from tests.unit.chart.helmtool import CHART, helm

STYLEGAN = ROOT / ".venv" / "bin" / "stylegan"
EXAMPLE = ROOT / "manifests" / "examples" / "cpu-lfw.yaml"
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted",
              "pod-security.kubernetes.io/enforce-version": "latest"}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def cpu_run(name: str, namespace: str) -> dict[str, Any]:
    """The shipped CPU example (two pods on the CPU nodes), renamed into ``namespace``."""
    doc = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text()))
    doc["metadata"] = {"name": name, "namespace": namespace}
    return doc


def make_namespace(kubectl: Kubectl, name: str) -> str:
    kubectl.apply({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": name, "labels": RESTRICTED}})
    wait_for(lambda: kubectl("get", "serviceaccount", "default", namespace=name,
                             check=False).returncode == 0, what=f"default SA in {name}")
    return name


@pytest.fixture(scope="session")
def crd(kubectl: Kubectl) -> str:
    """The CRD as ``kubectl apply`` installs it, for tests that need no chart (a later
    ``helm install`` finds it there and leaves it, as Helm does with ``crds/``)."""
    return install_crd(kubectl)


@dataclass
class Release:
    """One installed release of the chart."""

    name: str
    namespace: str
    kubeconfig: Path
    notes: str = ""

    @property
    def fullname(self) -> str:
        return self.name if "stylegan-operator" in self.name else f"{self.name}-stylegan-operator"

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return helm(*args, "--namespace", self.namespace, kubeconfig=self.kubeconfig,
                    check=check)

    def upgrade(self, *sets: str) -> subprocess.CompletedProcess[str]:
        args = ["upgrade", self.name, str(CHART), "--reuse-values", "--wait", "--timeout", "2m"]
        for item in sets:
            args += ["--set", item]
        return self.helm(*args)

    def uninstall(self) -> subprocess.CompletedProcess[str]:
        return self.helm("uninstall", self.name, "--wait", "--timeout", "2m")


@dataclass
class Releases:
    kubeconfig: Path
    installed: list[Release] = field(default_factory=list)

    def install(self, name: str, namespace: str, *sets: str) -> Release:
        release = Release(name, namespace, self.kubeconfig)
        args = ["install", name, str(CHART), "--wait", "--timeout", "2m"]
        for item in sets:
            args += ["--set", item]
        proc = release.helm(*args)
        release.notes = proc.stdout
        self.installed.append(release)
        return release

    def cleanup(self) -> None:
        for release in self.installed:
            release.helm("uninstall", release.name, "--wait", "--timeout", "2m", check=False)


@pytest.fixture
def releases(cluster: Any, kubectl: Kubectl) -> Iterator[Releases]:
    installed = Releases(cluster.kubeconfig)
    try:
        yield installed
    finally:
        installed.cleanup()


def service_account_kubeconfig(
    kubectl: Kubectl, admin_kubeconfig: Path, namespace: str, account: str, path: Path
) -> Path:
    """A kubeconfig that authenticates as ``namespace/account`` with a fresh token."""
    token = kubectl("create", "token", account, "--duration=2h",
                    namespace=namespace).stdout.strip()
    admin = json.loads(admin_kubeconfig.read_text())
    cluster_name = admin["clusters"][0]["name"]
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": account,
        "clusters": admin["clusters"],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": account, "context": {"cluster": cluster_name, "user": account}}],
    }))  # fmt: skip
    path.chmod(0o600)
    return path


# The operator as a local process: the same helper the operator tests use.
LocalOperator = OperatorProcess
