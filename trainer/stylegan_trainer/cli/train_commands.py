"""The ``stylegan train``, ``dataset``, ``benchmark`` and ``demo`` commands (click).

``stylegan train --config FILE`` reads the options (YAML or JSON, keys as in
``options.TrainingOptions``) and lets flags override them; it runs alone or as one rank under
``torchrun`` (``python -m torch.distributed.run ... -m stylegan_trainer.cli.train_commands``), and
exits 0 (done or time bound), 64 (bad configuration, one line on stderr, before any compute)
or 75 (retryable: checkpoint I/O, SIGTERM before completion). Under ``stylegan torchrun`` it
also leaves a nonzero code (and the error line) in the launcher's folder (``worker_exits``),
since torchrun itself reports every failed worker as 1.

``stylegan demo`` trains the ``cpu`` preset on ``builtin:lfw`` at 32x32 with two local ranks
under torchrun for a bounded time, then picks its best snapshot, writes a grid of faces,
measures their quality, plots the run (``plots.plot_run``) and prints what it cost at a stated
price per vCPU-hour.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import click
import yaml

from stylegan_common.cli import output_option, run_command
from stylegan_common.errors import EXIT_CONFIG, ConfigError, TrainerError
from stylegan_trainer.cli.worker_exits import record_exit

# Demo price: an assumption, about the 2024 on-demand list price of one vCPU of a general-
# purpose cloud VM with its share of memory (GCP n2-standard-2: 0.0971 USD/h for 2 vCPUs).
DEFAULT_CPU_PRICE_PER_HOUR = 0.0475
DEMO_GRID_SEEDS = 64
# The demo's recipe (``TrainingOptions`` fields) on top of the cpu preset, for faces within
# ten minutes on 2 shared cores; the acceptance test of a short run trains with it too
# (tests/e2e/test_short_run_learns_faces.py). Mirrored copies double the 100 faces; ADA may
# move 5x faster than the published 500 kimg because D memorises 100 faces within a few
# kimg. Measured on this project's 2-core machine (same seed): with the preset's R1 gamma
# (0.0002 * 32^2 / 16 = 0.0128), D separated reals and fakes by +3/-3.5 logits from the first
# kimg to the last and G drew grey checkerboards; gamma 1 keeps D's scores near +-1 so G gets
# useful gradients; without path-length regularisation a step is about 15% cheaper, and twice
# the published learning rate brought head outlines, eye bands and mouths within 20 kimg.
# Batch 8 rather than the preset's 16: on these cores learning goes by steps, not images
# (HOG precision reached ~0.6-0.8 after about 1,100-1,400 steps at batch 4, 8 and 16 alike),
# and a step of 8 costs 0.7x one of 16 (1 process, 2 threads: 19.0 vs 13.7 s/kimg), so the
# same faces come 1.4x sooner; 2 ranks x 4 still fill minibatch-stddev groups of 4.
DEMO_OPTIONS: dict[str, Any] = {
    "dataset": "builtin:lfw",
    "preset": "cpu",
    "resolution": 32,
    "batch": 8,
    "xflip": True,
    "ada_kimg": 100.0,
    "overrides": {"r1_gamma": 1.0, "pl_weight": 0.0, "lr_g": 0.005, "lr_d": 0.005},
}


def _fail(exc: TrainerError) -> NoReturn:
    click.echo(f"error: {exc}", err=True)
    sys.exit(exc.exit_code)


def _exit_training(code: int, exc: TrainerError | None = None) -> NoReturn:
    """``train``'s way out: the code for a listening ``stylegan torchrun``, then the exit."""
    record_exit(code, str(exc) if exc is not None else "")
    if exc is not None:
        _fail(exc)
    sys.exit(code)


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


# ----------------------------------------------------------------------------------------------
# train


