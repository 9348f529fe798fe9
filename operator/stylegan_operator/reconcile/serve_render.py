"""Pure rendering of ``spec.serve``: the server's Deployment and its Service, as plain dicts.

Both are named ``<run>-faces`` (a DNS-1035 label of at most 63 characters, cut and hashed
like every name of the run, ``render.dns_label``); the Service is ClusterIP, port 80 to the
pods' named port ``http`` (8080), so ``kubectl port-forward svc/<run>-faces 8080:80`` shows
the page. The pods run ``stylegan serve`` from the trainer image on the run's checkpoint
folder, with what the trainer pods have for storage access: the spec's ServiceAccount (a
GCS-enabled identity), ``spec.resources.env`` (``STORAGE_EMULATOR_HOST``, ...) and the
checkpoint claim, mounted read-only. Unlike the trainer they mount no API token: the server
talks to storage only.

Choices:

* Rolling updates with ``maxUnavailable: 0``: a changed spec (psi, image, a new resource
  request) brings a new pod up and ready (``/readyz``: a checkpoint loaded) before an old one
  goes, so serving never stops. With ``device: gpu`` that needs one spare GPU for the surge.
* ``readinessProbe`` on ``/readyz`` (ready once a checkpoint loaded), ``livenessProbe`` on
  ``/healthz``, and a ``startupProbe`` on ``/healthz`` giving the first start (importing torch,
  reading the first checkpoint from object storage) up to 5 minutes before liveness counts.
* The pods carry ``stylegan.dev/run`` (the chart's PodMonitor scrapes their ``http`` port's
  ``/metrics``) and ``prometheus.io/*`` annotations for annotation-driven scrapers, and
  ``app.kubernetes.io/component: server``, which keeps them out of the run's trainer pods
  (``observe.Observed``): they are not an attempt, and their lifetimes are not training cost.
* Every object carries :data:`ANNOTATION_SERVE_DIGEST`, a digest of the rest of it, so the
  operator re-applies an object only when what it would render changed
  (``reconcile.serving``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Final

from stylegan_operator.api.names import CHECKPOINT_MOUNT, CUSTOM_GPU_TYPE_LABEL, GPU_RESOURCE
from stylegan_operator.api.spec import RunSpec
from stylegan_operator.reconcile.pods import (
    NODE_LOSS_TAINTS,
    NODE_LOSS_TOLERATION_S,
    container_security_context,
    gpu_node_affinity,
    pod_security_context,
    with_spec_env,
)
from stylegan_operator.reconcile.render import (
    CACHE_DIR,
    DEFAULT_TRAINER_IMAGE,
    LABEL_RUN,
    SERVER_COMPONENT,
    _meta,
    _object_meta,
    dns_label,
    label_value,
    run_labels,
)

SERVER_CONTAINER: Final = "server"
SERVE_PORT: Final = 8080
SERVICE_PORT: Final = 80
SERVE_COMMAND: Final = ("stylegan", "serve")
ANNOTATION_SERVE_DIGEST: Final = "stylegan.dev/serve-digest"
STARTUP_SECONDS: Final = 300
"""How long a new server pod may take to answer /healthz (torch import, first download)."""


def serve_name(run_name: str) -> str:
    """The Deployment and the Service of the run's server, ``<run>-faces``."""
    return dns_label(run_name, "-faces", letter_first=True)


def serve_url(run_name: str, namespace: str) -> str:
    """The in-cluster URL of the server's Service (port 80)."""
    return f"http://{serve_name(run_name)}.{namespace}.svc"


def serve_labels(run_name: str) -> dict[str, str]:
    """The run's labels, naming the server as the component."""
    return {**run_labels(run_name), "app.kubernetes.io/name": "stylegan-server",
            "app.kubernetes.io/component": SERVER_COMPONENT}


def serve_selector(run_name: str) -> dict[str, str]:
    """Selects the server pods of the run (the Deployment's selector: never changes)."""
    return {LABEL_RUN: label_value(run_name),
            "app.kubernetes.io/component": SERVER_COMPONENT}


def serve_args(spec: RunSpec) -> list[str]:
    """``stylegan serve``'s flags for this run."""
    if spec.checkpoints is None:
        raise ValueError("spec.serve needs spec.checkpoints: the server reads them")
    s = spec.serve
    return [
        "--checkpoint", spec.checkpoints.uri,
        "--host", "0.0.0.0",
        "--port", str(SERVE_PORT),
        "--device", "cuda" if s.device == "gpu" else "cpu",
        "--psi", f"{s.truncation_psi:g}",
        "--max-batch", str(s.max_batch),
        "--batch-wait-ms", str(s.batch_wait_ms),
        "--reload-seconds", str(s.reload_seconds),
    ]  # fmt: skip


def _server_env(spec: RunSpec) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},  # the root filesystem is read-only
        {"name": "HOME", "value": "/tmp"},
        {"name": "XDG_CACHE_HOME", "value": CACHE_DIR},
        {"name": "TORCH_HOME", "value": f"{CACHE_DIR}/torch"},
    ]
    return with_spec_env(env, spec)


