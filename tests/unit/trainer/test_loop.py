"""The training loop: options, artefacts, bit-exact resume, stopping, exit codes, commands."""

from __future__ import annotations

import io
import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import PIL.Image
import pytest
import torch
from click.testing import CliRunner
from tests.support import process_gone, wait_for

from stylegan_common.errors import EXIT_CONFIG, EXIT_OK, EXIT_RETRYABLE, ConfigError, StorageError
from stylegan_trainer.data.dataset import ArrayDataset
from stylegan_trainer.report.progress import Reporter, SilentReporter
from stylegan_trainer.train import checkpoint as ckpt
from stylegan_trainer.train.build import resolve_data_workers
from stylegan_trainer.train.loop import Trainer
from stylegan_trainer.train.options import TrainingOptions, parse_augment

# A network small enough for a unit test; regularisation every 2 steps so every phase runs.
TINY = {
    "z_dim": 16, "w_dim": 16, "channel_base": 128, "channel_max": 16, "mapping_layers": 1,
    "g_reg_interval": 2, "d_reg_interval": 2,
}  # fmt: skip
BATCH = 4


@pytest.fixture(scope="module")
def dataset_dir(noise_dataset: Callable[..., str]) -> str:
    return noise_dataset(12)


def _options(dataset: str, outdir: Path, steps: int, **changes: Any) -> TrainingOptions:
    values: dict[str, Any] = dict(
        dataset=dataset, preset="cpu", resolution=8, batch=BATCH, kimg=steps * BATCH / 1000,
        outdir=str(outdir), resume="none", progress_bar="off", device="cpu", tick_kimg=1.0,
        snapshot_kimg=1.0, grid_seeds=4, overrides=dict(TINY),
    )  # fmt: skip
    values.update(changes)
    return TrainingOptions(**values)


def _weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    out = {}
    for prefix, module in (("G", trainer.G), ("D", trainer.D), ("G_ema", trainer.G_ema)):
        out.update({f"{prefix}.{k}": v.clone() for k, v in module.state_dict().items()})
    for prefix, opt in (("opt_G", trainer.opt_G), ("opt_D", trainer.opt_D)):
        for index, state in opt.state_dict()["state"].items():
            out.update(
                {f"{prefix}.{index}.{k}": torch.as_tensor(v).clone() for k, v in state.items()}
            )
    out["pl_mean"] = trainer.loss.pl_mean.clone()
    out["augment_p"] = torch.tensor(trainer.augment_p)
    if trainer.ada is not None:
        last_sign = trainer.ada.last_sign
        out["ada_last_sign"] = torch.tensor(-2.0 if last_sign is None else last_sign)
        out["ada_updates"] = torch.tensor(trainer.ada.num_updates)
    return out


def _assert_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"differ: {different[:5]}"


# ---------------------------------------------------------------------------------------------
# Options


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("preset", "huge", "preset: 'huge' is not one of"),
        ("resolution", 48, "resolution: 48 is not a power of two"),
        ("kimg", -1, "kimg: -1 must be > 0"),
        ("batch", 0, "batch: 0 must be a positive"),
        ("augment", "sometimes", "augment: 'sometimes' is not one of auto, ada, noaug, fixed:<p>"),
        ("augment", "fixed:1.5", r"augment: 'fixed:1.5' needs a probability in \[0, 1\]"),
        ("resume", "", "resume: empty"),
        ("resume_fallback", "", "resume_fallback: '' is not valid; give a checkpoint path/URI"),
        ("resume_fallback", "none", "resume_fallback: 'none' is not valid"),
        ("max_seconds", "soon", "max_seconds: 'soon' is not a number"),
        ("device", "tpu", "device: 'tpu' is not one of"),
        ("keep_checkpoints", 0, "keep_checkpoints: 0 must be at least 1"),
        ("xflip", "yes", "xflip: 'yes' is not a bool"),
        ("progress_bar", "maybe", "progress_bar: 'maybe' is not one of auto, on, off"),
        ("data_workers", -1, r"data_workers: -1 is not valid; use auto or a whole number >= 0"),
        ("data_workers", "many", "data_workers: 'many' is not valid; use auto or a whole"),
        ("data_workers", True, "data_workers: True is not valid"),
    ],
)
def test_bad_options_name_the_field(field: str, value: Any, message: str) -> None:
    options = TrainingOptions(**{field: value})
    with pytest.raises(ConfigError, match=message) as info:
        options.validate()
    assert info.value.exit_code == EXIT_CONFIG


