"""Benchmark: peak memory of one discriminator step, fakes' term backward first vs one sum.

``StyleGAN2Loss`` sends the D step's fake-image term backward before D sees the reals, so the
autograd graph of D on the fake batch is freed before the graph on the real batch is built
(``model/loss.py``). The baseline here is the one-sum step it replaced: D on the fakes, D on
the reals, one ``backward()`` of the summed loss, both graphs alive at once. The gradients
are the same (``tests/unit/trainer/test_loss.py``); only the peak differs.

Every case runs in a fresh process, so each peak is its own: the CUDA allocator's peak on a
GPU, the growth of the process's peak RSS over the step on a CPU (``ru_maxrss``: coarser,
since the CPU allocator keeps freed pages). Figures are printed, never asserted::

    python bench/d_step_memory.py [--resolution 64] [--batch 16] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any

VARIANTS = ("one-sum", "fakes-first")
PHASES = ("Dmain", "Dboth")


def one_sum_step(loss: Any, real: Any, z: Any, r1: bool) -> None:
    """The baseline: both batches' graphs alive until one backward of the whole loss."""
    import torch
    import torch.nn.functional as F

    from stylegan_trainer.model.loss import r1_penalty

    with torch.no_grad():
        fake, _ = loss._run_G(z, None)
    fake_logits = loss._run_D(fake, None)
    x = real.detach().requires_grad_(r1)
    real_logits = loss._run_D(x, None)
    total = F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()
    if r1:
        total = total + (r1_penalty(x, real_logits) * (loss.r1_gamma / 2)).mean()
    total.backward()


def measure(variant: str, phase: str, resolution: int, batch: int, device: str) -> dict[str, Any]:
    """One D step of ``variant`` in this process; its peak memory in MiB."""
    import resource

    import torch

    from stylegan_trainer.model.config import NetworkConfig
    from stylegan_trainer.model.loss import StyleGAN2Loss
    from stylegan_trainer.model.networks import build_networks

    torch.manual_seed(0)
    dev = torch.device(device)
    G, D = build_networks(NetworkConfig(resolution=resolution))
    G, D = G.to(dev), D.to(dev)
    loss = StyleGAN2Loss(G, D, r1_gamma=10.0)
    real = torch.rand(batch, 3, resolution, resolution, device=dev) * 2 - 1
    z = torch.randn(batch, G.z_dim, device=dev)
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if variant == "one-sum":
        one_sum_step(loss, real, z, r1=phase == "Dboth")
    else:
        loss.accumulate_gradients(phase, real, None, z, None, gain=1.0)
    if dev.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - before
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    return {"variant": variant, "phase": phase, "resolution": resolution, "batch": batch,
            "device": device, "peak_mib": round(peak / 2**20, 1)}


def in_subprocess(variant: str, phase: str, resolution: int, batch: int,
                  device: str) -> dict[str, Any]:
    args = [sys.executable, __file__, "--child", variant, "--phase", phase,
            "--resolution", str(resolution), "--batch", str(batch), "--device", device]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"variant": variant, "phase": phase, "error": done.stderr.strip()[-400:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--phase", choices=PHASES, default=None)
    parser.add_argument("--child", choices=VARIANTS, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.phase, args.resolution, args.batch,
                                 args.device)))
        return
    print(f"D step peak memory, config F networks at {args.resolution}x{args.resolution}, "
          f"batch {args.batch}, {args.device}")
    for phase in [args.phase] if args.phase else PHASES:
        rows = {v: in_subprocess(v, phase, args.resolution, args.batch, args.device)
                for v in VARIANTS}
        if any("error" in r for r in rows.values()):
            print(f"  {phase}: failed: {[r.get('error') for r in rows.values()]}")
            continue
        base, new = rows["one-sum"]["peak_mib"], rows["fakes-first"]["peak_mib"]
        ratio = new / base if base else float("nan")
        print(f"  {phase:6s} one-sum {base:9.1f} MiB   fakes-first {new:9.1f} MiB   "
              f"ratio {ratio:.2f}x")


if __name__ == "__main__":
    main()
