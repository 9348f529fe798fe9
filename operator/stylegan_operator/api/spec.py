"""The StyleGANRun resource: pydantic models that are the only source of its CRD schema.

One set of models serves three readers:

* the API server, through the CRD that :func:`build_crd` generates (``stylegan crd``):
  an OpenAPI v3 structural schema with a description on every field, defaults, enums,
  bounds and patterns, plus CEL ``x-kubernetes-validations`` for checks that span fields;
* the operator, through :func:`validate_spec`, a second line of defence that raises a
  :class:`SpecError` naming the field (``spec.resources.maxNodes``) in the same words the
  API server uses;
* ``render`` and ``cost``, which read the typed :class:`RunSpec` (snake_case in Python,
  camelCase on the wire).

Every cross-field check is written once, as a :class:`Rule` holding the CEL expression, the
message and the equivalent Python predicate, so the two lines of defence cannot drift apart
in what they say.

Decisions worth knowing:

* ``resources.nodes`` fixes the group size; ``minNodes``/``maxNodes`` make a run elastic
  (the operator starts each attempt with as many nodes as it can get, up to ``maxNodes``).
  ``training.batchSize`` must divide by the GPU count at ``nodes``, or at both ``minNodes``
  and ``maxNodes``; between those the operator only uses node counts that keep the batch
  divisible (:meth:`RunSpec.feasible_node_counts`).
* ``gpuType: cpu`` runs on CPU nodes; ``gpusPerNode`` then counts trainer processes per node.
* A path ``uri`` names a file inside the trainer container. With ``claimName`` the claim is
  mounted at a fixed place (``/datasets`` read-only, ``/checkpoints`` writable) and the uri
  must lie under it; the root filesystem is read-only, so a checkpoint path needs a claim.
* ``spec.model`` is immutable once created: checkpoints of another network cannot resume.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError, core_schema

GROUP = "stylegan.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "StyleGANRun"
PLURAL = "styleganruns"
SINGULAR = "styleganrun"
SHORT_NAMES = ["sgrun"]
CATEGORIES = ["stylegan"]
CRD_NAME = f"{PLURAL}.{GROUP}"

RESOLUTIONS = (4, 8, 16, 32, 64, 128, 256, 512, 1024)
MAX_NODES = 512  # keeps "<job>-<index>" hostnames short enough to leave the job name room
MAX_GPUS_PER_NODE = 16
CPU = "cpu"  # the gpuType of CPU-only runs
GPU_TYPE_LABEL = "cloud.google.com/gke-accelerator"  # GKE's label; hack/localcluster.py agrees
GPU_RESOURCE = "nvidia.com/gpu"
DATASET_MOUNT = "/datasets"
CHECKPOINT_MOUNT = "/checkpoints"
KNOWN_GPU_TYPES = (
    "nvidia-tesla-v100",
    "nvidia-tesla-a100",
    "nvidia-a100-80gb",
    "nvidia-h100-80gb",
    "nvidia-h100-mega-80gb",
    "nvidia-h200-141gb",
    "nvidia-l4",
    "nvidia-tesla-t4",
    CPU,
)

Preset = Literal["stylegan2", "paper256", "paper512", "paper1024", "cifar", "auto", "cpu"]
Augment = Literal["ada", "noaug", "fixed"]
MixedPrecision = Literal["none", "fp16", "bf16"]
Currency = Literal["USD", "EUR", "JPY", "GBP"]
BudgetAction = Literal["Suspend", "Fail", "Warn"]
Phase = Literal["Pending", "Running", "Suspended", "Restarting", "Succeeded", "Failed"]

# A DNS-1123 label (queue names, claim names, label values of gpuType).
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# A DNS-1123 subdomain (priority classes, service accounts).
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# The pattern Kubernetes itself publishes for resource.Quantity strings.
_DECIMAL = r"(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
QUANTITY = rf"^(\+|-)?{_DECIMAL}(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?{_DECIMAL}))?$"
ENV_NAME = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"


class SpecError(ValueError):
    """A spec the operator refuses; ``field`` is its path, e.g. ``spec.model.resolution``.

    The operator turns it into a ``kopf.PermanentError``: retrying cannot fix a bad spec.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