def test_options_from_mapping_accepts_dashes_and_refuses_unknown_keys() -> None:
    options = TrainingOptions.from_mapping({"snapshot-kimg": 5, "xflip": True})
    assert options.snapshot_kimg == 5 and options.xflip is True
    with pytest.raises(ConfigError, match="run.yaml: unknown option 'lr'; valid: dataset, preset"):
        TrainingOptions.from_mapping({"lr": 0.1}, source="run.yaml")


def test_data_workers_auto_is_none_on_cpu_and_up_to_three_per_rank_on_cuda(
    dataset_dir: str,
) -> None:
    from stylegan_trainer.data.dataset import open_dataset

    files = open_dataset(dataset_dir, 8)
    in_memory = ArrayDataset("mem", torch.zeros([1, 3, 8, 8], dtype=torch.uint8).numpy())
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert resolve_data_workers("auto", cpu, files, cores=16) == 0
    assert [resolve_data_workers("auto", cuda, files, cores=c) for c in (1, 2, 16)] == [1, 2, 3]
    assert resolve_data_workers("auto", cuda, in_memory, cores=16) == 0  # nothing to decode
    assert resolve_data_workers(2, cpu, files, cores=1) == 2  # asked for: as asked
    assert resolve_data_workers("0", cuda, files, cores=16) == 0


def test_parse_augment() -> None:
    assert parse_augment("fixed:0.25") == ("fixed", 0.25)
    assert parse_augment("ada") == ("ada", 0.0)


def test_configuration_errors_come_before_compute(dataset_dir: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="batch: 6 images do not split across 4 ranks"):
        from stylegan_trainer.train.distributed import per_rank_batch

        per_rank_batch(6, 4)
    with pytest.raises(ConfigError, match="cond: the dataset .* has no labels"):
        Trainer(_options(dataset_dir, tmp_path, 1, cond=True), reporter=SilentReporter())
    with pytest.raises(ConfigError, match="not_a_setting: not a preset setting"):
        Trainer(_options(dataset_dir, tmp_path, 1, overrides={"not_a_setting": 1}))
    with pytest.raises(ConfigError, match="resume: checkpoint .*missing.pt does not exist"):
        Trainer(_options(dataset_dir, tmp_path, 1, resume=str(tmp_path / "missing.pt")))
    assert not (tmp_path / "checkpoints").exists()


# ---------------------------------------------------------------------------------------------
# A run and its artefacts


def test_run_writes_checkpoint_grid_stats_and_progress(dataset_dir: str, tmp_path: Path) -> None:
    options = _options(dataset_dir, tmp_path, 3, tick_kimg=0.004, snapshot_kimg=0.008)
    trainer = Trainer(options)
    assert trainer.augment_mode == "ada"  # ADA by default, as the published code
    assert trainer.run() == EXIT_OK
    assert trainer.cur_nimg == 3 * BATCH
    pointer = json.loads((tmp_path / "latest.json").read_text())
    assert pointer["checkpoint"]["name"] == "checkpoints/ckpt-000000012.pt"
    assert [e["name"] for e in pointer["history"]] == ["checkpoints/ckpt-000000008.pt"]
    stats = [json.loads(line) for line in (tmp_path / "stats.jsonl").read_text().splitlines()]
    assert [s["tick"] for s in stats] == [0, 1, 2]
    assert all("Loss/G/loss" in s and "Loss/D/loss" in s and "augment_p" in s for s in stats)
    progress = json.loads((tmp_path / "progress.json").read_text())
    assert progress["kimg"] == pytest.approx(0.012) and progress["error"] is None
    assert progress["last_checkpoint"] == "checkpoints/ckpt-000000012.pt"
    options_json = json.loads((tmp_path / "training_options.json").read_text())
    assert options_json["options"]["seed"] == 0 and options_json["network"]["resolution"] == 8
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == [
        "fakes-000000008.png", "fakes-000000012.png", "reals.png",
    ]  # fmt: skip
    with PIL.Image.open(tmp_path / "samples" / "fakes-000000012.png") as grid:
        assert grid.size == (16, 16)  # 4 seeds, 2 x 2 grid of 8x8
    state = ckpt.load_latest(ckpt.LocalStorage(tmp_path))
    assert set(ckpt.REQUIRED_KEYS) <= set(state)
    G = ckpt.load_generator(str(tmp_path))
    assert G(torch.zeros([2, G.z_dim]), noise_mode="const").shape == (2, 3, 8, 8)


