"""The pod template of a run's Job: the trainer container, its volumes and where it may run.

Every pod of an attempt runs ``torchrun`` (c10d rendezvous on pod 0, whole-group restarts
left to the operator: ``--max-restarts 0``) as a non-root user on a read-only root
filesystem, as the ``restricted`` Pod Security level asks. The container's command is
``stylegan torchrun`` (the trainer's ``cli/launch_commands.py``) with torchrun's own flags as
its args: plain torchrun exits 1 whenever a worker fails, which would hide the trainer's 64
(bad configuration) from the Job's ``podFailurePolicy``; the launcher exits 64 or 75 when a
worker did, forwards SIGTERM so the trainer still checkpoints, and writes the worker's error
line as the container's termination message, which the operator quotes.

Kept apart from ``jobs`` (the Job around the template, and how it fails): the pod's settings
are most of what ``spec.resources`` asks for, and most of what a rendered Job holds.
"""

from __future__ import annotations

from typing import Any

from stylegan_operator.api.names import (
    CHECKPOINT_MOUNT,
    DATASET_MOUNT,
    GPU_RESOURCE,
    GPU_TYPE_LABEL,
)
from stylegan_operator.api.spec import RunSpec
from stylegan_operator.reconcile.render import (
    ANNOTATION_RUN_NAME,
    C10D_PORT,
    CACHE_DIR,
    CONFIG_DIR,
    CONFIG_PATH,
    DEFAULT_TRAINER_IMAGE,
    METRICS_PORT,
    RDZV_JOIN_TIMEOUT_S,
    RUN_AS_USER,
    TRAINER_CONTAINER,
    _meta,
    config_map_name,
    job_name,
    service_name,
    trainer_labels,
)

TRAINER_COMMAND = ("stylegan", "torchrun")
"""torchrun behind the launcher that keeps the workers' exit codes 64 and 75 (module docstring)."""


def torchrun_args(spec: RunSpec, job: str, service: str, rdzv_id: str, nodes: int) -> list[str]:
    """torchrun's flags, then the trainer command it starts on every local rank."""
    return [
        "--nnodes", str(nodes),
        "--nproc-per-node", str(spec.resources.gpus_per_node),
        # Set by the Job controller on Indexed Jobs; the kubelet expands $(VAR) in args.
        "--node-rank", "$(JOB_COMPLETION_INDEX)",
        "--rdzv-backend", "c10d",
        "--rdzv-endpoint", f"{job}-0.{service}:{C10D_PORT}",
        "--rdzv-id", rdzv_id,
        "--rdzv-conf", f"join_timeout={RDZV_JOIN_TIMEOUT_S}",
        # The operator restarts the whole group; a local restart cannot heal a lost peer.
        "--max-restarts", "0",
        "--no-python",
        "stylegan", "train", "--config", CONFIG_PATH,
    ]  # fmt: skip


def _field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def trainer_env(run_meta: dict[str, Any], spec: RunSpec, attempt: int) -> list[dict[str, Any]]:
    """The trainer's environment; ``spec.resources.env`` overrides an entry of the same name."""
    env: list[dict[str, Any]] = [
        _field_env("NODE_NAME", "spec.nodeName"),
        _field_env("POD_NAME", "metadata.name"),
        _field_env("POD_NAMESPACE", "metadata.namespace"),
        _field_env("STYLEGAN_RUN_NAME", f"metadata.annotations['{ANNOTATION_RUN_NAME}']"),
        _field_env("STYLEGAN_RUN_NAMESPACE", "metadata.namespace"),
        {"name": "STYLEGAN_RUN", "value": _meta(run_meta, "name")},
        {"name": "STYLEGAN_ATTEMPT", "value": str(attempt)},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},  # the root filesystem is read-only
        {"name": "HOME", "value": "/tmp"},
        {"name": "XDG_CACHE_HOME", "value": CACHE_DIR},
        {"name": "TORCH_HOME", "value": f"{CACHE_DIR}/torch"},
    ]
    index = {e["name"]: i for i, e in enumerate(env)}
    for extra in spec.resources.env:
        entry = {"name": extra.name, "value": extra.value}
        if extra.name in index:
            env[index[extra.name]] = entry
        else:
            index[extra.name] = len(env)
            env.append(entry)
    return env


