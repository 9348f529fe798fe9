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

Settings sized for real clusters, each overridable:

* **Rendezvous**: the pods of an attempt start minutes apart (scheduling, a CUDA image
  pulled on a fresh node) and pod 0, which hosts torchrun's c10d store, may be the last.
  torchrun's defaults would fail the early pods: 60 s for the first connection to the store
  (``read_timeout``) and 600 s to join (``join_timeout``). Both are
  ``spec.distributed.rendezvousTimeoutSeconds`` (1800 s), as long as the operator's
  image-pull limit, so a slow pull ends as ``ImagePullFailed`` (named, not retried) rather
  than as a rendezvous timeout of every other pod (a counted restart). ``last_call_timeout``
  keeps torchrun's 30 s: it only delays a group that already has its minimum.
* **Node loss**: tolerations of ``node.kubernetes.io/not-ready`` and ``unreachable`` for
  :data:`NODE_LOSS_TOLERATION_S` (60 s) instead of the 300 s the API server adds: a pod on a
  lost node is evicted (``DisruptionTarget``) a minute after its node is marked, and the
  operator restarts the group without counting it (``attempts``). A blip shorter than that
  leaves the group alone. Tolerations of the same key in ``spec.resources.tolerations`` win.
* **Graceful stop**: ``terminationGracePeriodSeconds`` is
  ``spec.resources.terminationGracePeriodSeconds``, else sized by resolution
  (:func:`termination_grace_seconds`, the checkpoint of a 1024x1024 network is ~1 GB with its
  optimizer state); torchrun is told (``TORCH_ELASTIC_SHUTDOWN_TIMEOUT``) to wait that long,
  less :data:`SHUTDOWN_MARGIN_S`, before it SIGKILLs workers still checkpointing (its own
  default is 30 s), so the launcher can still write its termination message.
* **NCCL** (GPU runs): ``NCCL_SOCKET_IFNAME`` (``spec.distributed.socketInterface``, eth0),
  ``TORCH_NCCL_ASYNC_ERROR_HANDLING=1`` (a collective that times out or errors aborts its
  communicator and the process, so torchrun sees a failed worker instead of a hang) and
  ``NCCL_DEBUG=WARN``. ``TORCH_NCCL_BLOCKING_WAIT`` stays unset: with async error handling
  the watchdog already enforces the timeout without blocking the training thread. The
  timeout itself, ``spec.distributed.collectiveTimeoutSeconds``, reaches the trainer's
  ``init_process_group`` as ``STYLEGAN_DIST_TIMEOUT_S``.
* **GPU type**: a required node affinity with one term per label that may name the type,
  OR'ed: GKE's ``cloud.google.com/gke-accelerator``, the GPU operator's
  ``nvidia.com/gpu.product`` (values from ``names.GPU_PRODUCTS``) and the operator's
  ``--gpu-type-label`` (default ``stylegan.dev/gpu-type``), both compared to ``gpuType``.
  ``spec.resources.nodeSelector`` still applies on top (a nodeSelector ANDs with it).
"""

from __future__ import annotations

from typing import Any

from stylegan_operator.api.names import (
    CHECKPOINT_MOUNT,
    CUSTOM_GPU_TYPE_LABEL,
    DATASET_MOUNT,
    GPU_PRODUCT_LABEL,
    GPU_PRODUCTS,
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
NODE_LOSS_TAINTS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
NODE_LOSS_TOLERATION_S = 60
"""How long a pod stays on a NotReady or unreachable node before it is evicted (module doc)."""
SHUTDOWN_MARGIN_S = 10
"""What torchrun's shutdown leaves of the grace period: the launcher's own exit."""
GRACE_BY_RESOLUTION = ((128, 60), (256, 120), (512, 180), (1024, 300))
"""(up to this resolution, seconds): the default graceful stop, from checkpoint sizes."""


def termination_grace_seconds(spec: RunSpec) -> int:
    """``spec.resources.terminationGracePeriodSeconds``, else sized by resolution."""
    if spec.resources.termination_grace_period_seconds is not None:
        return spec.resources.termination_grace_period_seconds
    return next(s for r, s in GRACE_BY_RESOLUTION if spec.model.resolution <= r)


def torchrun_args(spec: RunSpec, job: str, service: str, rdzv_id: str, nodes: int) -> list[str]:
    """torchrun's flags, then the trainer command it starts on every local rank."""
    rdzv = spec.distributed.rendezvous_timeout_seconds
    return [
        "--nnodes", str(nodes),
        "--nproc-per-node", str(spec.resources.gpus_per_node),
        # Set by the Job controller on Indexed Jobs; the kubelet expands $(VAR) in args.
        "--node-rank", "$(JOB_COMPLETION_INDEX)",
        "--rdzv-backend", "c10d",
        "--rdzv-endpoint", f"{job}-0.{service}:{C10D_PORT}",
        "--rdzv-id", rdzv_id,
        # Pods start minutes apart and pod 0 may be last (module docstring).
        "--rdzv-conf", f"join_timeout={rdzv},read_timeout={rdzv}",
        # The operator restarts the whole group; a local restart cannot heal a lost peer.
        "--max-restarts", "0",
        "--no-python",
        "stylegan", "train", "--config", CONFIG_PATH,
    ]  # fmt: skip


