"""Benchmark: sec/kimg, peak memory and generation speed of the StyleGAN2 trainer.

Measures one training step in the published proportions of its four phases (per step one
Gmain and one Dmain, one Greg per 4 steps, one Dreg per 16 steps; ``train.benchmark``) and the
images/s of G_ema, for:

* 32x32 and 64x64 on the CPU with the ``auto`` preset sized for 1 GPU,
* 256x256 and 1024x1024 on CUDA when a GPU is present, in fp32 (TF32 off), bf16 and fp16.

Each configuration runs in a fresh process so the peak-memory figure is its own. The figures
are printed, never asserted. Usage::

    python bench/trainer.py [--steps N] [-o json] [--cpu-only]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any

CPU_CASES = [(32, "auto", "cpu", "none"), (64, "auto", "cpu", "none")]
CUDA_CASES = [
    (256, "auto", "cuda", "none"),
    (256, "auto", "cuda", "bf16"),
    (256, "auto", "cuda", "fp16"),
    (1024, "auto", "cuda", "none"),
    (1024, "auto", "cuda", "bf16"),
    (1024, "auto", "cuda", "fp16"),
]


def measure_in_subprocess(
    resolution: int, preset: str, device: str, mixed_precision: str, steps: int
) -> dict[str, Any]:
    """Run ``stylegan benchmark -o json`` for one case in its own Python process."""
    code = "from stylegan_trainer.cli.train_commands import benchmark_cmd; benchmark_cmd()"
    args = [
        sys.executable, "-c", code, "-o", "json", "--resolution", str(resolution),
        "--preset", preset, "--device", device, "--steps", str(steps),
        "--mixed-precision", mixed_precision,
    ]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"resolution": resolution, "device": device, "error": done.stderr.strip()[-500:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1, help="repeats of each phase")
    parser.add_argument("-o", "--output", choices=["text", "json"], default="text",
                        help="text, or one JSON object per line")
    parser.add_argument("--cpu-only", action="store_true")
    args = parser.parse_args()

    from stylegan_trainer.cli.train_commands import format_benchmark

    cases = list(CPU_CASES)
    if not args.cpu_only and cuda_available():
        cases += CUDA_CASES
    for resolution, preset, device, mixed in cases:
        result = measure_in_subprocess(resolution, preset, device, mixed, args.steps)
        if args.output == "json":
            print(json.dumps(result, sort_keys=True), flush=True)
        elif "error" in result:
            print(f"{preset} {resolution}x{resolution} on {device}: failed: {result['error']}")
        else:
            print(format_benchmark(result), flush=True)


if __name__ == "__main__":
    main()
