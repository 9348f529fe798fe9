"""``kube.client.Kube`` on the real API server, with the operator's own ServiceAccount token.

The other tests here show the operator's calls working; these pin down what ``Kube`` adds
to the kubernetes client: plain camelCase dicts in and out, a create that finds its object
and a patch or delete that finds nothing count as done, and failures become a
:class:`KubeError` that carries the API server's words and says whether a retry can help.
No operator runs here, so nothing else touches the objects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes
import pytest

from stylegan_operator.kube.client import Kube, KubeError
from tests.integration.conftest import gpu_run
from tests.support import Kubectl

pytestmark = pytest.mark.cluster

LABELS = {"stylegan.dev/run": "kube-client"}


@pytest.fixture
def kube(operator_kubeconfig: Path) -> Kube:
    return Kube(kubernetes.config.new_client_from_config(str(operator_kubeconfig)))


def suspended_job(name: str, namespace: str) -> dict[str, Any]:
    """A Job that never starts a pod (``suspend``), so nothing but the API server is involved."""
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": LABELS},
        "spec": {"suspend": True, "backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox", "command": ["true"]}]}}},
    }


def test_objects_go_in_and_come_out_as_camel_case_dicts_and_repeats_converge(
    kube: Kube, kubectl: Kubectl, namespace: str
) -> None:
    job = suspended_job("kube-client-a0", namespace)
    assert kube.create(job) is True
    assert kube.create(job) is False  # 409 AlreadyExists: already done
    (listed,) = kube.list_objects("Job", namespace, "stylegan.dev/run=kube-client")
    assert listed["metadata"]["name"] == "kube-client-a0"
    assert listed["spec"]["backoffLimit"] == 0 and listed["spec"]["suspend"] is True
    assert listed["spec"]["template"]["spec"]["restartPolicy"] == "Never"

    kube.patch("Job", namespace, "kube-client-a0", {"metadata": {"labels": {"patched": "yes"}}})
    labels = kubectl.json("job", "kube-client-a0", namespace=namespace)["metadata"]["labels"]
    assert labels == {**LABELS, "patched": "yes"}  # a merge patch: the old label stays

    kube.patch("Job", namespace, "nothing-here", {"spec": {"suspend": False}})  # 404: done
    assert kube.get("Job", namespace, "nothing-here") is None
    kube.delete("Job", namespace, "kube-client-a0", propagation="Foreground")
    kube.delete("Job", namespace, "kube-client-a0")  # 404 (or still terminating): done
    kube.delete("Job", namespace, "nothing-here")


def test_the_run_status_is_merge_patched_through_the_subresource(
    kube: Kube, kubectl: Kubectl, namespace: str
) -> None:
    kubectl.apply(gpu_run("kube-client", namespace))
    kube.patch_run_status(namespace, "kube-client", {"phase": "Pending", "restarts": 0})
    kube.patch_run_status(namespace, "kube-client", {"restarts": 2})
    run = kube.get_run(namespace, "kube-client")
    assert run is not None and run["spec"]["resources"]["gpusPerNode"] == 8
    assert run["status"]["phase"] == "Pending" and run["status"]["restarts"] == 2
    kube.delete_run(namespace, "kube-client")
    assert kube.get_run(namespace, "kube-client") is None
    kube.patch_run_status(namespace, "kube-client", {"restarts": 3})  # gone: nothing to do


def test_a_refused_request_is_permanent_and_says_why(kube: Kube, namespace: str) -> None:
    with pytest.raises(KubeError) as invalid:
        kube.create(suspended_job("Not_A_DNS_Name", namespace))
    assert invalid.value.status == 422 and not invalid.value.transient
    assert "Not_A_DNS_Name" in str(invalid.value) and "RFC 1123" in str(invalid.value)

    with pytest.raises(KubeError) as forbidden:  # manifests/rbac grants no delete here
        kube.delete("ConfigMap", namespace, "anything")
    assert forbidden.value.status == 403 and not forbidden.value.transient
    assert 'cannot delete resource "configmaps"' in str(forbidden.value)


def test_an_api_server_out_of_reach_is_transient() -> None:
    config = kubernetes.client.Configuration()
    config.host = "https://127.0.0.1:9"  # the discard port: nothing listens
    config.retries = 0
    kube = Kube(kubernetes.client.ApiClient(config))
    with pytest.raises(KubeError) as unreachable:
        kube.get_run("default", "any")
    assert unreachable.value.transient and unreachable.value.status is None
    assert "out of reach" in str(unreachable.value)


def test_a_kind_the_operator_does_not_manage_is_refused_before_any_request() -> None:
    kube = Kube(kubernetes.client.ApiClient(kubernetes.client.Configuration()))
    with pytest.raises(ValueError, match="'Secret' is not one the operator manages"):
        kube.get("Secret", "default", "x")
