"""``stylegan runs``, ``logs`` and ``samples`` against the real API server.

The runs are made with kubectl and their status is patched through the status
subresource, as the operator would, so what the commands print depends on the API server
and the kubernetes client only.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.integration.chart.conftest import STYLEGAN, cpu_run
from tests.support import Kubectl

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]

STATUS = {"phase": "Running", "shape": "2x1", "kimg": 12.5, "totalKimg": 50, "cost": 0.4321,
          "currency": "USD", "eta": "7m 30s"}


def stylegan(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(STYLEGAN), *args, "--kubeconfig", str(kubeconfig)],
                          capture_output=True, text=True, timeout=60)


def make_run(kubectl: Kubectl, name: str, namespace: str, status: dict | None) -> None:
    kubectl.apply(cpu_run(name, namespace))
    if status:
        kubectl("patch", "styleganrun", name, "--subresource=status", "--type=merge",
                "-p", json.dumps({"status": status}), namespace=namespace)


def test_runs_lists_progress_and_cost(kubectl: Kubectl, namespace: str, cluster) -> None:
    make_run(kubectl, "faces-a", namespace, STATUS)
    make_run(kubectl, "faces-b", namespace, None)

    table = stylegan(cluster.kubeconfig, "runs", "-n", namespace)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["NAME", "PHASE", "NODES", "KIMG", "PROGRESS", "COST", "ETA",
                                "AGE"]
    a, b = lines[1].split(), lines[2].split()
    assert a[:7] == ["faces-a", "Running", "2", "12.5/50", "25.0%", "0.43", "USD"]
    assert a[7:9] == ["7m", "30s"] and a[9].endswith("s")
    assert b[:7] == ["faces-b", "Pending", "2", "-/50", "-", "-", "-"]

    rows = json.loads(stylegan(cluster.kubeconfig, "runs", "-n", namespace, "-o", "json").stdout)
    assert [(r["name"], r["phase"], r["cost"]) for r in rows] == [
        ("faces-a", "Running", 0.4321), ("faces-b", None, None)]

    everywhere = stylegan(cluster.kubeconfig, "runs", "--all-namespaces")
    assert everywhere.returncode == 0, everywhere.stderr
    assert everywhere.stdout.splitlines()[0].split()[0] == "NAMESPACE"
    mine = [line.split() for line in everywhere.stdout.splitlines()
            if line.startswith(namespace + " ")]
    assert [row[1] for row in mine] == ["faces-a", "faces-b"]


def test_runs_in_an_empty_namespace_says_so(kubectl: Kubectl, namespace: str, cluster) -> None:
    proc = stylegan(cluster.kubeconfig, "runs", "-n", namespace)
    assert proc.returncode == 0 and proc.stdout == ""
    assert f"No StyleGANRuns found in namespace {namespace}." in proc.stderr


def test_logs_and_samples_explain_what_is_missing(
    kubectl: Kubectl, namespace: str, cluster,
) -> None:
    make_run(kubectl, "faces-c", namespace, {"phase": "Pending"})
    logs = stylegan(cluster.kubeconfig, "logs", "faces-c", "-n", namespace)
    assert logs.returncode == 75, logs.stderr
    assert "has no attempt yet (phase Pending)" in logs.stderr

    samples = stylegan(cluster.kubeconfig, "samples", "faces-c", "-n", namespace)
    assert samples.returncode == 64, samples.stderr
    assert "no spec.checkpoints.uri" in samples.stderr

    missing = stylegan(cluster.kubeconfig, "logs", "nope", "-n", namespace)
    assert missing.returncode == 64 and f"{namespace}/nope: not found" in missing.stderr