# --------------------------------------------------------------------------- rules
@dataclass(frozen=True)
class Rule:
    """One validation, written once for both the API server (CEL) and Python.

    Args:
        cel: the CEL expression, evaluated with ``self`` bound to the object the rule sits on.
        message: what the API server and :class:`SpecError` say; names the field from ``spec``.
        check: the same predicate in Python; ``None`` for transition rules (``oldSelf``),
            which only the API server can evaluate.
        field_path: where the API server reports the error, relative to ``self``
            (``.maxNodes``); :class:`SpecError` names the same field.
    """

    cel: str
    message: str
    check: Callable[[Any], bool] | None = None
    field_path: str | None = None

    def to_crd(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rule": self.cel, "message": self.message}
        if self.field_path:
            out["fieldPath"] = self.field_path
        return out


@dataclass(frozen=True)
class _FieldRules:
    """Annotated metadata putting rules on one value: CEL in its schema, checks in Python.

    A metadata class rather than ``Field(json_schema_extra=...)`` so it also works on a
    value nested in ``X | None``.
    """

    rules: tuple[Rule, ...]

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        def validate(value: Any) -> Any:
            for rule in self.rules:
                if rule.check is not None and not rule.check(value):
                    raise PydanticCustomError("rule", rule.message)
            return value

        return core_schema.no_info_after_validator_function(validate, handler(source))

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict[str, Any]:
        out = handler(schema)
        out["x-kubernetes-validations"] = [r.to_crd() for r in self.rules]
        return out


def _uri_rule(field: str, schemes: tuple[str, ...], hint: str) -> Rule:
    cel = " || ".join(f"self.startsWith('{s}')" for s in schemes)
    return Rule(
        cel=cel,
        message=f"{field} must start with {', '.join(schemes)} ({hint})",
        check=lambda v: isinstance(v, str) and v.startswith(schemes),
    )


_RESOLUTION_RULE = Rule(
    cel=f"self in [{', '.join(str(r) for r in RESOLUTIONS)}]",
    message="spec.model.resolution must be a power of two from 4 to 1024",
    check=lambda v: v in RESOLUTIONS,
)
_DATASET_URI_RULES = (
    _uri_rule(
        "spec.dataset.uri",
        ("gs://", "/", "builtin:"),
        "a GCS object or folder, a path in the container, or builtin:lfw",
    ),
    Rule(
        cel="!self.startsWith('builtin:') || self == 'builtin:lfw'",
        message="spec.dataset.uri: the only built-in dataset is builtin:lfw",
        check=lambda v: not v.startswith("builtin:") or v == "builtin:lfw",
    ),
)
_CHECKPOINT_URI_RULE = _uri_rule(
    "spec.checkpoints.uri", ("gs://", "/"), "a GCS prefix or a path on spec.checkpoints.claimName"
)
_RESUME_URI_RULE = _uri_rule(
    "spec.checkpoints.resumeFrom", ("gs://", "/"), "a checkpoint object or a run folder"
)

# Bounded string/list/map sizes keep the API server's CEL cost estimate low.
Uri = Annotated[str, Field(min_length=1, max_length=1024)]
Resolution = Annotated[int, _FieldRules((_RESOLUTION_RULE,))]
DatasetUri = Annotated[Uri, _FieldRules(_DATASET_URI_RULES)]
CheckpointUri = Annotated[Uri, _FieldRules((_CHECKPOINT_URI_RULE,))]
ResumeUri = Annotated[Uri, _FieldRules((_RESUME_URI_RULE,))]


def _check_quantity(value: int | str) -> int | str:
    if isinstance(value, str) and not re.match(QUANTITY, value):
        raise PydanticCustomError(
            "quantity", "must be a Kubernetes quantity such as 500m, 4 or 16Gi"
        )
    return value


Quantity = Annotated[
    int | str,
    AfterValidator(_check_quantity),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY,
            "x-kubernetes-int-or-string": True,
        }
    ),
]


