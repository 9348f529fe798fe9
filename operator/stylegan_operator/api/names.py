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
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
"""NVIDIA GPU feature discovery's label (the GPU operator sets it on every GPU node): the
product name as NVML reports it, spaces turned into dashes (``NVIDIA-A100-SXM4-80GB``)."""
CUSTOM_GPU_TYPE_LABEL = "stylegan.dev/gpu-type"
"""The default of the operator's own GPU type label (``--gpu-type-label``): a cluster that
neither runs on GKE nor has GPU feature discovery labels its nodes with the spec's names."""
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

GPU_PRODUCTS: dict[str, tuple[str, ...]] = {
    "nvidia-tesla-v100": ("Tesla-V100-SXM2-16GB", "Tesla-V100-SXM2-32GB",
                          "Tesla-V100-PCIE-16GB", "Tesla-V100-PCIE-32GB"),
    "nvidia-tesla-a100": ("NVIDIA-A100-SXM4-40GB", "NVIDIA-A100-PCIE-40GB"),
    "nvidia-a100-80gb": ("NVIDIA-A100-SXM4-80GB", "NVIDIA-A100-80GB-PCIe"),
    "nvidia-h100-80gb": ("NVIDIA-H100-80GB-HBM3",),
    "nvidia-h100-mega-80gb": ("NVIDIA-H100-80GB-HBM3",),
    "nvidia-h200-141gb": ("NVIDIA-H200",),
    "nvidia-l4": ("NVIDIA-L4",),
    "nvidia-tesla-t4": ("Tesla-T4",),
}
"""``spec.resources.gpuType`` (GKE's names) -> the :data:`GPU_PRODUCT_LABEL` values of the
same GPU. A node matches the type when any of them is its product. Unlisted types (any DNS
label is accepted) match through GKE's label and the operator's own only. The H100 of
GKE's A3 Mega machines is the same product as the A3 High's, so both types select it."""