def read_config_file(path: str) -> dict[str, Any]:
    """The mapping in a YAML/JSON file; ``ConfigError`` naming the file otherwise."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"config: cannot read {path}: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)  # JSON is YAML
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"config: {path} is not valid YAML/JSON: {exc}".replace("\n", " ")
        ) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config: {path} must hold a mapping of options, not {type(data).__name__}"
        )
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE read as YAML (``lr_g=0.002``, ``betas=[0, 0.99]``)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"set: {text!r} is not KEY=VALUE, e.g. --set lr_g=0.002")
    try:
        return key.strip(), yaml.safe_load(raw)
    except yaml.YAMLError:
        raise ConfigError(f"set: cannot read the value of {text!r}") from None


def build_options(config: str | None, flags: dict[str, Any], sets: tuple[str, ...] = ()) -> Any:
    """Options from the config file, then the flags that were given, then ``--set`` overrides."""
    from stylegan_trainer.train.options import TrainingOptions

    values: dict[str, Any] = read_config_file(config) if config else {}
    source = config or "flags"
    options = TrainingOptions.from_mapping(values, source=source)
    for name, value in flags.items():
        if value is not None:
            setattr(options, name, value)
    if sets:
        options.overrides = dict(options.overrides or {}, **dict(parse_override(s) for s in sets))
    options.validate()
    return options


def run_training(options: Any) -> int:
    """Join the rank group from the environment, train, leave the group; the exit code."""
    from stylegan_trainer.train.distributed import barrier, init_from_env, shutdown
    from stylegan_trainer.train.loop import Trainer

    ctx = init_from_env(options.device)
    try:
        code = Trainer(options, ctx).run()
        # Every rank leaves together: a rank that tears its gloo pairs down while rank 0 is
        # still publishing its last files made rank 0 abort at exit now and then ("terminate
        # called without an active exception", exit -6). Only on the way out of a finished or
        # agreed stop: after an error a peer may never arrive.
        barrier()
        return code
    finally:
        shutdown()


class _TrainCommand(click.Command):
    """``train``, whose usage errors (exit 64) are also recorded for a listening ``stylegan
    torchrun``: otherwise torchrun would report them as its own 1, which the Job retries."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as exc:
            record_exit(EXIT_CONFIG, exc.format_message())
            raise


@click.command("train", cls=_TrainCommand)
@click.option("--config", "config", type=click.Path(dir_okay=False), help="YAML/JSON options file.")
@click.option("--dataset", help="Folder, .zip, builtin:lfw or gs:// URI.")
@click.option("--preset", help="stylegan2, paper256, paper512, paper1024, cifar, auto or cpu.")
@click.option("--resolution", type=int, help="Image size, a power of two.")
@click.option("--kimg", type=float, help="Train until this many thousand real images.")
@click.option("--batch", type=int, help="Global batch size (all ranks).")
@click.option("--batch-per-gpu", type=int,
              help="Images per GPU per pass; the rank's share runs in rounds (accumulated).")
@click.option("--snapshot-kimg", type=float, help="Checkpoint and grid every this many kimg.")
@click.option("--seed", type=int, help="Random seed.")
@click.option("--outdir", help="Folder for samples, stats.jsonl and progress.json.")
@click.option("--xflip/--no-xflip", default=None, help="Add mirrored copies of the images.")
@click.option("--augment", help="auto, ada, noaug or fixed:<p>.")
@click.option("--ada-kimg", type=float, help="ADA speed: p can go 0 -> 1 in this many kimg.")
@click.option("--mixed-precision", type=click.Choice(["auto", "fp16", "bf16", "none"]),
              help="Reduced precision on CUDA: auto (bf16 where native, else fp16) by default.")
@click.option("--resume", help="latest, none, or a checkpoint path/URI.")
@click.option(
    "--resume-fallback",
    help="With --resume latest: checkpoint or run folder to start from while the checkpoint "
    "storage holds none yet.",
)
@click.option(
    "--init-from",
    help="Start a fresh run from these G, D and G_ema weights: a checkpoint, a run folder or a "
    "StyleGAN2-ADA network pickle (.pkl); read only while the run has no checkpoint.",
)
@click.option("--max-seconds", type=float, help="Stop cleanly after this much wall time.")
@click.option("--tick-kimg", type=float, help="Report every this many kimg.")
@click.option("--device", help="auto, cpu, cuda or cuda:N.")
@click.option(
    "--data-workers",  # text: options.parse_data_workers reads "auto" and digits alike
    help="Image loading processes per rank: auto (none on CPU, up to 3 on CUDA), or N >= 0.",
)
@click.option("--cond/--no-cond", default=None, help="Condition on the dataset's labels.")
@click.option("--checkpoint-uri", help="Where checkpoints go (default: outdir).")
@click.option("--keep-checkpoints", type=int, help="How many checkpoints to keep.")
@click.option("--grid-seeds", type=int, help="Seeds in the snapshot grid.")
@click.option("--progress-bar", type=click.Choice(["auto", "on", "off"]), default=None)
@click.option("--metrics-port", type=int, help="Rank 0 serves Prometheus /metrics here (0: off).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Preset override.")
def train_cmd(config: str | None, sets: tuple[str, ...], **flags: Any) -> None:
    """Train StyleGAN2, alone or as one rank under torchrun (exit 0, 64 or 75)."""
    try:
        options = build_options(config, flags, sets)
    except TrainerError as exc:
        _exit_training(exc.exit_code, exc)
    _configure_logging()
    try:
        code = run_training(options)
    except TrainerError as exc:
        _exit_training(exc.exit_code, exc)
    _exit_training(code)