class _Model(BaseModel):
    """Base: camelCase on the wire, no unknown fields, immutable, cross-field rules."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )
    rules: ClassVar[tuple[Rule, ...]] = ()

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        schema = handler(core_schema)
        target = handler.resolve_ref_schema(schema)
        if cls.rules:
            target["x-kubernetes-validations"] = [r.to_crd() for r in cls.rules]
        return schema

    @model_validator(mode="after")
    def _check_rules(self) -> _Model:
        for rule in type(self).rules:
            if rule.check is not None and not rule.check(self):
                raise PydanticCustomError(
                    "rule", rule.message, {"field_path": (rule.field_path or "").lstrip(".")}
                )
        return self


def _section(model: type[_Model], description: str) -> Any:
    """A sub-object with every field defaulted: ``{}`` on the wire, so nested defaults apply."""
    return Field(default_factory=model, description=description, json_schema_extra={"default": {}})


# --------------------------------------------------------------------------- spec
class ModelSpec(_Model):
    """The network: output resolution, the configuration preset and its overrides."""

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="!has(self.augmentP) || (has(self.augment) && self.augment == 'fixed')",
            message="spec.model.augmentP is only valid with spec.model.augment: fixed",
            check=lambda m: m.augment_p is None or m.augment == "fixed",
            field_path=".augmentP",
        ),
        Rule(
            cel="!has(self.augment) || self.augment != 'fixed' || has(self.augmentP)",
            message="spec.model.augmentP (0 to 1) is required with spec.model.augment: fixed",
            check=lambda m: m.augment != "fixed" or m.augment_p is not None,
            field_path=".augmentP",
        ),
        Rule(
            cel="self == oldSelf",
            message="spec.model is immutable: a checkpoint of one network cannot resume another; "
            "create a new StyleGANRun",
        ),
    )

    resolution: Resolution = Field(
        256,
        ge=4,
        le=1024,
        description="Output image size in pixels (square): a power of two from 4 to 1024. "
        "Must match the dataset's images.",
    )
    preset: Preset = Field(
        "auto",
        description="Configuration preset: stylegan2 (config F), paper256/paper512/paper1024 "
        "(the StyleGAN2-ADA paper's settings), cifar, auto (sized from resolution and GPU count) "
        "or cpu (a small network that trains on CPUs).",
    )
    channel_base: int | None = Field(
        None,
        ge=1024,
        le=65536,
        description="Overrides the preset's channel base (feature maps = channelBase / "
        "resolution, capped at 512); 32768 is config F, 16384 the paper presets.",
    )
    mapping_layers: int | None = Field(
        None,
        ge=1,
        le=8,
        description="Overrides the preset's mapping network depth (8 in config F).",
    )
    r1_gamma: float | None = Field(
        None, ge=0, le=1000, description="Overrides the preset's R1 regularisation weight."
    )
    augment: Augment = Field(
        "ada",
        description="Discriminator augmentation: ada (adaptive, for small datasets), noaug, "
        "or fixed (a constant probability, spec.model.augmentP).",
    )
    augment_p: float | None = Field(
        None, ge=0, le=1, description="Augmentation probability when augment is fixed (0 to 1)."
    )


class TrainingSpec(_Model):
    """How long and how the trainer trains."""

    kimg: int = Field(
        25000,
        ge=1,
        le=1_000_000,
        description="Training length in thousands of real images shown to the discriminator "
        "(25000 in the StyleGAN2 paper).",
    )
    batch_size: int = Field(
        32,
        ge=1,
        le=4096,
        description="Global batch size, split evenly over every GPU (or CPU process) of the "
        "run: it must divide by nodes x gpusPerNode.",
    )
    snapshot_kimg: int = Field(
        200,
        ge=1,
        le=100_000,
        description="Write samples and a checkpoint every this many kimg (200 = the official "
        "50 ticks of 4 kimg).",
    )
    mixed_precision: MixedPrecision = Field(
        "none",
        description="Mixed precision in the 4 highest resolutions, on GPUs: none, fp16 (as the "
        "official code) or bf16.",
    )
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Random seed for weights and sampling.")


class DatasetSpec(_Model):
    """The training images."""

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="!has(self.claimName) || self.uri.startsWith('/datasets/')",
            message="spec.dataset.uri must be a path under /datasets/ when "
            "spec.dataset.claimName is set (the claim is mounted there)",
            check=lambda d: d.claim_name is None or d.uri.startswith(DATASET_MOUNT + "/"),
            field_path=".uri",
        ),
    )

    uri: DatasetUri = Field(
        description="Where the images are: gs://bucket/path (a zip or folder), a path in the "
        "container (/datasets/ffhq.zip with claimName), or builtin:lfw (100 face crops shipped "
        "with scikit-image)."
    )
    claim_name: str | None = Field(
        None,
        max_length=63,
        pattern=DNS_LABEL,
        description="PersistentVolumeClaim holding the dataset, mounted read-only at /datasets.",
    )
    xflip: bool = Field(False, description="Add horizontally flipped copies of every image.")


class Toleration(_Model):
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


class EnvVar(_Model):
    """An extra environment variable for the trainer container."""

    name: str = Field(max_length=256, pattern=ENV_NAME, description="Variable name.")
    value: str = Field("", max_length=4096, description="Variable value.")


class ComputeResources(_Model):
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


class ResourcesSpec(_Model):
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
        "nvidia-tesla-t4, ...; cpu for CPU-only nodes. Selects nodes and prices the run.",
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
    resources: ComputeResources = _section(
        ComputeResources, "Extra CPU/memory requests and limits per trainer pod."
    )
    shm_size: Quantity = Field(
        "2Gi",
        description="Size of /dev/shm (a memory-backed emptyDir) for data loader workers.",
    )
    env: list[EnvVar] = Field(
        default_factory=list, max_length=32, description="Extra environment for the trainer."
    )


class CheckpointSpec(_Model):
    """Where checkpoints go and how many stay."""

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="self.uri.startsWith('gs://') || (has(self.claimName) && "
            "(self.uri == '/checkpoints' || self.uri.startsWith('/checkpoints/')))",
            message="spec.checkpoints.uri: a path needs spec.checkpoints.claimName and must lie "
            "under /checkpoints (the root filesystem is read-only); or use gs://",
            check=lambda c: (
                c.uri.startswith("gs://")
                or (
                    c.claim_name is not None
                    and (c.uri == CHECKPOINT_MOUNT or c.uri.startswith(CHECKPOINT_MOUNT + "/"))
                )
            ),
            field_path=".uri",
        ),
    )

    uri: CheckpointUri = Field(
        description="The run's checkpoint folder: gs://bucket/prefix, or /checkpoints/... on "
        "claimName. The trainer writes objects there and then latest.json."
    )
    claim_name: str | None = Field(
        None,
        max_length=63,
        pattern=DNS_LABEL,
        description="PersistentVolumeClaim for checkpoints, mounted writable at /checkpoints.",
    )
    interval_kimg: int | None = Field(
        None,
        ge=1,
        le=100_000,
        description="Checkpoint every this many kimg; defaults to spec.training.snapshotKimg. "
        "Shorter intervals lose less work to a preemption.",
    )
    keep: int = Field(3, ge=1, le=1000, description="How many checkpoints to keep.")
    resume_from: ResumeUri | None = Field(
        None,
        description="A checkpoint (or a run folder with latest.json) to start from when the "
        "run has none of its own yet.",
    )


class CostSpec(_Model):
    """Prices and budget; prices default to the operator's catalog for the GPU type."""

    price_per_gpu_hour: float | None = Field(
        None,
        gt=0,
        description="Price per GPU-hour (per vCPU-hour for cpu), overriding the catalog.",
    )
    price_per_node_hour: float | None = Field(
        None, ge=0, description="Price per node-hour for the machine around the GPUs."
    )
    currency: Currency = Field("USD", description="Currency of prices, budget and status.")
    budget: float | None = Field(
        None, gt=0, description="Spend limit for the whole run, every attempt included."
    )
    budget_action: BudgetAction = Field(
        "Suspend",
        description="When spend reaches the budget: Suspend (keep the checkpoints, stop "
        "spending), Fail, or Warn (a condition and an event only).",
    )


