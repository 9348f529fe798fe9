"""The release path of the chart, for real: ``make chart-push`` packages the chart and pushes
it to an OCI registry (distribution's ``registry``, built from its Go module by
hack/build-tools.sh, serving plain HTTP on loopback), and what helm pulls back from there is
the chart in this checkout.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tarfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support import ROOT, require_binary, wait_for
from tests.unit.chart.helmtool import CHART, helm, helm_env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    """``127.0.0.1:PORT`` of a fresh OCI registry keeping its blobs under ``tmp_path``."""
    address = f"127.0.0.1:{free_port()}"
    config = tmp_path / "registry.yaml"
    config.write_text(yaml.safe_dump({
        "version": 0.1, "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(tmp_path / "blobs")}},
        "http": {"addr": address},
    }))  # fmt: skip
    log = (tmp_path / "registry.log").open("w")
    proc = subprocess.Popen([require_binary("registry"), "serve", str(config)],
                            stdout=log, stderr=subprocess.STDOUT)

    def answers() -> bool:
        assert proc.poll() is None, (tmp_path / "registry.log").read_text()
        try:
            return urllib.request.urlopen(f"http://{address}/v2/", timeout=2).status == 200
        except OSError:
            return False

    try:
        wait_for(answers, timeout=30, what=f"the OCI registry at {address}")
        yield address
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def test_make_chart_push_publishes_the_chart_helm_installs_from(
    registry: str, tmp_path: Path
) -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    dist = tmp_path / "dist"
    env = {**helm_env(), "CHART_REGISTRY": f"oci://{registry}/charts",
           "HELM_PUSH_FLAGS": "--plain-http", "DIST": str(dist),
           "HELM": require_binary("helm")}
    proc = subprocess.run(["make", "--no-print-directory", "chart-push"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    package = dist / f"stylegan-operator-{chart['version']}.tgz"
    with tarfile.open(package) as tar:
        names = set(tar.getnames())
    # What a user installs: the CRD, the schema and the test hook travel with the chart.
    assert {"stylegan-operator/crds/stylegan.dev_styleganruns.yaml",
            "stylegan-operator/values.schema.json",
            "stylegan-operator/templates/tests/operator-answers.yaml"} <= names

    ref = f"oci://{registry}/charts/stylegan-operator"
    shown = helm("show", "chart", ref, "--version", str(chart["version"]), "--plain-http")
    assert yaml.safe_load(shown.stdout) == chart
    pulled = helm("template", "stylegan-operator", ref, "--version", str(chart["version"]),
                  "--plain-http", "--namespace", "stylegan-system")
    local = helm("template", "stylegan-operator", str(CHART), "--namespace", "stylegan-system")
    assert pulled.stdout == local.stdout


def test_a_push_to_no_registry_fails_and_says_where(tmp_path: Path) -> None:
    env = {**helm_env(), "CHART_REGISTRY": f"oci://127.0.0.1:{free_port()}/charts",
           "HELM_PUSH_FLAGS": "--plain-http", "DIST": str(tmp_path),
           "HELM": require_binary("helm"), "PATH": os.environ["PATH"]}
    proc = subprocess.run(["make", "--no-print-directory", "chart-push"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode != 0
    assert "127.0.0.1" in proc.stderr, proc.stderr
