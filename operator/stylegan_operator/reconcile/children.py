"""The objects a run's attempt is made of, and the ones it needs while it runs.

A new attempt N is, in the order they must exist: the trainer's ServiceAccount, a Role
allowed to ``get`` and ``patch`` the status of this one run and its RoleBinding (only
when the trainer reports progress, :attr:`LifecycleConfig.report_status`; rank 0
merge-patches ``status.progress``), the run's Service, the attempt's ConfigMap and its Job
(``render`` and ``jobs`` build those three). While the attempt runs, any of them deleted by
someone (the Service, the ConfigMap, the ServiceAccount, the Role or the RoleBinding) is made
again at the next reconcile: a Job or pod event, or the periodic timer (``--interval``), since
the operator does not watch these kinds. A re-made Role or RoleBinding lets the running pods
report again at once; a re-made ServiceAccount has a new uid, so the tokens the running pods
hold stay invalid, and their reports fail (training goes on) until the next attempt.

Each new Job carries annotations with the counters it was created with
(:data:`ANNOTATION_RESTARTS`, :data:`ANNOTATION_PREEMPTIONS`, :data:`ANNOTATION_REASON`),
so a crash between creating it and writing the status loses no count.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from stylegan_operator.api.names import GROUP, PLURAL
from stylegan_operator.api.spec import RunSpec
from stylegan_operator.reconcile import render
from stylegan_operator.reconcile.capacity import elastic_node_count
from stylegan_operator.reconcile.conditions import (
    CREATED,
    REASON_INITIAL,
    REASON_JOB_CREATED,
    REASON_RECREATED,
)
from stylegan_operator.reconcile.jobs import build_job
from stylegan_operator.reconcile.observe import job_outcome
from stylegan_operator.reconcile.plan import _Decision
from stylegan_operator.reconcile.spec_changes import ANNOTATION_SPEC_DIGESTS, digests_annotation

ANNOTATION_REASON: Final = "stylegan.dev/attempt-reason"
ANNOTATION_RESTARTS: Final = "stylegan.dev/restarts"
ANNOTATION_PREEMPTIONS: Final = "stylegan.dev/preemptions"


# --------------------------------------------------------------------------- trainer account
def service_account_name(run_name: str) -> str:
    """The per-run ServiceAccount the trainer reports progress with."""
    return render.dns_label(run_name, "-trainer")


def status_role_name(run_name: str) -> str:
    return render.dns_label(run_name, "-status")


def build_service_account(run_meta: Mapping[str, Any]) -> dict[str, Any]:
    run = str(run_meta["name"])
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _child_meta(run_meta, service_account_name(run)),
        # Only the trainer pods mount a token, and they ask for it explicitly.
        "automountServiceAccountToken": False,
    }


def build_status_role(run_meta: Mapping[str, Any]) -> dict[str, Any]:
    """May read and patch the status of this one run, nothing else."""
    run = str(run_meta["name"])
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _child_meta(run_meta, status_role_name(run)),
        "rules": [
            {
                "apiGroups": [GROUP],
                "resources": [f"{PLURAL}/status"],
                "resourceNames": [run],
                "verbs": ["get", "patch"],
            }
        ],
    }


def build_status_role_binding(run_meta: Mapping[str, Any], account: str) -> dict[str, Any]:
    run = str(run_meta["name"])
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _child_meta(run_meta, status_role_name(run)),
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": status_role_name(run),
        },
        "subjects": [
            {"kind": "ServiceAccount", "name": account, "namespace": str(run_meta["namespace"])}
        ],
    }


def _child_meta(run_meta: Mapping[str, Any], name: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": str(run_meta["namespace"]),
        "labels": render.run_labels(str(run_meta["name"])),
        "ownerReferences": [render.owner_reference(dict(run_meta))],
    }


# --------------------------------------------------------------------------- attempt
def _create_attempt(
    d: _Decision, spec: RunSpec, attempt: int, reason: str, start: datetime,
    progress: Mapping[str, Any],
) -> None:
    """The objects of one attempt, in the order they must exist."""
    run_meta = _run_meta(d)
    resume = _resume_uri(d, spec, progress)
    remaining: int | None = None
    deadline = spec.run_policy.active_deadline_seconds
    if deadline is not None:
        used = (d.now - start).total_seconds()
        remaining = max(int(deadline - used), 1)
    account = _trainer_account(d, spec)
    creates = d.plan.creates
    if account is not None:
        if spec.resources.service_account_name is None:
            creates.append(build_service_account(run_meta))
        creates.append(build_status_role(run_meta))
        creates.append(build_status_role_binding(run_meta, account))
    creates.append(render.build_service(run_meta, spec))
    creates.append(render.build_config_map(run_meta, spec, attempt))
    nodes = elastic_node_count(spec, d.observed.free_nodes) if spec.is_elastic else None
    job = build_job(
        run_meta, spec, attempt, resume,
        nodes=nodes,
        image=d.config.trainer_image,
        active_deadline_seconds=remaining,
        service_account_name=account,
        gpu_type_label=d.config.gpu_type_label,
    )  # fmt: skip
    annotations = job["metadata"].setdefault("annotations", {})
    annotations[ANNOTATION_REASON] = reason
    annotations[ANNOTATION_RESTARTS] = str(d.restarts)
    annotations[ANNOTATION_PREEMPTIONS] = str(d.preemptions)
    annotations[ANNOTATION_SPEC_DIGESTS] = digests_annotation(spec)
    creates.append(job)
    name = render.job_name(d.name, attempt)
    d.status.update(attempt=attempt, activeJob=name)
    d.attempt_nodes = nodes or spec.node_count
    d.cond(CREATED, True, REASON_JOB_CREATED, f"Job {name} created")
    if reason == REASON_INITIAL and attempt == 1 and not d.old.get("activeJob"):
        shape = f"{d.attempt_nodes}x{spec.resources.gpus_per_node}"
        d.event("Normal", CREATED, f"created Job {name}: {shape} on "
                f"{spec.resources.gpu_type}{_resume_words(spec)}")


def _trainer_account(d: _Decision, spec: RunSpec) -> str | None:
    if not d.config.report_status:
        return None
    return spec.resources.service_account_name or service_account_name(d.name)


def _ensure_support(d: _Decision, spec: RunSpec, attempt: int, job: Mapping[str, Any]) -> None:
    """Recreate what the attempt needs when someone deleted it (module docstring)."""
    if job_outcome(job).state in ("succeeded", "failed"):
        return
    run_meta = _run_meta(d)
    account = _trainer_account(d, spec)
    have = d.observed.accounts
    if account is not None and have is not None:
        wanted = [build_status_role(run_meta), build_status_role_binding(run_meta, account)]
        if spec.resources.service_account_name is None:
            wanted.insert(0, build_service_account(run_meta))
        missing = [o for o in wanted if (o["kind"], o["metadata"]["name"]) not in have]
        d.plan.creates.extend(missing)
        if missing:
            d.event("Warning", REASON_RECREATED, "re-created " + ", ".join(
                f"{o['kind']} {o['metadata']['name']}" for o in missing) + " (deleted while "
                "the run lives; the trainer's progress reports need them)")
    if d.observed.service is None:
        d.plan.creates.append(render.build_service(run_meta, spec))
    if render.config_map_name(d.name, attempt) not in d.observed.config_maps:
        d.plan.creates.append(render.build_config_map(run_meta, spec, attempt))


def _resume_uri(d: _Decision, spec: RunSpec, progress: Mapping[str, Any]) -> str | None:
    """The run's newest reported durable checkpoint, else ``resumeFrom``, for the annotation.

    What the operator knew (``render.resume_uri_for``); the ConfigMap names no checkpoint, so
    the trainer resumes from what ``latest.json`` names when it starts. Without
    ``spec.checkpoints`` the trainer writes to a scratch folder in the pod, which dies with
    it: a checkpoint reported from there cannot be resumed.
    """
    last = progress.get("lastCheckpoint") or {}
    uri = last.get("uri") if isinstance(last, Mapping) and spec.checkpoints else None
    return render.resume_uri_for(spec, uri)


def _resume_words(spec: RunSpec) -> str:
    """Where ``resumeFrom`` comes in, as the Created event says it (``render.trainer_options``:
    the run's own ``latest.json`` first)."""
    ckpt = spec.checkpoints
    if ckpt is None or not ckpt.resume_from:
        return ""
    return f", resuming from the newest checkpoint in {ckpt.uri}, else from {ckpt.resume_from}"


def _run_meta(d: _Decision) -> dict[str, Any]:
    return {
        "name": d.name,
        "namespace": d.namespace,
        "uid": d.meta.get("uid"),
        "generation": d.generation,
    }