class RunPolicy(_Model):
    """Restart and lifetime policy (names as in Kubeflow's PyTorchJob runPolicy)."""

    backoff_limit: int = Field(
        3,
        ge=0,
        le=1000,
        description="Failed attempts to restart (a whole new group each) before the run "
        "fails; preemptions do not count.",
    )
    active_deadline_seconds: int | None = Field(
        None, ge=1, description="Wall-clock limit for the run, every attempt included."
    )
    ttl_seconds_after_finished: int | None = Field(
        None, ge=0, description="Delete the run this long after it succeeds or fails."
    )


def _batch_divides(nodes: str) -> str:
    return f"self.training.batchSize % ({nodes} * self.resources.gpusPerNode) == 0"


# Counts below 1 are the schema's to report; the guards keep CEL from a modulus by zero.
_BATCH_DIVIDES_CEL = (
    "self.resources.gpusPerNode < 1 || ("
    "has(self.resources.nodes) ? "
    f"self.resources.nodes < 1 || {_batch_divides('self.resources.nodes')} : "
    "has(self.resources.minNodes) && has(self.resources.maxNodes) ? "
    "self.resources.minNodes < 1 || self.resources.maxNodes < 1 || "
    f"({_batch_divides('self.resources.minNodes')} && "
    f"{_batch_divides('self.resources.maxNodes')}) : "
    f"{_batch_divides('1')})"
)


