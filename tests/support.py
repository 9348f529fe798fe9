"""Helpers shared by the tests: polling for a condition, the real kubectl, Prometheus."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hack"))

from localcluster import free_port  # noqa: E402  (one free-port helper for the project)

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("STYLEGAN_CACHE", Path.home() / ".cache" / "stylegan-operator"))
BIN = CACHE / "bin"
STYLEGAN = ROOT / ".venv" / "bin" / "stylegan"
CRD_FILE = ROOT / "manifests" / "crd" / "stylegan.dev_styleganruns.yaml"


def wait_for(predicate: Callable[[], object], timeout: float = 60.0, interval: float = 0.25,
             what: str = "condition") -> object:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last value: {last!r})")


def process_gone(pid: int) -> bool:
    """Whether process ``pid`` has exited and been reaped (no zombie left behind)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def require_binary(name: str) -> str:
    """The path of a test tool, or a test failure saying how to get it."""
    for candidate in (BIN / name, ROOT / ".venv" / "bin" / name):
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    pytest.fail(f"{name} not found in {BIN} or on PATH: run `make setup` (hack/build-tools.sh, "
                f"hack/install-prometheus.sh) first")


@dataclass
class Kubectl:
    """Runs the real kubectl against the local cluster."""

    binary: str
    kubeconfig: Path

    def __call__(self, *args: str, input: str | None = None, check: bool = True,
                 namespace: str | None = None) -> subprocess.CompletedProcess:
        argv = [self.binary, f"--kubeconfig={self.kubeconfig}"]
        if namespace:
            argv.append(f"--namespace={namespace}")
        proc = subprocess.run(argv + list(args), input=input, capture_output=True, text=True,
                              timeout=120)
        if check and proc.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
        return proc

    def json(self, *args: str, namespace: str | None = None) -> dict:
        return json.loads(self("get", *args, "-o", "json", namespace=namespace).stdout)

    def apply(self, manifest: dict | str, namespace: str | None = None,
              check: bool = True) -> subprocess.CompletedProcess:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        return self("apply", "-f", "-", input=text, namespace=namespace, check=check)


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen
    log: Path

    def query(self, expr: str) -> list[dict]:
        q = urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{q}", timeout=10) as r:
            body = json.loads(r.read())
        if body.get("status") != "success":
            raise AssertionError(f"query {expr!r} failed: {body}")
        return body["data"]["result"]

    def targets(self) -> list[dict]:
        with urllib.request.urlopen(f"{self.url}/api/v1/targets", timeout=10) as r:
            return json.loads(r.read())["data"]["activeTargets"]




def install_crd(kubectl: Kubectl) -> str:
    """Apply the committed StyleGANRun CRD and wait until the API server serves it."""
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_FILE))
    kubectl("wait", "--for=condition=Established", "--timeout=60s",
            "crd/styleganruns.stylegan.dev")
    return "styleganruns.stylegan.dev"


def restricted_namespace(kubectl: Kubectl) -> str:
    """Create a fresh namespace enforcing the ``restricted`` Pod Security level; its name.

    Returns once the ServiceAccount controller has made the ``default`` account, since
    pods are refused until then. The caller deletes it.
    """
    name = f"t-{uuid.uuid4().hex[:8]}"
    kubectl.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": name, "labels": {"pod-security.kubernetes.io/enforce": "restricted",
                                 "pod-security.kubernetes.io/enforce-version": "latest"}}})
    wait_for(lambda: kubectl("get", "serviceaccount", "default", namespace=name,
                             check=False).returncode == 0, what=f"default SA in {name}")
    return name


@dataclass
class OperatorProcess:
    """``stylegan operator`` serving one namespace, as a subprocess."""

    kubeconfig: Path
    namespace: str
    log_path: Path
    extra_args: list[str] = field(default_factory=list)
    process: subprocess.Popen | None = None
    metrics_port: int = 0
    liveness_port: int = 0
    starts: int = 0

    def start(self) -> OperatorProcess:
        self.metrics_port = free_port()
        self.liveness_port = free_port()
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PYTHONUNBUFFERED": "1",
        }
        argv = [
            str(STYLEGAN), "operator", "--namespace", self.namespace,
            "--interval", "2", "--liveness-address", "127.0.0.1",
            "--liveness-port", str(self.liveness_port),
            "--metrics-port", str(self.metrics_port),
            "--trainer-image", "registry.invalid/stylegan-trainer:test",
            *self.extra_args,
        ]
        log = self.log_path.open("ab")
        log.write(f"\n=== start {self.starts + 1}: {' '.join(argv)}\n".encode())
        log.flush()
        self.process = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=ROOT, start_new_session=True,
        )
        log.close()
        self.starts += 1
        wait_for(self.healthy, timeout=90, interval=0.25, what="the operator's /healthz")
        return self

    def healthy(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            pytest.fail(f"the operator exited ({self.process and self.process.returncode}):\n"
                        + self.log_tail())
        try:
            url = f"http://127.0.0.1:{self.liveness_port}/healthz"
            with urllib.request.urlopen(url, timeout=2) as reply:
                return reply.status == 200
        except OSError:
            return False

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.read().decode()

    def kill(self) -> None:
        """SIGKILL: no clean-up, no last patch, as when a node dies."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
