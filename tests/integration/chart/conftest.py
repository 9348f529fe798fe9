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
import os
import signal
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import ROOT, Kubectl, wait_for
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
    kubectl("apply", "--server-side", "--force-conflicts", "-f",
            str(ROOT / "manifests" / "crd" / "stylegan.dev_styleganruns.yaml"))
    kubectl("wait", "--for=condition=Established", "--timeout=60s",
            "crd/styleganruns.stylegan.dev")
    return "styleganruns.stylegan.dev"


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


@dataclass
class LocalOperator:
    """``stylegan operator --namespace NS`` as a local process with a given kubeconfig."""

    kubeconfig: Path
    namespace: str
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    liveness_port: int = 0

    def start(self) -> LocalOperator:
        import localcluster

        self.liveness_port = localcluster.free_port()
        argv = [
            str(STYLEGAN), "operator", "--namespace", self.namespace, "--interval", "2",
            "--liveness-address", "127.0.0.1", "--liveness-port", str(self.liveness_port),
            "--metrics-port", str(localcluster.free_port()),
            "--trainer-image", "registry.invalid/stylegan-trainer:test",
        ]  # fmt: skip
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PYTHONUNBUFFERED": "1"}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=ROOT, start_new_session=True,
            )  # fmt: skip
        wait_for(self.healthy, timeout=90, what="the local operator's /healthz")
        return self

    def healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            pytest.fail(f"the operator exited ({self.process.returncode}):\n{self.log_tail()}")
        try:
            url = f"http://127.0.0.1:{self.liveness_port}/healthz"
            with urllib.request.urlopen(url, timeout=2) as reply:
                return reply.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 80) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
