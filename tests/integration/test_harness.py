"""The test harness is real: scheduling on GPU nodes, Pod Security, CRD schemas, GC, Prometheus.

These tests prove that what the operator's tests stand on behaves like a Kubernetes cluster,
not like a mock: the scheduler counts ``nvidia.com/gpu``, the API server enforces Pod Security
and CRD schemas with its own messages, the garbage collector deletes dependants, and
Prometheus scrapes a live target.
"""

from __future__ import annotations

import threading
from http.server import HTTPServer

import pytest
from prometheus_client import CollectorRegistry, Gauge, MetricsHandler

from tests.support import Kubectl, wait_for

pytestmark = pytest.mark.cluster

RESTRICTED_CONTAINER = {
    "name": "main",
    "image": "registry.invalid/busybox:1",
    "command": ["true"],
    "securityContext": {
        "allowPrivilegeEscalation": False,
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    },
}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def gpu_container(gpus: int) -> dict:
    c = dict(RESTRICTED_CONTAINER)
    c["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
    return c


def test_nodes_advertise_gpus(kubectl: Kubectl) -> None:
    nodes = kubectl.json("nodes")["items"]
    gpu = {n["metadata"]["name"]: n for n in nodes
           if "nvidia.com/gpu" in n["status"].get("capacity", {})}
    assert {n.split("-")[0] for n in gpu} == {"v100", "a100"}
    for node in gpu.values():
        assert node["status"]["capacity"]["nvidia.com/gpu"] == "8"
        assert node["metadata"]["labels"]["cloud.google.com/gke-accelerator"].startswith("nvidia-")
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready and ready[0]["status"] == "True"
    out = kubectl("get", "nodes", "-o",
                  "custom-columns=NAME:.metadata.name,GPU:.status.capacity.nvidia\\.com/gpu").stdout
    assert "v100-0" in out and " 8" in out


def test_every_node_offers_cpu_and_memory(kubectl: Kubectl) -> None:
    # A node whose Ready status came without capacity schedules nothing ("Insufficient cpu").
    for node in kubectl.json("nodes")["items"]:
        allocatable = node["status"].get("allocatable") or {}
        assert {"cpu", "memory", "pods"} <= allocatable.keys(), node["metadata"]["name"]


def test_indexed_job_runs_on_requested_gpu_nodes(kubectl: Kubectl, namespace: str) -> None:
    job = {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "gpu-job"},
        "spec": {
            "completions": 2, "parallelism": 2, "completionMode": "Indexed", "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": {"kwok.stylegan.dev/exit-code": "0"}},
                "spec": {
                    "restartPolicy": "Never",
                    "nodeSelector": {"cloud.google.com/gke-accelerator": "nvidia-tesla-a100"},
                    "tolerations": [GPU_TOLERATION],
                    "containers": [gpu_container(8)],
                }}}}
    kubectl.apply(job, namespace=namespace)

    def complete() -> bool:
        status = kubectl.json("job", "gpu-job", namespace=namespace).get("status", {})
        return any(c["type"] == "Complete" and c["status"] == "True"
                   for c in status.get("conditions", []))

    wait_for(complete, timeout=90, what="Job Complete")
    pods = kubectl.json("pods", "-l", "job-name=gpu-job", namespace=namespace)["items"]
    assert len(pods) == 2
    # 8 GPUs each: the two pods cannot share a node.
    nodes = {p["spec"]["nodeName"] for p in pods}
    assert len(nodes) == 2 and all(n.startswith("a100-") for n in nodes)
    assert {p["status"]["phase"] for p in pods} == {"Succeeded"}
    assert sorted(p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
                  for p in pods) == ["0", "1"]


def test_pod_asking_too_many_gpus_stays_pending(kubectl: Kubectl, namespace: str) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "greedy"},
           "spec": {"tolerations": [GPU_TOLERATION], "containers": [gpu_container(16)]}}
    kubectl.apply(pod, namespace=namespace)

    def unschedulable() -> str | None:
        status = kubectl.json("pod", "greedy", namespace=namespace)["status"]
        for c in status.get("conditions", []):
            if c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable":
                return c.get("message", "")
        return None

    message = wait_for(unschedulable, timeout=60, what="PodScheduled=False")
    assert "Insufficient nvidia.com/gpu" in str(message)
    assert kubectl.json("pod", "greedy", namespace=namespace)["status"]["phase"] == "Pending"


def test_restricted_pod_security_refuses_privileged_pod(kubectl: Kubectl, namespace: str) -> None:
    bad = dict(RESTRICTED_CONTAINER, securityContext={"privileged": True})
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "root"},
           "spec": {"containers": [bad]}}
    proc = kubectl.apply(pod, namespace=namespace, check=False)
    assert proc.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in proc.stderr
    assert "privileged" in proc.stderr


def test_crd_schema_refuses_bad_object(kubectl: Kubectl, namespace: str) -> None:
    group = f"{namespace}.harness.stylegan.dev"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group, "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                "openAPIV3Schema": {"type": "object", "properties": {"spec": {
                    "type": "object", "required": ["size"],
                    "properties": {"size": {"type": "integer", "minimum": 1, "maximum": 8}},
                    "x-kubernetes-validations": [
                        {"rule": "self.size % 2 == 0", "message": "spec.size must be even"}],
                }}}}}],
        }}
    kubectl.apply(crd)
    try:
        wait_for(lambda: kubectl("get", f"widgets.{group}", namespace=namespace,
                                 check=False).returncode == 0, what="CRD established")
        good = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "ok"},
                "spec": {"size": 4}}
        kubectl.apply(good, namespace=namespace)
        too_big = dict(good, metadata={"name": "big"}, spec={"size": 12})
        proc = kubectl.apply(too_big, namespace=namespace, check=False)
        assert proc.returncode != 0
        assert "spec.size" in proc.stderr and "less than or equal to 8" in proc.stderr
        odd = dict(good, metadata={"name": "odd"}, spec={"size": 3})
        proc = kubectl.apply(odd, namespace=namespace, check=False)
        assert proc.returncode != 0 and "spec.size must be even" in proc.stderr
    finally:
        kubectl("delete", "crd", f"widgets.{group}", "--wait=false", check=False)


def test_garbage_collector_deletes_dependants(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}},
                  namespace=namespace)
    owner = kubectl.json("configmap", "owner", namespace=namespace)
    kubectl.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "dependant", "ownerReferences": [{
            "apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
            "uid": owner["metadata"]["uid"], "blockOwnerDeletion": True}]}},
        namespace=namespace)
    kubectl("delete", "configmap", "owner", namespace=namespace)
    wait_for(lambda: kubectl("get", "configmap", "dependant", namespace=namespace,
                             check=False).returncode != 0, timeout=60,
             what="garbage collection of the dependant")


def test_prometheus_scrapes_a_live_target(prometheus_factory) -> None:  # type: ignore[no-untyped-def]
    registry = CollectorRegistry()
    gauge = Gauge("stylegan_harness_answer", "A value the test sets.", registry=registry)
    gauge.set(42)
    server = HTTPServer(("127.0.0.1", 0), MetricsHandler.factory(registry))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        prom = prometheus_factory({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "harness",
                                "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}]})
        result = wait_for(lambda: prom.query("stylegan_harness_answer"), timeout=60,
                          what="a scraped sample")
        assert float(result[0]["value"][1]) == 42.0  # type: ignore[index]
        assert result[0]["metric"]["job"] == "harness"  # type: ignore[index]
    finally:
        server.shutdown()