def _compute_resources(spec: RunSpec) -> dict[str, Any]:
    extra = spec.resources.resources
    requests: dict[str, Any] = dict(extra.requests)
    limits: dict[str, Any] = dict(extra.limits)
    if not spec.is_cpu:
        # Extended resources need requests == limits; setting both says so explicitly.
        requests[GPU_RESOURCE] = spec.resources.gpus_per_node
        limits[GPU_RESOURCE] = spec.resources.gpus_per_node
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def container_security_context() -> dict[str, Any]:
    """What the ``restricted`` Pod Security level asks of a container."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "fsGroup": RUN_AS_USER,  # lets the non-root trainer write to a checkpoint claim
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _volumes(spec: RunSpec, config_map: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Volumes and their mounts: shm, scratch, config and the optional claims."""
    volumes: list[dict[str, Any]] = [
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": spec.resources.shm_size}},
        {"name": "tmp", "emptyDir": {}},
        {"name": "cache", "emptyDir": {}},
        {"name": "config", "configMap": {"name": config_map}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "dshm", "mountPath": "/dev/shm"},
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "cache", "mountPath": CACHE_DIR},
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
    ]
    if spec.dataset.claim_name:
        volumes.append(
            {
                "name": "dataset",
                "persistentVolumeClaim": {"claimName": spec.dataset.claim_name, "readOnly": True},
            }
        )
        mounts.append({"name": "dataset", "mountPath": DATASET_MOUNT, "readOnly": True})
    if spec.checkpoints and spec.checkpoints.claim_name:
        volumes.append(
            {
                "name": "checkpoints",
                "persistentVolumeClaim": {"claimName": spec.checkpoints.claim_name},
            }
        )
        mounts.append({"name": "checkpoints", "mountPath": CHECKPOINT_MOUNT})
    return volumes, mounts


def _scheduling(spec: RunSpec) -> dict[str, Any]:
    """nodeSelector and tolerations: the GPU type's, then the spec's own."""
    r = spec.resources
    selector: dict[str, str] = {} if spec.is_cpu else {GPU_TYPE_LABEL: r.gpu_type}
    selector.update(r.node_selector)
    tolerations: list[dict[str, Any]] = []
    if not spec.is_cpu:
        tolerations.append({"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"})
    tolerations.extend(t.model_dump(by_alias=True, exclude_none=True) for t in r.tolerations)
    out: dict[str, Any] = {}
    if selector:
        out["nodeSelector"] = selector
    if tolerations:
        out["tolerations"] = tolerations
    return out


def _trainer_container(
    run_meta: dict[str, Any], spec: RunSpec, attempt: int, nodes: int,
    mounts: list[dict[str, Any]], image: str | None,
) -> dict[str, Any]:
    """The one container of a trainer pod: ``stylegan torchrun`` starting ``stylegan train``."""
    run = _meta(run_meta, "name")
    job = job_name(run, attempt)
    svc = service_name(run)
    r = spec.resources
    container: dict[str, Any] = {
        "name": TRAINER_CONTAINER,
        "image": r.image or image or DEFAULT_TRAINER_IMAGE,
    }
    if r.image_pull_policy:
        container["imagePullPolicy"] = r.image_pull_policy
    container.update(
        command=list(TRAINER_COMMAND),
        args=torchrun_args(spec, job, svc, f"{_meta(run_meta, 'uid')}-a{attempt}", nodes),
        env=trainer_env(run_meta, spec, attempt),
        ports=[
            {"name": "c10d", "containerPort": C10D_PORT, "protocol": "TCP"},
            # Every pod declares it, since the rendezvous (not the pod index) decides which
            # pod holds rank 0; only that one listens, the other targets read as down.
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        resources=_compute_resources(spec),
        securityContext=container_security_context(),
        volumeMounts=mounts,
        # The trainer's one-line reason for exit 64 reaches the operator without log access:
        # the launcher writes it to /dev/termination-log; logs only if it wrote nothing.
        terminationMessagePolicy="FallbackToLogsOnError",
    )
    return container


def _pod_spec(
    spec: RunSpec, svc: str, container: dict[str, Any], volumes: list[dict[str, Any]],
    service_account_name: str | None,
) -> dict[str, Any]:
    """Pod settings: the Service's subdomain, no restarts, the account, scheduling, security."""
    r = spec.resources
    pod_spec: dict[str, Any] = {
        "subdomain": svc,
        "restartPolicy": "Never",
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
    }
    if r.service_account_name or service_account_name:
        pod_spec["serviceAccountName"] = r.service_account_name or service_account_name
    if service_account_name:
        pod_spec["automountServiceAccountToken"] = True
    if r.priority_class_name:
        pod_spec["priorityClassName"] = r.priority_class_name
    pod_spec.update(_scheduling(spec))
    pod_spec.update(
        securityContext=pod_security_context(),
        containers=[container],
        volumes=volumes,
    )
    return pod_spec


def pod_template(
    run_meta: dict[str, Any],
    spec: RunSpec,
    attempt: int,
    nodes: int,
    *,
    image: str | None = None,
    service_account_name: str | None = None,
) -> dict[str, Any]:
    """The pod template of attempt ``attempt``'s Job, for a group of ``nodes`` pods.

    ``image`` and ``service_account_name`` are as for
    :func:`~stylegan_operator.reconcile.jobs.build_job`.
    """
    run = _meta(run_meta, "name")
    volumes, mounts = _volumes(spec, config_map_name(run, attempt))
    container = _trainer_container(run_meta, spec, attempt, nodes, mounts, image)
    return {
        "metadata": {
            "labels": trainer_labels(run_meta, attempt),
            "annotations": {
                "kubectl.kubernetes.io/default-container": TRAINER_CONTAINER,
                ANNOTATION_RUN_NAME: run,
            },
        },
        "spec": _pod_spec(spec, service_name(run), container, volumes, service_account_name),
    }
