"""``status``: what the operator observed of a StyleGANRun; written only by the operator.

The phase, Kubernetes-style conditions, progress, spend, the newest checkpoint and where the
faces are served, as the CRD's status schema describes them and the operator patches them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from stylegan_operator.api.rules import ApiModel

Phase = Literal["Pending", "Running", "Suspended", "Restarting", "Succeeded", "Failed"]


class Condition(ApiModel):
    """A Kubernetes-style condition."""

    type: str = Field(max_length=316, description="Condition type, e.g. Running, BudgetExceeded.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str | None = Field(None, max_length=1024, description="CamelCase machine reason.")
    message: str | None = Field(None, max_length=32768, description="Human-readable detail.")
    last_transition_time: datetime | None = Field(None, description="When the status last changed.")
    observed_generation: int | None = Field(
        None, ge=0, description="The spec generation the condition describes."
    )


class CheckpointRef(ApiModel):
    """The newest complete checkpoint."""

    uri: str | None = Field(None, description="Where the checkpoint is.")
    kimg: float | None = Field(None, ge=0, description="Training progress it holds, in kimg.")
    time: datetime | None = Field(None, description="When it was written.")


class ServeStatus(ApiModel):
    """Where the run's faces are served (spec.serve)."""

    url: str | None = Field(
        None, description="The Service's in-cluster URL, http://<svc>.<ns>.svc."
    )
    replicas: int | None = Field(None, ge=0, description="Server pods asked for.")
    ready_replicas: int | None = Field(
        None, ge=0, description="Server pods ready: a checkpoint loaded (their /readyz)."
    )


class RunStatus(ApiModel):
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
    progress_text: str | None = Field(
        None, description="kimg as a share of totalKimg, for people, e.g. 20.5%."
    )
    sec_per_kimg: float | None = Field(None, description="Measured seconds per kimg.")
    gpu_hours: float | None = Field(None, description="GPU-hours used, every attempt included.")
    cost: float | None = Field(None, description="Spend so far, in status.currency.")
    projected_cost: float | None = Field(
        None, description="Spend so far plus the measured rate times the remaining kimg."
    )
    currency: str | None = Field(None, description="Currency of cost and projectedCost.")
    cost_text: str | None = Field(
        None, description="cost with its currency, for people, e.g. 612.19 USD."
    )
    projected_cost_text: str | None = Field(
        None, description="projectedCost with its currency, e.g. 2,987.55 USD."
    )
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
    serve: ServeStatus | None = Field(
        None, description="The server of spec.serve, while it runs; see the Serving condition."
    )
