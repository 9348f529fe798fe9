"""``init_from``: a fresh run from the weights of a checkpoint or a published network pickle.

The published StyleGAN2-ADA pickles cannot be downloaded here, so the tests make pickles of
the same structure: a dict of G, D, G_ema, augment_pipe and training_set_kwargs whose modules
pickle as ``torch_utils.persistence._reconstruct_persistent_obj(meta)`` calls (meta: the class
name, the module's source code, the ``nn.Module`` state with its parameters, buffers and
submodules) and whose keyword arguments are ``dnnlib.util.EasyDict`` instances. The stand-ins
below are registered under those module names only while pickling. The layout (names and
shapes) is written out here from the published network description, independently of this
project's modules, so the tests also pin that the two agree, at a tiny size and at config F.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from tests.unit.trainer.test_loop import BATCH, TINY
from tests.unit.trainer.test_loop import _options as tiny_options

from stylegan_common.errors import EXIT_CONFIG, EXIT_OK, ConfigError
from stylegan_trainer.model.config import NetworkConfig
from stylegan_trainer.model.networks import build_networks
from stylegan_trainer.model.ops import DEFAULT_FIR_TAPS, conv2d_resample, make_fir_filter, upfirdn2d
from stylegan_trainer.report.progress import SilentReporter
from stylegan_trainer.train import checkpoint as ckpt
from stylegan_trainer.train.init_from import fit_network, our_name
from stylegan_trainer.train.loop import Trainer
from stylegan_trainer.train.network_pickle import read_network_pickle

RES = 8  # the tiny run of test_loop: 8x8, z = w = 16, channels min(128 // res, 16), 1 layer
TINY_DIMS = {"z": TINY["z_dim"], "w": TINY["w_dim"], "layers": TINY["mapping_layers"],
             "base": TINY["channel_base"], "cmax": TINY["channel_max"]}  # fmt: skip
PARAM, BUFFER, MODULE = "param", "buffer", "module"
Layout = list[tuple[str, list[int], str]]


# ---------------------------------------------------------------------------------------------
# The published layout, from the published network description


def published_generator(res: int, z: int, w: int, layers: int, base: int, cmax: int) -> Layout:
    """G's ``state_dict`` names and shapes (c_dim 0, RGB, the 'skip' generator)."""
    ch = lambda r: min(base // r, cmax)  # noqa: E731
    out: Layout = []
    for i in range(layers):
        out += [(f"mapping.fc{i}.weight", [w, z if i == 0 else w], PARAM),
                (f"mapping.fc{i}.bias", [w], PARAM)]  # fmt: skip
    out.append(("mapping.w_avg", [w], BUFFER))
    r = 4
    while r <= res:
        block, c = f"synthesis.b{r}", ch(r)
        out.append((f"{block}.resample_filter", [4, 4], BUFFER))
        convs = [("conv1", c, c)] if r == 4 else [("conv0", ch(r // 2), c), ("conv1", c, c)]
        if r == 4:
            out.append((f"{block}.const", [c, 4, 4], PARAM))
        for conv, cin, cout in convs:
            layer = f"{block}.{conv}"
            out += [
                (f"{layer}.affine.weight", [cin, w], PARAM), (f"{layer}.affine.bias", [cin], PARAM),
                (f"{layer}.weight", [cout, cin, 3, 3], PARAM),
                (f"{layer}.noise_strength", [], PARAM), (f"{layer}.bias", [cout], PARAM),
                (f"{layer}.noise_const", [r, r], BUFFER),
                (f"{layer}.resample_filter", [4, 4], BUFFER),
            ]  # fmt: skip
        out += [(f"{block}.torgb.affine.weight", [c, w], PARAM),
                (f"{block}.torgb.affine.bias", [c], PARAM),
                (f"{block}.torgb.weight", [3, c, 1, 1], PARAM),
                (f"{block}.torgb.bias", [3], PARAM)]  # fmt: skip
        r *= 2
    return out


def published_discriminator(res: int, base: int, cmax: int, **_: int) -> Layout:
    """D's ``state_dict`` names and shapes (c_dim 0, the 'resnet' discriminator)."""
    ch = lambda r: min(base // r, cmax)  # noqa: E731
    out: Layout = []

    def conv(name: str, shape: list[int], bias: bool = True) -> None:
        out.append((f"{name}.weight", shape, PARAM))
        if bias:
            out.append((f"{name}.bias", [shape[0]], PARAM))
        out.append((f"{name}.resample_filter", [4, 4], BUFFER))

    r = res
    while r >= 8:
        block, c, half = f"b{r}", ch(r), ch(r // 2)
        out.append((f"{block}.resample_filter", [4, 4], BUFFER))
        if r == res:
            conv(f"{block}.fromrgb", [c, 3, 1, 1])
        conv(f"{block}.conv0", [c, c, 3, 3])
        conv(f"{block}.conv1", [half, c, 3, 3])
        conv(f"{block}.skip", [half, c, 1, 1], bias=False)
        r //= 2
    c4 = ch(4)
    out.append(("b4.mbstd", [], MODULE))
    conv("b4.conv", [c4, c4 + 1, 3, 3])
    out += [("b4.fc.weight", [c4, c4 * 16], PARAM), ("b4.fc.bias", [c4], PARAM),
            ("b4.out.weight", [1, c4], PARAM), ("b4.out.bias", [1], PARAM)]  # fmt: skip
    return out


def published_filter() -> torch.Tensor:
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
    return torch.outer(taps, taps) / torch.outer(taps, taps).sum()


def random_values(layout: Layout, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        name: published_filter() if name.endswith("resample_filter") else
        torch.randn(shape, generator=gen)
        for name, shape, kind in layout if kind != MODULE
    }  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Stand-ins for the published code, registered under its module names only while pickling


def _reconstruct_persistent_obj(meta: Any) -> Any:  # what a pickle names; never called here
    raise AssertionError("the published reconstructor was called")


class EasyDict(dict):  # type: ignore[type-arg]
    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


_reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
EasyDict.__module__, EasyDict.__qualname__ = "dnnlib.util", "EasyDict"


class Persistent(torch.nn.Module):
    """A module that pickles the way a published persistent class does."""

    def __init__(self, class_name: str, module_src: str, **kwargs: Any) -> None:
        super().__init__()
        self._class_name = class_name
        self._module_src = module_src
        self._init_args: tuple[Any, ...] = ()
        self._init_kwargs = EasyDict(kwargs, mapping_kwargs=EasyDict())
        # Plain attributes as the published layers keep them: numpy scalars and arrays.
        self.act_gain = np.sqrt(2)
        self.weight_gain = np.float32(0.125)
        self.in_size = np.asarray([4, 4])

    def __reduce__(self) -> tuple[Any, ...]:
        state = {k: v for k, v in self.__dict__.items() if k not in ("_class_name", "_module_src")}
        meta = dict(type="class", version=6, module_src=self._module_src,
                    class_name=self._class_name, state=state)  # fmt: skip
        return (_reconstruct_persistent_obj, (meta,), None)


@contextmanager
def published_names() -> Iterator[None]:
    names = ("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util")
    modules = {name: types.ModuleType(name) for name in names}
    persistence, util = modules["torch_utils.persistence"], modules["dnnlib.util"]
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj  # type: ignore[attr-defined]
    util.EasyDict = EasyDict  # type: ignore[attr-defined]
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def module_tree(name: str, layout: Layout, values: dict[str, torch.Tensor], src: str) -> Persistent:
    root = Persistent(name, src)
    for full, _shape, kind in layout:
        *path, leaf = full.split(".")
        module = root
        for part in path:
            if part not in module._modules:
                module.add_module(part, Persistent(f"{part}Layer", src))
            module = module._modules[part]  # type: ignore[assignment]
        if kind == MODULE:
            module.add_module(leaf, Persistent("MinibatchStdLayer", src))
        elif kind == PARAM:
            module.register_parameter(leaf, torch.nn.Parameter(values[full], requires_grad=False))
        else:
            module.register_buffer(leaf, values[full])
    return root


def write_pickle(
    path: Path, networks: dict[str, tuple[Layout, dict[str, torch.Tensor]]],
    module_src: str = "# the published module's source\n", protocol: int = 4,
) -> Path:  # fmt: skip
    data: dict[str, Any] = {
        key: module_tree(key, layout, values, module_src)
        for key, (layout, values) in networks.items()
    }
    augment = Persistent("AugmentPipe", module_src, xflip=1.0, rotate90=1.0)
    augment.register_buffer("p", torch.zeros([]))
    augment.register_buffer("Hz_geom", torch.randn(12))
    data["augment_pipe"] = augment
    data["training_set_kwargs"] = EasyDict(
        class_name="training.dataset.ImageFolderDataset", path="ffhq.zip", resolution=RES,
        use_labels=False,
    )
    with published_names():
        path.write_bytes(pickle.dumps(data, protocol=protocol))
    return path


def tiny_published(seed: int = 1, **dims: int) -> dict[str, tuple[Layout, dict[str, torch.Tensor]]]:
    d = {**TINY_DIMS, **dims}
    res = d.pop("res", RES)
    g, disc = published_generator(res, **d), published_discriminator(res, **d)
    return {"G": (g, random_values(g, seed)), "D": (disc, random_values(disc, seed + 1)),
            "G_ema": (g, random_values(g, seed + 2))}  # fmt: skip


@pytest.fixture(scope="module")
def dataset_dir(noise_dataset: Callable[..., str]) -> str:
    return noise_dataset(12)


def trainer_for(dataset: str, outdir: Path, steps: int = 1, **changes: Any) -> Trainer:
    options = tiny_options(dataset, outdir, steps, **{"augment": "noaug", **changes})
    return Trainer(options, reporter=SilentReporter())


# ---------------------------------------------------------------------------------------------
# The layout


@pytest.mark.parametrize("size", ["tiny", "config F 1024"])
def test_the_published_layout_fits_our_networks_name_for_name_and_shape_for_shape(
    size: str,
) -> None:
    if size == "tiny":
        dims, res = TINY_DIMS, RES
        cfg = NetworkConfig(resolution=RES, z_dim=16, w_dim=16, mapping_layers=1,
                            channel_base=128, channel_max=16)  # fmt: skip
    else:
        dims, res = {"z": 512, "w": 512, "layers": 8, "base": 32768, "cmax": 512}, 1024
        cfg = NetworkConfig(resolution=1024)
    with torch.device("meta"):  # shapes only: config F holds 59M parameters
        G, D = build_networks(cfg)
    for key, layout, module in (("G", published_generator(res, **dims), G),
                                ("D", published_discriminator(res, **dims), D)):  # fmt: skip
        source = {our_name(n): torch.empty(s, device="meta") for n, s, kind in layout
                  if kind != MODULE and not n.endswith("resample_filter")}  # fmt: skip
        fit = fit_network(key, source, module)
        assert fit.fits, fit.describe()


def test_published_up_convolution_is_a_transposed_convolution_of_the_flipped_kernel() -> None:
    """Why conv0 kernels are flipped on loading: the published up-sampling layer runs
    ``conv_transpose2d(x, w^T, stride=2)`` and then the [1, 3, 3, 1] filter (padding 1, 1;
    gain 4); ours with the flipped kernel is the same operator."""
    gen = torch.Generator().manual_seed(0)
    x, w = torch.randn(2, 5, 6, 6, generator=gen), torch.randn(4, 5, 3, 3, generator=gen)
    taps = make_fir_filter(DEFAULT_FIR_TAPS)
    published = upfirdn2d(F.conv_transpose2d(x, w.transpose(0, 1), stride=2), taps,
                          pad=(1, 1), gain=4.0)  # fmt: skip
    ours = conv2d_resample(x, w.flip([2, 3]), taps, up=True)
    assert ours.shape == published.shape == (2, 4, 12, 12)
    torch.testing.assert_close(ours, published, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(conv2d_resample(x, w, taps, up=True), published, atol=1e-3)


# ---------------------------------------------------------------------------------------------
# Loading a published pickle


@pytest.mark.parametrize("protocol", [3, 4])
def test_init_from_a_published_pickle_loads_g_d_and_g_ema_and_starts_at_kimg_0(
    dataset_dir: str, tmp_path: Path, protocol: int
) -> None:
    marker = tmp_path / "module_src_ran"
    networks = tiny_published()
    # The pickled module source would leave a marker if anything executed it.
    src = f"open({str(marker)!r}, 'w').write('ran')\n"
    pkl = write_pickle(tmp_path / "net.pkl", networks, module_src=src, protocol=protocol)

    trainer = trainer_for(dataset_dir, tmp_path / "run", init_from=str(pkl))
    assert not marker.exists()
    modules = {"G": trainer.G, "D": trainer.D, "G_ema": trainer.G_ema}
    for key, (layout, values) in networks.items():
        ours = modules[key].state_dict()
        loaded = 0
        for name, _shape, kind in layout:
            if kind == MODULE or name.endswith("resample_filter"):
                continue
            expected = values[name]
            if name.endswith(".conv0.weight") and name.startswith("synthesis."):
                expected = expected.flip([2, 3])
            mine = name.replace("mapping.fc", "mapping.layers.", 1)
            assert torch.equal(ours[mine], expected), f"{key}.{name}"
            loaded += 1
        assert loaded == len(ours)
    assert not torch.equal(trainer.G.synthesis.b4.const, trainer.G_ema.synthesis.b4.const)
    assert trainer.cur_nimg == 0 and trainer.cur_tick == 0 and trainer.augment_p == 0.0
    assert trainer.opt_G.state_dict()["state"] == {} and trainer.opt_D.state_dict()["state"] == {}
    assert trainer.initialised_from == str(pkl)
    assert trainer.run() == EXIT_OK
    assert trainer.cur_nimg == BATCH  # one step from kimg 0


def test_the_reader_returns_plain_tensors_keyed_as_the_published_state_dict(
    tmp_path: Path,
) -> None:
    pkl = write_pickle(tmp_path / "net.pkl", tiny_published())
    networks = read_network_pickle(pkl.read_bytes(), str(pkl))
    assert set(networks) == {"G", "D", "G_ema"}
    for name in ("mapping.fc0.weight", "mapping.w_avg", "synthesis.b4.const",
                 "synthesis.b4.conv1.affine.weight", "synthesis.b8.torgb.weight",
                 "synthesis.b8.conv0.noise_strength", "synthesis.b8.resample_filter"):  # fmt: skip
        assert type(networks["G"][name]) is torch.Tensor, name
    assert {"b8.fromrgb.weight", "b4.out.weight", "b8.skip.weight"} <= set(networks["D"])
    assert "b8.skip.bias" not in networks["D"]


def test_a_shape_mismatch_names_the_parameter_and_loads_nothing(
    dataset_dir: str, tmp_path: Path
) -> None:
    pkl = write_pickle(tmp_path / "wide.pkl", tiny_published(cmax=32))  # 32 channels, not 16
    with pytest.raises(ConfigError) as info:
        trainer_for(dataset_dir, tmp_path / "run", init_from=str(pkl))
    message = str(info.value)
    assert message.startswith(f"init_from: StyleGAN2-ADA network pickle {pkl} does not fit "
                              "this run's networks, so nothing was loaded: G: ")  # fmt: skip
    assert "synthesis.b4.const [32, 4, 4] (here [16, 4, 4])" in message
    assert "D: 5 tensors fit; another shape: b8.conv1.weight [32, 16, 3, 3] (here" in message
    assert "and 8 more" in message  # the full lists go to the log
    assert "--preset paper256" in message
    assert info.value.exit_code == EXIT_CONFIG


def test_a_network_of_another_resolution_is_refused_by_resolution(
    dataset_dir: str, tmp_path: Path
) -> None:
    pkl = write_pickle(tmp_path / "big.pkl", tiny_published(res=16))
    with pytest.raises(ConfigError, match=r"init_from: StyleGAN2-ADA network pickle .*big\.pkl "
                       r"is a 16x16 network and this run trains at 8x8"):  # fmt: skip
        trainer_for(dataset_dir, tmp_path / "run", init_from=str(pkl))


def test_layers_the_run_lacks_are_named(dataset_dir: str, tmp_path: Path) -> None:
    pkl = write_pickle(tmp_path / "deep.pkl", tiny_published(layers=3))  # 3 mapping layers
    with pytest.raises(ConfigError, match=r"G: 30 tensors fit; not in this run: "
                       r"mapping\.fc1\.weight, mapping\.fc1\.bias, "
                       r"mapping\.fc2\.weight and 1 more"):  # fmt: skip
        trainer_for(dataset_dir, tmp_path / "run", init_from=str(pkl))


# ---------------------------------------------------------------------------------------------
# Malicious files


class _System:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (self.command,))


class _Eval:
    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self) -> tuple[Any, ...]:
        return (eval, (self.code,))


class _Popen:
    def __init__(self, args: list[str]) -> None:
        self.args = args

    def __reduce__(self) -> tuple[Any, ...]:
        return (subprocess.Popen, (self.args,))


@pytest.mark.parametrize(
    ("make", "named"),
    [
        (lambda m: _System(f"touch {m}"), "posix.system"),
        (lambda m: _Eval(f"open({str(m)!r}, 'w').write('ran')"), "builtins.eval"),
        (lambda m: _Popen(["touch", str(m)]), "subprocess.Popen"),
    ],
    ids=["os.system", "eval", "subprocess"],
)
def test_a_malicious_pickle_is_refused_without_running_anything(
    dataset_dir: str, tmp_path: Path, make: Callable[[Path], Any], named: str
) -> None:
    marker = tmp_path / "pwned"
    networks = tiny_published()
    with published_names():
        data = {key: module_tree(key, layout, values, "") for key, (layout, values)
                in networks.items()}  # fmt: skip
        data["training_set_kwargs"] = EasyDict(path=make(marker))  # deep inside, not on top
        payload = pickle.dumps(data, protocol=4)
    pkl = tmp_path / "evil.pkl"
    pkl.write_bytes(payload)
    with pytest.raises(ConfigError) as info:
        trainer_for(dataset_dir, tmp_path / "run", init_from=str(pkl))
    assert str(info.value) == (
        f"init_from: {pkl} is refused: it asks to call {named}, which is neither a tensor "
        "container nor a class of the published StyleGAN2-ADA code; nothing in it was run"
    )
    assert not marker.exists()


def test_a_malicious_checkpoint_is_refused_by_weights_only(
    dataset_dir: str, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format": ckpt.CHECKPOINT_FORMAT, "G": _System(f"touch {marker}")}, evil)
    with pytest.raises(ConfigError, match=r"init_from: .*evil\.pt is refused by "
                       r"torch\.load\(weights_only=True\), nothing in it was run"):  # fmt: skip
        trainer_for(dataset_dir, tmp_path / "run", init_from=str(evil))
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------
# This project's checkpoints


def test_init_from_our_checkpoint_takes_its_weights_and_starts_at_kimg_0(
    dataset_dir: str, tmp_path: Path
) -> None:
    source = trainer_for(dataset_dir, tmp_path / "pre", steps=2)
    assert source.run() == EXIT_OK
    saved = ckpt.load_latest(ckpt.open_storage(str(tmp_path / "pre")))
    assert saved is not None and saved["cur_nimg"] == 2 * BATCH

    run = tmp_path / "fine"
    trainer = trainer_for(dataset_dir, run, steps=1, seed=5, resume="latest",
                          init_from=str(tmp_path / "pre"))  # fmt: skip
    for key, module in (("G", trainer.G), ("D", trainer.D), ("G_ema", trainer.G_ema)):
        mine = module.state_dict()
        assert all(torch.equal(mine[k], v) for k, v in saved[key].items()), key
    assert trainer.cur_nimg == 0 and trainer.cur_step == 0 and trainer.last_checkpoint is None
    assert trainer.opt_G.state_dict()["state"] == {}
    assert trainer.run() == EXIT_OK and trainer.cur_nimg == BATCH

    # A restarted attempt with the same options resumes its own checkpoint, not init_from.
    again = trainer_for(dataset_dir, run, steps=2, seed=5, resume="latest",
                        init_from=str(tmp_path / "pre"))  # fmt: skip
    assert again.cur_nimg == BATCH and again.initialised_from is None


def test_a_checkpoint_of_another_network_names_what_differs(
    dataset_dir: str, tmp_path: Path
) -> None:
    source = trainer_for(dataset_dir, tmp_path / "pre", overrides={**TINY, "channel_max": 8})
    assert source.run() == EXIT_OK
    with pytest.raises(ConfigError, match=r"init_from: checkpoint .*ckpt-000000004\.pt does not "
                       r"fit this run's networks.*synthesis\.b4\.const \[8, 4, 4\] "
                       r"\(here \[16, 4, 4\]\)"):  # fmt: skip
        trainer_for(dataset_dir, tmp_path / "run", init_from=str(tmp_path / "pre"))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"init_from": ""}, "init_from: '' is not valid; give a checkpoint path/URI"),
        ({"resume": "gs://b/ckpt.pt", "init_from": "x.pkl"},
         "init_from: cannot go with resume: gs://b/ckpt.pt, which continues that checkpoint"),
        ({"resume": "latest", "resume_fallback": "gs://b/c.pt", "init_from": "x.pkl"},
         "init_from: cannot go with resume_fallback"),
    ],
)  # fmt: skip
def test_init_from_options_are_checked(changes: dict[str, Any], message: str) -> None:
    from stylegan_trainer.train.options import TrainingOptions

    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        TrainingOptions(**changes).validate()


def _two_ranks_main(rank: int, port: int, dataset: str, outdir: str, pkl: str, evil: str,
                    result: str) -> None:  # fmt: skip
    from stylegan_trainer.train import distributed as dist_helpers

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))  # fmt: skip
    torch.set_num_threads(1)
    ctx = dist_helpers.init_from_env("cpu")
    try:
        options = tiny_options(dataset, Path(outdir), 1, augment="noaug", init_from=pkl)
        trainer = Trainer(options, ctx, reporter=SilentReporter())
        seen: dict[str, Any] = {f"{key}.{k}": v for key, module in
                                (("G", trainer.G), ("D", trainer.D), ("G_ema", trainer.G_ema))
                                for k, v in module.state_dict().items()}  # fmt: skip
        try:
            Trainer(tiny_options(dataset, Path(outdir), 1, init_from=evil), ctx,
                    reporter=SilentReporter())  # fmt: skip
            seen["error"] = ""
        except ConfigError as exc:
            seen["error"] = str(exc)
        torch.save(seen, f"{result}.{rank}")
    finally:
        dist_helpers.shutdown()


