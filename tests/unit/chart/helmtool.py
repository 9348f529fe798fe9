"""Running the real helm binary on the chart, for the unit and the cluster tests.

helm keeps a cache, a config and a data folder under $HOME by default; the tests give it
their own under the system temp folder, so they neither read nor write a developer's
repositories and plugins.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support import ROOT, require_binary

CHART = ROOT / "charts" / "stylegan-operator"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
KUBE_VERSION = "1.36.0"  # hack/versions.env K8S_VERSION: what the local control plane runs
MONITORING_API = "monitoring.coreos.com/v1"
HELM_HOME = Path(tempfile.gettempdir()) / f"stylegan-helm-{os.getuid()}"


def helm_env(kubeconfig: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("CACHE", "CONFIG", "DATA"):
        env[f"HELM_{name}_HOME"] = str(HELM_HOME / name.lower())
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    return env


def helm(
    *args: str, check: bool = True, kubeconfig: Path | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Run ``helm ARGS``; a failure fails the test with helm's own message when ``check``."""
    proc = subprocess.run(
        [require_binary("helm"), *args], capture_output=True, text=True, timeout=timeout,
        env=helm_env(kubeconfig), cwd=ROOT,
    )  # fmt: skip
    if check and proc.returncode != 0:
        pytest.fail(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def template_args(
    values: Sequence[Path] = (),
    sets: Sequence[str] = (),
    api_versions: Sequence[str] = (),
    release: str = "stylegan-operator",
    namespace: str = "stylegan-system",
    chart: Path = CHART,
) -> list[str]:
    args = ["template", release, str(chart), "--namespace", namespace,
            "--kube-version", KUBE_VERSION]
    for path in values:
        args += ["--values", str(path)]
    for item in sets:
        args += ["--set", item]
    for api in api_versions:
        args += ["--api-versions", api]
    return args


def template(**kwargs: Any) -> str:
    return helm(*template_args(**kwargs)).stdout


def documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def render(**kwargs: Any) -> list[dict[str, Any]]:
    """The chart's objects for these values (``template_args``' keywords)."""
    return documents(template(**kwargs))


def find(objects: Sequence[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind
               and (name is None or o["metadata"]["name"] == name)]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def of_kind(objects: Sequence[dict[str, Any]], *kinds: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] in kinds]


def rule_triples(rules: Sequence[dict[str, Any]]) -> set[tuple[str, str, str, tuple[str, ...]]]:
    """RBAC rules as (apiGroup, resource, verb, resourceNames) facts, however grouped."""
    facts = set()
    for rule in rules:
        names = tuple(sorted(rule.get("resourceNames") or ()))
        for group in rule.get("apiGroups") or ():
            for resource in rule.get("resources") or ():
                for verb in rule.get("verbs") or ():
                    facts.add((group, resource, verb, names))
    return facts


def manifest_rules(filename: str) -> dict[str, list[dict[str, Any]]]:
    """ClusterRole name -> rules, from manifests/rbac/<filename>."""
    path = ROOT / "manifests" / "rbac" / filename
    return {d["metadata"]["name"]: d["rules"] for d in documents(path.read_text())
            if d["kind"] == "ClusterRole"}