def test_same_seed_same_weights(dataset_dir: str, tmp_path: Path) -> None:
    runs = []
    for seed, name in ((5, "a"), (5, "b"), (6, "c")):
        trainer = Trainer(
            _options(dataset_dir, tmp_path / name, 2, seed=seed), reporter=SilentReporter()
        )
        for _ in range(2):
            trainer.train_step()
        runs.append(_weights(trainer))
    _assert_identical(runs[0], runs[1])
    assert any(not torch.equal(runs[0][k], runs[2][k]) for k in runs[0] if k.startswith("G."))


@pytest.mark.parametrize("augment", ["fixed:0.3", "ada"])
def test_resume_is_bit_exact(dataset_dir: str, tmp_path: Path, augment: str) -> None:
    # 6 steps: ADA updates at step 4 and the checkpoint falls mid-interval (step 3), Greg and
    # Dreg run every 2 steps, augmentation is on: every piece of state must travel.
    common = dict(augment=augment)
    straight = Trainer(
        _options(dataset_dir, tmp_path / "straight", 6, **common), reporter=SilentReporter()
    )
    assert straight.run() == EXIT_OK
    first = Trainer(
        _options(dataset_dir, tmp_path / "split", 3, **common), reporter=SilentReporter()
    )
    assert first.run() == EXIT_OK
    del first
    torch.manual_seed(12345)  # whatever the process did in between must not matter
    resumed = Trainer(
        _options(dataset_dir, tmp_path / "split", 6, resume="latest", **common),
        reporter=SilentReporter(),
    )
    assert resumed.cur_nimg == 3 * BATCH and resumed.sampler.position == 3 * BATCH
    assert resumed.run() == EXIT_OK
    _assert_identical(_weights(straight), _weights(resumed))


def test_resume_takes_this_runs_learning_rates_and_keeps_adams_moments(
    dataset_dir: str, tmp_path: Path
) -> None:
    assert Trainer(_options(dataset_dir, tmp_path, 2), reporter=SilentReporter()).run() == EXIT_OK
    saved = ckpt.load_latest(ckpt.LocalStorage(tmp_path))
    old_lr = saved["preset"]["lr_g"]
    c = 2 / 3  # TINY regularises every 2 steps: c = interval / (interval + 1)
    assert saved["opt_G"]["param_groups"][0]["lr"] == pytest.approx(old_lr * c)

    def resume(**overrides: Any) -> tuple[Trainer, str]:
        out = io.StringIO()
        options = _options(
            dataset_dir, tmp_path, 3, resume="latest", overrides=dict(TINY, **overrides)
        )
        return Trainer(options, reporter=Reporter(tmp_path, 1, "off", out=out)), out.getvalue()

    resumed, log = resume(lr_g=0.001, lr_d=0.004, betas=[0.0, 0.9])
    for optimizer, lr in ((resumed.opt_G, 0.001), (resumed.opt_D, 0.004)):
        for group in optimizer.param_groups:
            assert group["lr"] == pytest.approx(lr * c)
            assert group["betas"] == pytest.approx((0.0, 0.9**c))
    for name, optimizer in (("opt_G", resumed.opt_G), ("opt_D", resumed.opt_D)):
        state, saved_state = optimizer.state_dict()["state"], saved[name]["state"]
        assert state and state.keys() == saved_state.keys()
        for index, moments in state.items():
            for key in ("step", "exp_avg", "exp_avg_sq"):
                assert torch.equal(moments[key], saved_state[index][key]), (name, index, key)
    assert log.splitlines() == [
        f"resume: lr_g {old_lr:g} -> 0.001, lr_d {old_lr:g} -> 0.004, "
        "betas [0, 0.99] -> [0, 0.9] (options)"
    ]
    unchanged, log = resume()
    assert log == ""
    assert unchanged.opt_G.state_dict()["param_groups"] == saved["opt_G"]["param_groups"]


