"""``spec.serve``: the run's generator behind an HTTP endpoint, next to (or after) training.

With ``enabled`` the operator runs a Deployment and a ClusterIP Service (``<run>-faces``) whose
pods run ``stylegan serve`` on the run's checkpoint folder (``spec.checkpoints.uri``): each
loads the newest complete checkpoint ``latest.json`` names and polls it every
``reloadSeconds``, so a new checkpoint is served without a restart. Decisions:

* ``whileTraining`` (default true) starts the server as soon as the run reports its first
  checkpoint; false waits until the run has Succeeded. A run that failed or is suspended
  keeps serving what it reached: its checkpoints stay valid faces.
* ``device: gpu`` asks for one ``nvidia.com/gpu`` of ``spec.resources.gpuType`` and schedules
  like the trainer pods (the same node affinity, ``nodeSelector`` and tolerations);
  ``device: cpu`` runs on any node, which is enough for tens of images a second at 256x256.
* Serving needs durable checkpoints (``spec.checkpoints``): a scratch folder dies with the
  trainer pod.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from stylegan_operator.api.names import GPU_RESOURCE
from stylegan_operator.api.resources import ComputeResources
from stylegan_operator.api.rules import ApiModel, Rule, section

ServeDevice = Literal["cpu", "gpu"]
MAX_SERVE_REPLICAS = 100


class ServeResources(ComputeResources):
    """CPU and memory requests and limits of each server pod."""

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel=f"(!has(self.requests) || !('{GPU_RESOURCE}' in self.requests)) && "
            f"(!has(self.limits) || !('{GPU_RESOURCE}' in self.limits))",
            message=f"spec.serve.resources must not set {GPU_RESOURCE}: "
            "use spec.serve.device: gpu (one GPU per server pod)",
            check=lambda r: GPU_RESOURCE not in r.requests and GPU_RESOURCE not in r.limits,
        ),
    )


class ServeSpec(ApiModel):
    """The run's faces over HTTP: ``stylegan serve`` behind a Service ``<run>-faces``."""

    enabled: bool = Field(
        False,
        description="Run the server (a Deployment and the Service <run>-faces); false "
        "deletes both.",
    )
    replicas: int = Field(
        1, ge=0, le=MAX_SERVE_REPLICAS, description="Server pods (0 keeps the objects, no pods)."
    )
    device: ServeDevice = Field(
        "cpu",
        description="Where the generator runs: cpu (any node) or gpu (one nvidia.com/gpu of "
        "spec.resources.gpuType per pod, scheduled like the trainer pods).",
    )
    truncation_psi: float = Field(
        0.7,
        ge=0,
        le=2,
        description="Default truncation psi of the faces (a request may ask for another): "
        "1 samples the whole learned distribution, lower trades variety for quality.",
    )
    max_batch: int = Field(
        8,
        ge=1,
        le=256,
        description="Requests arriving together are generated in one forward pass, up "
        "to this many images (stylegan serve --max-batch).",
    )
    batch_wait_ms: int = Field(
        5,
        ge=0,
        le=1000,
        description="How long the first request of a batch waits for others to join, in "
        "milliseconds (--batch-wait-ms); 0 generates each request at once.",
    )
    reload_seconds: int = Field(
        30,
        ge=1,
        le=86400,
        description="How often the server reads latest.json and loads a newer checkpoint "
        "(--reload-seconds); requests in flight finish on the old one.",
    )
    while_training: bool = Field(
        True,
        description="Serve as soon as the run reports its first checkpoint; false waits "
        "until the run has Succeeded.",
    )
    resources: ServeResources = section(
        ServeResources, "CPU/memory requests and limits per server pod."
    )
