"""Pure rendering: what a StyleGANRun becomes in Kubernetes, as plain dicts. No I/O.

A run becomes, per the design:

* one headless **Service** per run (``<run>-workers``): ``clusterIP: None``,
  ``publishNotReadyAddresses`` so pod 0 resolves before it is ready, port 29400 (c10d);
* per attempt N, an immutable **ConfigMap** ``<run>-aN-config`` holding the trainer's
  options (``train.yaml``) and an **Indexed Job** ``<run>-aN``: one pod per node, pods
  ``<job>-<index>`` in the Service's subdomain, each running ``torchrun`` with c10d
  rendezvous on pod 0 (``<job>-0.<run>-workers:29400``).

Failure handling, decided here and carried out by the operator:

* ``backoffLimit: 0`` and ``restartPolicy: Never``: the Job never restarts a pod that
  failed for a reason that counts. torchrun's rendezvous store lives on pod 0 and a
  half-alive group only hangs, so the **operator** restarts the whole group as a new Job
  (``-a<N+1>``) that resumes from the latest checkpoint.
* ``podFailurePolicy``: exit code 64 of the ``trainer`` container (bad configuration) ->
  ``FailJob`` (the Job fails with reason ``PodFailurePolicy``; the operator fails the run
  without retrying); a ``DisruptionTarget`` condition (preemption, eviction, node drain) ->
  ``Ignore`` (does not count; with ``podReplacementPolicy: Failed`` the replacement pod only
  starts once the old one is gone, so hostnames never clash). Every other failure
  (including 75, retryable) counts, which with ``backoffLimit: 0`` fails the Job with
  reason ``BackoffLimitExceeded``: the operator restarts the group and counts it against
  ``spec.runPolicy.backoffLimit`` unless a pod of the attempt carries ``DisruptionTarget``.
* ``ttlSecondsAfterFinished`` is not set on Jobs: the operator applies it to the run.
  ``activeDeadlineSeconds`` on the Job caps one attempt; the operator passes what is left
  of the run's deadline.
* With ``spec.queueName`` the Job is created suspended with the label
  ``kueue.x-k8s.io/queue-name``; Kueue admits the whole group at once and unsuspends it.

Names are deterministic (a reconcile that runs twice creates nothing twice). Names that
would not fit (63 characters; the pod hostname ``<job>-<index>`` too) or that needed a
change (a dot in the run name) are truncated and end in a short hash of the run name.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import yaml

from stylegan_operator import __version__
from stylegan_operator.api.names import (
    API_VERSION,
    CHECKPOINT_MOUNT,
    DATASET_MOUNT,
    GPU_RESOURCE,
    GPU_TYPE_LABEL,
    KIND,
    MAX_NODES,
)
from stylegan_operator.api.spec import RunSpec
from stylegan_operator.api.validation import SpecError, validate_spec

TRAINER_CONTAINER = "trainer"
C10D_PORT = 29400
METRICS_PORT = 9400  # rank 0's /metrics (trainer option metrics_port); the PodMonitor's `metrics`
CONFIG_DIR = "/etc/stylegan"
CONFIG_FILE = "train.yaml"
CONFIG_PATH = f"{CONFIG_DIR}/{CONFIG_FILE}"
CACHE_DIR = "/cache"
SCRATCH_OUTDIR = "/tmp/stylegan/run"  # outdir when spec.checkpoints is absent: not durable
DEFAULT_TRAINER_IMAGE = f"ghcr.io/stylegan-operator/trainer:{__version__}"
EXIT_BAD_CONFIG = 64  # the trainer contract: never retried
EXIT_RETRYABLE = 75
RUN_AS_USER = 1000
RDZV_JOIN_TIMEOUT_S = 1800  # image pulls of a CUDA image on fresh nodes can take many minutes

LABEL_RUN = "stylegan.dev/run"
LABEL_ATTEMPT = "stylegan.dev/attempt"
LABEL_QUEUE = "kueue.x-k8s.io/queue-name"
ANNOTATION_GENERATION = "stylegan.dev/generation"
ANNOTATION_RESUME = "stylegan.dev/resume-from"
ANNOTATION_RUN_NAME = "stylegan.dev/run-name"

NAME_LIMIT = 63
HASH_LENGTH = 8
# Room for "-<index>" so every pod hostname "<job>-<index>" stays a 63-character label.
JOB_NAME_LIMIT = NAME_LIMIT - 1 - len(str(MAX_NODES - 1))


# --------------------------------------------------------------------------- names
def _digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:HASH_LENGTH]


def dns_label(
    run_name: str, suffix: str, limit: int = NAME_LIMIT, letter_first: bool = False
) -> str:
    """``<run><suffix>`` as a DNS label of at most ``limit`` characters.

    The name is kept as is when it fits and needs no change; otherwise it is cut and ends
    in a hash of the whole run name, so two long names that share a prefix still differ.
    """
    base = run_name.replace(".", "-")
    if letter_first and not base[:1].isalpha():
        base = "r" + base  # Service names are DNS-1035 labels: they start with a letter
    if base == run_name and len(base) + len(suffix) <= limit:
        return base + suffix
    room = limit - len(suffix) - HASH_LENGTH - 1
    return f"{base[:room].rstrip('-')}-{_digest(run_name)}{suffix}"


def label_value(run_name: str) -> str:
    """The run name as a label value (at most 63 characters)."""
    if len(run_name) <= NAME_LIMIT:
        return run_name
    room = NAME_LIMIT - HASH_LENGTH - 1
    return f"{run_name[:room].rstrip('-.')}-{_digest(run_name)}"


def service_name(run_name: str) -> str:
    """The run's headless Service (shared by every attempt)."""
    return dns_label(run_name, "-workers", letter_first=True)