def test_resume_with_data_workers_continues_exactly(dataset_dir: str, tmp_path: Path) -> None:
    # 12 images, 4 per step: the checkpoint after step 3 ends an epoch, and the workers have
    # decoded batches of the next one by then; the resumed run must start with step 4's.
    common: dict[str, Any] = dict(augment="noaug", data_workers=0)
    straight = Trainer(
        _options(dataset_dir, tmp_path / "straight", 5, **common), reporter=SilentReporter()
    )
    assert straight.run() == EXIT_OK and straight.data_workers == 0
    common["data_workers"] = 2
    runs: list[Trainer] = []
    ahead: list[int] = []
    pids: set[int] = set()

    def watch(_: dict) -> None:  # at every tick: the workers of the run at hand
        ahead.append(runs[-1].loader.batches_ahead)
        pids.update(runs[-1].loader.worker_pids)

    def trainer(steps: int, resume: str) -> Trainer:
        options = _options(dataset_dir, tmp_path / "split", steps, resume=resume, **common)
        runs.append(Trainer(options, reporter=Reporter(tmp_path / "split", 1, "off", [watch])))
        return runs[-1]

    assert trainer(3, "none").run() == EXIT_OK and max(ahead) >= 1
    saved = ckpt.load_latest(ckpt.LocalStorage(tmp_path / "split"))
    assert saved["sampler"]["position"] == saved["cur_nimg"] == 3 * BATCH
    assert len(pids) == 2 and all(process_gone(pid) for pid in pids)
    resumed = trainer(5, "latest")
    assert resumed.run() == EXIT_OK
    assert len(pids) == 4 and all(process_gone(pid) for pid in pids)
    _assert_identical(_weights(straight), _weights(resumed))


def test_ada_updates_every_four_steps_from_the_sign_of_real_scores(
    dataset_dir: str, tmp_path: Path
) -> None:
    trainer = Trainer(_options(dataset_dir, tmp_path, 8, augment="ada"), reporter=SilentReporter())
    calls: list[tuple[float, int]] = []
    original = trainer.ada.update
    trainer.ada.update = lambda pipe, sign, batch: (
        calls.append((sign, batch)) or original(pipe, sign, batch)
    )
    for _ in range(8):
        trainer.train_step()
    assert len(calls) == 2 and all(-1 <= s <= 1 and b == BATCH for s, b in calls)
    noaug = Trainer(_options(dataset_dir, tmp_path, 1, augment="noaug"), reporter=SilentReporter())
    assert noaug.augment_pipe is None and noaug.ada is None


def test_resume_of_another_network_is_a_config_error(dataset_dir: str, tmp_path: Path) -> None:
    assert Trainer(_options(dataset_dir, tmp_path, 1), reporter=SilentReporter()).run() == EXIT_OK
    with pytest.raises(
        ConfigError,
        match=r"resume: checkpoint .*ckpt-000000004.pt is of another network: resolution=8",
    ):
        Trainer(_options(dataset_dir, tmp_path, 2, resolution=16, resume="latest"))


