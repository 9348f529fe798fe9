"""Rank helpers alone and in a real 2-rank gloo group: 2 x 4 images train like 1 x 8.

How the equality is made possible (see distributed.py and loop.py): every rank draws the
global batch of latents and dataset indices from the seed and keeps its slice; gradients are
averaged with one all-reduce; w_avg is averaged across ranks. What cannot match by design is
switched off for this comparison: per-rank random draws inside the loss (noise inputs are made
constant, style mixing and augmentation off), the path-length regulariser (it runs on a
per-rank sub-batch) and minibatch-std groups (group size 1, so groups never span ranks).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from tests.support import free_port

from stylegan_common.errors import EXIT_CONFIG, ConfigError
from stylegan_trainer.train import distributed as dist_helpers
from stylegan_trainer.train.distributed import (
    StatsCollector,
    accumulation_rounds,
    average_gradients,
    per_rank_batch,
    rank_slice,
)

STEPS = 3
EQUIVALENCE = {
    "z_dim": 16, "w_dim": 16, "channel_base": 128, "channel_max": 16, "mapping_layers": 1,
    "mbstd_group": 1, "style_mixing_prob": 0.0, "pl_weight": 0.0,
    "g_reg_interval": 2, "d_reg_interval": 2,
}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# One process


def test_helpers_work_without_a_process_group() -> None:
    assert dist_helpers.get_rank() == 0 and dist_helpers.get_world_size() == 1
    assert dist_helpers.is_main()
    t = torch.tensor([1.0, 3.0])
    assert dist_helpers.all_reduce_mean(t) is t and t.tolist() == [1.0, 3.0]
    dist_helpers.barrier()
    assert dist_helpers.broadcast_object({"a": 1}) == {"a": 1}


def test_init_from_env_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    ctx = dist_helpers.init_from_env("cpu")
    assert (ctx.rank, ctx.world_size, ctx.backend, ctx.is_main) == (0, 1, None, True)
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ConfigError, match="WORLD_SIZE: environment value 'two'"):
        dist_helpers.init_from_env("cpu")


def test_the_collective_timeout_comes_from_the_operator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STYLEGAN_DIST_TIMEOUT_S", raising=False)
    assert dist_helpers.collective_timeout_s() == 1800
    monkeypatch.setenv("STYLEGAN_DIST_TIMEOUT_S", "600")
    assert dist_helpers.collective_timeout_s() == 600
    monkeypatch.setenv("STYLEGAN_DIST_TIMEOUT_S", "0")
    with pytest.raises(ConfigError, match="STYLEGAN_DIST_TIMEOUT_S=0: must be a positive"):
        dist_helpers.init_from_env("cpu")


def test_batch_must_split_across_ranks() -> None:
    assert per_rank_batch(8, 2) == 4
    with pytest.raises(ConfigError, match="batch: 6 images do not split across 4 ranks") as info:
        per_rank_batch(6, 4)
    assert info.value.exit_code == EXIT_CONFIG
    assert rank_slice(torch.arange(8), 1, 2).tolist() == [4, 5, 6, 7]


def test_accumulation_rounds_divide_the_rank_share_or_name_the_field() -> None:
    assert accumulation_rounds(16, None) == 1
    assert accumulation_rounds(16, 16) == 1
    assert accumulation_rounds(16, 4) == 4
    for bad in (3, 32):
        with pytest.raises(ConfigError, match=r"^batch_per_gpu: .*valid: 1, 2, 4, 8, 16$"):
            accumulation_rounds(16, bad)


def test_stats_collector_weights_by_count() -> None:
    stats = StatsCollector()
    stats.add("loss", 1.0, count=1)
    stats.add("loss", torch.tensor([4.0, 4.0]), count=3)
    stats.add_many({"p": 0.5})
    assert stats.reduce() == {"loss": pytest.approx(13 / 4), "p": 0.5}
    assert stats.reduce() == {}  # a new collection


def test_average_gradients_replaces_non_finite_values() -> None:
    layer = torch.nn.Linear(2, 1)
    layer.weight.grad = torch.tensor([[float("nan"), float("inf")]])
    average_gradients(layer)  # bias has no gradient: left alone
    assert layer.weight.grad.tolist() == [[0.0, 1e5]] and layer.bias.grad is None


# ---------------------------------------------------------------------------------------------
# Two gloo ranks


def _constant_noise() -> None:
    """Make the synthesis network's noise inputs deterministic (the loss asks for random)."""
    from stylegan_trainer.model import generator as networks

    original = networks.SynthesisNetwork.forward
    if getattr(original, "_constant", False):
        return

    def forward(self: Any, ws: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        return original(self, ws, noise_mode="const")

    forward._constant = True  # type: ignore[attr-defined]
    networks.SynthesisNetwork.forward = forward  # type: ignore[method-assign]


def _options(dataset: str, outdir: str) -> Any:
    from stylegan_trainer.train.options import TrainingOptions

    return TrainingOptions(
        dataset=dataset, preset="cpu", resolution=8, batch=8, kimg=1.0, outdir=outdir,
        resume="none", augment="noaug", device="cpu", progress_bar="off",
        overrides=dict(EQUIVALENCE),
    )  # fmt: skip


def _train(options: Any, ctx: Any) -> dict[str, torch.Tensor]:
    from stylegan_trainer.report.progress import SilentReporter
    from stylegan_trainer.train.loop import Trainer

    trainer = Trainer(options, ctx, reporter=SilentReporter())
    for _ in range(STEPS):
        trainer.train_step()
    weights = {f"G.{k}": v for k, v in trainer.G.state_dict().items()}
    weights.update({f"D.{k}": v for k, v in trainer.D.state_dict().items()})
    weights.update({f"G_ema.{k}": v for k, v in trainer.G_ema.state_dict().items()})
    return {k: v.detach().clone() for k, v in weights.items()}


def _rank_main(rank: int, port: int, dataset: str, outdir: str, result: str) -> None:
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )  # fmt: skip
    torch.set_num_threads(1)
    _constant_noise()
    ctx = dist_helpers.init_from_env("cpu")
    try:
        assert (ctx.rank, ctx.world_size, ctx.backend) == (rank, 2, "gloo")
        # The stats channel: names seen on one rank only still average over all observations.
        stats = StatsCollector()
        stats.add("shared", float(rank + 1), count=rank + 1)  # 1 x 1.0 and 2 x 2.0
        if rank == 1:
            stats.add("only_rank1", 7.0)
        reduced = stats.reduce()
        assert reduced == {"shared": pytest.approx(5 / 3), "only_rank1": 7.0}, reduced
        weights = _train(_options(dataset, outdir), ctx)
        if rank == 0:
            torch.save(weights, result)
    finally:
        dist_helpers.shutdown()


