"""Starting a run from trained weights: ``init_from`` (``--init-from``, ``spec.initFrom``).

Transfer learning, as most users of StyleGAN first do it: fine-tune a trained network on new
images. ``init_from`` initialises G, D and G_ema from either

* a checkpoint of this project: a ``.pt`` object or a run folder (its ``latest.json``), local,
  ``file://`` or ``gs://``, read with ``checkpoint.load_checkpoint`` and so with
  ``torch.load(weights_only=True)``; or
* a published StyleGAN2-ADA PyTorch network pickle (``.pkl``: FFHQ, AFHQ, MetFaces, ...), read
  by :mod:`~stylegan_trainer.train.network_pickle` without running any of its code.

Only the weights come across: the optimisers, ADA's p, ``pl_mean``, the kimg counter and the
RNG state start fresh, so the run begins at kimg 0 as a new run (the official code's
``--resume`` of a pickle does the same). When the run's own checkpoint storage already holds a
checkpoint (``resume: latest`` finds one: a restarted attempt), the run resumes from it and
``init_from`` is not read again; it applies to the first start only.

Names: the published ``state_dict`` names are this project's but for the mapping network's
layers (``mapping.fc3.weight`` here is ``mapping.layers.3.weight``). The published layers keep
constant resampling filters as buffers (``*.resample_filter``, the normalised [1, 3, 3, 1]
outer product); this trainer keeps those taps as constants, so they are checked to be that
filter and skipped. One convention differs: the published up-sampling convolution
(``synthesis.b<res>.conv0``) is a transposed convolution of the stored kernel, which is a true
convolution on the zero-stuffed grid, while this trainer's correlates with it (as every other
convolution of both does), so those kernels are flipped on loading and the layer computes the
same function.

Layout: every tensor of the source must find a tensor of the same name and shape here and the
other way round, or nothing is loaded: ``ConfigError`` (exit 64) names, per network, what had
another shape (both shapes), what the source has that this run lacks and what this run has
that the source lacks. A partial load would start training from a network that is neither
the trained one nor a fresh one. A source of another resolution is refused with its own
message before that: the published 1024x1024 FFHQ network does not fit a 256x256 run (its
channel widths per resolution differ too); use the published network of the run's resolution
(``ffhq-res256-mirror-paper256-noaug.pkl`` with ``--preset paper256 --resolution 256``, the
1024 config F networks with ``--preset stylegan2``) or train at the network's resolution.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from stylegan_common.errors import ConfigError, ObjectNotFound
from stylegan_common.storage import LocalStorage, Storage, open_storage
from stylegan_trainer.model.ops import DEFAULT_FIR_TAPS, make_fir_filter
from stylegan_trainer.train import checkpoint as ckpt
from stylegan_trainer.train.distributed import DistContext, broadcast_object
from stylegan_trainer.train.network_pickle import NETWORK_KEYS, read_network_pickle

FIELD = "init_from"
PUBLISHED_SUFFIX = ".pkl"
ZIP_MAGIC = b"PK\x03\x04"  # torch.save files are zip archives; network pickles are not
FILTER_BUFFER = "resample_filter"
_MAPPING_LAYER = re.compile(r"^mapping\.fc(\d+)\.(.+)$")
_OUR_MAPPING_LAYER = re.compile(r"^mapping\.layers\.(\d+)\.(.+)$")
_UP_CONV_WEIGHT = re.compile(r"^synthesis\.b\d+\.conv0\.weight$")
_SYNTHESIS_BLOCK = re.compile(r"^synthesis\.b(\d+)\.")
SHOWN = 3  # names a message lists per kind of misfit, then "and N more"

log = logging.getLogger(__name__)


@dataclass
class NetworkFit:
    """How one network of the source fits this run's module of the same role."""

    network: str  # G, D or G_ema
    matched: list[str] = field(default_factory=list)
    wrong_shape: list[tuple[str, list[int], list[int]]] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)  # in the source, not in this run
    missing: list[str] = field(default_factory=list)  # in this run, not in the source

    @property
    def fits(self) -> bool:
        return not (self.wrong_shape or self.unexpected or self.missing)

    def describe(self, rename: Callable[[str], str] = str) -> str:
        """One clause per kind of misfit, names as ``rename`` gives them (the source's)."""
        parts = []
        if self.wrong_shape:
            shapes = [f"{rename(n)} {src} (here {ours})" for n, src, ours in self.wrong_shape]
            parts.append(f"another shape: {_some(shapes)}")
        if self.unexpected:
            parts.append(f"not in this run: {_some([rename(n) for n in self.unexpected])}")
        if self.missing:
            parts.append(f"not in the source: {_some(self.missing)}")
        return f"{self.network}: {len(self.matched)} tensors fit; " + "; ".join(parts)


