"""Generation: seed parsing, deterministic latents, grids, style mixing, GIFs and the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

from stylegan_trainer.cli import sample_commands
from stylegan_trainer.sampling import generate
from stylegan_trainer.sampling.generate import (
    generate_images,
    interpolation_frames,
    make_grid,
    parse_layers,
    parse_seeds,
    resolve_device,
    save_grid,
    style_mixing_grid,
    z_from_seeds,
)

RES = 8


class TinyGenerator(torch.nn.Module):
    """A stand-in with the networks.Generator API: every w layer adds its own image pattern."""

    def __init__(self, z_dim: int = 6, w_dim: int = 5, num_ws: int = 6, channels: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.z_dim, self.w_dim, self.num_ws, self.c_dim = z_dim, w_dim, num_ws, 0
        self.img_resolution, self.img_channels = RES, channels
        self.embed = torch.nn.Linear(z_dim, w_dim)
        self.register_buffer("w_avg", torch.randn(w_dim))
        self.patterns = torch.nn.Parameter(torch.randn(num_ws, w_dim, channels * RES * RES))

    def mapping(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None):
        w = self.w_avg + truncation_psi * (self.embed(z) - self.w_avg)
        return w[:, None].repeat(1, self.num_ws, 1)

    def synthesis(self, ws, noise_mode="random"):
        out = torch.einsum("nld,ldp->np", ws, self.patterns) / 3
        if noise_mode == "random":
            out = out + 0.3 * torch.randn_like(out)
        return torch.tanh(out).view(len(ws), self.img_channels, RES, RES)

    def forward(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None, noise_mode="random"):
        return self.synthesis(self.mapping(z, c, truncation_psi), noise_mode=noise_mode)


@pytest.fixture
def G() -> TinyGenerator:
    return TinyGenerator()


def cell(image: PIL.Image.Image, row: int, col: int) -> np.ndarray:
    """One RES x RES cell of a grid image."""
    return np.asarray(image)[row * RES : (row + 1) * RES, col * RES : (col + 1) * RES]


# -- seeds and devices --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("0-3", [0, 1, 2, 3]),
        ("1,5,9", [1, 5, 9]),
        ("0-3,10", [0, 1, 2, 3, 10]),
        (" 7 ", [7]),
        ("2-2", [2]),
    ],
)
def test_seed_specs_expand_inclusive_ranges_in_order(spec: str, expected: list[int]) -> None:
    assert parse_seeds(spec) == expected


def test_seed_range_0_63_has_64_seeds() -> None:
    assert parse_seeds("0-63") == list(range(64))


@pytest.mark.parametrize("spec", ["", "a", "1,,2", "5-2", "-3", "1-x", "4294967296"])
def test_bad_seed_specs_raise_naming_seeds(spec: str) -> None:
    with pytest.raises(ValueError, match="seeds"):
        parse_seeds(spec)


def test_latents_follow_numpy_randomstate_per_seed() -> None:
    z = z_from_seeds([3, 11], 7)
    assert z.dtype == torch.float32 and z.shape == (2, 7)
    np.testing.assert_allclose(z[1].numpy(), np.random.RandomState(11).randn(7).astype(np.float32))
    assert torch.equal(z_from_seeds([11], 7)[0], z[1])  # a seed's latent ignores its neighbours


def test_cpu_and_auto_devices_resolve() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_unknown_device_is_refused_naming_the_option() -> None:
    with pytest.raises(ValueError, match="device: unknown 'tpu'"):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_a_gpu_is_refused() -> None:
    with pytest.raises(ValueError, match="no CUDA GPU"):
        resolve_device("cuda")


def test_mixing_layer_groups_follow_the_paper() -> None:
    assert parse_layers("coarse", 8) == [0, 1, 2, 3]
    assert parse_layers("middle", 8) == [4, 5, 6, 7]
    assert parse_layers("fine", 12) == [8, 9, 10, 11]
    assert parse_layers("1-2", 8) == [1, 2]
    with pytest.raises(ValueError, match="fine.*empty"):
        parse_layers("fine", 8)  # a 32x32 generator has no fine layers
    with pytest.raises(ValueError, match="out of range"):
        parse_layers("0-9", 8)


# -- images ---------------------------------------------------------------------------------


def test_generated_images_are_uint8_one_per_seed_and_repeatable(G: TinyGenerator) -> None:
    images = generate_images(G, [0, 1, 2], noise_mode="const", batch=2)
    assert images.dtype == torch.uint8 and images.shape == (3, 3, RES, RES)
    again = generate_images(G, [2, 0], noise_mode="const")
    assert torch.equal(again[0], images[2]) and torch.equal(again[1], images[0])
    assert not torch.equal(images[0], images[1])


def test_random_noise_changes_images_and_const_does_not(G: TinyGenerator) -> None:
    torch.manual_seed(1)
    a = generate_images(G, [4], noise_mode="random")
    b = generate_images(G, [4], noise_mode="random")
    assert not torch.equal(a, b)


def test_truncation_zero_gives_every_seed_the_mean_image(G: TinyGenerator) -> None:
    images = generate_images(G, [0, 1, 2], truncation_psi=0.0)
    assert torch.equal(images[0], images[1]) and torch.equal(images[1], images[2])


def test_output_range_maps_to_full_uint8_scale() -> None:
    assert generate.to_uint8(torch.tensor([-1.0, 0.0, 1.0, 3.0])).tolist() == [0, 128, 255, 255]


def test_bad_noise_mode_is_refused(G: TinyGenerator) -> None:
    with pytest.raises(ValueError, match="noise-mode"):
        generate_images(G, [0], noise_mode="loud")


def test_grid_tiles_images_row_by_row() -> None:
    images = torch.stack(
        [torch.full([1, 4, 4], v, dtype=torch.uint8) for v in (10, 20, 30, 40, 50)]
    )
    grid = make_grid(images)  # 5 images -> 3 columns, 2 rows
    assert grid.size == (12, 8) and grid.mode == "L"
    pixels = np.asarray(grid)
    assert pixels[0, 0] == 10 and pixels[0, 11] == 30 and pixels[4, 0] == 40 and pixels[7, 11] == 0
    assert make_grid(images, cols=5).size == (20, 4)


def test_save_grid_writes_an_rgb_png(G: TinyGenerator, tmp_path: Path) -> None:
    path = tmp_path / "grid.png"
    save_grid(G, range(6), str(path), grid_cols=3)
    with PIL.Image.open(path) as image:
        assert image.size == (3 * RES, 2 * RES) and image.mode == "RGB"


# -- style mixing and interpolation ---------------------------------------------------------


def test_style_mixing_grid_layout_and_sources(G: TinyGenerator) -> None:
    rows, cols = [0, 1], [5, 6, 7]
    singles = generate_images(G, rows + cols)
    everything = style_mixing_grid(
        G, rows, cols, layers=range(G.num_ws), truncation_psi=1.0, device="cpu"
    )
    assert everything.size == (4 * RES, 3 * RES)
    assert not cell(everything, 0, 0).any()  # the corner is blank
    for j in range(3):
        assert np.array_equal(cell(everything, 0, j + 1), singles[2 + j].permute(1, 2, 0).numpy())
        # Replacing every ws with the column's gives the column's image.
        assert np.array_equal(cell(everything, 1, j + 1), singles[2 + j].permute(1, 2, 0).numpy())
    for i in range(2):
        assert np.array_equal(cell(everything, i + 1, 0), singles[i].permute(1, 2, 0).numpy())
    nothing = style_mixing_grid(G, rows, cols, layers=[], truncation_psi=1.0, device="cpu")
    assert np.array_equal(cell(nothing, 2, 3), singles[1].permute(1, 2, 0).numpy())
    coarse = style_mixing_grid(G, rows, cols, layers=[0, 1, 2], truncation_psi=1.0, device="cpu")
    mixed = cell(coarse, 1, 1)
    assert not np.array_equal(mixed, cell(nothing, 1, 1)) and not np.array_equal(
        mixed, cell(everything, 1, 1)
    )


def test_style_mixing_refuses_layers_outside_ws(G: TinyGenerator) -> None:
    with pytest.raises(ValueError, match="mixing-layers"):
        style_mixing_grid(G, [0], [1], layers=[G.num_ws], truncation_psi=1.0, device="cpu")


@pytest.mark.parametrize("space", ["w", "z"])
def test_interpolation_loops_through_every_seed(G: TinyGenerator, space: str) -> None:
    frames = interpolation_frames(
        G, [0, 1, 2], frames_per_pair=4, truncation_psi=1.0, device="cpu", space=space
    )
    assert len(frames) == 12 and frames[0].size == (RES, RES)
    singles = generate_images(G, [0, 1, 2])
    for k in range(3):
        np.testing.assert_allclose(
            np.asarray(frames[4 * k], dtype=int),
            singles[k].permute(1, 2, 0).numpy().astype(int),
            atol=1,
        )
    assert not np.array_equal(np.asarray(frames[1]), np.asarray(frames[0]))


def test_slerp_keeps_the_norm_of_equal_norm_latents() -> None:
    a, b = torch.tensor([[3.0, 0.0]]), torch.tensor([[0.0, 3.0]])
    mid = generate.slerp(a, b, 0.5)
    assert torch.allclose(mid.norm(), torch.tensor(3.0)) and torch.allclose(mid[0, 0], mid[0, 1])
    assert torch.allclose(generate.slerp(a, a, 0.3), a)  # parallel: no division by zero


def test_gif_holds_every_frame(G: TinyGenerator, tmp_path: Path) -> None:
    frames = interpolation_frames(G, [0, 1], frames_per_pair=3, truncation_psi=0.7, device="cpu")
    path = tmp_path / "walk.gif"
    generate.save_gif(frames, str(path))
    with PIL.Image.open(path) as gif:
        assert gif.n_frames == 6


# -- the command ----------------------------------------------------------------------------


@pytest.fixture
def fake_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A checkpoint path whose loading yields TinyGenerator (the loader is tested elsewhere)."""
    path = tmp_path / "network.pt"
    path.write_bytes(b"stand-in")
    loaded: list[str] = []

    def load(uri: str, device: torch.device, which: str) -> torch.nn.Module:
        loaded.append(which)
        return TinyGenerator().to(device)

    monkeypatch.setattr(sample_commands, "_load_generator", load)
    return path