def _field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def trainer_env(run_meta: dict[str, Any], spec: RunSpec, attempt: int) -> list[dict[str, Any]]:
    """The trainer's environment; ``spec.resources.env`` overrides an entry of the same name."""
    dist = spec.distributed
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
        {"name": "STYLEGAN_DIST_TIMEOUT_S", "value": str(dist.collective_timeout_seconds)},
        {"name": "TORCH_ELASTIC_SHUTDOWN_TIMEOUT", "value": str(
            max(termination_grace_seconds(spec) - SHUTDOWN_MARGIN_S, 5))},
    ]
    if not spec.is_cpu:
        if dist.socket_interface:
            env.append({"name": "NCCL_SOCKET_IFNAME", "value": dist.socket_interface})
        env += [
            {"name": "TORCH_NCCL_ASYNC_ERROR_HANDLING", "value": "1"},
            {"name": "NCCL_DEBUG", "value": "WARN"},
        ]
    return with_spec_env(env, spec)


def with_spec_env(env: list[dict[str, Any]], spec: RunSpec) -> list[dict[str, Any]]:
    """``env`` with ``spec.resources.env`` laid over it: an entry of the same name is replaced
    in place, new ones are appended (the server's pods get the same storage settings)."""
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


def gpu_node_affinity(gpu_type: str, label: str | None = CUSTOM_GPU_TYPE_LABEL) -> dict[str, Any]:
    """A required node affinity for ``gpu_type``: any label that names it will do (module doc)."""
    terms = [[(GPU_TYPE_LABEL, [gpu_type])]]
    if GPU_PRODUCTS.get(gpu_type):
        terms.append([(GPU_PRODUCT_LABEL, list(GPU_PRODUCTS[gpu_type]))])
    if label and label not in (GPU_TYPE_LABEL, GPU_PRODUCT_LABEL):
        terms.append([(label, [gpu_type])])
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [
            {"matchExpressions": [{"key": k, "operator": "In", "values": v} for k, v in term]}
            for term in terms
        ]}}}  # fmt: skip


def _tolerations(spec: RunSpec) -> list[dict[str, Any]]:
    """The GPU taint's, the node-loss ones (module docstring), then the spec's own."""
    own = [t.model_dump(by_alias=True, exclude_none=True) for t in spec.resources.tolerations]
    out: list[dict[str, Any]] = []
    if not spec.is_cpu:
        out.append({"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"})
    keys = {t.get("key") for t in own}
    out += [{"key": key, "operator": "Exists", "effect": "NoExecute",
             "tolerationSeconds": NODE_LOSS_TOLERATION_S}
            for key in NODE_LOSS_TAINTS if key not in keys]
    return out + own


def _scheduling(spec: RunSpec, gpu_type_label: str | None) -> dict[str, Any]:
    """Node affinity for the GPU type, the spec's nodeSelector, and the tolerations."""
    out: dict[str, Any] = {}
    if spec.resources.node_selector:
        out["nodeSelector"] = dict(spec.resources.node_selector)
    if not spec.is_cpu:
        out["affinity"] = gpu_node_affinity(spec.resources.gpu_type, gpu_type_label)
    out["tolerations"] = _tolerations(spec)
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
    service_account_name: str | None, gpu_type_label: str | None,
) -> dict[str, Any]:
    """Pod settings: the Service's subdomain, no restarts, the account, scheduling, security."""
    r = spec.resources
    pod_spec: dict[str, Any] = {
        "subdomain": svc,
        "restartPolicy": "Never",
        # The SIGTERM checkpoint's time (module docstring); the launcher tells torchrun.
        "terminationGracePeriodSeconds": termination_grace_seconds(spec),
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
    }
    if r.service_account_name or service_account_name:
        pod_spec["serviceAccountName"] = r.service_account_name or service_account_name
    if service_account_name:
        pod_spec["automountServiceAccountToken"] = True
    if r.priority_class_name:
        pod_spec["priorityClassName"] = r.priority_class_name
    pod_spec.update(_scheduling(spec, gpu_type_label))
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
    gpu_type_label: str | None = CUSTOM_GPU_TYPE_LABEL,
) -> dict[str, Any]:
    """The pod template of attempt ``attempt``'s Job, for a group of ``nodes`` pods.

    ``image``, ``service_account_name`` and ``gpu_type_label`` are as for
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
        "spec": _pod_spec(spec, service_name(run), container, volumes, service_account_name,
                          gpu_type_label),
    }