def _some(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN])
    return shown + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


# ----------------------------------------------------------------------------------------------
# The published layout


def our_name(published: str) -> str:
    """This project's ``state_dict`` name for a published one (``mapping.fc0.weight`` ->
    ``mapping.layers.0.weight``; every other name is the same)."""
    match = _MAPPING_LAYER.match(published)
    return f"mapping.layers.{match.group(1)}.{match.group(2)}" if match else published


def published_name(ours: str) -> str:
    """The inverse of :func:`our_name`, for messages about a published network."""
    match = _OUR_MAPPING_LAYER.match(ours)
    return f"mapping.fc{match.group(1)}.{match.group(2)}" if match else ours


def _published_filter() -> torch.Tensor:
    taps = torch.tensor(make_fir_filter(DEFAULT_FIR_TAPS), dtype=torch.float64)
    return torch.outer(taps, taps)


def convert_published(
    tensors: Mapping[str, torch.Tensor], network: str, source: str
) -> dict[str, torch.Tensor]:
    """One published network's tensors under this project's names and conventions (module
    docstring): filters checked and dropped, mapping layers renamed, up-conv kernels flipped."""
    expected_filter = _published_filter()
    out: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        if name.rsplit(".", 1)[-1] == FILTER_BUFFER:
            if tensor.shape != expected_filter.shape or not torch.allclose(
                tensor.double(), expected_filter, atol=1e-6
            ):
                raise ConfigError(
                    f"{FIELD}: {source}: {network}.{name} is not the [1, 3, 3, 1] resampling "
                    "filter every layer of this trainer uses"
                )
            continue
        if _UP_CONV_WEIGHT.match(name):
            tensor = tensor.flip([2, 3])  # transposed conv of w == correlation with flipped w
        out[our_name(name)] = tensor
    return out


def published_resolution(generator: Mapping[str, torch.Tensor]) -> int | None:
    """The output size of a published G: its highest synthesis block."""
    blocks = [int(m.group(1)) for m in map(_SYNTHESIS_BLOCK.match, generator) if m]
    return max(blocks) if blocks else None


# ----------------------------------------------------------------------------------------------
# Reading the source


def _object_storage(uri: str) -> tuple[Storage, str]:
    if "://" not in uri or uri.startswith("file://"):
        path = Path(uri.removeprefix("file://"))
        return LocalStorage(path.parent), path.name
    parent, _, name = uri.rpartition("/")
    return open_storage(parent), name


def read_source(uri: str) -> tuple[dict[str, dict[str, torch.Tensor]], str, bool]:
    """``({'G': ..., 'D': ..., 'G_ema': ...}, what it was, whether published)``, the tensors
    under this project's names."""
    if not uri.endswith(PUBLISHED_SUFFIX):
        state = ckpt.load_checkpoint(uri, map_location="cpu", field=FIELD)
        name = state.get("_checkpoint_name", uri)
        return {key: dict(state[key]) for key in NETWORK_KEYS}, f"checkpoint {name}", False
    storage, name = _object_storage(uri)
    try:
        data = storage.read_bytes(name)
    except ObjectNotFound:
        raise ConfigError(f"{FIELD}: {uri} does not exist") from None
    if data.startswith(ZIP_MAGIC):  # this project's checkpoint under a .pkl name
        state = ckpt.deserialize(data, source=uri, field=FIELD)
        return {key: dict(state[key]) for key in NETWORK_KEYS}, f"checkpoint {uri}", False
    published = read_network_pickle(data, uri, FIELD)
    networks = {key: convert_published(published[key], key, uri) for key in NETWORK_KEYS}
    return networks, f"StyleGAN2-ADA network pickle {uri}", True


# ----------------------------------------------------------------------------------------------
# Fitting and loading


