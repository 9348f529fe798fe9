"""The StyleGANRun resource: pydantic models that are the only source of its CRD schema.

One set of models serves three readers:

* the API server, through the CRD that :func:`.crd.build_crd` generates (``stylegan crd``):
  an OpenAPI v3 structural schema with a description on every field, defaults, enums,
  bounds and patterns, plus CEL ``x-kubernetes-validations`` for checks that span fields;
* the operator, through :func:`.validation.validate_spec`, a second line of defence that
  raises a :class:`SpecError` naming the field (``spec.resources.maxNodes``) in the same
  words the API server uses;
* ``render`` and ``cost``, which read the typed :class:`RunSpec` (snake_case in Python,
  camelCase on the wire).

Decisions worth knowing:

* ``resources.nodes`` fixes the group size; ``minNodes``/``maxNodes`` make a run elastic
  (the operator starts each attempt with as many nodes as it can get, up to ``maxNodes``).
  ``training.batchSize`` must divide by the GPU count at ``nodes``, or at both ``minNodes``
  and ``maxNodes``; between those the operator only uses node counts that keep the batch
  divisible (:meth:`RunSpec.feasible_node_counts`).
* A path ``uri`` names a file inside the trainer container. With ``claimName`` the claim is
  mounted at a fixed place (``/datasets`` read-only, ``/checkpoints`` writable) and the uri
  must lie under it; the root filesystem is read-only, so a checkpoint path needs a claim.
* ``spec.model`` is immutable once created: checkpoints of another network cannot resume;
  so is ``spec.checkpoints.uri`` once set (CEL transition rules, refused by the API server).
  Every other field may change while the run lives: ``cost``, ``runPolicy``, ``suspend``
  and ``serve`` take effect at the next reconcile; what an attempt's Job and ConfigMap were
  made from (``training``, ``dataset``, ``resources``, ``distributed``, the rest of ``checkpoints``,
  ``queueName``) applies at the next attempt, and until then the run's ``SpecChangePending``
  condition names the fields that wait (``reconcile.spec_changes``).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from stylegan_operator.api.fields import (
    DNS_LABEL,
    Augment,
    BudgetAction,
    CheckpointUri,
    Currency,
    DatasetUri,
    InitUri,
    MixedPrecision,
    Preset,
    Resolution,
    ResumeUri,
)
from stylegan_operator.api.names import CHECKPOINT_MOUNT, CPU, DATASET_MOUNT
from stylegan_operator.api.resources import DistributedSpec, ResourcesSpec
from stylegan_operator.api.rules import ApiModel, Rule, section
from stylegan_operator.api.serve import ServeSpec


class ModelSpec(ApiModel):
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


class TrainingSpec(ApiModel):
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
    batch_per_gpu: int | None = Field(
        None,
        ge=1,
        le=4096,
        alias="batchPerGPU",
        description="Images per GPU in one forward/backward pass (the official batch_gpu); "
        "each GPU's share of batchSize runs in rounds whose gradients are accumulated, so a "
        "large batch fits a small GPU with the same gradients. Must divide batchSize / (nodes "
        "x gpusPerNode). Unset: one pass over the whole share.",
    )
    snapshot_kimg: int = Field(
        200,
        ge=1,
        le=100_000,
        description="Write samples and a checkpoint every this many kimg (200 = the official "
        "50 ticks of 4 kimg).",
    )
    mixed_precision: MixedPrecision = Field(
        "auto",
        description="Reduced precision in the 4 highest resolutions, on GPUs: auto (bf16 where "
        "the GPU has it natively, A100/L4/H100 and newer; else fp16 with the published clamp, "
        "V100/T4; TF32 matmuls on), fp16, bf16, or none (fp32 throughout). A CPU run trains "
        "in fp32 whatever this says, so only none and auto are valid there.",
    )
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Random seed for weights and sampling.")


class DatasetSpec(ApiModel):
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


class CheckpointSpec(ApiModel):
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


class CostSpec(ApiModel):
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


class RunPolicy(ApiModel):
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


def _share_divides(nodes: str) -> str:
    return (f"(self.training.batchSize / ({nodes} * self.resources.gpusPerNode)) "
            "% self.training.batchPerGPU == 0")


_BATCH_PER_GPU_DIVIDES_CEL = (
    "!has(self.training.batchPerGPU) || self.training.batchPerGPU < 1 || "
    "self.resources.gpusPerNode < 1 || ("
    "has(self.resources.nodes) ? "
    f"self.resources.nodes < 1 || {_share_divides('self.resources.nodes')} : "
    "has(self.resources.minNodes) && has(self.resources.maxNodes) ? "
    "self.resources.minNodes < 1 || self.resources.maxNodes < 1 || "
    f"({_share_divides('self.resources.minNodes')} && "
    f"{_share_divides('self.resources.maxNodes')}) : "
    f"{_share_divides('1')})"
)


def _share_divided(s: RunSpec) -> bool:
    per_pass = s.training.batch_per_gpu
    return per_pass is None or all(
        (s.training.batch_size // (n * s.resources.gpus_per_node)) % per_pass == 0
        for n in {s.min_node_count, s.node_count}
    )


class RunSpec(ApiModel):
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
            cel=_BATCH_PER_GPU_DIVIDES_CEL,
            message="spec.training.batchPerGPU must divide each GPU's share of the batch "
            "(batchSize / (nodes x gpusPerNode); for an elastic run at both minNodes and "
            "maxNodes)",
            check=_share_divided,
            field_path=".training.batchPerGPU",
        ),
        Rule(
            cel="self.resources.gpuType != 'cpu' || "
            "self.training.mixedPrecision in ['none', 'auto']",
            message="spec.training.mixedPrecision fp16 and bf16 need GPUs: use auto or none when "
            "spec.resources.gpuType is cpu",
            check=lambda s: s.resources.gpu_type != CPU
            or s.training.mixed_precision in ("none", "auto"),
            field_path=".training.mixedPrecision",
        ),
        Rule(
            cel="!has(oldSelf.checkpoints) || (has(self.checkpoints) && "
            "self.checkpoints.uri == oldSelf.checkpoints.uri)",
            message="spec.checkpoints.uri is immutable once set: the next attempt would find "
            "no checkpoint there and start from scratch; create a new StyleGANRun (with "
            "resumeFrom) to move a run",
            field_path=".checkpoints.uri",
        ),
        Rule(
            cel="!has(self.initFrom) || !has(self.checkpoints) || "
            "!has(self.checkpoints.resumeFrom)",
            message="spec.initFrom and spec.checkpoints.resumeFrom exclude each other: "
            "resumeFrom continues a checkpoint (its counters and optimisers), initFrom starts "
            "a new run at kimg 0 from a network's weights",
            check=lambda s: s.init_from is None or s.checkpoints is None
            or s.checkpoints.resume_from is None,
            field_path=".initFrom",
        ),
        Rule(
            cel="!has(self.serve) || !has(self.serve.enabled) || !self.serve.enabled || "
            "has(self.checkpoints)",
            message="spec.serve.enabled needs spec.checkpoints: the server reads the run's "
            "checkpoints from there (a scratch folder dies with the trainer pod)",
            check=lambda s: not s.serve.enabled or s.checkpoints is not None,
            field_path=".serve.enabled",
        ),
        Rule(
            cel="!has(self.serve) || !has(self.serve.device) || self.serve.device != 'gpu' || "
            "self.resources.gpuType != 'cpu'",
            message="spec.serve.device gpu needs a GPU type in spec.resources.gpuType (it is "
            "cpu): the server asks for one GPU of that type",
            check=lambda s: s.serve.device != "gpu" or s.resources.gpu_type != CPU,
            field_path=".serve.device",
        ),
    )

    model: ModelSpec = section(ModelSpec, "The network: resolution, preset and overrides.")
    training: TrainingSpec = section(TrainingSpec, "Training length, batch, precision, seed.")
    dataset: DatasetSpec = Field(description="The training images.")
    resources: ResourcesSpec = Field(description="Nodes, GPUs, image and scheduling.")
    distributed: DistributedSpec = section(
        DistributedSpec, "Multi-node rendezvous and NCCL: timeouts and the socket interface."
    )
    checkpoints: CheckpointSpec | None = Field(
        None,
        description="Durable checkpoints. Without them the trainer writes to a scratch "
        "folder and a restarted attempt starts from scratch.",
    )
    init_from: InitUri | None = Field(
        None,
        description="Weights to start from (transfer learning): a checkpoint of this operator, "
        "a run folder, or a published StyleGAN2-ADA PyTorch network pickle (.pkl, e.g. FFHQ), "
        "on gs:// or a claim. G, D and G_ema only: the run starts at kimg 0. Read by the first "
        "attempt; later ones resume the run's own checkpoints. Must match spec.model (preset, "
        "resolution, overrides), or the trainer fails the run naming what differs.",
    )
    cost: CostSpec = section(CostSpec, "Prices, currency and budget.")
    run_policy: RunPolicy = section(RunPolicy, "Restarts, deadline and clean-up.")
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
    serve: ServeSpec = section(
        ServeSpec, "Serve the run's faces over HTTP (stylegan serve behind <run>-faces)."
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
