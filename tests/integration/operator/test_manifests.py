"""The operator's own manifests on the real API server: they apply, and its pod passes the
``restricted`` Pod Security level (a server-side dry run in a namespace that enforces it).

That the ClusterRole is enough is shown by every other test here: the operator under test
runs with a token of the ServiceAccount these manifests bind (conftest.operator_kubeconfig).
"""

from __future__ import annotations

import pytest
import yaml

from tests.integration.operator.conftest import MANIFESTS
from tests.support import Kubectl

pytestmark = pytest.mark.cluster


def test_the_deployment_is_one_replica_recreated_and_passes_restricted_pod_security(
    kubectl: Kubectl, namespace: str
) -> None:
    deployment = yaml.safe_load((MANIFESTS / "operator" / "deployment.yaml").read_text())
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    deployment["metadata"]["namespace"] = namespace
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "operator-dry-run", "namespace": namespace},
           "spec": {**deployment["spec"]["template"]["spec"], "serviceAccountName": "default"}}
    result = kubectl.apply(pod, namespace=namespace, check=False)
    kubectl("delete", "pod", "operator-dry-run", "--wait=false", namespace=namespace,
            check=False)
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr, result.stderr


def test_the_operator_manifests_apply_cleanly(kubectl: Kubectl, crd: str) -> None:
    # A server-side dry run of the folder does not create its Namespace for the objects
    # after it, so the namespace is made for real first (what a user's first apply does).
    kubectl("apply", "-f", str(MANIFESTS / "operator" / "namespace.yaml"))
    for folder in ("operator", "rbac"):
        result = kubectl("apply", "--dry-run=server", "-f", str(MANIFESTS / folder))
        assert result.returncode == 0, result.stderr
