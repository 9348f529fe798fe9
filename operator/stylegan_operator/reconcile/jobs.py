"""The Indexed Job of one attempt: one trainer pod per node, and how it fails.

The Job is ``<run>-aN`` (``completionMode: Indexed``, as many completions as nodes); its
pod template comes from ``pods``. Failure handling, decided here and carried out by the operator:

* ``backoffLimit: 0`` and ``restartPolicy: Never``: the Job never restarts a pod that
  failed for a reason that counts. torchrun's rendezvous store lives on pod 0 and a
  half-alive group only hangs, so the **operator** restarts the whole group as a new Job
  (``-a<N+1>``) that resumes from the latest checkpoint.
* ``podFailurePolicy``: exit code 64 of the ``trainer`` container (bad configuration) ->
  ``FailJob`` (the Job fails with reason ``PodFailurePolicy``; the operator fails the run
  without retrying). The container can exit 64 only because it runs ``stylegan torchrun``
  (``pods``), not torchrun itself, which reports every failed worker as 1: the launcher
  exits 64 if any local rank did, else 75 if any did, else torchrun's code. A
  ``DisruptionTarget`` condition (preemption, eviction, node drain) -> ``Ignore`` (does
  not count; with ``podReplacementPolicy: Failed`` the replacement pod only
  starts once the old one is gone, so hostnames never clash). Every other failure
  (including 75, retryable) counts, which with ``backoffLimit: 0`` fails the Job with
  reason ``BackoffLimitExceeded``: the operator restarts the group and counts it against
  ``spec.runPolicy.backoffLimit`` unless a pod of the attempt carries ``DisruptionTarget``.
* ``ttlSecondsAfterFinished`` is not set on Jobs: the operator applies it to the run.
  ``activeDeadlineSeconds`` on the Job caps one attempt; the operator passes what is left
  of the run's deadline.
* With ``spec.queueName`` the Job is created suspended with the label
  ``kueue.x-k8s.io/queue-name``; Kueue admits the whole group at once and unsuspends it.
"""

from __future__ import annotations

from typing import Any

from stylegan_operator.api.names import CUSTOM_GPU_TYPE_LABEL
from stylegan_operator.api.spec import RunSpec
from stylegan_operator.reconcile.pods import pod_template
from stylegan_operator.reconcile.render import (
    ANNOTATION_GENERATION,
    ANNOTATION_RESUME,
    ANNOTATION_RUN_NAME,
    EXIT_BAD_CONFIG,
    LABEL_QUEUE,
    TRAINER_CONTAINER,
    _check_attempt,
    _meta,
    _object_meta,
    job_name,
    trainer_labels,
)


def _node_count(spec: RunSpec, nodes: int | None) -> int:
    if nodes is None:
        return spec.node_count
    if nodes not in spec.feasible_node_counts():
        raise ValueError(
            f"nodes={nodes} is not a feasible node count for this run: use one of "
            f"{spec.feasible_node_counts()} (spec.resources and spec.training.batchSize)"
        )
    return nodes


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
    gpu_type_label: str | None = CUSTOM_GPU_TYPE_LABEL,
) -> dict[str, Any]:
    """The Indexed Job of attempt ``attempt``: one trainer pod per node.

    Args:
        run_meta: the run's metadata (name, namespace, uid, generation).
        spec: the validated spec.
        attempt: 1 for the first attempt; each whole-group restart adds one.
        resume_uri: recorded as the ``stylegan.dev/resume-from`` annotation: what the
            operator knew when it made the attempt. Informative only: the trainer resumes
            from the newest ``latest.json`` at start-up (``render.trainer_options``).
        nodes: node count of an elastic attempt (one of ``spec.feasible_node_counts()``);
            default ``spec.node_count``.
        image: trainer image when the spec names none (the operator's configured default).
        active_deadline_seconds: what is left of ``spec.runPolicy.activeDeadlineSeconds``;
            default the whole of it.
        service_account_name: the account the operator made for the run's progress
            reports (``children``); used when the spec names none. When given, the pods
            mount its token, so rank 0 can patch the run's status (a Role limited to that).
        gpu_type_label: the operator's own node label for GPU types (``--gpu-type-label``),
            selected besides GKE's and the GPU operator's (``pods``); None: those two only.
    """
    run = _meta(run_meta, "name")
    _check_attempt(attempt)
    count = _node_count(spec, nodes)
    job = job_name(run, attempt)

    job_labels = trainer_labels(run_meta, attempt)
    if spec.queue_name:
        job_labels[LABEL_QUEUE] = spec.queue_name
    annotations = {ANNOTATION_RUN_NAME: run}
    if run_meta.get("generation") is not None:
        annotations[ANNOTATION_GENERATION] = str(run_meta["generation"])
    if resume_uri:
        annotations[ANNOTATION_RESUME] = resume_uri

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
    job_spec["template"] = pod_template(
        run_meta, spec, attempt, count, image=image, service_account_name=service_account_name,
        gpu_type_label=gpu_type_label,
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _object_meta(run_meta, job, job_labels, **annotations),
        "spec": job_spec,
    }
