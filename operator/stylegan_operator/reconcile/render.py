"""Pure rendering: what a StyleGANRun becomes in Kubernetes, as plain dicts. No I/O.

A run becomes, per the design:

* one headless **Service** per run (``<run>-workers``): ``clusterIP: None``,
  ``publishNotReadyAddresses`` so pod 0 resolves before it is ready, port 29400 (c10d);
* per attempt N, an immutable **ConfigMap** ``<run>-aN-config`` holding the trainer's
  options (``train.yaml``) and an **Indexed Job** ``<run>-aN``: one pod per node, pods
  ``<job>-<index>`` in the Service's subdomain, each running ``torchrun`` with c10d
  rendezvous on pod 0 (``<job>-0.<run>-workers:29400``).

The Job (``jobs``), its pod template (``pods``) and ``stylegan render``'s whole-run
output (``manifest``) are built on the names, labels and objects here.

Names are deterministic (a reconcile that runs twice creates nothing twice). Names that
would not fit (63 characters; the pod hostname ``<job>-<index>`` too) or that needed a
change (a dot in the run name) are truncated and end in a short hash of the run name.
"""

from __future__ import annotations

import hashlib
from typing import Any

import yaml

from stylegan_operator import __version__
from stylegan_operator.api.names import API_VERSION, KIND, MAX_NODES
from stylegan_operator.api.spec import RunSpec

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

LABEL_RUN = "stylegan.dev/run"
LABEL_ATTEMPT = "stylegan.dev/attempt"
LABEL_RUN_UID = "stylegan.dev/run-uid"
"""On every trainer pod (and its Job): the uid of the run that made it. A run deleted and
created again under the same name gets a new uid, so the new run can tell the old run's
terminating pods, whose Job may already be gone, from its own."""
LABEL_QUEUE = "kueue.x-k8s.io/queue-name"
SERVER_COMPONENT = "server"
"""``app.kubernetes.io/component`` of the server's pods (``serve_render``): not an attempt's."""
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


def trainer_labels(run_meta: dict[str, Any], attempt: int) -> dict[str, str]:
    """An attempt's labels plus the run's uid: what the Job and its pods carry."""
    return {**attempt_labels(_meta(run_meta, "name"), attempt),
            LABEL_RUN_UID: _meta(run_meta, "uid")}


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


def trainer_options(spec: RunSpec) -> dict[str, Any]:
    """The trainer's options file (``stylegan train --config``), keys as ``TrainingOptions``.

    Mapping decisions: ``model.channelBase``/``mappingLayers``/``r1Gamma`` and bf16 go into
    ``overrides`` (preset fields), only when set, so the preset decides the rest; the trainer
    writes samples and checkpoints together, so ``snapshot_kimg`` is the more frequent of
    ``training.snapshotKimg`` and ``checkpoints.intervalKimg``; samples and progress go to a
    scratch ``outdir`` unless checkpoints live on a claim, where they join them (with gs://
    checkpoints the trainer also copies each grid to ``<uri>/samples/``).

    Resume is always ``latest``: the trainer reads ``latest.json`` of ``checkpoint_uri`` when
    it starts, so an attempt never pins the checkpoint known when its (immutable) ConfigMap
    was written; a Kueue re-admission, a changed ``resumeFrom`` or a SIGTERM checkpoint
    written while the previous pods stopped cannot send it back to older work.
    ``checkpoints.resumeFrom`` becomes ``resume_fallback``, read only while the run's own
    storage holds no checkpoint yet; ``initFrom`` becomes ``init_from``, likewise read only then
    (the first attempt starts from its weights at kimg 0, later ones resume their own work).
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
        "mixed_precision": t.mixed_precision,  # auto: the trainer asks the GPU it runs on
        "seed": t.seed,
        "device": "cpu" if spec.is_cpu else "cuda",
        "outdir": ckpt.uri if ckpt is not None and local_checkpoints else SCRATCH_OUTDIR,
        # "latest": the newest checkpoint in checkpoint_uri at start-up, else resume_fallback,
        # else a fresh start. Never a pinned checkpoint (docstring).
        "resume": "latest",
        "progress_bar": "off",  # pod logs are not a terminal
        "metrics_port": METRICS_PORT,
    }
    if t.batch_per_gpu is not None:
        opts["batch_per_gpu"] = t.batch_per_gpu
    if ckpt is not None:
        opts["checkpoint_uri"] = ckpt.uri
        opts["keep_checkpoints"] = ckpt.keep
        if ckpt.resume_from is not None:
            opts["resume_fallback"] = ckpt.resume_from
    if spec.init_from is not None:
        opts["init_from"] = spec.init_from  # read only while checkpoint_uri holds none
    if overrides:
        opts["overrides"] = overrides
    return opts


def build_config_map(run_meta: dict[str, Any], spec: RunSpec, attempt: int) -> dict[str, Any]:
    """The attempt's trainer options as ``train.yaml``; immutable, like the attempt itself.

    Immutable is safe because nothing in it goes stale: it names no checkpoint
    (``trainer_options``: resume is read from ``latest.json`` at start-up).
    """
    run = _meta(run_meta, "name")
    _check_attempt(attempt)
    text = yaml.safe_dump(trainer_options(spec), sort_keys=False)
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
    """What the operator knows an attempt will resume from, for ``ANNOTATION_RESUME`` only.

    The run's newest reported checkpoint, else ``resumeFrom``. Informative: the trainer
    itself resumes from whatever ``latest.json`` names when it starts, which may be newer
    (``trainer_options``).
    """
    if last_checkpoint_uri:
        return last_checkpoint_uri
    return spec.checkpoints.resume_from if spec.checkpoints else None


# --------------------------------------------------------------------------- checks
def _check_attempt(attempt: int) -> None:
    if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
        raise ValueError(f"attempt must be an integer >= 1, got {attempt!r}")
