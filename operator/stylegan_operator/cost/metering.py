"""Metering: what each pod of a run rented, and for how long, read from the pods themselves.

Nothing here talks to Kubernetes or the clock on its own; callers pass the pods (plain dicts
as the API returns them: raw camelCase JSON or the kubernetes client's to_dict()
snake_case) and ``now``. The operator (``kube``/``handlers``) lists a run's pods, feeds them
to a :class:`~stylegan_operator.cost.ledger.SpendLedger` kept in the run's status, and
publishes the result through ``metrics``.

How spend is measured (DESIGN.md, "Cost"): a pod costs from the moment it is bound to a
node (its ``PodScheduled`` condition turned True, else ``status.startTime``) until it ends
(the last container's ``terminated.finishedAt``, else its ``deletionTimestamp``, else
``now`` while it runs), times its GPU count (``nvidia.com/gpu`` limits), times the price of
its node's GPU type, plus an optional price per node-hour for the machine around the GPUs.
Every attempt counts, failed ones too, and so do pods that were bound but never started:
the node was rented all the same. This mirrors OpenCost's "amount x duration x hourly
rate" asset model, with the amount taken from the pod's limits (one pod owns one node here).

This module measures the amount and the duration (:class:`PodUsage`, :func:`pod_usage`);
``spend`` applies the hourly rate.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stylegan_operator.cost.pricing import CPU, CostError, _finite, canonical_gpu_type

__all__ = ["PodUsage", "parse_time", "pod_usage"]

GPU_RESOURCE = "nvidia.com/gpu"

# Node labels that name a node's GPU type, most specific first. The first is GKE's; the
# second is NVIDIA GPU feature discovery's product name (e.g. "NVIDIA-A100-SXM4-80GB").
GPU_TYPE_LABELS: tuple[str, ...] = (
    "cloud.google.com/gke-accelerator",
    "stylegan.dev/gpu-type",
    "nvidia.com/gpu.product",
)

# Node labels (key -> value, compared case-insensitively) that mark spot/preemptible capacity.
SPOT_LABELS: dict[str, str] = {
    "cloud.google.com/gke-spot": "true",
    "cloud.google.com/gke-preemptible": "true",
    "karpenter.sh/capacity-type": "spot",
    "eks.amazonaws.com/capacitytype": "spot",
    "kubernetes.azure.com/scalesetpriority": "spot",
}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _get(obj: Any, key: str, default: Any = None) -> Any:
    """``obj[key]`` under its camelCase or snake_case spelling; ``default`` when absent/None."""
    if not isinstance(obj, Mapping):
        return default
    value = obj.get(key)
    if value is None:
        value = obj.get(_snake(key))
    return default if value is None else value


def parse_time(value: Any) -> datetime | None:
    """A Kubernetes timestamp (RFC 3339 string) as an aware datetime; None when absent or
    unreadable (for status fields, where a missing time means "not yet")."""
    if not value or not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _time(value: Any, field_name: str) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise CostError(f"{field_name}: not an RFC 3339 time: {value!r}") from None
    else:
        raise CostError(f"{field_name}: expected a time, got {type(value).__name__}")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def quantity(value: Any, field_name: str) -> float:
    """A Kubernetes resource quantity (``"2"``, ``"500m"``, ``"16Gi"``, ``4``) as a float,
    read by the client's own parser (imported here: ``stylegan estimate`` never needs it)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _finite(value, field_name)
    from kubernetes.utils import parse_quantity

    try:
        amount = float(parse_quantity(str(value).strip()))
    except ValueError:
        raise CostError(f"{field_name}: not a resource quantity: {value!r}") from None
    return _finite(amount, field_name)


def _container_amount(containers: Iterable[Any], resource: str, where: str) -> list[float]:
    amounts = []
    for index, container in enumerate(containers or ()):
        resources = _get(container, "resources", {})
        limits = _get(resources, "limits", {}) or {}
        requests = _get(resources, "requests", {}) or {}
        # Extended resources (GPUs) must have limit == request; CPUs may have either.
        value = limits.get(resource, requests.get(resource))
        amounts.append(
            0.0
            if value is None
            else quantity(value, f'{where}[{index}].resources.limits["{resource}"]')
        )
    return amounts


def _effective_amount(spec: Mapping[str, Any], resource: str) -> float:
    """What the scheduler reserves: max(sum of containers, largest init container)."""
    main = _container_amount(_get(spec, "containers", []), resource, "spec.containers")
    init = _container_amount(_get(spec, "initContainers", []), resource, "spec.initContainers")
    return max(sum(main), max(init, default=0.0))


