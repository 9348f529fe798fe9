"""What :func:`~stylegan_operator.reconcile.decide.decide` is given besides the run and the time.

:class:`Observed` is what the run owns right now (its Jobs by attempt, its pods, ConfigMaps
and Service, and the server of ``spec.serve``), kept to the objects of *this* run;
:class:`LifecycleConfig` is what the operator was started with. The readers below turn the
API server's objects (plain dicts) into the facts the decision works with: a Job's outcome,
a pod's phase, why it waits, why it ended. They only read; nothing here decides.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from stylegan_operator.api.names import CUSTOM_GPU_TYPE_LABEL
from stylegan_operator.cost.metering import parse_time
from stylegan_operator.cost.pricing import DEFAULT_CATALOG, PriceCatalog
from stylegan_operator.reconcile import render

IMAGE_PULL_WAITING: Final = ("ErrImagePull", "ImagePullBackOff")
IMAGE_NEVER_PULLABLE: Final = ("InvalidImageName", "ErrImageNeverPull")


@dataclass(frozen=True)
class LifecycleConfig:
    """What the operator was started with (``stylegan operator`` flags)."""

    catalog: PriceCatalog = DEFAULT_CATALOG
    trainer_image: str | None = None
    """The trainer image for runs whose spec names none (``render``'s default otherwise)."""
    image_pull_grace_seconds: float = 1800.0
    """How long a pod may fail to pull its image (``ErrImagePull``, ``ImagePullBackOff``) before
    the run fails; until then it waits, and recovers by itself once the image arrives. Long
    (30 min) because a registry outage or a rate limit usually passes, and a wait costs only
    the nodes already bound."""
    report_status: bool = True
    """Give the trainer a ServiceAccount token allowed to patch its own run's status."""
    gpu_type_label: str | None = CUSTOM_GPU_TYPE_LABEL
    """The cluster's own node label naming GPU types, selected besides GKE's and the GPU
    operator's (``reconcile.pods``); None: those two only."""


# --------------------------------------------------------------------------- observed
def _attempt_of(obj: Mapping[str, Any]) -> int | None:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    value = labels.get(render.LABEL_ATTEMPT)
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _controller_uid(obj: Mapping[str, Any]) -> str | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("uid")
    return None


def _pod_is_own(pod: Mapping[str, Any], run_uid: str | None, foreign_jobs: set[str]) -> bool:
    """Whether a pod labelled with the run's name is this run's.

    The run-uid label decides when the pod has it (every pod this operator version makes):
    the old run's pods can outlive their Job while they terminate, and nothing else then
    tells them apart. Pods from before that label fall back to their Job's owner.
    """
    labelled = ((pod.get("metadata") or {}).get("labels") or {}).get(render.LABEL_RUN_UID)
    if run_uid and labelled:
        return bool(labelled == run_uid)
    return _controller_uid(pod) not in foreign_jobs


def _is_server_pod(pod: Mapping[str, Any]) -> bool:
    """A pod of the run's server (``serve_render``), not of an attempt."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return labels.get("app.kubernetes.io/component") == render.SERVER_COMPONENT


@dataclass(frozen=True)
class Observed:
    """What a run owns right now, as the API returned it."""

    jobs: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)
    """The run's Jobs by attempt number."""
    pods: Sequence[Mapping[str, Any]] = ()
    """Every pod of the run (all attempts: they all cost money)."""
    config_maps: frozenset[str] = frozenset()
    service: Mapping[str, Any] | None = None
    accounts: frozenset[tuple[str, str]] | None = None
    """(kind, name) of the run's ServiceAccounts, Roles and RoleBindings; None: not read, so
    nothing is made again (``children._ensure_support``)."""
    serving: Mapping[str, Any] | None = None
    """The server's Deployment (``spec.serve``), if there is one."""
    serving_service: Mapping[str, Any] | None = None
    """The server's Service ``<run>-faces``, if there is one."""
    free_nodes: int | None = None
    """Nodes that could take one of an elastic run's pods now (``capacity.free_nodes``);
    None: not read (a fixed-size run, an attempt already running, or no right to list
    nodes), so an elastic attempt asks for maxNodes."""

    @classmethod
    def from_api(
        cls,
        run: Mapping[str, Any],
        jobs: Iterable[Mapping[str, Any]] = (),
        pods: Iterable[Mapping[str, Any]] = (),
        config_maps: Iterable[Mapping[str, Any]] = (),
        service: Mapping[str, Any] | None = None,
        accounts: Iterable[Mapping[str, Any]] | None = None,
        serving: Mapping[str, Any] | None = None,
        serving_service: Mapping[str, Any] | None = None,
    ) -> Observed:
        """Keep what belongs to *this* run: a run deleted and created again under the same
        name must not adopt the Jobs (and pods) of the old one while they are collected.
        The server's pods (``spec.serve``) carry the run's label too, but are no attempt's:
        they are left out of ``pods``."""
        uid = (run.get("metadata") or {}).get("uid")
        own_jobs: dict[int, Mapping[str, Any]] = {}
        foreign_job_uids: set[str] = set()
        for job in jobs:
            attempt = _attempt_of(job)
            if uid and _controller_uid(job) not in (None, uid):
                foreign_job_uids.add(str((job.get("metadata") or {}).get("uid")))
                continue
            if attempt is not None:
                own_jobs[attempt] = job
        own_pods = [p for p in pods
                    if _pod_is_own(p, uid, foreign_job_uids) and not _is_server_pod(p)]
        names = frozenset(
            str((c.get("metadata") or {}).get("name"))
            for c in config_maps
            if not uid or _controller_uid(c) in (None, uid)
        )
        if service is not None and uid and _controller_uid(service) not in (None, uid):
            service = None
        owned = None if accounts is None else frozenset(
            (str(a.get("kind")), str((a.get("metadata") or {}).get("name")))
            for a in accounts
            if not uid or _controller_uid(a) in (None, uid)
        )
        serving, serving_service = (
            obj if obj is not None and (not uid or _controller_uid(obj) in (None, uid)) else None
            for obj in (serving, serving_service))
        return cls(own_jobs, own_pods, names, service, owned, serving, serving_service)


# --------------------------------------------------------------------------- readers
def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def _true_conditions(obj: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    out: dict[str, Mapping[str, Any]] = {}
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type"):
            out[str(cond["type"])] = cond
    return out


def _pod_name(pod: Mapping[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("name", "?"))


def is_disrupted(pod: Mapping[str, Any]) -> bool:
    """The pod was evicted, preempted or drained (the ``DisruptionTarget`` condition)."""
    return "DisruptionTarget" in _true_conditions(pod)


NODE_LOST: Final = "NodeLost"


def is_node_lost(pod: Mapping[str, Any]) -> bool:
    """The pod's node stopped answering, as the node lifecycle controller records it.

    Either the pod says ``NodeLost`` (its status reason, or a condition's, set when a pod of
    an unreachable node is deleted), or its ``Ready`` condition is False while every container
    still reports ready: the controller flips only the condition once the node has been
    silent for ``node-monitor-grace-period``; a kubelet would have flipped both.
    """
    status = pod.get("status") or {}
    if status.get("reason") == NODE_LOST:
        return True
    conditions = status.get("conditions") or []
    if any(c.get("reason") == NODE_LOST for c in conditions):
        return True
    if _phase_of(pod) not in ("Running", "Pending"):
        return False
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    containers = status.get("containerStatuses") or []
    return (ready is not None and ready.get("status") == "False" and bool(containers)
            and all(cs.get("ready") for cs in containers))


def _phase_of(pod: Mapping[str, Any]) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def _terminated(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    out: list[Mapping[str, Any]] = []
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        term = (cs.get("state") or {}).get("terminated")
        if term:
            out.append({"container": cs.get("name"), **term})
    return out


def _waiting(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    out: list[Mapping[str, Any]] = []
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting")
        if waiting:
            out.append({"container": cs.get("name"), "image": cs.get("image"), **waiting})
    return out


def _scheduled_at(pod: Mapping[str, Any]) -> datetime | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "True":
            return parse_time(cond.get("lastTransitionTime"))
    return parse_time((pod.get("metadata") or {}).get("creationTimestamp"))


def _unschedulable_message(pod: Mapping[str, Any]) -> str | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if (
            cond.get("type") == "PodScheduled"
            and cond.get("status") == "False"
            and cond.get("reason") == "Unschedulable"
        ):
            return str(cond.get("message") or "no node fits the pod")
    return None


@dataclass(frozen=True)
class JobOutcome:
    """Where a Job stands: ``active``, ``suspended``, ``succeeded`` or ``failed``."""

    state: str
    reason: str | None = None
    message: str | None = None


def job_outcome(job: Mapping[str, Any]) -> JobOutcome:
    """Read a Job's conditions. ``FailureTarget``/``SuccessCriteriaMet`` count as the final
    condition: the Job controller sets them first and the verdict cannot change."""
    conds = _true_conditions(job)
    for kind in ("Complete", "SuccessCriteriaMet"):
        if kind in conds:
            return JobOutcome("succeeded", conds[kind].get("reason"), conds[kind].get("message"))
    for kind in ("Failed", "FailureTarget"):
        if kind in conds:
            return JobOutcome("failed", conds[kind].get("reason"), conds[kind].get("message"))
    if (job.get("spec") or {}).get("suspend"):
        return JobOutcome("suspended")
    return JobOutcome("active")


def _job_name(job: Mapping[str, Any]) -> str:
    return str((job.get("metadata") or {}).get("name"))


def _is_deleting(obj: Mapping[str, Any]) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))