def job_name(run_name: str, attempt: int) -> str:
    """The Job of one attempt, ``<run>-a<N>``; ``<job>-<index>`` fits a hostname."""
    return dns_label(run_name, f"-a{attempt}", limit=JOB_NAME_LIMIT)


def config_map_name(run_name: str, attempt: int) -> str:
    """The attempt's trainer options, ``<run>-a<N>-config``."""
    return dns_label(run_name, f"-a{attempt}-config")


# --------------------------------------------------------------------------- metadata
def run_labels(run_name: str) -> dict[str, str]:
    """Labels every object of the run carries."""
    value = label_value(run_name)
    return {
        "app.kubernetes.io/name": "stylegan-trainer",
        "app.kubernetes.io/instance": value,
        "app.kubernetes.io/component": "trainer",
        "app.kubernetes.io/managed-by": "stylegan-operator",
        "app.kubernetes.io/part-of": "stylegan-operator",
        LABEL_RUN: value,
    }


def attempt_labels(run_name: str, attempt: int) -> dict[str, str]:
    return {**run_labels(run_name), LABEL_ATTEMPT: str(attempt)}


def pod_selector(run_name: str) -> dict[str, str]:
    """Selects the trainer pods of every attempt of the run."""
    return {LABEL_RUN: label_value(run_name), "app.kubernetes.io/component": "trainer"}


