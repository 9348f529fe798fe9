"""The ``stylegan generate`` and ``stylegan quality`` commands: checkpoint to images or figures.

Both load ``G_ema`` (or ``G``) through ``stylegan_trainer.train.checkpoint.load_generator`` and
hand it
to ``generate`` or ``quality``; this module only parses options and reports. Bad input (an
unknown device, CUDA asked for where there is none, a missing checkpoint or Inception file, an
unreadable seed list) ends with a usage message naming the option and exit code 64; a storage
failure that a retry may cure ends with 75 (the trainer contract in DESIGN.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
import torch

from stylegan_common.cli import output_option
from stylegan_common.errors import EXIT_CONFIG, EXIT_RETRYABLE, ConfigError, StorageError
from stylegan_trainer.quality.fid import load_feature_extractor
from stylegan_trainer.quality.manifold import PR_NEIGHBOURS
from stylegan_trainer.quality.measures import evaluate_generator, format_report, report_json
from stylegan_trainer.sampling import generate


class BadInput(click.UsageError):
    """A usage error that exits with 64 (``EX_USAGE``) instead of click's 2."""

    exit_code = EXIT_CONFIG


class RetryableFailure(click.ClickException):
    """A failure outside the input (e.g. reading object storage) that a retry may cure: exit 75."""

    exit_code = EXIT_RETRYABLE