def run(*args: str) -> object:
    return CliRunner().invoke(sample_commands.generate_cmd, list(args))


def test_generate_command_writes_seeds_grid_mixing_and_gif(
    fake_checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = run(
        "--checkpoint",
        str(fake_checkpoint),
        "--seeds",
        "0-3,10",
        "--trunc",
        "0.7",
        "--outdir",
        str(out),
        "--device",
        "cpu",
        "--mixing-rows",
        "0-1",
        "--mixing-cols",
        "2-4",
        "--mixing-layers",
        "0-2",
        "--interpolate",
        "0,1",
        "--frames",
        "3",
    )
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "grid.png",
        "interpolation.gif",
        "seed0000.png",
        "seed0001.png",
        "seed0002.png",
        "seed0003.png",
        "seed0010.png",
        "style-mixing.png",
    ]
    with PIL.Image.open(out / "style-mixing.png") as mixing:
        assert mixing.size == (4 * RES, 3 * RES)
    with PIL.Image.open(out / "grid.png") as grid:
        assert grid.size == (3 * RES, 2 * RES)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seeds", "9-1"], "--seeds"),
        (["--device", "tpu"], "--device"),
        (["--mixing-rows", "0-2"], "--mixing-rows and --mixing-cols"),
        (
            ["--mixing-rows", "0", "--mixing-cols", "1", "--mixing-layers", "fine"],
            "--mixing-layers",
        ),
        (["--interpolate", "3"], "--interpolate"),
        (["--frames", "0"], "--frames"),
        (["--noise-mode", "loud"], "--noise-mode"),
    ],
)
def test_bad_generate_input_exits_64_naming_the_option(
    fake_checkpoint: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    result = run("--checkpoint", str(fake_checkpoint), "--outdir", str(tmp_path / "o"), *args)
    assert result.exit_code == 64, result.output
    assert message in result.output


def test_missing_checkpoint_exits_64_naming_the_option(tmp_path: Path) -> None:
    result = run("--checkpoint", str(tmp_path / "nope.pt"), "--outdir", str(tmp_path / "o"))
    assert result.exit_code == 64 and "--checkpoint" in result.output and "nope.pt" in result.output


def test_missing_required_option_also_exits_64(tmp_path: Path) -> None:
    result = run("--outdir", str(tmp_path / "o"))
    assert result.exit_code == 64 and "--checkpoint" in result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_request_without_gpu_exits_64(fake_checkpoint: Path, tmp_path: Path) -> None:
    result = run(
        "--checkpoint", str(fake_checkpoint), "--outdir", str(tmp_path / "o"), "--device", "cuda"
    )
    assert result.exit_code == 64 and "--device" in result.output and "no CUDA GPU" in result.output


# -- against the real networks and checkpoint format ----------------------------------------

def tiny_real_generator() -> torch.nn.Module:
    from stylegan_trainer.model.config import NetworkConfig
    from stylegan_trainer.model.generator import Generator

    torch.manual_seed(0)
    cfg = NetworkConfig(
        resolution=16,
        img_channels=1,
        z_dim=16,
        w_dim=16,
        mapping_layers=2,
        channel_base=64,
        channel_max=16,
    )
    return Generator(cfg).eval()


def test_real_generator_gives_seed_images_mixing_grid_and_frames() -> None:
    G = tiny_real_generator()
    images = generate_images(G, [0, 1], truncation_psi=0.7)
    assert images.shape == (2, 1, 16, 16) and images.dtype == torch.uint8
    assert torch.equal(images, generate_images(G, [0, 1], truncation_psi=0.7))
    layers = parse_layers("coarse", G.num_ws)
    grid = style_mixing_grid(G, [0, 1], [2, 3], layers, truncation_psi=0.7, device="cpu")
    assert grid.size == (3 * 16, 3 * 16)
    frames = interpolation_frames(G, [0, 1], frames_per_pair=2, truncation_psi=0.7, device="cpu")
    assert len(frames) == 4


def test_generate_command_reads_a_real_checkpoint_file(tmp_path: Path) -> None:
    from stylegan_trainer.train.checkpoint import CHECKPOINT_FORMAT

    G = tiny_real_generator()
    path = tmp_path / "ckpt.pt"
    # The fields load_generator reads; a training checkpoint holds these and more.
    torch.save(
        {"format": CHECKPOINT_FORMAT, "network": G.cfg.to_dict(), "G_ema": G.state_dict()}, path
    )
    out = tmp_path / "out"
    result = run(
        "--checkpoint",
        str(path),
        "--seeds",
        "0-3",
        "--outdir",
        str(out),
        "--device",
        "cpu",
        "--mixing-rows",
        "0,1",
        "--mixing-cols",
        "2,3",
    )
    assert result.exit_code == 0, result.output
    with PIL.Image.open(out / "seed0003.png") as image:
        assert image.size == (16, 16) and image.mode == "L"
    expected = generate_images(G, [3])[0, 0].numpy()
    with PIL.Image.open(out / "seed0003.png") as image:
        assert np.array_equal(np.asarray(image), expected)  # the file is the seed's image


@pytest.mark.parametrize(("error", "code"), [("StorageError", 75), ("ConfigError", 64)])
def test_checkpoint_load_failures_map_to_exit_codes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: str, code: int
) -> None:
    from stylegan_common import errors
    from stylegan_trainer.train import checkpoint

    def failing_load(uri: str, device: object = "cpu", which: str = "G_ema") -> None:
        raise getattr(errors, error)(f"checkpoint: {uri} went wrong")

    monkeypatch.setattr(checkpoint, "load_generator", failing_load)
    path = tmp_path / "ckpt.pt"
    path.write_bytes(b"x")
    result = run("--checkpoint", str(path), "--outdir", str(tmp_path / "o"), "--device", "cpu")
    assert (
        result.exit_code == code
        and "--checkpoint" in result.output
        and "went wrong" in result.output
    )