@pytest.mark.timeout(240)
def test_two_ranks_get_the_weights_and_the_refusal_from_rank_0(
    dataset_dir: str, tmp_path: Path
) -> None:
    import torch.multiprocessing as mp
    from tests.support import free_port

    networks = tiny_published()
    pkl = write_pickle(tmp_path / "net.pkl", networks)
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(_System(f"touch {tmp_path / 'pwned'}")))
    result = tmp_path / "seen"
    args = (free_port(), dataset_dir, str(tmp_path / "run"), str(pkl), str(evil), str(result))
    mp.spawn(_two_ranks_main, nprocs=2, join=True, args=args)
    first, second = (torch.load(f"{result}.{rank}", weights_only=True) for rank in (0, 1))
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first if k != "error")
    const = networks["G_ema"][1]["synthesis.b4.const"]
    assert torch.equal(first["G_ema.synthesis.b4.const"], const)
    assert first["error"] == second["error"] != ""
    assert "is refused: it asks to call posix.system" in second["error"]
    assert not (tmp_path / "pwned").exists()


# ---------------------------------------------------------------------------------------------
# The command


def test_the_train_command_takes_init_from(dataset_dir: str, tmp_path: Path) -> None:
    from stylegan_trainer.cli.train_commands import train_cmd

    pkl = write_pickle(tmp_path / "net.pkl", tiny_published())
    config = tmp_path / "run.json"
    config.write_text(json.dumps(tiny_options(dataset_dir, tmp_path / "out", 1).to_dict()))
    result = CliRunner().invoke(train_cmd, ["--config", str(config), "--init-from", str(pkl)])
    assert result.exit_code == EXIT_OK, result.output
    recorded = json.loads((tmp_path / "out" / "training_options.json").read_text())
    assert recorded["options"]["init_from"] == str(pkl)
    log = (tmp_path / "out" / "log.txt").read_text()
    assert f"init_from: G, D and G_ema from StyleGAN2-ADA network pickle {pkl}" in log
    assert f"at kimg 0.0, weights from {pkl}" in log

    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(_System(f"touch {tmp_path / 'pwned'}")))
    result = CliRunner().invoke(train_cmd, ["--config", str(config), "--init-from", str(evil)])
    assert result.exit_code == EXIT_CONFIG
    assert result.output.strip().splitlines() == [
        f"error: init_from: {evil} is refused: it asks to call posix.system, which is neither "
        "a tensor container nor a class of the published StyleGAN2-ADA code; nothing in it "
        "was run"
    ]
    assert not (tmp_path / "pwned").exists()