def fit_network(network: str, source: Mapping[str, torch.Tensor], module: nn.Module) -> NetworkFit:
    """Compare ``source`` with ``module.state_dict()`` name by name and shape by shape."""
    ours = module.state_dict()
    fit = NetworkFit(network)
    for name, tensor in source.items():
        if name not in ours:
            fit.unexpected.append(name)
        elif tuple(tensor.shape) != tuple(ours[name].shape):
            fit.wrong_shape.append((name, list(tensor.shape), list(ours[name].shape)))
        else:
            fit.matched.append(name)
    fit.missing = [name for name in ours if name not in source]
    return fit


def check_fits(
    networks: Mapping[str, Mapping[str, torch.Tensor]], modules: Mapping[str, nn.Module],
    source: str, resolution: int, rename: Callable[[str], str] = str,
) -> list[NetworkFit]:  # fmt: skip
    """Every network's fit; ``ConfigError`` unless each fits exactly (module docstring)."""
    theirs = published_resolution(networks["G"])
    if theirs is not None and theirs != resolution:
        raise ConfigError(
            f"{FIELD}: {source} is a {theirs}x{theirs} network and this run trains at "
            f"{resolution}x{resolution}: its blocks fit only its own resolution; train at "
            f"resolution {theirs} (a dataset of that size) or start from a network of "
            f"{resolution}x{resolution}"
        )
    fits = [fit_network(key, networks[key], modules[key]) for key in NETWORK_KEYS]
    bad = [fit.describe(rename) for fit in fits if not fit.fits]
    for fit in fits:  # the message shows a few names of each kind; the log has them all
        for name, theirs_shape, ours in fit.wrong_shape:
            log.error("%s: %s.%s is %s there, %s here", FIELD, fit.network, rename(name),
                      theirs_shape, ours)  # fmt: skip
        for name in fit.unexpected:
            log.error("%s: %s.%s is not in this run", FIELD, fit.network, rename(name))
        for name in fit.missing:
            log.error("%s: %s.%s of this run is not in %s", FIELD, fit.network, name, source)
    if bad:
        raise ConfigError(
            f"{FIELD}: {source} does not fit this run's networks, so nothing was loaded: "
            f"{' | '.join(bad)}; train with the preset, resolution and overrides the network "
            "was made with (e.g. --preset paper256 for ffhq-res256-mirror-paper256-noaug.pkl, "
            "--preset stylegan2 for the 1024x1024 config F networks)"
        )
    return fits


def _read_and_check(
    uri: str, modules: Mapping[str, nn.Module], resolution: int
) -> tuple[dict[str, dict[str, torch.Tensor]], str]:
    networks, source, published = read_source(uri)
    rename = published_name if published else str
    fits = check_fits(networks, modules, source, resolution, rename)
    count = sum(len(fit.matched) for fit in fits)
    return networks, f"{FIELD}: G, D and G_ema from {source} ({count} tensors)"


def initialise_networks(
    uri: str, ctx: DistContext, modules: Mapping[str, nn.Module], resolution: int
) -> str:
    """Load G, D and G_ema of ``uri`` into ``modules`` on every rank; the line to log.

    Rank 0 reads and checks the source (only it needs access to it) and hands the weights to
    the others as ``torch.save`` bytes, as resuming does. ``ConfigError`` on every rank when the
    source is refused, unreadable or does not fit.
    """
    payload: tuple[bytes | None, str] | None = None
    error: ConfigError | None = None
    networks: dict[str, dict[str, torch.Tensor]] | None = None
    line = ""
    if ctx.is_main:
        try:
            networks, line = _read_and_check(uri, modules, resolution)
        except ConfigError as exc:
            error = exc
    if ctx.distributed:
        state = None if networks is None else {"format": ckpt.CHECKPOINT_FORMAT, **networks}
        payload = (ckpt.serialize(state) if state is not None else None, line)
        payload, error = broadcast_object((payload, error))  # type: ignore[misc]
        if not ctx.is_main and payload[0] is not None:
            received = ckpt.deserialize(payload[0])
            networks, line = {key: received[key] for key in NETWORK_KEYS}, payload[1]
    if error is not None:
        raise error
    assert networks is not None
    with torch.no_grad():
        for key in NETWORK_KEYS:
            modules[key].load_state_dict(networks[key])
    log.info("%s", line)
    return f"{line}; optimisers, ADA and counters start fresh at kimg 0"


def network_modules(G: nn.Module, D: nn.Module, G_ema: nn.Module) -> dict[str, nn.Module]:
    return dict(zip(NETWORK_KEYS, (G, D, G_ema), strict=True))