class RunSpec(_Model):
    """A StyleGAN2 training run: what to train, on what, and what it may cost."""

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel=_BATCH_DIVIDES_CEL,
            message="spec.training.batchSize must divide by the run's GPU count "
            "(nodes x gpusPerNode; for an elastic run at both minNodes and maxNodes)",
            check=lambda s: all(
                s.training.batch_size % (n * s.resources.gpus_per_node) == 0
                for n in {s.min_node_count, s.node_count}
            ),
            field_path=".training.batchSize",
        ),
        Rule(
            cel="self.resources.gpuType != 'cpu' || self.training.mixedPrecision == 'none'",
            message="spec.training.mixedPrecision needs GPUs: use none when "
            "spec.resources.gpuType is cpu",
            check=lambda s: s.resources.gpu_type != CPU or s.training.mixed_precision == "none",
            field_path=".training.mixedPrecision",
        ),
    )

    model: ModelSpec = _section(ModelSpec, "The network: resolution, preset and overrides.")
    training: TrainingSpec = _section(TrainingSpec, "Training length, batch, precision, seed.")
    dataset: DatasetSpec = Field(description="The training images.")
    resources: ResourcesSpec = Field(description="Nodes, GPUs, image and scheduling.")
    checkpoints: CheckpointSpec | None = Field(
        None,
        description="Durable checkpoints. Without them the trainer writes to a scratch "
        "folder and a restarted attempt starts from scratch.",
    )
    cost: CostSpec = _section(CostSpec, "Prices, currency and budget.")
    run_policy: RunPolicy = _section(RunPolicy, "Restarts, deadline and clean-up.")
    queue_name: str | None = Field(
        None,
        max_length=63,
        pattern=DNS_LABEL,
        description="Kueue LocalQueue to admit the run through; jobs are created suspended "
        "and Kueue starts them.",
    )
    suspend: bool = Field(
        False, description="Stop the run's pods, keeping its checkpoints; false resumes it."
    )

    # -- derived values the operator and the renderer share ---------------------------
    @property
    def is_cpu(self) -> bool:
        return self.resources.gpu_type == CPU

    @property
    def is_elastic(self) -> bool:
        return self.resources.max_nodes is not None

    @property
    def node_count(self) -> int:
        """Nodes of a full-size attempt: ``nodes``, else ``maxNodes``, else 1."""
        r = self.resources
        return r.nodes or r.max_nodes or 1

    @property
    def min_node_count(self) -> int:
        r = self.resources
        return r.nodes or r.min_nodes or 1

    def feasible_node_counts(self) -> list[int]:
        """Node counts an attempt may use, largest first: those that keep the batch divisible."""
        g = self.resources.gpus_per_node
        return [
            n
            for n in range(self.node_count, self.min_node_count - 1, -1)
            if self.training.batch_size % (n * g) == 0
        ]


