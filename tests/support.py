"""Helpers shared by the tests: polling for a condition, the real kubectl, Prometheus."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("STYLEGAN_CACHE", Path.home() / ".cache" / "stylegan-operator"))
BIN = CACHE / "bin"


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


