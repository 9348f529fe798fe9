"""Shared fixtures: the local Kubernetes control plane, kubectl, namespaces, Prometheus.

The control plane is real (etcd, kube-apiserver, controller-manager, scheduler and kwok,
built from Go modules by ``hack/build-tools.sh``) and is started once per test session.
A test that needs a missing tool FAILS with the reason; only GPU tests skip, with a reason,
when no CUDA device is present.

Component logs go to ``out/test-cluster/<session>/logs/``; the folder is kept, and named in the
summary, when a test failed, and removed after a green session.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "hack"))

import localcluster  # noqa: E402

from tests.support import (  # noqa: E402
    BIN,
    Kubectl,
    Prometheus,
    require_binary,
    restricted_namespace,
    wait_for,
)

# One folder per session, so concurrent sessions (two developers, an IDE) never share state.
CLUSTER_DIR = ROOT / "out" / "test-cluster" / time.strftime(f"%Y%m%d-%H%M%S-{os.getpid()}")

_failed = False


# -- the control plane --------------------------------------------------------------------
@pytest.fixture(scope="session")
def cluster() -> Iterator[localcluster.LocalCluster]:
    for b in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"):
        require_binary(b)
    shutil.rmtree(CLUSTER_DIR, ignore_errors=True)
    c = localcluster.LocalCluster(workdir=CLUSTER_DIR, bin_dir=BIN)
    try:
        c.start()
    except localcluster.ClusterError as exc:
        pytest.fail(f"local control plane failed to start: {exc}")
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="session")
def kubectl(cluster: localcluster.LocalCluster) -> Kubectl:
    return Kubectl(require_binary("kubectl"), cluster.kubeconfig)


@pytest.fixture
def namespace(kubectl: Kubectl) -> Iterator[str]:
    """A fresh namespace enforcing the ``restricted`` Pod Security level."""
    name = restricted_namespace(kubectl)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


# -- Prometheus ---------------------------------------------------------------------------
@contextlib.contextmanager
def prometheus_starter(workdir: Path) -> Iterator[Callable[[dict], Prometheus]]:
    """``start(config)`` runs Debian's Prometheus on a free port with that scrape config, its
    files in ``workdir``; every one started is stopped when the context ends."""
    started: list[Prometheus] = []
    binary = require_binary("prometheus")

    def start(config: dict) -> Prometheus:
        port = localcluster.free_port()
        cfg = workdir / f"prometheus-{port}.yml"
        cfg.write_text(json.dumps(config))  # JSON is YAML
        log = workdir / f"prometheus-{port}.log"
        proc = subprocess.Popen(
            [binary, f"--config.file={cfg}", f"--storage.tsdb.path={workdir / f'tsdb-{port}'}",
             f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle"],
            stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
        prom = Prometheus(f"http://127.0.0.1:{port}", proc, log)
        started.append(prom)

        def ready() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"prometheus exited: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{prom.url}/-/ready", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False

        wait_for(ready, timeout=60, what="prometheus ready")
        return prom

    try:
        yield start
    finally:
        for prom in started:
            prom.process.terminate()
            try:
                prom.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                prom.process.kill()


@pytest.fixture
def prometheus_factory(tmp_path: Path) -> Iterator[Callable[[dict], Prometheus]]:
    """Start Prometheus instances for one test (see ``prometheus_starter``)."""
    with prometheus_starter(tmp_path) as start:
        yield start


@pytest.fixture(scope="module")
def module_prometheus_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[dict], Prometheus]]:
    """The same, for Prometheus instances that every test of a module reads."""
    with prometheus_starter(tmp_path_factory.mktemp("prometheus")) as start:
        yield start


# -- GPU ----------------------------------------------------------------------------------
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_items = [i for i in items if "gpu" in i.keywords]
    if not gpu_items:
        return
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if not has_cuda:
        skip = pytest.mark.skip(reason="needs a CUDA device; none is present on this machine")
        for item in gpu_items:
            item.add_marker(skip)


# -- keep logs of failed sessions ---------------------------------------------------------
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    global _failed
    if report.failed:
        _failed = True


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    logs = CLUSTER_DIR / "logs"
    if not logs.exists():
        return
    if _failed:
        terminalreporter.write_line(
            f"control-plane component logs kept in {logs} (etcd, kube-apiserver, "
            f"kube-controller-manager, kube-scheduler, kwok)")
    else:
        shutil.rmtree(CLUSTER_DIR, ignore_errors=True)