@dataclass(frozen=True)
class PodUsage:
    """One pod's rented time: what it held, where, from when to when."""

    uid: str
    name: str
    gpu_type: str
    """Catalog key; ``cpu`` for a pod without GPUs."""
    spot: bool
    units: float
    """GPUs held (vCPUs for ``cpu`` pods)."""
    start: datetime
    end: datetime
    running: bool
    """Still accruing at ``now`` (not terminal)."""

    @property
    def seconds(self) -> float:
        return max((self.end - self.start).total_seconds(), 0.0)

    @property
    def unit_seconds(self) -> float:
        return self.seconds * self.units

    @property
    def gpu_seconds(self) -> float:
        return 0.0 if self.gpu_type == CPU else self.unit_seconds


def _labels_spot(labels: Mapping[str, Any]) -> bool:
    lowered = {str(k).lower(): str(v).lower() for k, v in labels.items()}
    return any(lowered.get(key) == value for key, value in SPOT_LABELS.items())


def _bound_at(pod: Mapping[str, Any]) -> datetime | None:
    status = _get(pod, "status", {})
    for condition in _get(status, "conditions", []) or []:
        if _get(condition, "type") == "PodScheduled" and _get(condition, "status") == "True":
            moment = _time(
                _get(condition, "lastTransitionTime"),
                "status.conditions[PodScheduled].lastTransitionTime",
            )
            if moment is not None:
                return moment
    return _time(_get(status, "startTime"), "status.startTime")


def _ended_at(pod: Mapping[str, Any], now: datetime) -> tuple[datetime, bool]:
    """(end, running): the last container's finish, else deletion, else ``now``."""
    status = _get(pod, "status", {})
    phase = _get(status, "phase", "Unknown")
    statuses = list(_get(status, "containerStatuses", []) or [])
    finished: list[datetime] = []
    all_terminated = bool(statuses)
    for index, container in enumerate(statuses):
        terminated = _get(_get(container, "state", {}), "terminated")
        moment = _time(
            _get(terminated, "finishedAt") if terminated else None,
            f"status.containerStatuses[{index}].state.terminated.finishedAt",
        )
        if moment is None:
            all_terminated = False
        else:
            finished.append(moment)
    deletion = _time(_get(_get(pod, "metadata", {}), "deletionTimestamp"), "deletionTimestamp")
    if phase in ("Succeeded", "Failed") or all_terminated:
        if finished:
            return min(max(finished), now), False
        if deletion is not None:
            return min(deletion, now), False
        # A terminal pod with no container times (evicted before start, node lost):
        # the last condition change is when it was marked so.
        changes = [
            _time(_get(c, "lastTransitionTime"), "status.conditions[].lastTransitionTime")
            for c in _get(status, "conditions", []) or []
        ]
        known = [c for c in changes if c is not None]
        return (min(max(known), now) if known else now), False
    if deletion is not None:
        # Terminating: billed until the grace period ends, never past now.
        return min(deletion, now), deletion > now
    return now, True


def pod_usage(
    pod: Mapping[str, Any],
    now: datetime,
    *,
    default_gpu_type: str | None = None,
    node_labels: Mapping[str, Mapping[str, str]] | None = None,
) -> PodUsage | None:
    """The rented time of one pod, or None when it was never bound to a node.

    The GPU type comes from the node's labels (``node_labels[spec.nodeName]``), else the
    pod's ``nodeSelector``, else ``default_gpu_type`` (``spec.resources.gpuType``). A pod
    without GPUs is priced per vCPU as ``cpu``. Spot comes from the same labels.
    """
    if not isinstance(pod, Mapping):
        raise CostError(f"pod: expected a mapping (the API's JSON), got {type(pod).__name__}")
    now = _time(now, "now")  # type: ignore[assignment]
    start = _bound_at(pod)
    spec = _get(pod, "spec", {})
    metadata = _get(pod, "metadata", {})
    name = str(_get(metadata, "name", "?"))
    if start is None:
        return None
    end, running = _ended_at(pod, now)
    node = _get(spec, "nodeName")
    labels: dict[str, Any] = {}
    labels.update(_get(spec, "nodeSelector", {}) or {})
    if node and node_labels and node in node_labels:
        labels.update(node_labels[node])  # the real node wins over what was asked for
    gpus = _effective_amount(spec, GPU_RESOURCE)
    if gpus > 0:
        named = next((labels[k] for k in GPU_TYPE_LABELS if labels.get(k)), None)
        if named is None and default_gpu_type is None:
            raise CostError(
                f"spec.resources.gpuType: pod {name!r} holds {gpus:g} GPUs but neither its node "
                f"labels ({', '.join(GPU_TYPE_LABELS)}) nor the run name a GPU type"
            )
        gpu_type = canonical_gpu_type(str(named or default_gpu_type))
        units = gpus
    else:
        gpu_type = CPU
        units = _effective_amount(spec, "cpu")
    return PodUsage(
        uid=str(_get(metadata, "uid", name)),
        name=name,
        gpu_type=gpu_type,
        spot=_labels_spot(labels),
        units=units,
        start=start,
        end=max(end, start),
        running=running,
    )