# ----------------------------------------------------------------------------------------------
# dataset


@click.command("dataset")
@click.argument("src", type=click.Path())
@click.argument("dest", type=click.Path())
@click.option("--resolution", type=int, default=None, help="Resize square images to N x N.")
def dataset_cmd(src: str, dest: str, resolution: int | None) -> None:
    """Convert the image folder SRC into the training zip DEST.zip."""
    from stylegan_trainer.data.convert import NothingUsable, convert_folder

    try:
        report = convert_folder(src, dest, resolution)
    except NothingUsable as exc:
        for name, reason in sorted(exc.report.refused.items()):
            click.echo(f"refused {name}: {reason}", err=True)
        _fail(exc)
    except TrainerError as exc:
        _fail(exc)
    for name, reason in sorted(report.refused.items()):
        click.echo(f"refused {name}: {reason}", err=True)
    size = report.resolution
    click.echo(
        f"wrote {len(report.written)} images ({size}x{size}) to {dest}; "
        f"refused {len(report.refused)}"
    )


# ----------------------------------------------------------------------------------------------
# benchmark


def format_benchmark(result: dict[str, Any]) -> str:
    phases = ", ".join(f"{k} {v:.3f}s" for k, v in result["phase_seconds"].items())
    return (
        f"{result['preset']} {result['resolution']}x{result['resolution']} on "
        f"{result['device_name']} ({result['device']}, {result['threads']} threads), "
        f"batch {result['batch']}, G {result['g_params']:,} / D {result['d_params']:,} params, "
        f"{result.get('precision', 'fp32')}, {result.get('batch_per_gpu', result['batch'])} "
        "a pass: "
        f"{result['sec_per_kimg']:.1f} sec/kimg ({result['sec_per_step']:.3f} s/step; {phases}), "
        f"generation {result['images_per_sec']:.1f} img/s, "
        f"peak memory {result['peak_mem_bytes'] / 2**30:.2f} GiB"
    )


@click.command("benchmark")
@click.option("--resolution", type=int, default=32, show_default=True)
@click.option("--preset", default="auto", show_default=True)
@click.option("--steps", type=int, default=2, show_default=True, help="Repeats of each phase.")
@click.option("--device", default="auto", show_default=True)
@click.option("--batch", type=int, default=None, help="Global batch (default: the preset's).")
@click.option("--mixed-precision", type=click.Choice(["auto", "fp16", "bf16", "none"]),
              default="none", show_default=True, help="Precision on CUDA (none: fp32).")
@click.option("--batch-per-gpu", type=int, default=None, help="Images a pass (accumulated).")
@output_option("text", "json", help="One line for people, or one JSON object (what "
              "`stylegan estimate --from-benchmark` reads).")
def benchmark_cmd(
    resolution: int, preset: str, steps: int, device: str, batch: int | None,
    mixed_precision: str, batch_per_gpu: int | None, output: str,
) -> None:  # fmt: skip
    """Measure sec/kimg, images/s and peak memory of training on this device."""
    from stylegan_trainer.train.benchmark import benchmark

    try:
        result = benchmark(
            resolution, preset, steps, device=device, batch=batch,
            mixed_precision=mixed_precision, batch_per_gpu=batch_per_gpu,
        )  # fmt: skip
    except TrainerError as exc:
        _fail(exc)
    click.echo(json.dumps(result, sort_keys=True) if output == "json" else format_benchmark(result))


# ----------------------------------------------------------------------------------------------
# demo


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def demo_cost(cores: int, seconds: float, price_per_vcpu_hour: float) -> float:
    """cost = cores x hours x price per vCPU-hour."""
    return cores * seconds / 3600 * price_per_vcpu_hour


def torchrun_command(nproc: int, train_args: list[str]) -> list[str]:
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
        str(nproc), "-m", "stylegan_trainer.cli.train_commands", *train_args,
    ]  # fmt: skip