def test_resume_latest_without_a_checkpoint_starts_fresh(dataset_dir: str, tmp_path: Path) -> None:
    trainer = Trainer(
        _options(dataset_dir, tmp_path, 1, resume="latest"), reporter=SilentReporter()
    )
    assert trainer.cur_nimg == 0 and trainer.last_checkpoint is None


# ---------------------------------------------------------------------------------------------
# Stopping and failing


def test_sigterm_checkpoints_and_exits_75(dataset_dir: str, tmp_path: Path) -> None:
    def preempt(progress: dict) -> None:
        if progress.get("kimg"):  # after the first tick line
            os.kill(os.getpid(), signal.SIGTERM)

    reporter = Reporter(tmp_path, 1.0, progress_bar="off", hooks=[preempt])
    trainer = Trainer(_options(dataset_dir, tmp_path, 50, tick_kimg=0.004), reporter=reporter)
    assert trainer.run() == EXIT_RETRYABLE
    assert trainer.cur_nimg < 50 * BATCH
    assert ckpt.load_latest(ckpt.LocalStorage(tmp_path))["cur_nimg"] == trainer.cur_nimg
    assert signal.getsignal(signal.SIGTERM) is not None  # the previous handler is back


def _ignores_sigterm(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    mask = int(
        next(line for line in status.splitlines() if line.startswith("SigIgn:")).split()[1], 16
    )
    return bool(mask & (1 << (signal.SIGTERM - 1)))


def test_sigterm_with_data_workers_checkpoints_and_leaves_no_worker(
    dataset_dir: str, tmp_path: Path
) -> None:
    pids: list[int] = []

    def preempt(progress: dict) -> None:
        if progress.get("kimg") and not pids:
            pids.extend(trainer.loader.worker_pids)
            wait_for(lambda: all(_ignores_sigterm(p) for p in pids), timeout=30,
                     what="the data workers to set up their signals")  # fmt: skip
            # torchrun stops a rank by signalling its process group: the workers too.
            for pid in [*pids, os.getpid()]:
                os.kill(pid, signal.SIGTERM)

    reporter = Reporter(tmp_path, 1.0, progress_bar="off", hooks=[preempt])
    options = _options(dataset_dir, tmp_path, 50, tick_kimg=0.004, data_workers=2)
    trainer = Trainer(options, reporter=reporter)
    assert trainer.run() == EXIT_RETRYABLE
    assert len(pids) == 2 and trainer.cur_nimg < 50 * BATCH
    saved = ckpt.load_latest(ckpt.LocalStorage(tmp_path))
    assert saved["cur_nimg"] == trainer.cur_nimg == saved["sampler"]["position"]
    assert all(process_gone(pid) for pid in pids)


def test_time_bound_stops_cleanly_with_exit_0(dataset_dir: str, tmp_path: Path) -> None:
    trainer = Trainer(_options(dataset_dir, tmp_path, 50, max_seconds=0), reporter=SilentReporter())
    assert trainer.run() == EXIT_OK
    assert trainer.cur_nimg == BATCH  # one step, then the bound
    assert trainer.last_checkpoint == "checkpoints/ckpt-000000004.pt"


def test_checkpoint_write_failure_is_retryable(dataset_dir: str, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the checkpoint folder should be")
    options = _options(dataset_dir, tmp_path / "run", 1, checkpoint_uri=str(blocker))
    trainer = Trainer(options)
    with pytest.raises(StorageError) as info:
        trainer.run()
    assert info.value.exit_code == EXIT_RETRYABLE
    assert "StorageError" in json.loads((tmp_path / "run" / "progress.json").read_text())["error"]


# ---------------------------------------------------------------------------------------------
# The train command


def _write_config(path: Path, dataset: str, outdir: Path, **changes: Any) -> Path:
    config = _options(dataset, outdir, 2).to_dict()
    config.update(changes)
    path.write_text(json.dumps(config))
    return path


def test_train_command_runs_a_config_file(dataset_dir: str, tmp_path: Path) -> None:
    from stylegan_trainer.cli.train_commands import train_cmd

    config = _write_config(tmp_path / "run.json", dataset_dir, tmp_path / "out")
    result = CliRunner().invoke(train_cmd, ["--config", str(config), "--seed", "3"])
    assert result.exit_code == EXIT_OK, result.output
    assert (
        json.loads((tmp_path / "out" / "training_options.json").read_text())["options"]["seed"] == 3
    )


def test_train_command_bad_config_exits_64_with_one_line(dataset_dir: str, tmp_path: Path) -> None:
    from stylegan_trainer.cli.train_commands import train_cmd

    config = _write_config(tmp_path / "run.json", dataset_dir, tmp_path / "out", augment="always")
    result = CliRunner().invoke(train_cmd, ["--config", str(config)])
    assert result.exit_code == EXIT_CONFIG
    assert result.output.strip().splitlines() == [
        f"error: {config}: augment: 'always' is not one of auto, ada, noaug, fixed:<p>"
    ]  # the file's value is checked as it is read, so the message names the file
    assert not (tmp_path / "out").exists()
    (tmp_path / "broken.yaml").write_text("dataset: [unclosed")
    result = CliRunner().invoke(train_cmd, ["--config", str(tmp_path / "broken.yaml")])
    assert result.exit_code == EXIT_CONFIG and "broken.yaml" in result.output
    result = CliRunner().invoke(
        train_cmd, ["--dataset", str(tmp_path / "nowhere"), "--resolution", "8"]
    )
    assert result.exit_code == EXIT_CONFIG and "nowhere does not exist" in result.output
    config = _write_config(tmp_path / "ok.json", dataset_dir, tmp_path / "out")
    result = CliRunner().invoke(train_cmd, ["--config", str(config), "--data-workers", "many"])
    assert result.exit_code == EXIT_CONFIG
    assert result.output.strip().startswith("error: data_workers: 'many' is not valid; use auto")
    assert not (tmp_path / "out").exists()


def test_data_workers_flag_takes_auto_or_a_number(tmp_path: Path) -> None:
    from stylegan_trainer.cli.train_commands import build_options

    assert build_options(None, {"data_workers": 2}).data_workers == 2
    assert build_options(None, {}).data_workers == "auto"
    config = tmp_path / "run.yaml"
    config.write_text("data_workers: 3\n")
    assert build_options(str(config), {}).data_workers == 3


# ---------------------------------------------------------------------------------------------
# Benchmark and demo helpers


def test_benchmark_command_prints_the_figures_as_json() -> None:
    from stylegan_trainer.cli.train_commands import benchmark_cmd

    args = ["--resolution", "8", "--preset", "cpu", "--steps", "1", "--device", "cpu"]
    result = CliRunner().invoke(benchmark_cmd, [*args, "--batch", "4", "-o", "json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert figures["preset"] == "cpu" and figures["device"] == "cpu" and figures["batch"] == 4
    assert set(figures["phase_seconds"]) == {"Gmain", "Greg", "Dmain", "Dreg"}
    assert figures["sec_per_kimg"] > 0 and figures["images_per_sec"] > 0
    assert figures["peak_mem_bytes"] > 2**20
    # sec/step weighs the regularisation phases by their intervals (4 and 16).
    phases = figures["phase_seconds"]
    weighted = phases["Gmain"] + phases["Dmain"] + phases["Greg"] / 4 + phases["Dreg"] / 16
    assert weighted <= figures["sec_per_step"] < weighted + phases["Gmain"] + phases["Dmain"]


def test_demo_cost_and_launch_line() -> None:
    from stylegan_trainer.cli.train_commands import demo_cost, torchrun_command

    assert demo_cost(cores=2, seconds=1800, price_per_vcpu_hour=0.0475) == pytest.approx(0.0475)
    line = torchrun_command(2, ["--preset", "cpu"])
    assert line[1:4] == ["-m", "torch.distributed.run", "--standalone"]
    assert line[4:] == [
        "--nproc-per-node",
        "2",
        "-m",
        "stylegan_trainer.cli.train_commands",
        "--preset",
        "cpu",
    ]
