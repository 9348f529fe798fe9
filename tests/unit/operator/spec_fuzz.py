"""Generated StyleGANRun specs, valid and not, for the fuzz tests (unit and cluster).

A generated spec is :data:`~tests.unit.operator.invalid_specs.BASE_SPEC` with a few fields
changed to values drawn from :data:`FIELD_VALUES`: the values a user might write, the edges
of each range, and the mistakes (wrong types, out of range, unknown names). Drawing a few
fields at a time keeps most specs near the valid region, where the cross-field rules (batch
against GPU count, elastic node counts, CPU-only precision) decide, rather than refusing
every spec for its first bad field.

:func:`spec_patches` is the hypothesis strategy; :func:`sample_patches` draws the same kind
of patch from a seeded ``random.Random`` for the cluster test, which cannot afford
hypothesis's hundreds of examples against a real API server.
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis import strategies as st

# path (dotted, under spec) -> values to choose from; None deletes the key.
FIELD_VALUES: dict[str, list[Any]] = {
    "model.resolution": [4, 8, 32, 256, 1024, 300, 2048, 0, -8, "256", 256.0],
    "model.preset": ["auto", "paper256", "stylegan2", "cifar", "cpu", "stylegan3", "", 7],
    "model.augment": ["ada", "noaug", "fixed", "diffaug", None],
    "model.augmentP": [0.0, 0.2, 1.0, 1.5, -0.1, "half"],
    "model.r1Gamma": [0, 0.5, 10, 1000, 1001, -1, None],
    "model.mappingLayers": [1, 2, 8, 9, 0, None],
    "model.channelBase": [8192, 16384, 32768, 1000, -1, None],
    "training.kimg": [1, 25, 1000, 25000, 0, -5, 1_000_001, "lots", 12.5],
    "training.batchSize": [1, 3, 4, 8, 12, 16, 32, 64, 4096, 4097, 0, -4, "32"],
    "training.batchPerGPU": [1, 2, 3, 4, 8, 16, 0, -1, None],
    "training.snapshotKimg": [1, 50, 200, 0, 100_001, None],
    "training.mixedPrecision": ["auto", "none", "fp16", "bf16", "fp8", True],
    "training.seed": [0, 1, 2**32 - 1, 2**32, -1],
    "dataset.uri": ["gs://datasets/ffhq256.zip", "builtin:lfw", "/datasets/ffhq.zip",
                    "/data/x.zip", "s3://bucket/x", "", "gs://"],
    "dataset.claimName": ["ffhq", "Bad_Name", None],
    "dataset.xflip": [True, False, "yes"],
    "resources.nodes": [1, 2, 3, 4, 8, 0, -1, None],
    "resources.minNodes": [1, 2, 3, 0, None],
    "resources.maxNodes": [1, 2, 4, 8, 0, None],
    "resources.gpusPerNode": [1, 2, 4, 8, 16, 0, 3],
    "resources.gpuType": ["nvidia-tesla-v100", "nvidia-a100-80gb", "nvidia-h100-80gb", "cpu",
                          "A100", "tpu-v5", ""],
    "checkpoints.uri": ["gs://checkpoints/run", "/checkpoints/run", "/tmp/run", "", None],
    "checkpoints.claimName": ["ckpt", None],
    "checkpoints.keep": [1, 3, 1000, 0, 1001],
    "checkpoints.intervalKimg": [1, 20, 0, None],
    "cost.currency": ["USD", "EUR", "JPY", "usd", "XYZ", ""],
    "cost.budget": [1, 1000, 0.5, 0, -10, None, "1000"],
    "cost.budgetAction": ["Suspend", "Fail", "Warn", "Stop"],
    "cost.pricePerGpuHour": [0.5, 2.48, 0, -1, None],
    "runPolicy.backoffLimit": [0, 3, 100, -1],
    "queueName": ["team-a", "Team_Queue", None],
    "suspend": [True, False, "no"],
}
PATHS = sorted(FIELD_VALUES)


def nested(path: str, value: Any) -> dict[str, Any]:
    """``("model.resolution", 8)`` -> ``{"model": {"resolution": 8}}``."""
    out: Any = value
    for key in reversed(path.split(".")):
        out = {key: out}
    return out


def merge(patches: list[dict[str, Any]]) -> dict[str, Any]:
    """One patch from several single-field ones (their paths are distinct)."""
    out: dict[str, Any] = {}
    for patch in patches:
        node, source = out, patch
        while True:
            (key, value), = source.items()
            if isinstance(value, dict) and isinstance(node.get(key), dict):
                node, source = node[key], value
                continue
            node[key] = value
            break
    return out


@st.composite
def spec_patches(draw: st.DrawFn, most: int = 4) -> dict[str, Any]:
    """A patch of 1 to ``most`` distinct fields of BASE_SPEC."""
    paths = draw(st.lists(st.sampled_from(PATHS), min_size=1, max_size=most, unique=True))
    return merge([nested(p, draw(st.sampled_from(FIELD_VALUES[p]))) for p in paths])


def sample_patches(count: int, seed: int, most: int = 4) -> list[dict[str, Any]]:
    """``count`` patches like :func:`spec_patches`, from ``random.Random(seed)``."""
    rng = random.Random(seed)
    patches = []
    for _ in range(count):
        paths = rng.sample(PATHS, rng.randint(1, most))
        patches.append(merge([nested(p, rng.choice(FIELD_VALUES[p])) for p in paths]))
    return patches


def patched_paths(patch: dict[str, Any], prefix: str = "spec") -> set[str]:
    """Every dotted path a patch sets, ``spec.model.resolution`` style."""
    paths = set()
    for key, value in patch.items():
        path = f"{prefix}.{key}"
        paths.add(path)
        if isinstance(value, dict):
            paths |= patched_paths(value, path)
    return paths
