"""``spec.resources``: where and on what a run trains, and how its pods are scheduled.

Node counts (fixed or elastic), GPUs per node and their type, the trainer image and the
pod-level knobs (node selector, tolerations, priority, service account, CPU/memory,
``/dev/shm``, environment) that the renderer copies into the trainer pods.

* ``gpuType: cpu`` runs on CPU nodes; ``gpusPerNode`` then counts trainer processes per node.
* ``gpuType`` selects nodes by any of three labels (``reconcile.pods``): GKE's
  ``cloud.google.com/gke-accelerator``, NVIDIA GPU feature discovery's
  ``nvidia.com/gpu.product`` (through ``names.GPU_PRODUCTS``) or the operator's own.
* :class:`DistributedSpec` (``spec.distributed``) holds the rendezvous and NCCL settings of
  multi-node groups; every default is sized for a group whose pods start minutes apart.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from stylegan_operator.api.fields import DNS_LABEL, DNS_SUBDOMAIN, ENV_NAME, Quantity
from stylegan_operator.api.names import GPU_RESOURCE, GPU_TYPE_LABEL, MAX_GPUS_PER_NODE, MAX_NODES
from stylegan_operator.api.rules import ApiModel, Rule, section


class Toleration(ApiModel):
    """A pod toleration, as in core/v1."""

    key: str | None = Field(None, max_length=316, description="Taint key to tolerate.")
    operator: Literal["Exists", "Equal"] = Field(
        "Equal", description="Exists matches any value; Equal matches value."
    )
    value: str | None = Field(None, max_length=63, description="Taint value (operator Equal).")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="Taint effect to tolerate; empty matches all effects."
    )
    toleration_seconds: int | None = Field(
        None, ge=0, description="How long a NoExecute taint is tolerated before eviction."
    )


class EnvVar(ApiModel):
    """An extra environment variable for the trainer container."""

    name: str = Field(max_length=256, pattern=ENV_NAME, description="Variable name.")
    value: str = Field("", max_length=4096, description="Variable value.")


class ComputeResources(ApiModel):
    """Extra CPU and memory requests and limits for the trainer container."""

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel=f"(!has(self.requests) || !('{GPU_RESOURCE}' in self.requests)) && "
            f"(!has(self.limits) || !('{GPU_RESOURCE}' in self.limits))",
            message=f"spec.resources.resources must not set {GPU_RESOURCE}: "
            "use spec.resources.gpusPerNode",
            check=lambda r: GPU_RESOURCE not in r.requests and GPU_RESOURCE not in r.limits,
        ),
    )

    requests: dict[str, Quantity] = Field(
        default_factory=dict, max_length=16, description="Requests, e.g. {cpu: 8, memory: 64Gi}."
    )
    limits: dict[str, Quantity] = Field(
        default_factory=dict, max_length=16, description="Limits, e.g. {memory: 96Gi}."
    )


class ResourcesSpec(ApiModel):
    """Where and on what the run trains: node count, GPUs, image and scheduling."""

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="!has(self.nodes) || (!has(self.minNodes) && !has(self.maxNodes))",
            message="spec.resources.nodes and spec.resources.minNodes/maxNodes are exclusive: "
            "set nodes for a fixed size, or minNodes and maxNodes for an elastic run",
            check=lambda r: r.nodes is None or (r.min_nodes is None and r.max_nodes is None),
            field_path=".nodes",
        ),
        Rule(
            cel="has(self.minNodes) == has(self.maxNodes)",
            message="spec.resources.minNodes and spec.resources.maxNodes go together",
            check=lambda r: (r.min_nodes is None) == (r.max_nodes is None),
            field_path=".maxNodes",
        ),
        Rule(
            cel="!has(self.minNodes) || !has(self.maxNodes) || self.minNodes <= self.maxNodes",
            message="spec.resources.minNodes must be less than or equal to spec.resources.maxNodes",
            check=lambda r: (
                r.min_nodes is None or r.max_nodes is None or r.min_nodes <= r.max_nodes
            ),
            field_path=".minNodes",
        ),
        Rule(
            cel=f"!has(self.nodeSelector) || !('{GPU_TYPE_LABEL}' in self.nodeSelector)",
            message=f"spec.resources.nodeSelector must not set {GPU_TYPE_LABEL}: "
            "use spec.resources.gpuType",
            check=lambda r: GPU_TYPE_LABEL not in r.node_selector,
            field_path=".nodeSelector",
        ),
    )

    nodes: int | None = Field(
        None,
        ge=1,
        le=MAX_NODES,
        description="Fixed number of nodes (one trainer pod each). Default 1; exclusive with "
        "minNodes/maxNodes.",
    )
    min_nodes: int | None = Field(
        None, ge=1, le=MAX_NODES, description="Elastic runs: the fewest nodes an attempt may use."
    )
    max_nodes: int | None = Field(
        None, ge=1, le=MAX_NODES, description="Elastic runs: the most nodes an attempt may use."
    )
    gpus_per_node: int = Field(
        1,
        ge=1,
        le=MAX_GPUS_PER_NODE,
        description="GPUs per node (torchrun --nproc-per-node); trainer processes per node "
        "when gpuType is cpu.",
    )
    gpu_type: str = Field(
        max_length=63,
        pattern=DNS_LABEL,
        description="GPU type, as GKE labels nodes (cloud.google.com/gke-accelerator): "
        "nvidia-tesla-v100, nvidia-tesla-a100, nvidia-a100-80gb, nvidia-h100-80gb, nvidia-l4, "
        "nvidia-tesla-t4, ...; cpu for CPU-only nodes. Selects nodes (GKE's label, the GPU "
        "operator's nvidia.com/gpu.product of the same GPU, or the operator's own label) and "
        "prices the run.",
    )
    image: str | None = Field(
        None,
        min_length=1,
        max_length=512,
        description="Trainer image; defaults to the operator's configured trainer image.",
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = Field(
        None, description="Image pull policy of the trainer container."
    )
    node_selector: dict[str, Annotated[str, Field(max_length=63)]] = Field(
        default_factory=dict,
        max_length=32,
        description="Extra node labels the trainer pods require (added to the GPU type's).",
    )
    tolerations: list[Toleration] = Field(
        default_factory=list,
        max_length=32,
        description="Extra tolerations (the nvidia.com/gpu taint is tolerated on GPU runs).",
    )
    priority_class_name: str | None = Field(
        None, max_length=253, pattern=DNS_SUBDOMAIN, description="PriorityClass of the pods."
    )
    service_account_name: str | None = Field(
        None,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="ServiceAccount of the pods (e.g. one bound to a GCS-enabled identity).",
    )
    resources: ComputeResources = section(
        ComputeResources, "Extra CPU/memory requests and limits per trainer pod."
    )
    shm_size: Quantity = Field(
        "2Gi",
        description="Size of /dev/shm (a memory-backed emptyDir) for data loader workers.",
    )
    env: list[EnvVar] = Field(
        default_factory=list, max_length=32,
        description="Extra environment for the trainer; overrides the operator's own "
        "variables of the same name (NCCL_SOCKET_IFNAME, ...).",
    )
    termination_grace_period_seconds: int | None = Field(
        None,
        ge=10,
        le=7200,
        description="How long a stopping pod (preemption, suspend, node drain) has to write "
        "its SIGTERM checkpoint before it is killed. Default from spec.model.resolution: 60 "
        "up to 128, 120 at 256, 180 at 512, 300 at 1024.",
    )


# A NCCL_SOCKET_IFNAME value: interface names or prefixes, comma separated, optionally led
# by ^ (exclude) or = (exact match); empty lets NCCL choose.
_SOCKET_IFNAME = r"^[\^=]?[-A-Za-z0-9_.:,]*$"


class DistributedSpec(ApiModel):
    """How the pods of a group find one another and how long they wait."""

    rendezvous_timeout_seconds: int = Field(
        1800,
        ge=60,
        le=86400,
        description="How long the first pods of an attempt wait for the last one (pod 0 "
        "included, which hosts the rendezvous) to start and join: torchrun's join_timeout "
        "and read_timeout. As long as the operator's image-pull limit by default, so a pod "
        "scheduled or pulled late does not fail the attempt.",
    )
    collective_timeout_seconds: int = Field(
        1800,
        ge=60,
        le=86400,
        description="How long a collective (NCCL or gloo) may wait for a peer before the "
        "trainer aborts (init_process_group's timeout); a lost peer is then a failed attempt.",
    )
    socket_interface: str = Field(
        "eth0",
        max_length=253,
        pattern=_SOCKET_IFNAME,
        description="NCCL_SOCKET_IFNAME of GPU runs: the pod network's interface (eth0 in "
        "a pod); empty lets NCCL choose. spec.resources.env overrides it.",
    )
