"""The trainer on a CUDA device: what can only be checked where a GPU is (marked ``gpu``,
skipped with a reason elsewhere; ``bench/gpu_suite.sh`` runs them first on a lent GPU).

* reduced precision: a discriminator step's gradients in bf16 and fp16 against fp32's, on
  the networks the trainer builds (the blocks cast only on CUDA, so the CPU test of
  ``test_mixed_precision`` cannot see the casts themselves);
* nccl: a world of one process joins, all-reduces and leaves through the trainer's helpers;
* accumulation: ``batch_per_gpu`` rounds give one pass's weights on the GPU too;
* memory: one config F step at 1024x1024 with batch 32 in rounds of 4, the paper's batch on
  one GPU, finishes with finite losses, and reports its peak.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from tests.support import free_port

pytestmark = pytest.mark.gpu

CUDA = torch.device("cuda", 0)


def _options(dataset: str, outdir: Path, **changes: object):  # type: ignore[no-untyped-def]
    from stylegan_trainer.train.options import TrainingOptions

    base = TrainingOptions(
        dataset=dataset, preset="auto", resolution=64, batch=8, kimg=1.0, outdir=str(outdir),
        resume="none", augment="noaug", device="cuda", progress_bar="off",
        mixed_precision="none",
    )  # fmt: skip
    return dataclasses.replace(base, **changes)


def _trainer(options):  # type: ignore[no-untyped-def]
    from stylegan_trainer.report.progress import SilentReporter
    from stylegan_trainer.train.loop import Trainer

    return Trainer(options, reporter=SilentReporter())


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_reduced_precision_d_gradients_follow_fp32(
    dtype: str, tmp_path: Path, noise_dataset: Callable[..., str]
) -> None:
    data = str(noise_dataset(16, seed=3, resolution=64))
    grads = {}
    for precision in ("none", dtype):
        torch.manual_seed(0)
        trainer = _trainer(_options(data, tmp_path / precision, mixed_precision=precision))
        assert (trainer.network.num_fp16_res > 0) == (precision != "none")
        torch.manual_seed(1)
        real = torch.rand(8, 3, 64, 64, device=CUDA) * 2 - 1
        z = torch.randn(8, trainer.network.z_dim, device=CUDA)
        trainer.D.zero_grad(set_to_none=True)
        trainer.loss.accumulate_gradients("Dmain", real, None, z, None, gain=1.0)
        grads[precision] = torch.cat([p.grad.flatten() for p in trainer.D.parameters()
                                      if p.grad is not None])
        trainer.close()
    ref, low = grads["none"], grads[dtype]
    assert torch.isfinite(low).all()
    relative = (low - ref).norm() / ref.norm()
    assert relative < 0.05, f"{dtype} D gradients deviate {relative:.3%} from fp32's"
    zeros = ((low == 0) & (ref != 0)).float().mean().item()
    assert zeros < 0.01, f"{zeros:.1%} of the {dtype} gradients underflowed to zero"


def test_nccl_world_of_one_joins_reduces_and_leaves(monkeypatch: pytest.MonkeyPatch) -> None:
    from stylegan_trainer.train import distributed

    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    ctx = distributed.init_from_env("cuda")
    try:
        assert ctx.backend == "nccl" and ctx.device.type == "cuda"
        value = torch.full([4], 3.0, device=ctx.device)
        assert torch.equal(distributed.all_reduce_mean(value), torch.full_like(value, 3.0))
        distributed.barrier()
    finally:
        distributed.shutdown()
    assert not torch.distributed.is_initialized()
    assert os.environ["WORLD_SIZE"] == "1"


def test_accumulated_rounds_train_like_one_pass_on_the_gpu(
    tmp_path: Path, noise_dataset: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from stylegan_trainer.model import generator

    # Constant noise inputs: random ones are drawn per pass, so rounds would see other noise.
    forward = generator.SynthesisNetwork.forward
    monkeypatch.setattr(generator.SynthesisNetwork, "forward",
                        lambda self, ws, noise_mode="random": forward(self, ws, noise_mode="const"))
    overrides = {"mbstd_group": 1, "style_mixing_prob": 0.0, "pl_weight": 0.0}
    data = str(noise_dataset(16, seed=4, resolution=64))
    grads = {}
    for per_gpu in (None, 2):
        torch.manual_seed(0)
        trainer = _trainer(_options(data, tmp_path / str(per_gpu), batch_per_gpu=per_gpu,
                                    overrides=overrides))
        torch.manual_seed(1)
        real = torch.rand(8, 3, 64, 64, device=CUDA) * 2 - 1
        for index, phase in enumerate(trainer.phases):
            # The gradients themselves: Adam's first step is nearly sign(g), which would turn
            # rounding differences of gradients near zero into whole learning-rate steps.
            phase.optimizer.step = lambda *args, **kwargs: None  # type: ignore[method-assign]
            trainer.run_phase(phase, index, real, None)
            got = [p.grad.flatten() for p in phase.module.parameters() if p.grad is not None]
            if got:  # Greg has none with pl_weight 0
                grads[per_gpu, phase.name] = torch.cat(got)
        trainer.close()
    for name in ("Gmain", "Dmain", "Dreg"):
        whole, rounds = grads[None, name], grads[2, name]
        relative = ((whole - rounds).norm() / whole.norm()).item()
        assert relative < 1e-4, f"{name}: rounds deviate {relative:.2e} from one pass"


def test_config_f_1024_at_the_papers_batch_fits_one_gpu_in_rounds(
    tmp_path: Path, noise_dataset: Callable[..., str]
) -> None:
    data = str(noise_dataset(8, seed=5, resolution=1024))
    options = _options(data, tmp_path / "f1024", preset="stylegan2", resolution=1024,
                       batch=32, batch_per_gpu=4, mixed_precision="auto")
    torch.cuda.reset_peak_memory_stats(CUDA)
    trainer = _trainer(options)
    try:
        assert trainer.rounds == 8
        trainer.train_step()  # step 0 runs all four phases, the regularisers included
        stats = trainer.tick_stats.reduce(CUDA)
    finally:
        trainer.close()
    assert stats and all(torch.isfinite(torch.tensor(v)) for v in stats.values()), stats
    peak = torch.cuda.max_memory_allocated(CUDA)
    total = torch.cuda.get_device_properties(CUDA).total_memory
    print(f"config F 1024, batch 32 in 8 rounds of 4: peak {peak / 2**30:.1f} GiB "
          f"of {total / 2**30:.0f}")
    assert peak < total
