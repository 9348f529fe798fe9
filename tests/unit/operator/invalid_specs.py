"""Invalid StyleGANRun specs as data, shared by the unit tests and the cluster tests.

Each entry is ``(name, patch, field)``: ``patch`` is deep-merged into :data:`BASE_SPEC`
(a ``None`` value deletes the key), and ``field`` is the path that both the API server's
message (``kubectl apply``) and :class:`stylegan_operator.api.validation.SpecError` must contain.

The cluster test applies ``manifest(name, apply_patch(BASE_SPEC, patch))`` for each entry
and asserts that the API server refuses it with ``field`` in the message; the unit test
asserts the same of ``validate_spec``.
"""

from __future__ import annotations

import copy
from typing import Any

# A valid spec every invalid one starts from: 2 nodes x 4 GPUs, batch 32.
BASE_SPEC: dict[str, Any] = {
    "model": {"resolution": 256, "preset": "paper256", "augment": "ada"},
    "training": {"kimg": 1000, "batchSize": 32, "snapshotKimg": 50, "mixedPrecision": "fp16"},
    "dataset": {"uri": "gs://datasets/ffhq256.zip", "xflip": True},
    "resources": {"nodes": 2, "gpusPerNode": 4, "gpuType": "nvidia-tesla-v100"},
    "checkpoints": {"uri": "gs://checkpoints/run", "keep": 3},
    "cost": {"currency": "USD", "budget": 1000},
    "runPolicy": {"backoffLimit": 3},
}