def _server_resources(spec: RunSpec) -> dict[str, Any]:
    extra = spec.serve.resources
    requests: dict[str, Any] = dict(extra.requests)
    limits: dict[str, Any] = dict(extra.limits)
    if spec.serve.device == "gpu":
        requests[GPU_RESOURCE] = 1  # extended resources: requests == limits
        limits[GPU_RESOURCE] = 1
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period,
            "timeoutSeconds": 5, "failureThreshold": failures}


def _server_container(spec: RunSpec, image: str | None) -> dict[str, Any]:
    r = spec.resources
    container: dict[str, Any] = {
        "name": SERVER_CONTAINER,
        "image": r.image or image or DEFAULT_TRAINER_IMAGE,
    }
    if r.image_pull_policy:
        container["imagePullPolicy"] = r.image_pull_policy
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"},
                                    {"name": "cache", "mountPath": CACHE_DIR}]
    if spec.checkpoints is not None and spec.checkpoints.claim_name:
        mounts.append({"name": "checkpoints", "mountPath": CHECKPOINT_MOUNT, "readOnly": True})
    container.update(
        command=list(SERVE_COMMAND),
        args=serve_args(spec),
        env=_server_env(spec),
        ports=[{"name": "http", "containerPort": SERVE_PORT, "protocol": "TCP"}],
        resources=_server_resources(spec),
        startupProbe=_probe("/healthz", 5, STARTUP_SECONDS // 5),
        readinessProbe=_probe("/readyz", 5, 3),
        livenessProbe=_probe("/healthz", 10, 6),
        securityContext=container_security_context(),
        volumeMounts=mounts,
        terminationMessagePolicy="FallbackToLogsOnError",
    )
    return container


def _volumes(spec: RunSpec) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}},
                                     {"name": "cache", "emptyDir": {}}]
    if spec.checkpoints is not None and spec.checkpoints.claim_name:
        volumes.append({"name": "checkpoints", "persistentVolumeClaim": {
            "claimName": spec.checkpoints.claim_name, "readOnly": True}})
    return volumes


def _scheduling(spec: RunSpec, gpu_type_label: str | None) -> dict[str, Any]:
    """GPU servers go where the trainers go; CPU servers anywhere (module docstring)."""
    out: dict[str, Any] = {}
    own = [t.model_dump(by_alias=True, exclude_none=True) for t in spec.resources.tolerations]
    tolerations: list[dict[str, Any]] = []
    if spec.serve.device == "gpu":
        if spec.resources.node_selector:
            out["nodeSelector"] = dict(spec.resources.node_selector)
        out["affinity"] = gpu_node_affinity(spec.resources.gpu_type, gpu_type_label)
        tolerations.append({"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"})
    else:
        own = []  # the spec's tolerations admit the training pool, not the server's nodes
    keys = {t.get("key") for t in own}
    # A server on a lost node is replaced after a minute, not the API server's five.
    tolerations += [{"key": key, "operator": "Exists", "effect": "NoExecute",
                     "tolerationSeconds": NODE_LOSS_TOLERATION_S}
                    for key in NODE_LOSS_TAINTS if key not in keys]
    out["tolerations"] = tolerations + own
    return out


def _pod_template(run: str, spec: RunSpec, image: str | None,
                  gpu_type_label: str | None) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,  # storage only, never the Kubernetes API
    }
    if spec.resources.service_account_name:
        pod_spec["serviceAccountName"] = spec.resources.service_account_name
    pod_spec.update(_scheduling(spec, gpu_type_label))
    pod_spec.update(securityContext=pod_security_context(),
                    containers=[_server_container(spec, image)], volumes=_volumes(spec))
    return {
        "metadata": {
            "labels": serve_labels(run),
            "annotations": {
                "kubectl.kubernetes.io/default-container": SERVER_CONTAINER,
                "prometheus.io/scrape": "true",
                "prometheus.io/port": str(SERVE_PORT),
                "prometheus.io/path": "/metrics",
            },
        },
        "spec": pod_spec,
    }


def _with_digest(obj: dict[str, Any]) -> dict[str, Any]:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    obj["metadata"].setdefault("annotations", {})[ANNOTATION_SERVE_DIGEST] = digest
    return obj


def build_serve_deployment(
    run_meta: dict[str, Any],
    spec: RunSpec,
    *,
    image: str | None = None,
    gpu_type_label: str | None = CUSTOM_GPU_TYPE_LABEL,
) -> dict[str, Any]:
    """The Deployment of ``spec.serve.replicas`` server pods (module docstring).

    ``image`` and ``gpu_type_label`` are the operator's, as for ``jobs.build_job``: the
    trainer image when the spec names none, and its own GPU type node label.
    """
    run = _meta(run_meta, "name")
    return _with_digest({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _object_meta(run_meta, serve_name(run), serve_labels(run)),
        "spec": {
            "replicas": spec.serve.replicas,
            "selector": {"matchLabels": serve_selector(run)},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "revisionHistoryLimit": 3,
            "template": _pod_template(run, spec, image, gpu_type_label),
        },
    })


def build_serve_service(run_meta: dict[str, Any]) -> dict[str, Any]:
    """The ClusterIP Service ``<run>-faces``: port 80 to the server pods' ``http``."""
    run = _meta(run_meta, "name")
    return _with_digest({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _object_meta(run_meta, serve_name(run), serve_labels(run)),
        "spec": {
            "type": "ClusterIP",
            "selector": serve_selector(run),
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http",
                       "protocol": "TCP"}],
        },
    })
