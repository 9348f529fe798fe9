"""``spec.serve`` on the real control plane: the operator runs, repairs and removes the server.

The operator runs with exactly manifests/rbac's rights (``operator_kubeconfig``), so every
step here also proves the Deployment and Service verbs it holds. kwok runs no process: a
server pod is Running and Ready as soon as it is bound, so readiness here is kwok's, not
``/readyz``'s. The trainer's first checkpoint is reported the way rank 0 reports it, a merge
patch of ``status.progress``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from stylegan_operator.api.validation import validate_spec
from stylegan_operator.reconcile.serve_render import ANNOTATION_SERVE_DIGEST, build_serve_deployment
from tests.integration.operator.conftest import OperatorProcess, Runs, example, gpu_run
from tests.support import Kubectl, wait_for

pytestmark = pytest.mark.cluster

RUN = "smile"
FACES = "smile-faces"
IMAGE = "registry.invalid/stylegan-trainer:test"  # OperatorProcess's --trainer-image
CHECKPOINT = {"uri": "gs://ckpt/smile/ckpt-000050.pt", "kimg": 50.0,
              "time": "2026-05-01T12:00:00Z"}


def get(kubectl: Kubectl, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
    found = kubectl("get", kind, name, "-o", "json", namespace=namespace, check=False)
    return json.loads(found.stdout) if found.returncode == 0 else None


def args_of(deployment: dict[str, Any]) -> list[str]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return [*container["command"], *container["args"]]


def test_the_server_follows_the_first_checkpoint_and_spec_serve(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess, runs: Runs
) -> None:
    runs.apply(gpu_run(RUN, namespace, checkpoints={"uri": "gs://ckpt/smile"},
                       serve={"enabled": True, "truncationPsi": 0.6}))
    runs.running_pods(RUN, 1, 2)
    runs.wait_status(RUN, lambda s: (runs.condition(RUN, "Serving") or {}).get("reason")
                     == "WaitingForCheckpoint", what="Serving=False WaitingForCheckpoint")
    assert get(kubectl, namespace, "deployment", FACES) is None

    # Rank 0 reports its first checkpoint: the server starts.
    kubectl("patch", "styleganrun", RUN, "--subresource=status", "--type=merge", "-p",
            json.dumps({"status": {"progress": {"kimg": 50.0, "lastCheckpoint": CHECKPOINT}}}),
            namespace=namespace)
    deployment = wait_for(lambda: get(kubectl, namespace, "deployment", FACES), timeout=60,
                          what="the server's Deployment")
    service = wait_for(lambda: get(kubectl, namespace, "service", FACES), timeout=30,
                       what="the server's Service")
    run = runs.get(RUN)
    for obj in (deployment, service):
        (owner,) = obj["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["uid"], owner["controller"]) == (
            "StyleGANRun", run["metadata"]["uid"], True)
    args = args_of(deployment)
    assert args[:2] == ["stylegan", "serve"]
    for name, value in (("--checkpoint", "gs://ckpt/smile"), ("--psi", "0.6"),
                        ("--port", "8080"), ("--device", "cpu")):
        assert args[args.index(name) + 1] == value, args
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"][0]["port"] == 80
    assert service["spec"]["ports"][0]["targetPort"] == "http"

    # What the operator renders is exactly what the API server holds: a server-side dry
    # run is accepted, and a server-side diff under the operator's field manager is empty.
    rendered = build_serve_deployment(
        {k: run["metadata"][k] for k in ("name", "namespace", "uid", "generation")},
        validate_spec(run["spec"]), image=IMAGE)
    assert rendered["metadata"]["annotations"][ANNOTATION_SERVE_DIGEST] == deployment[
        "metadata"]["annotations"][ANNOTATION_SERVE_DIGEST]
    body = json.dumps(rendered)
    kubectl("apply", "--server-side", "--dry-run=server", "--field-manager=stylegan-operator",
            "-f", "-", input=body, namespace=namespace)
    diff = kubectl("diff", "--server-side", "--field-manager=stylegan-operator", "-f", "-",
                   input=body, namespace=namespace, check=False)
    assert diff.returncode == 0, diff.stdout + diff.stderr

    # kwok reports the pod Ready at once: the status and the condition follow.
    status = runs.wait_status(RUN, lambda s: (s.get("serve") or {}).get("readyReplicas") == 1,
                              what="status.serve.readyReplicas 1")
    assert status["serve"]["url"] == f"http://{FACES}.{namespace}.svc"
    serving = runs.condition(RUN, "Serving")
    assert serving is not None and serving["status"] == "True", serving
    # The server's pod is no trainer pod: the run still has its two, on attempt 1.
    assert status["attempt"] == 1 and runs.job_names(RUN) == [f"{RUN}-a1"]

    # Deleted by someone: made again (the operator watches its Deployments).
    before = deployment["metadata"]["uid"]
    kubectl("delete", "deployment", FACES, "--wait=true", namespace=namespace)
    back = wait_for(lambda: (d := get(kubectl, namespace, "deployment", FACES)) is not None
                    and d["metadata"]["uid"] != before and d, timeout=60,
                    what="the Deployment made again")
    assert args_of(back) == args

    # A spec change rolls it in place, without a new attempt.
    kubectl("patch", "styleganrun", RUN, "--type=merge", "-p",
            json.dumps({"spec": {"serve": {"truncationPsi": 0.8}}}), namespace=namespace)
    wait_for(lambda: "0.8" in args_of(get(kubectl, namespace, "deployment", FACES) or back),
             timeout=60, what="the Deployment rolled to psi 0.8")
    assert runs.job_names(RUN) == [f"{RUN}-a1"]

    # Turned off: both go, and the status says so.
    kubectl("patch", "styleganrun", RUN, "--type=merge", "-p",
            json.dumps({"spec": {"serve": {"enabled": False}}}), namespace=namespace)
    wait_for(lambda: get(kubectl, namespace, "deployment", FACES) is None
             and get(kubectl, namespace, "service", FACES) is None, timeout=60,
             what="the server's Deployment and Service deleted")
    status = runs.wait_status(RUN, lambda s: "serve" not in s, what="status.serve removed")
    serving = runs.condition(RUN, "Serving")
    assert serving is not None and (serving["status"], serving["reason"]) == (
        "False", "ServeDisabled")
    assert status["phase"] == "Running"


def test_the_api_server_refuses_serving_without_checkpoints(
    kubectl: Kubectl, namespace: str, crd: str
) -> None:
    refused = kubectl.apply(gpu_run("nocheck", namespace, serve={"enabled": True}),
                            namespace=namespace, check=False)
    assert refused.returncode != 0
    assert "spec.serve.enabled needs spec.checkpoints" in refused.stderr


def test_kubectl_explain_documents_spec_serve(kubectl: Kubectl, crd: str) -> None:
    explained = kubectl("explain", "styleganrun.spec.serve.truncationPsi")
    assert "truncation psi" in explained.stdout


def test_the_examples_gpu_servers_start_on_its_gpu_pool_once_it_succeeds(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess, runs: Runs
) -> None:
    doc = example("portraits-serve", namespace)
    kubectl("create", "serviceaccount", doc["spec"]["resources"]["serviceAccountName"],
            namespace=namespace)
    doc["spec"]["serve"]["whileTraining"] = False  # no trainer here reports a checkpoint
    runs.apply(doc)
    pods = runs.running_pods("portraits", 1, 1)
    runs.wait_phase("portraits", "Running")
    assert runs.condition("portraits", "Serving")["reason"] == "WaitingForSuccess"
    runs.exit_pods(pods, 0)
    runs.wait_phase("portraits", "Succeeded")

    def servers() -> list[dict[str, Any]] | None:
        found = [p for p in kubectl.json(
            "pods", "-l", "stylegan.dev/run=portraits,app.kubernetes.io/component=server",
            namespace=namespace)["items"] if p["status"].get("phase") == "Running"]
        return found if len(found) == 2 else None

    placed = wait_for(servers, timeout=60, what="2 running server pods")
    labels = {n["metadata"]["name"]: n["metadata"].get("labels", {})
              for n in kubectl.json("nodes")["items"]}
    for pod in placed:
        assert labels[pod["spec"]["nodeName"]]["cloud.google.com/gke-accelerator"] == (
            "nvidia-tesla-a100")
        (container,) = pod["spec"]["containers"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    status = runs.wait_status("portraits", lambda s: (s.get("serve") or {}).get(
        "readyReplicas") == 2, what="both servers ready")
    assert status["phase"] == "Succeeded"
    assert runs.condition("portraits", "Serving")["status"] == "True"