class _Command(click.Command):
    """A click command whose own parsing errors (bad types, missing options) also exit with 64."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except BadInput:
            raise
        except click.UsageError as exc:
            raise BadInput(exc.format_message(), ctx=exc.ctx) from exc


@contextmanager
def _option(name: str) -> Iterator[None]:
    """Turn a ``ValueError`` raised while reading option ``name`` into a usage error naming it."""
    try:
        yield
    except ValueError as exc:
        # The library names the field ("seeds: ..."); say it once, as the option.
        message = str(exc).removeprefix(f"{name.lstrip('-')}: ")
        raise BadInput(f"{name}: {message}") from exc


def _device(name: str) -> torch.device:
    with _option("--device"):
        return generate.resolve_device(name)


def _checkpoint_exists(uri: str) -> None:
    # Remote URIs (gs://...) are checked by the loader itself; a local path is checked here so
    # the message names the option instead of surfacing as a traceback.
    if "://" not in uri and not os.path.exists(uri):
        raise BadInput(f"--checkpoint: no checkpoint file or run directory at {uri!r}")


def _load_generator(uri: str, device: torch.device, which: str) -> generate.GeneratorLike:
    """``checkpoint.load_generator`` with its errors turned into exit codes."""
    from stylegan_trainer.train.checkpoint import load_generator

    try:
        return load_generator(uri, device=device, which=which)
    except FileNotFoundError as exc:
        raise BadInput(f"--checkpoint: {exc}") from exc
    except ConfigError as exc:
        raise BadInput(f"--checkpoint: {exc}") from exc
    except StorageError as exc:
        raise RetryableFailure(f"--checkpoint: {exc}") from exc


def _open_generator(
    checkpoint: str, device_name: str, which: str
) -> tuple[generate.GeneratorLike, torch.device]:
    device = _device(device_name)
    _checkpoint_exists(checkpoint)
    return _load_generator(checkpoint, device, which), device


def _seeds(spec: str | None, option: str) -> list[int] | None:
    if spec is None:
        return None
    with _option(option):
        return generate.parse_seeds(spec)


_checkpoint_option = click.option(
    "--checkpoint",
    required=True,
    metavar="PATH",
    help="Checkpoint file, run directory or gs:// URI.",
)
_device_option = click.option(
    "--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."
)
_trunc_option = click.option(
    "--trunc",
    "truncation_psi",
    type=float,
    default=1.0,
    show_default=True,
    help="Truncation psi: 1 = none, 0.5-0.7 = cleaner, less varied faces.",
)
_which_option = click.option(
    "--which",
    type=click.Choice(["G_ema", "G"]),
    default="G_ema",
    show_default=True,
    help="Which generator of the checkpoint to use.",
)


@click.command(cls=_Command)
@_checkpoint_option
@click.option(
    "--seeds", default="0-15", show_default=True, help="Seeds: '0-63', '1,5,9' or '0-3,10'."
)
@_trunc_option
@click.option(
    "--outdir", required=True, type=click.Path(file_okay=False), help="Folder for the images."
)
@_device_option
@click.option(
    "--noise-mode", type=click.Choice(generate.NOISE_MODES), default="const", show_default=True
)
@click.option("--grid-cols", type=click.IntRange(min=1), default=None, help="Columns of grid.png.")
@click.option("--mixing-rows", default=None, help="Row seeds of a style-mixing grid, e.g. '0-4'.")
@click.option(
    "--mixing-cols", default=None, help="Column seeds of a style-mixing grid, e.g. '5-9'."
)
@click.option(
    "--mixing-layers",
    default="coarse",
    show_default=True,
    help="ws the columns give: coarse (ws 0-3: pose, shape), middle (4-7: features), "
    "fine (8-: colour, texture) or indices like '0-5'.",
)
@click.option("--interpolate", default=None, help="Seeds for an interpolation GIF, e.g. '0,1,2'.")
@click.option(
    "--frames",
    type=click.IntRange(min=1),
    default=30,
    show_default=True,
    help="Frames per seed pair.",
)
@click.option(
    "--space",
    type=click.Choice(["w", "z"]),
    default="w",
    show_default=True,
    help="Interpolate in w (lerp) or z (slerp).",
)
@_which_option
def generate_cmd(
    checkpoint: str,
    seeds: str,
    truncation_psi: float,
    outdir: str,
    device: str,
    noise_mode: str,
    grid_cols: int | None,
    mixing_rows: str | None,
    mixing_cols: str | None,
    mixing_layers: str,
    interpolate: str | None,
    frames: int,
    space: str,
    which: str,
) -> None:
    """Write seedNNNN.png per seed and grid.png; optionally a style-mixing grid and a GIF."""
    seed_list = _seeds(seeds, "--seeds") or []
    rows = _seeds(mixing_rows, "--mixing-rows")
    cols = _seeds(mixing_cols, "--mixing-cols")
    if (rows is None) != (cols is None):
        raise BadInput("--mixing-rows and --mixing-cols: give both or neither")
    walk = _seeds(interpolate, "--interpolate")
    if walk is not None and len(walk) < 2:
        raise BadInput("--interpolate: give at least two seeds, e.g. '0,1,2'")
    G, dev = _open_generator(checkpoint, device, which)
    layers = None
    if rows is not None:
        with _option("--mixing-layers"):
            layers = generate.parse_layers(mixing_layers, int(G.num_ws))

    os.makedirs(outdir, exist_ok=True)
    images = generate.generate_images(G, seed_list, truncation_psi, noise_mode, dev)
    for seed, image in zip(seed_list, images, strict=True):
        generate.to_pil(image).save(os.path.join(outdir, f"seed{seed:04d}.png"))
    written = [f"{len(seed_list)} seed images"]
    if len(images):
        generate.make_grid(images, cols=grid_cols).save(os.path.join(outdir, "grid.png"))
        written.append("grid.png")
    if rows is not None and cols is not None and layers is not None:
        mixing = generate.style_mixing_grid(G, rows, cols, layers, truncation_psi, dev)
        mixing.save(os.path.join(outdir, "style-mixing.png"))
        written.append(f"style-mixing.png (ws {layers[0]}-{layers[-1]} from the columns)")
    if walk is not None:
        gif = generate.interpolation_frames(G, walk, frames, truncation_psi, dev, space=space)
        generate.save_gif(gif, os.path.join(outdir, "interpolation.gif"))
        written.append(f"interpolation.gif ({len(gif)} frames, {space} space)")
    click.echo(f"wrote {', '.join(written)} to {outdir}")


@click.command(cls=_Command)
@_checkpoint_option
@click.option(
    "--dataset", default="builtin:lfw", show_default=True, help="The training set to compare with."
)
@click.option(
    "--num",
    type=click.IntRange(min=PR_NEIGHBOURS + 1),
    default=500,
    show_default=True,
    help="Generated images.",
)
@click.option(
    "--inception",
    default=None,
    metavar="FILE",
    help="TorchScript feature extractor for FID/KID, e.g. inception-2015-12-05.pt "
    "(never downloaded).",
)
@output_option("table", "json", help="A table for people, or one JSON object for scripts.")
@_device_option
@_trunc_option
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="First seed; also splits the real set.",
)
@_which_option
def quality_cmd(
    checkpoint: str,
    dataset: str,
    num: int,
    inception: str | None,
    output: str,
    device: str,
    truncation_psi: float,
    seed: int,
    which: str,
) -> None:
    """Face share, precision/recall, KID, memorisation; FID/KID with --inception."""
    if inception is not None and not os.path.isfile(inception):
        raise BadInput(
            f"--inception: no file at {inception!r}; give a TorchScript feature extractor such as "
            "inception-2015-12-05.pt (this tool downloads nothing)"
        )
    G, dev = _open_generator(checkpoint, device, which)
    extractor: Callable[..., torch.Tensor] | None = None
    if inception is not None:
        try:
            extractor = load_feature_extractor(inception, dev)
        except RuntimeError as exc:  # torch.jit.load on a file that is not TorchScript
            raise BadInput(
                f"--inception: {inception!r} is not a TorchScript module: {exc}"
            ) from exc
    try:
        result = evaluate_generator(
            G,
            dataset_uri=dataset,
            num_images=num,
            device=dev,
            seed=seed,
            truncation_psi=truncation_psi,
            inception=extractor,
        )
    except ConfigError as exc:  # DatasetError: missing, unreadable or too small
        raise BadInput(f"--dataset: {str(exc).removeprefix('dataset: ')}") from exc
    click.echo(report_json(result) if output == "json" else format_report(result))