def owner_reference(run_meta: dict[str, Any]) -> dict[str, Any]:
    """Makes the run the controller of a child, so deleting the run deletes it."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": _meta(run_meta, "name"),
        "uid": _meta(run_meta, "uid"),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _meta(run_meta: dict[str, Any], key: str) -> str:
    value = run_meta.get(key)
    if not value or not isinstance(value, str):
        raise ValueError(f"run metadata.{key} is required (a non-empty string), got {value!r}")
    return value


def _object_meta(
    run_meta: dict[str, Any], name: str, labels: dict[str, str], **annotations: str
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": _meta(run_meta, "namespace"),
        "labels": labels,
    }
    if annotations:
        meta["annotations"] = annotations
    meta["ownerReferences"] = [owner_reference(run_meta)]
    return meta


# --------------------------------------------------------------------------- service
def build_service(run_meta: dict[str, Any], spec: RunSpec) -> dict[str, Any]:
    """The headless Service that gives every trainer pod the name ``<job>-<index>.<svc>``."""
    run = _meta(run_meta, "name")
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _object_meta(run_meta, service_name(run), run_labels(run)),
        "spec": {
            "clusterIP": "None",
            "selector": pod_selector(run),
            # Pod 0 must resolve before it is ready: rendezvous is how it gets ready.
            "publishNotReadyAddresses": True,
            "ports": [
                {"name": "c10d", "port": C10D_PORT, "targetPort": C10D_PORT, "protocol": "TCP"}
            ],
        },
    }


# --------------------------------------------------------------------------- config
def _augment_option(spec: RunSpec) -> str:
    m = spec.model
    return f"fixed:{m.augment_p:g}" if m.augment == "fixed" else m.augment


def trainer_options(spec: RunSpec, resume_uri: str | None = None) -> dict[str, Any]:
    """The trainer's options file (``stylegan train --config``), keys as ``TrainingOptions``.

    Mapping decisions: ``model.channelBase``/``mappingLayers``/``r1Gamma`` and bf16 go into
    ``overrides`` (preset fields), only when set, so the preset decides the rest; the trainer
    writes samples and checkpoints together, so ``snapshot_kimg`` is the more frequent of
    ``training.snapshotKimg`` and ``checkpoints.intervalKimg``; samples and progress go to a
    scratch ``outdir`` unless checkpoints live on a claim, where they join them (with gs://
    checkpoints the trainer also copies each grid to ``<uri>/samples/``).
    """
    m, t = spec.model, spec.training
    ckpt = spec.checkpoints
    overrides: dict[str, Any] = {}
    for key, value in (
        ("channel_base", m.channel_base),
        ("mapping_layers", m.mapping_layers),
        ("r1_gamma", m.r1_gamma),
    ):
        if value is not None:
            overrides[key] = value
    if t.mixed_precision == "bf16":
        overrides["mp_dtype"] = "bf16"
    snapshot_kimg = t.snapshot_kimg
    if ckpt is not None and ckpt.interval_kimg is not None:
        snapshot_kimg = min(snapshot_kimg, ckpt.interval_kimg)
    local_checkpoints = ckpt is not None and ckpt.uri.startswith("/")
    opts: dict[str, Any] = {
        "dataset": spec.dataset.uri,
        "xflip": spec.dataset.xflip,
        "preset": m.preset,
        "resolution": m.resolution,
        "augment": _augment_option(spec),
        "kimg": t.kimg,
        "batch": t.batch_size,
        "snapshot_kimg": snapshot_kimg,
        "mixed_precision": t.mixed_precision != "none",
        "seed": t.seed,
        "device": "cpu" if spec.is_cpu else "cuda",
        "outdir": ckpt.uri if ckpt is not None and local_checkpoints else SCRATCH_OUTDIR,
        # "latest": the newest checkpoint in checkpoint_uri, or a fresh start when none.
        "resume": resume_uri or "latest",
        "progress_bar": "off",  # pod logs are not a terminal
        "metrics_port": METRICS_PORT,
    }
    if ckpt is not None:
        opts["checkpoint_uri"] = ckpt.uri
        opts["keep_checkpoints"] = ckpt.keep
    if overrides:
        opts["overrides"] = overrides
    return opts


def build_config_map(
    run_meta: dict[str, Any], spec: RunSpec, attempt: int, resume_uri: str | None = None
) -> dict[str, Any]:
    """The attempt's trainer options as ``train.yaml``; immutable, like the attempt itself."""
    run = _meta(run_meta, "name")
    _check_attempt(attempt)
    text = yaml.safe_dump(trainer_options(spec, resume_uri), sort_keys=False)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _object_meta(
            run_meta, config_map_name(run, attempt), attempt_labels(run, attempt)
        ),
        "immutable": True,
        "data": {CONFIG_FILE: text},
    }


def resume_uri_for(spec: RunSpec, last_checkpoint_uri: str | None) -> str | None:
    """What an attempt resumes from: the run's own newest checkpoint, else ``resumeFrom``."""
    if last_checkpoint_uri:
        return last_checkpoint_uri
    return spec.checkpoints.resume_from if spec.checkpoints else None


# --------------------------------------------------------------------------- job
def _check_attempt(attempt: int) -> None:
    if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
        raise ValueError(f"attempt must be an integer >= 1, got {attempt!r}")


def _node_count(spec: RunSpec, nodes: int | None) -> int:
    if nodes is None:
        return spec.node_count
    if nodes not in spec.feasible_node_counts():
        raise ValueError(
            f"nodes={nodes} is not a feasible node count for this run: use one of "
            f"{spec.feasible_node_counts()} (spec.resources and spec.training.batchSize)"
        )
    return nodes


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


def pod_failure_policy() -> dict[str, Any]:
    """Bad configuration fails the Job at once; disruption does not count (module docstring)."""
    return {
        "rules": [
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": TRAINER_CONTAINER,
                    "operator": "In",
                    "values": [EXIT_BAD_CONFIG],
                },
            },
            {
                "action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            },
        ]
    }