INVALID_SPECS: list[tuple[str, dict[str, Any], str]] = [
    ("resolution-not-power-of-two", {"model": {"resolution": 300}}, "spec.model.resolution"),
    ("resolution-too-large", {"model": {"resolution": 2048}}, "spec.model.resolution"),
    ("unknown-preset", {"model": {"preset": "stylegan3"}}, "spec.model.preset"),
    ("augment-p-without-fixed", {"model": {"augmentP": 0.2}}, "spec.model.augmentP"),
    ("fixed-augment-without-p", {"model": {"augment": "fixed"}}, "spec.model.augmentP"),
    (
        "augment-p-above-one",
        {"model": {"augment": "fixed", "augmentP": 1.5}},
        "spec.model.augmentP",
    ),
    ("unknown-model-field", {"model": {"truncation": 0.7}}, "spec.model.truncation"),
    ("zero-kimg", {"training": {"kimg": 0}}, "spec.training.kimg"),
    ("kimg-not-a-number", {"training": {"kimg": "lots"}}, "spec.training.kimg"),
    ("batch-not-divisible", {"training": {"batchSize": 12}}, "spec.training.batchSize"),
    (
        "elastic-batch-not-divisible-at-min",
        {
            "resources": {"nodes": None, "minNodes": 3, "maxNodes": 4},
            "training": {"batchSize": 32},
        },
        "spec.training.batchSize",
    ),
    # 32 images over 2 x 4 GPUs: 4 a GPU, so 1, 2 or 4 a pass.
    ("batch-per-gpu-not-dividing", {"training": {"batchPerGPU": 3}}, "spec.training.batchPerGPU"),
    ("batch-per-gpu-over-share", {"training": {"batchPerGPU": 8}}, "spec.training.batchPerGPU"),
    (
        "elastic-batch-per-gpu-at-max",  # 32 over 4 x 4 GPUs: 2 a GPU, not 4
        {"resources": {"nodes": None, "minNodes": 1, "maxNodes": 4},
         "training": {"batchPerGPU": 4}},
        "spec.training.batchPerGPU",
    ),
    ("batch-per-gpu-zero", {"training": {"batchPerGPU": 0}}, "spec.training.batchPerGPU"),
    ("unknown-precision", {"training": {"mixedPrecision": "fp8"}}, "spec.training.mixedPrecision"),
    (
        "fp16-on-cpu",
        {"resources": {"gpuType": "cpu"}, "training": {"mixedPrecision": "fp16"}},
        "spec.training.mixedPrecision",
    ),
    (
        "bf16-on-cpu",
        {"resources": {"gpuType": "cpu"}, "training": {"mixedPrecision": "bf16"}},
        "spec.training.mixedPrecision",
    ),
    ("dataset-missing", {"dataset": None}, "spec.dataset"),
    ("dataset-s3-uri", {"dataset": {"uri": "s3://bucket/ffhq.zip"}}, "spec.dataset.uri"),
    ("dataset-unknown-builtin", {"dataset": {"uri": "builtin:celeba"}}, "spec.dataset.uri"),
    (
        "dataset-claim-outside-mount",
        {"dataset": {"uri": "/data/ffhq.zip", "claimName": "ffhq"}},
        "spec.dataset.uri",
    ),
    (
        "checkpoints-http-uri",
        {"checkpoints": {"uri": "http://example.com/c"}},
        "spec.checkpoints.uri",
    ),
    (
        "checkpoints-path-without-claim",
        {"checkpoints": {"uri": "/checkpoints/run"}},
        "spec.checkpoints.uri",
    ),
    ("init-from-http", {"initFrom": "https://example.com/ffhq.pkl"}, "spec.initFrom"),
    (
        "init-from-and-resume-from",
        {"initFrom": "gs://pretrained/ffhq.pkl", "checkpoints": {"resumeFrom": "gs://c/run"}},
        "spec.initFrom",
    ),
    ("zero-nodes", {"resources": {"nodes": 0}}, "spec.resources.nodes"),
    ("too-many-nodes", {"resources": {"nodes": 1024}}, "spec.resources.nodes"),
    (
        "nodes-and-elastic",
        {"resources": {"minNodes": 1, "maxNodes": 2}},
        "spec.resources.nodes",
    ),
    (
        "min-above-max",
        {"resources": {"nodes": None, "minNodes": 4, "maxNodes": 2}},
        "spec.resources.minNodes",
    ),
    (
        "min-without-max",
        {"resources": {"nodes": None, "minNodes": 2}},
        "spec.resources.maxNodes",
    ),
    ("zero-gpus", {"resources": {"gpusPerNode": 0}}, "spec.resources.gpusPerNode"),
    ("too-many-gpus", {"resources": {"gpusPerNode": 32}}, "spec.resources.gpusPerNode"),
    ("gpu-type-missing", {"resources": {"gpuType": None}}, "spec.resources.gpuType"),
    ("gpu-type-not-a-label", {"resources": {"gpuType": "Tesla V100"}}, "spec.resources.gpuType"),
    (
        "node-selector-sets-gpu-label",
        {"resources": {"nodeSelector": {"cloud.google.com/gke-accelerator": "nvidia-l4"}}},
        "spec.resources.nodeSelector",
    ),
    (
        "extra-resources-set-gpus",
        {"resources": {"resources": {"limits": {"nvidia.com/gpu": 8}}}},
        "spec.resources.resources",
    ),
    (
        "toleration-bad-operator",
        {"resources": {"tolerations": [{"key": "spot", "operator": "Maybe"}]}},
        "spec.resources.tolerations[0].operator",
    ),
    ("zero-budget", {"cost": {"budget": 0}}, "spec.cost.budget"),
    ("negative-price", {"cost": {"pricePerGpuHour": -1.5}}, "spec.cost.pricePerGpuHour"),
    ("unknown-currency", {"cost": {"currency": "BTC"}}, "spec.cost.currency"),
    ("unknown-budget-action", {"cost": {"budgetAction": "Delete"}}, "spec.cost.budgetAction"),
    ("negative-backoff-limit", {"runPolicy": {"backoffLimit": -1}}, "spec.runPolicy.backoffLimit"),
    ("queue-name-not-a-label", {"queueName": "Team_Queue"}, "spec.queueName"),
    (
        "serve-without-checkpoints",
        {"checkpoints": None, "serve": {"enabled": True}},
        "spec.serve.enabled",
    ),
    (
        "serve-gpu-on-a-cpu-run",
        {"resources": {"gpuType": "cpu"}, "training": {"mixedPrecision": "none"},
         "serve": {"device": "gpu"}},
        "spec.serve.device",
    ),
    ("serve-unknown-device", {"serve": {"device": "tpu"}}, "spec.serve.device"),
    ("serve-psi-above-two", {"serve": {"truncationPsi": 3}}, "spec.serve.truncationPsi"),
    ("serve-negative-replicas", {"serve": {"replicas": -1}}, "spec.serve.replicas"),
    ("serve-zero-max-batch", {"serve": {"maxBatch": 0}}, "spec.serve.maxBatch"),
    (
        "serve-resources-set-gpus",
        {"serve": {"resources": {"limits": {"nvidia.com/gpu": 1}}}},
        "spec.serve.resources",
    ),
]


def apply_patch(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``base`` with ``patch`` merged in; ``None`` deletes a key."""
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = apply_patch(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def manifest(name: str, spec: dict[str, Any], namespace: str = "default") -> dict[str, Any]:
    """A whole StyleGANRun around ``spec``, for ``kubectl apply -f -``."""
    return {
        "apiVersion": "stylegan.dev/v1alpha1",
        "kind": "StyleGANRun",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