# --------------------------------------------------------------------------- status
class Condition(_Model):
    """A Kubernetes-style condition."""

    type: str = Field(max_length=316, description="Condition type, e.g. Running, BudgetExceeded.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str | None = Field(None, max_length=1024, description="CamelCase machine reason.")
    message: str | None = Field(None, max_length=32768, description="Human-readable detail.")
    last_transition_time: datetime | None = Field(None, description="When the status last changed.")
    observed_generation: int | None = Field(
        None, ge=0, description="The spec generation the condition describes."
    )


class CheckpointRef(_Model):
    """The newest complete checkpoint."""

    uri: str | None = Field(None, description="Where the checkpoint is.")
    kimg: float | None = Field(None, ge=0, description="Training progress it holds, in kimg.")
    time: datetime | None = Field(None, description="When it was written.")


class RunStatus(_Model):
    """What the operator observed; written only by the operator."""

    phase: Phase | None = Field(
        None, description="Pending, Running, Suspended, Restarting, Succeeded or Failed."
    )
    conditions: list[Condition] = Field(
        default_factory=list, description="Kubernetes-style conditions, one per type."
    )
    shape: str | None = Field(
        None, description="Nodes x GPUs per node of the active attempt, e.g. 2x8."
    )
    kimg: float | None = Field(None, description="Training progress in kimg.")
    total_kimg: int | None = Field(None, description="Target length (spec.training.kimg).")
    sec_per_kimg: float | None = Field(None, description="Measured seconds per kimg.")
    gpu_hours: float | None = Field(None, description="GPU-hours used, every attempt included.")
    cost: float | None = Field(None, description="Spend so far, in status.currency.")
    projected_cost: float | None = Field(
        None, description="Spend so far plus the measured rate times the remaining kimg."
    )
    currency: str | None = Field(None, description="Currency of cost and projectedCost.")
    eta: str | None = Field(None, description="Time left at the measured rate, e.g. 3d4h.")
    last_checkpoint: CheckpointRef | None = Field(None, description="The newest checkpoint.")
    restarts: int | None = Field(None, description="Whole-group restarts after failures.")
    preemptions: int | None = Field(None, description="Restarts caused by disruption/preemption.")
    attempt: int | None = Field(None, description="Number of the current attempt (the job -aN).")
    active_job: str | None = Field(None, description="Name of the current attempt's Job.")
    observed_generation: int | None = Field(
        None, description="The spec generation last reconciled."
    )
    start_time: datetime | None = Field(None, description="When the first attempt started.")
    completion_time: datetime | None = Field(None, description="When the run finished.")
    message: str | None = Field(None, description="The latest human-readable summary.")


# --------------------------------------------------------------------------- validation
def _field_name(loc: tuple[Any, ...]) -> str:
    out = "spec"
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def validate_spec(obj: dict[str, Any]) -> RunSpec:
    """Parse a StyleGANRun ``spec`` (or a whole StyleGANRun) into a :class:`RunSpec`.

    Raises:
        SpecError: on the first problem, naming the field, e.g. ``spec.resources.gpusPerNode``.
    """
    if not isinstance(obj, dict):
        raise SpecError("spec", f"must be an object, got {type(obj).__name__}")
    if obj.get("kind") == KIND and "spec" in obj:
        obj = obj["spec"]
        if not isinstance(obj, dict):
            raise SpecError("spec", "must be an object")
    try:
        return RunSpec.model_validate(obj)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        extra = (err.get("ctx") or {}).get("field_path")
        if extra:
            loc += tuple(extra.split("."))
        reason = err["msg"]
        if err["type"] not in ("rule", "missing") and "input" in err:
            reason += f" (got {err['input']!r})"
        raise SpecError(_field_name(loc), reason) from None


# --------------------------------------------------------------------------- CRD
def _structural(node: Any, defs: dict[str, Any]) -> Any:
    """Turn pydantic's JSON schema into a Kubernetes structural schema.

    Inlines ``$ref`` (CRDs cannot refer), drops ``null`` branches (an omitted field is
    what optional means to the API server), titles and ``additionalProperties: false``
    (unknown fields are pruned or refused by kubectl), and spells exclusive bounds the
    OpenAPI v3.0 way.
    """
    if isinstance(node, list):
        return [_structural(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        node = {**target, **node}  # the field's own description/default win
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b != {"type": "null"}]
        if len(branches) == 1:
            del node["anyOf"]
            node = {**_structural(branches[0], defs), **node}
            if node.get("default", 0) is None:
                del node["default"]
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("title", "$defs") or (key == "additionalProperties" and value is False):
            continue
        if key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        elif key == "properties":
            out[key] = {k: _structural(v, defs) for k, v in value.items()}
        elif key == "const":
            out["enum"] = [value]
        elif key == "default" and value is None:
            continue
        else:
            out[key] = _structural(value, defs)
    if "properties" in out:
        out.setdefault("type", "object")
    return _ordered(out)


_KEY_ORDER = ("description", "type", "format", "default", "enum")


def _ordered(schema: dict[str, Any]) -> dict[str, Any]:
    """Stable, readable key order: description and type first, then the rest sorted."""
    head = [k for k in _KEY_ORDER if k in schema]
    tail = sorted(k for k in schema if k not in _KEY_ORDER)
    return {k: schema[k] for k in head + tail}


def openapi_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of ``model`` (camelCase, every ``$ref`` inlined)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return _structural(raw, raw.get("$defs", {}))


def _status_schema() -> dict[str, Any]:
    schema = openapi_schema(RunStatus)
    # kopf keeps its own progress under status; the operator owns the rest.
    schema["x-kubernetes-preserve-unknown-fields"] = True
    conditions = schema["properties"]["conditions"]
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    return schema


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {
        "name": "Shape",
        "type": "string",
        "jsonPath": ".status.shape",
        "description": "Nodes x GPUs per node of the active attempt",
    },
    {"name": "Kimg", "type": "number", "jsonPath": ".status.kimg"},
    {"name": "Target", "type": "integer", "jsonPath": ".spec.training.kimg"},
    {"name": "Cost", "type": "number", "jsonPath": ".status.cost"},
    {"name": "ETA", "type": "string", "jsonPath": ".status.eta"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "GPU", "type": "string", "jsonPath": ".spec.resources.gpuType", "priority": 1},
    {"name": "Currency", "type": "string", "jsonPath": ".status.currency", "priority": 1},
    {"name": "Projected", "type": "number", "jsonPath": ".status.projectedCost", "priority": 1},
    {"name": "Restarts", "type": "integer", "jsonPath": ".status.restarts", "priority": 1},
]


def build_crd() -> dict[str, Any]:
    """The StyleGANRun CustomResourceDefinition (apiextensions.k8s.io/v1) as a dict."""
    spec_schema = openapi_schema(RunSpec)
    spec_schema["description"] = (RunSpec.__doc__ or "").strip()
    root = {
        "description": "StyleGANRun trains a StyleGAN2 generator on Kubernetes GPU nodes and "
        "accounts for what it costs.",
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {
                "description": "Versioned schema of this object (stylegan.dev/v1alpha1).",
                "type": "string",
            },
            "kind": {"description": "StyleGANRun.", "type": "string"},
            "metadata": {"type": "object"},  # the API server allows nothing more here
            "spec": spec_schema,
            "status": _status_schema(),
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": CRD_NAME,
            "labels": {"app.kubernetes.io/part-of": "stylegan-operator"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
                "categories": list(CATEGORIES),
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [dict(c) for c in PRINTER_COLUMNS],
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


CRD_HEADER = (
    "# Generated by `stylegan crd` from operator/stylegan_operator/api/spec.py: do not edit.\n"
    "# tests/unit/operator/test_crd.py fails when this copy drifts from the models.\n"
)


def crd_yaml() -> str:
    """The CRD as YAML, byte-for-byte what ``stylegan crd`` prints and the repo commits."""
    return CRD_HEADER + yaml.safe_dump(build_crd(), sort_keys=False, width=100)