def build_job(
    run_meta: dict[str, Any],
    spec: RunSpec,
    attempt: int,
    resume_uri: str | None = None,
    *,
    nodes: int | None = None,
    image: str | None = None,
    active_deadline_seconds: int | None = None,
    service_account_name: str | None = None,
) -> dict[str, Any]:
    """The Indexed Job of attempt ``attempt``: one trainer pod per node.

    Args:
        run_meta: the run's metadata (name, namespace, uid, generation).
        spec: the validated spec.
        attempt: 1 for the first attempt; each whole-group restart adds one.
        resume_uri: recorded as an annotation; the checkpoint itself is named in the
            attempt's ConfigMap (:func:`build_config_map` with the same value).
        nodes: node count of an elastic attempt (one of ``spec.feasible_node_counts()``);
            default ``spec.node_count``.
        image: trainer image when the spec names none (the operator's configured default).
        active_deadline_seconds: what is left of ``spec.runPolicy.activeDeadlineSeconds``;
            default the whole of it.
        service_account_name: the account the operator made for the run's progress
            reports (``lifecycle``); used when the spec names none. When given, the pods
            mount its token, so rank 0 can patch the run's status (a Role limited to that).
    """
    run = _meta(run_meta, "name")
    _check_attempt(attempt)
    count = _node_count(spec, nodes)
    job = job_name(run, attempt)
    svc = service_name(run)
    r = spec.resources

    labels = attempt_labels(run, attempt)
    job_labels = dict(labels)
    if spec.queue_name:
        job_labels[LABEL_QUEUE] = spec.queue_name
    annotations = {ANNOTATION_RUN_NAME: run}
    if run_meta.get("generation") is not None:
        annotations[ANNOTATION_GENERATION] = str(run_meta["generation"])
    if resume_uri:
        annotations[ANNOTATION_RESUME] = resume_uri

    volumes, mounts = _volumes(spec, config_map_name(run, attempt))
    container: dict[str, Any] = {
        "name": TRAINER_CONTAINER,
        "image": r.image or image or DEFAULT_TRAINER_IMAGE,
    }
    if r.image_pull_policy:
        container["imagePullPolicy"] = r.image_pull_policy
    container.update(
        command=["torchrun"],
        args=torchrun_args(spec, job, svc, f"{_meta(run_meta, 'uid')}-a{attempt}", count),
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
        # The trainer's one-line reason for exit 64 reaches the operator without log access.
        terminationMessagePolicy="FallbackToLogsOnError",
    )

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

    job_spec: dict[str, Any] = {
        "completionMode": "Indexed",
        "completions": count,
        "parallelism": count,
        "backoffLimit": 0,
        "podFailurePolicy": pod_failure_policy(),
        "podReplacementPolicy": "Failed",
    }
    deadline = active_deadline_seconds or spec.run_policy.active_deadline_seconds
    if deadline:
        job_spec["activeDeadlineSeconds"] = deadline
    job_spec["suspend"] = bool(spec.queue_name) or spec.suspend
    job_spec["template"] = {
        "metadata": {
            "labels": labels,
            "annotations": {
                "kubectl.kubernetes.io/default-container": TRAINER_CONTAINER,
                ANNOTATION_RUN_NAME: run,
            },
        },
        "spec": pod_spec,
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _object_meta(run_meta, job, job_labels, **annotations),
        "spec": job_spec,
    }


# --------------------------------------------------------------------------- whole run
def run_meta_from(resource: dict[str, Any]) -> dict[str, Any]:
    """The run metadata render needs, from a StyleGANRun manifest.

    Outside a cluster a manifest has no uid; a stable stand-in derived from the namespace
    and name keeps ``stylegan render`` output deterministic.
    """
    meta = resource.get("metadata") or {}
    name = meta.get("name")
    if not name or not isinstance(name, str):
        raise ValueError("metadata.name is required in the StyleGANRun manifest")
    namespace = meta.get("namespace") or "default"
    uid = meta.get("uid") or str(uuid.uuid5(uuid.NAMESPACE_URL, f"stylegan.dev/{namespace}/{name}"))
    return {
        "name": name,
        "namespace": namespace,
        "uid": uid,
        "generation": meta.get("generation", 1),
    }


def render_run(
    resource: dict[str, Any],
    attempt: int = 1,
    resume_uri: str | None = None,
    *,
    nodes: int | None = None,
    image: str | None = None,
) -> list[dict[str, Any]]:
    """Every object of one attempt of a StyleGANRun manifest: Service, ConfigMap, Job.

    Raises:
        SpecError: the spec is invalid (names the field).
        ValueError: the manifest or the arguments are (names what).
    """
    if resource.get("kind") not in (None, KIND):
        raise ValueError(f"kind must be {KIND}, got {resource.get('kind')!r}")
    raw_spec = resource.get("spec")
    if not isinstance(raw_spec, dict):
        raise SpecError("spec", "is required: the StyleGANRun's desired state (an object)")
    spec = validate_spec(raw_spec)
    meta = run_meta_from(resource)
    return [
        build_service(meta, spec),
        build_config_map(meta, spec, attempt, resume_uri),
        build_job(meta, spec, attempt, resume_uri, nodes=nodes, image=image),
    ]


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings (the trainer config) as readable ``|`` blocks."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _represent_str)


def to_yaml_stream(objects: list[dict[str, Any]]) -> str:
    """A ``---`` separated YAML stream, keys in the order the builders wrote them."""
    return yaml.dump_all(objects, Dumper=_BlockDumper, sort_keys=False, explicit_start=True)
