"""Fixtures for the operator on the real control plane: a running operator per test.

``crd``, ``operator_kubeconfig`` (the operator's own ServiceAccount token), :class:`Runs`
and :func:`gpu_run` live in tests/integration/conftest.py, shared with the monitoring
tests; they are imported here too, where this package's tests have always found them.

* ``operator`` starts ``stylegan operator --namespace <the test's namespace>`` as a
  subprocess (so a test can SIGKILL it and start it again) and, at the end, deletes the
  test's runs while it still runs (kopf removes its finalizer), then stops it.
* ``runs`` is a :class:`Runs` for the test's namespace.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import (  # noqa: F401  (the tests here import them from here)
    MANIFESTS,
    Runs,
    gpu_run,
)
from tests.support import Kubectl, OperatorProcess, wait_for


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


@pytest.fixture
def runs(kubectl: Kubectl, namespace: str) -> Runs:
    return Runs(kubectl, namespace)


def example(name: str, namespace: str) -> dict[str, Any]:
    """``manifests/examples/<name>.yaml`` moved into the test's namespace."""
    doc = yaml.safe_load((MANIFESTS / "examples" / f"{name}.yaml").read_text())
    doc["metadata"]["namespace"] = namespace
    return doc
