"""The StyleGANRun resource's names and the cluster facts its checks rest on.

Group, version, kind and the CRD's names, which the operator, the CLI and the CRD all
address the resource by; the limits and well-known labels, resources and mount points
that the models validate against and the renderer writes into pods. Plain constants,
so every module of the package (and every caller) can import them without the models.
"""

from __future__ import annotations

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