@click.command("demo")
@click.option("--minutes", type=float, default=10.0, show_default=True, help="Training time.")
@click.option("--outdir", default="out/demo", show_default=True)
@click.option("--faces", default=None, help="Grid of generated faces [default: OUTDIR/faces.png].")
@click.option("--nproc", type=int, default=2, show_default=True, help="Local ranks (torchrun).")
@click.option(
    "--cpu-price-per-hour", type=float, default=DEFAULT_CPU_PRICE_PER_HOUR, show_default=True,
    help="USD per vCPU-hour (an assumption: on-demand general-purpose cloud vCPU).",
)  # fmt: skip
@click.option("--truncation-psi", type=float, default=0.7, show_default=True, help="For the grid.")
@click.option("--quality-images", type=int, default=200, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--resume/--no-resume", default=False, show_default=True)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Preset override.")
def demo_cmd(
    minutes: float, outdir: str, faces: str | None, nproc: int, cpu_price_per_hour: float,
    truncation_psi: float, quality_images: int, seed: int, resume: bool, sets: tuple[str, ...],
) -> None:  # fmt: skip
    """Train faces on this CPU for a bounded time, then show, measure and price them."""
    if minutes <= 0 or nproc < 1 or cpu_price_per_hour < 0:
        _fail(ConfigError("minutes and nproc must be positive and the price not negative"))
    started = time.monotonic()
    run_dir = Path(outdir) / "run"
    faces_path = Path(faces) if faces else Path(outdir) / "faces.png"
    cores = available_cores()
    run_dir.mkdir(parents=True, exist_ok=True)
    config = run_dir / "demo_options.json"
    config.write_text(json.dumps({
        **DEMO_OPTIONS, "outdir": str(run_dir), "device": "cpu", "seed": seed,
        "max_seconds": minutes * 60, "kimg": 1000, "tick_kimg": 1, "snapshot_kimg": 2.5,
        "keep_checkpoints": 12, "resume": "latest" if resume else "none",
    }, indent=1) + "\n")  # fmt: skip
    train_args = ["--config", str(config), *(a for s in sets for a in ("--set", s))]
    env = dict(os.environ, OMP_NUM_THREADS=str(max(1, cores // nproc)))
    click.echo(f"demo: training for {minutes:g} min on {nproc} local ranks ({cores} cores)")
    code = subprocess.run(torchrun_command(nproc, train_args), env=env, check=False).returncode
    if code != 0:
        click.echo(f"error: training exited with {code}", err=True)
        sys.exit(code)
    train_seconds = time.monotonic() - started
    summary = _demo_evaluate(run_dir, faces_path, truncation_psi, quality_images, seed)
    plot_path = _demo_plot(run_dir, Path(outdir) / "progress.png", summary["quality"],
                           cpu_price_per_hour, cores)
    total_seconds = time.monotonic() - started
    summary.update(
        cores=cores,
        train_seconds=round(train_seconds, 1),
        total_seconds=round(total_seconds, 1),
        cpu_price_per_vcpu_hour=cpu_price_per_hour,
        cost_usd=round(demo_cost(cores, total_seconds, cpu_price_per_hour), 5),
        faces=str(faces_path),
        progress_plot=str(plot_path) if plot_path else None,
    )
    Path(outdir, "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    click.echo(
        f"demo: {summary['kimg']:.1f} kimg in {train_seconds / 60:.1f} min "
        f"({train_seconds / max(summary['kimg'], 1e-9):.0f} wall sec/kimg with start-up); "
        f"faces in {faces_path} (snapshot at {summary['checkpoint_kimg']:g} kimg); "
        f"face share {summary['quality'].get('face_share', float('nan')):.2f}; cost "
        f"{cores} vCPU x {total_seconds / 3600:.3f} h x {cpu_price_per_hour} USD = "
        f"{summary['cost_usd']:.4f} USD (price assumed; --cpu-price-per-hour)"
        + (f"; progress plot in {plot_path}" if plot_path else "")
        + f"\ndemo: to look at its faces in a browser: stylegan serve --checkpoint {run_dir}"
    )


def _demo_plot(
    run_dir: Path, out: Path, result: dict[str, Any], price_per_hour: float, cores: int
) -> Path | None:
    """Record the real-vs-real precision beside the snapshots' figures and draw progress.png.

    The plot is an extra (matplotlib is optional): without it the demo says so in one line
    and goes on, rather than losing the faces and figures it has already made.
    """
    from stylegan_trainer.report.plots import QUALITY_FILE, plot_run

    _append_json_line(run_dir / QUALITY_FILE, {"real_precision": result["real_precision"]})
    try:
        return plot_run(run_dir, out, price_per_hour=price_per_hour, cores=cores)
    except ConfigError as exc:
        click.echo(f"demo: no progress plot: {exc}", err=True)
        return None


def best_snapshot(run_dir: Path, seeds: int = 64) -> tuple[str, float]:
    """The checkpoint whose G_ema draws the best faces, and its score.

    Picking the best snapshot by a quality metric is what StyleGAN users do with FID; on this
    CPU the small network's face share wavers from snapshot to snapshot, and it may drift into
    a texture collapse later in the ten minutes, so the demo shows its best moment and says
    which kimg it was. The score is face share x precision (both figures of
    ``stylegan_trainer.quality.measures``, on ``seeds`` images from seeds 10,000 on, disjoint from
    the
    evaluation's, at the grid's truncation 0.7): the face share alone is easy to fool and
    precision alone says nothing about faces (see that module). Ties go to the face share,
    then to the later snapshot. The demo then prints every figure of the chosen snapshot
    beside the real-versus-real ones.

    Every snapshot's figures also go to ``run_dir/quality.jsonl`` (one line each: checkpoint,
    kimg, face share, precision, recall), written afresh, for ``stylegan plot``.
    """
    from stylegan_common.storage import LocalStorage
    from stylegan_trainer.quality.faces import FACE_THRESHOLD, train_face_classifier
    from stylegan_trainer.quality.images import to_grey
    from stylegan_trainer.quality.manifold import precision_recall
    from stylegan_trainer.quality.measures import load_real_images
    from stylegan_trainer.report.plots import QUALITY_FILE
    from stylegan_trainer.report.status import checkpoint_kimg
    from stylegan_trainer.sampling import generate
    from stylegan_trainer.train.checkpoint import list_checkpoints, load_generator

    classifier = train_face_classifier()
    history = run_dir / QUALITY_FILE
    history.write_text("")  # this evaluation's snapshots only, not an earlier demo's
    real_feats: dict[int, Any] = {}  # by resolution
    best: tuple[str, tuple[float, float]] = ("", (-1.0, -1.0))
    for name in list_checkpoints(LocalStorage(run_dir)):
        G = load_generator(str(run_dir / name), device="cpu")
        if G.img_resolution not in real_feats:
            reals = load_real_images("builtin:lfw", G.img_resolution)
            real_feats[G.img_resolution] = classifier.features(to_grey(reals))
        images = to_grey(generate.generate_images(
            G, list(range(10_000, 10_000 + seeds)), truncation_psi=0.7))
        share = float((classifier.predict_proba(images) >= FACE_THRESHOLD).mean())
        precision, recall = precision_recall(real_feats[G.img_resolution],
                                             classifier.features(images))
        click.echo(f"demo: snapshot {name}: face share {share:.2f}, precision {precision:.2f}")
        _append_json_line(history, {
            "checkpoint": name, "kimg": checkpoint_kimg(name), "face_share": share,
            "precision": float(precision), "recall": float(recall),
        })  # fmt: skip
        score = (share * precision, share)
        if score >= best[1]:  # ties go to the later snapshot: more training
            best = (name, score)
    return best[0], best[1][0]


def _append_json_line(path: Path, record: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")


def _demo_evaluate(
    run_dir: Path, faces_path: Path, psi: float, num_images: int, seed: int
) -> dict[str, Any]:
    from stylegan_trainer.quality.measures import evaluate_generator, format_report
    from stylegan_trainer.report.progress import PROGRESS_FILE
    from stylegan_trainer.report.status import checkpoint_kimg
    from stylegan_trainer.sampling import generate
    from stylegan_trainer.train.checkpoint import load_generator

    name, _ = best_snapshot(run_dir)
    G = load_generator(str(run_dir / name) if name else str(run_dir), device="cpu")
    faces_path.parent.mkdir(parents=True, exist_ok=True)
    generate.save_grid(G, list(range(DEMO_GRID_SEEDS)), str(faces_path), truncation_psi=psi)
    result = evaluate_generator(G, "builtin:lfw", num_images=num_images, seed=seed)
    click.echo(format_report(result))
    progress = json.loads((run_dir / PROGRESS_FILE).read_text())
    return {
        "kimg": progress["kimg"],
        "sec_per_kimg": progress["sec_per_kimg"] or float("nan"),
        "checkpoint": name or progress["last_checkpoint"],
        "checkpoint_kimg": checkpoint_kimg(name) if name else progress["kimg"],
        "truncation_psi": psi,
        "quality": result,
    }


if __name__ == "__main__":  # torchrun -m stylegan_trainer.cli.train_commands ...
    sys.exit(run_command(train_cmd))
