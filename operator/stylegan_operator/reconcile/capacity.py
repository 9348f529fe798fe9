"""Free capacity for an elastic run: how many nodes could take one of its pods right now.

An elastic run (``spec.resources.minNodes``/``maxNodes``) starts each attempt with the
largest node count that the batch divides and that the cluster has free, never fewer than
``minNodes``; a run that asks for ``maxNodes`` when fewer fit would wait forever with the GPUs
it could use idle. It scales up on the next attempt (after a preemption or failure), when
more may have come free: torchrun's group is fixed for an attempt (``--nnodes`` N).

A node counts when it is Ready and schedulable, carries the run's GPU type under one of the
labels the pods' affinity accepts (``pods.gpu_node_affinity``), and has ``gpusPerNode`` GPUs
left after the requests of the pods bound to it that still hold them (not Succeeded or
Failed). Taints are not judged: the run's pods tolerate the GPU taint and nothing else is
known of other taints here, so a tainted node may be counted that the scheduler then
refuses; the attempt then waits, as it would without this estimate.

Pure functions of nodes and pods as the API returns them; ``kube.client`` lists them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from stylegan_operator.api.names import (
    CUSTOM_GPU_TYPE_LABEL,
    GPU_PRODUCT_LABEL,
    GPU_PRODUCTS,
    GPU_RESOURCE,
    GPU_TYPE_LABEL,
)
from stylegan_operator.api.spec import RunSpec
from stylegan_operator.cost.metering import quantity
from stylegan_operator.cost.pricing import CostError

__all__ = ["elastic_node_count", "free_nodes", "node_has_gpu_type"]


def node_has_gpu_type(labels: Mapping[str, str], gpu_type: str,
                      custom_label: str | None = CUSTOM_GPU_TYPE_LABEL) -> bool:
    """Whether a node with ``labels`` matches the affinity the run's pods carry."""
    if labels.get(GPU_TYPE_LABEL) == gpu_type:
        return True
    if labels.get(GPU_PRODUCT_LABEL) in GPU_PRODUCTS.get(gpu_type, ()):
        return True
    return bool(custom_label) and labels.get(str(custom_label)) == gpu_type


def _ready(node: Mapping[str, Any]) -> bool:
    if (node.get("spec") or {}).get("unschedulable"):
        return False
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _amount(value: Any) -> float:
    """A GPU quantity; an unreadable one (nothing this operator wrote) counts as none."""
    try:
        return quantity(value, GPU_RESOURCE)
    except CostError:
        return 0.0


def _gpus_requested(pod: Mapping[str, Any]) -> float:
    total = 0.0
    for container in (pod.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        amount = (resources.get("requests") or {}).get(GPU_RESOURCE)
        if amount is None:
            amount = (resources.get("limits") or {}).get(GPU_RESOURCE)
        if amount is not None:
            total += _amount(amount)
    return total


def free_nodes(
    nodes: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]], gpu_type: str,
    gpus_per_node: int, custom_label: str | None = CUSTOM_GPU_TYPE_LABEL,
) -> int:
    """How many nodes have ``gpus_per_node`` GPUs of ``gpu_type`` free (module doc)."""
    used: dict[str, float] = {}
    for pod in pods:
        node_name = (pod.get("spec") or {}).get("nodeName")
        phase = (pod.get("status") or {}).get("phase")
        if node_name and phase not in ("Succeeded", "Failed"):
            used[node_name] = used.get(node_name, 0.0) + _gpus_requested(pod)
    count = 0
    for node in nodes:
        meta = node.get("metadata") or {}
        if not _ready(node) or not node_has_gpu_type(meta.get("labels") or {}, gpu_type,
                                                     custom_label):
            continue
        allocatable = ((node.get("status") or {}).get("allocatable") or {}).get(GPU_RESOURCE)
        capacity = _amount(allocatable) if allocatable is not None else 0.0
        if capacity - used.get(str(meta.get("name")), 0.0) >= gpus_per_node:
            count += 1
    return count


def elastic_node_count(spec: RunSpec, free: int | None) -> int:
    """The nodes an elastic attempt asks for: the largest count the batch divides that fits
    ``free`` (``None``: unknown, so ``maxNodes``), never fewer than ``minNodes``."""
    counts = spec.feasible_node_counts()  # largest first, each within [minNodes, maxNodes]
    if free is None:
        return counts[0]
    return next((n for n in counts if n <= free), counts[-1])