@pytest.mark.timeout(240)
def test_two_ranks_of_4_train_like_one_rank_of_8(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, noise_dataset: Callable[..., str]
) -> None:
    torch.set_num_threads(1)
    data = noise_dataset(16, seed=1)
    result = tmp_path / "two_ranks.pt"
    mp.spawn(
        _rank_main, args=(free_port(), str(data), str(tmp_path / "two"), str(result)),
        nprocs=2, join=True,
    )  # fmt: skip

    from stylegan_trainer.model import generator as networks

    monkeypatch.setattr(networks.SynthesisNetwork, "forward", networks.SynthesisNetwork.forward)
    _constant_noise()
    single = _train(_options(str(data), str(tmp_path / "one")), None)
    double = torch.load(result, weights_only=True)
    assert single.keys() == double.keys()
    worst = max((single[k] - double[k]).abs().max().item() for k in single)
    assert worst < 1e-5, f"largest difference {worst}"
    # ...and training really moved the weights, so the comparison means something.
    from stylegan_trainer.report.progress import SilentReporter
    from stylegan_trainer.train.loop import Trainer

    fresh = Trainer(_options(str(data), str(tmp_path / "fresh")), reporter=SilentReporter())
    moved = max((v - single[f"G.{k}"]).abs().max().item() for k, v in fresh.G.state_dict().items())
    assert moved > 1e-3


def _resume_rank_main(rank: int, port: int, dataset: str, outdir: str, result: str) -> None:
    """Two ranks: train, checkpoint, then a fresh Trainer resumes from it on both ranks."""
    import dataclasses

    from stylegan_trainer.report.progress import SilentReporter
    from stylegan_trainer.train.loop import Trainer

    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )  # fmt: skip
    torch.set_num_threads(1)
    ctx = dist_helpers.init_from_env("cpu")
    try:
        options = _options(dataset, outdir)
        first = Trainer(options, ctx, reporter=SilentReporter())
        for _ in range(2):
            first.train_step()
        first.snapshot()
        dist_helpers.barrier()
        resumed = Trainer(dataclasses.replace(options, resume="latest"), ctx,
                          reporter=SilentReporter())
        same = all(torch.equal(a, b) for a, b in zip(
            first.G.state_dict().values(), resumed.G.state_dict().values(), strict=True))
        torch.save({"same": same, "nimg": resumed.cur_nimg}, f"{result}.{rank}")
    finally:
        dist_helpers.shutdown()


@pytest.mark.timeout(240)
def test_two_ranks_resume_from_a_checkpoint(
    tmp_path: Path, noise_dataset: Callable[..., str]
) -> None:
    """Rank 0 reads the checkpoint and sends it to rank 1 (a regression: tensors once failed
    to cross ``broadcast_object_list``); both ranks continue from the saved weights."""
    data = noise_dataset(16, seed=2)
    result = tmp_path / "resume"
    mp.spawn(
        _resume_rank_main, args=(free_port(), str(data), str(tmp_path / "run"), str(result)),
        nprocs=2, join=True,
    )  # fmt: skip
    for rank in (0, 1):
        seen = torch.load(f"{result}.{rank}", weights_only=True)
        assert seen["same"], f"rank {rank} did not resume the checkpointed weights"
        assert seen["nimg"] == 16  # two steps of the global batch of 8


def test_batch_per_gpu_rounds_train_like_one_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, noise_dataset: Callable[..., str]
) -> None:
    """Batch 8 in 4 rounds of 2 gives the weights of batch 8 in one pass: every phase's
    rounds add up to the gradient of the whole batch (``phases.optimize_phase``). The
    settings are those of the two-rank test above (one-image minibatch-std groups, no style
    mixing or path length, constant noise), which make one batch's gradient independent of
    how it is split; with them on, rounds differ as the official code's rounds do."""
    import dataclasses

    from stylegan_trainer.model import generator as networks

    monkeypatch.setattr(networks.SynthesisNetwork, "forward", networks.SynthesisNetwork.forward)
    _constant_noise()
    data = str(noise_dataset(16, seed=2))
    whole = _train(_options(data, str(tmp_path / "whole")), None)
    options = dataclasses.replace(_options(data, str(tmp_path / "rounds")), batch_per_gpu=2)
    rounds = _train(options, None)
    # w_avg (the truncation centre) is a running mean moved once per pass, as the official
    # loop moves it once per round: not a gradient, so it may differ.
    diffs = {k: (whole[k] - rounds[k]).abs().max().item() for k in whole
             if not k.endswith("w_avg")}
    worst = max(diffs.values())
    assert worst < 1e-5, f"largest difference {worst}"
