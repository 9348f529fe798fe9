"""The checkpoint protocol: write whole, then point; read verified, fall back when torn.

A checkpoint is one object holding everything needed to continue bit for bit (G, D, G_ema,
both optimizers, the augment pipe and ADA state, ``pl_mean``, ``cur_nimg``, the tick, every
RNG state, the sampler position, the training options and the network config). Saving:

1. serialise with ``torch.save`` and write it under a NEW name,
   ``checkpoints/ckpt-<cur_nimg:09d>.pt``, create-only (an existing object is never replaced);
2. move the pointer ``latest.json`` (compare-and-swap) to name it with its size and sha256,
   keeping the previous entries as a short ``history``: the pointer is written last, so a crash
   at any moment leaves either the old pointer or the new one, each naming whole objects;
3. delete checkpoints beyond the newest ``keep``, never one the pointer names.

The pointer never moves backwards: when it already names a checkpoint of more images than the
one being saved (the SIGTERM checkpoint of an attempt still stopping, written while its
successor trained from an older one), step 2 leaves it there with a warning naming both; the
new object stays, unpointed, until retention prunes it. The compare-and-swap on the pointer's
generation still refuses a writer that read it before another moved it. Branching off an older
checkpoint therefore needs a new checkpoint folder (``resume: <that checkpoint>`` there).

Loading verifies size and sha256 and, when the newest object is torn or corrupt, logs a line
and falls back to the previous entry of the history. Tensors, numbers, strings and containers
only: the file loads with ``torch.load(weights_only=True)``, so a checkpoint cannot run code;
one that names any other global is refused with a ``ConfigError`` (exit 64) naming the file.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import logging
import pickle
import random
import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from stylegan_common.errors import ConfigError, ObjectNotFound, StorageError
from stylegan_common.storage import LocalStorage, Storage, open_storage

if TYPE_CHECKING:
    from stylegan_trainer.model.generator import Generator

CHECKPOINT_FORMAT = "stylegan-operator/v1"
POINTER_NAME = "latest.json"
CHECKPOINT_DIR = "checkpoints"
REQUIRED_KEYS = (
    "format", "network", "options", "G", "D", "G_ema", "opt_G", "opt_D", "augment", "ada",
    "pl_mean", "cur_nimg", "tick", "rng", "sampler",
)  # fmt: skip
_NAME_PATTERN = re.compile(r"^checkpoints/ckpt-(\d{9,})(?:-r(\d+))?\.pt$")

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------
# RNG state, in a form torch.load(weights_only=True) accepts


def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy, torch CPU and every CUDA generator state."""
    py_version, py_state, py_gauss = random.getstate()
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    return {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": [
            np_kind,
            torch.from_numpy(np.asarray(np_keys).copy()),
            np_pos,
            np_has_gauss,
            np_gauss,
        ],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_state(state: Mapping[str, Any]) -> None:
    version, py_state, gauss = state["python"]
    random.setstate((version, tuple(py_state), gauss))
    kind, keys, pos, has_gauss, np_gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, np_gauss))
    torch.set_rng_state(state["torch"].cpu())
    cuda_states = state.get("cuda") or []
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda_states[: torch.cuda.device_count()]])


# ----------------------------------------------------------------------------------------------
# Writing


def checkpoint_name(cur_nimg: int, retry: int = 0) -> str:
    suffix = f"-r{retry}" if retry else ""
    return f"{CHECKPOINT_DIR}/ckpt-{cur_nimg:09d}{suffix}.pt"


def serialize(state: Mapping[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(dict(state), buffer)
    return buffer.getvalue()


def _entry(name: str, data: bytes, kimg: float, nimg: int) -> dict[str, Any]:
    return {
        "name": name,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "kimg": kimg,
        "nimg": nimg,
        "written_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _write_new_object(storage: Storage, cur_nimg: int, data: bytes) -> str:
    """Write under the first free name for ``cur_nimg`` (a resumed run may save the same nimg)."""
    for retry in range(100):
        name = checkpoint_name(cur_nimg, retry)
        if storage.exists(name):
            continue
        storage.write_bytes(name, data, create_only=True)
        return name
    raise StorageError(f"storage: 100 checkpoints already exist for nimg {cur_nimg}")


def save_checkpoint(storage: Storage, state: dict[str, Any], kimg: float, keep: int = 3) -> str:
    """Write ``state`` as a new object, point ``latest.json`` at it, prune; returns its name.

    The pointer stays where it is when it already names a checkpoint of more images (module
    docstring). Raises ``StorageError`` (exit 75) when the write or the pointer update fails,
    ``PreconditionFailed`` among them when another writer moved the pointer meanwhile.
    """
    if keep < 1:
        raise ConfigError(f"keep_checkpoints: {keep} must be at least 1")
    state = dict(state, format=CHECKPOINT_FORMAT)
    cur_nimg = int(state.get("cur_nimg", round(kimg * 1000)))
    data = serialize(state)
    name = _write_new_object(storage, cur_nimg, data)
    entry = _entry(name, data, kimg, cur_nimg)
    # Read now, not at resume: another writer may have moved it since (module docstring).
    current = storage.read_pointer(POINTER_NAME)
    previous: list[dict[str, Any]] = []
    generation = 0
    if current is not None:
        pointer, generation = current
        previous = _pointer_entries(pointer)
    if previous and entry_nimg(previous[0]) > cur_nimg:
        log.warning(
            "%s already names %s (nimg %d), newer than %s (nimg %d) just saved: keeping the "
            "pointer at the newer checkpoint",
            POINTER_NAME, previous[0]["name"], entry_nimg(previous[0]), name, cur_nimg,
        )  # fmt: skip
        prune(storage, keep, protected={name, *(e["name"] for e in previous)})
        return name
    history = [e for e in previous if e.get("name") != name][: max(keep - 1, 0)]
    storage.write_pointer(
        POINTER_NAME,
        {"format": CHECKPOINT_FORMAT, "checkpoint": entry, "history": history},
        expected_generation=generation,
    )
    prune(storage, keep, protected={name, *(e["name"] for e in history)})
    return name


def entry_nimg(entry: Mapping[str, Any]) -> int:
    """How many images a pointer entry's checkpoint had seen (older pointers lack ``nimg``)."""
    nimg = entry.get("nimg")
    if isinstance(nimg, int) and not isinstance(nimg, bool):
        return nimg
    match = _NAME_PATTERN.match(str(entry.get("name", "")))
    if match:
        return int(match.group(1))
    kimg = entry.get("kimg")
    return round(kimg * 1000) if isinstance(kimg, int | float) else -1


def _pointer_entries(pointer: Mapping[str, Any]) -> list[dict[str, Any]]:
    entries = []
    if isinstance(pointer.get("checkpoint"), dict):
        entries.append(pointer["checkpoint"])
    entries.extend(e for e in pointer.get("history", []) if isinstance(e, dict))
    return [e for e in entries if isinstance(e.get("name"), str)]


def _sort_key(name: str) -> tuple[int, int]:
    match = _NAME_PATTERN.match(name)
    return (int(match.group(1)), int(match.group(2) or 0)) if match else (-1, -1)


def list_checkpoints(storage: Storage) -> list[str]:
    """Checkpoint object names, oldest first (by nimg, then retry number)."""
    return sorted(
        (n for n in storage.list(CHECKPOINT_DIR + "/") if _NAME_PATTERN.match(n)), key=_sort_key
    )


def prune(storage: Storage, keep: int, protected: set[str]) -> list[str]:
    """Delete all but the newest ``keep`` checkpoints, sparing ``protected``; return those."""
    names = list_checkpoints(storage)
    doomed = [n for n in names[: max(len(names) - keep, 0)] if n not in protected]
    for name in doomed:
        storage.delete(name)
    return doomed


# ----------------------------------------------------------------------------------------------
# Reading


def deserialize(
    data: bytes, map_location: str | torch.device = "cpu", source: str = "the checkpoint",
    field: str = "checkpoint",
) -> dict[str, Any]:
    """A checkpoint's state from its bytes, with nothing in them run.

    ``torch.load(weights_only=True)`` refuses any global that is not a tensor, a number or a
    container; that refusal is a ``ConfigError`` naming ``field`` and ``source`` (exit 64), as a
    checkpoint of another format is.
    """
    try:
        state = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"{field}: {source} is refused by torch.load(weights_only=True), nothing in it was "
            f"run: {reason}"
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise ConfigError(f"{field}: {source} has format {found!r}, not {CHECKPOINT_FORMAT!r}")
    return state


def _verified(storage: Storage, entry: Mapping[str, Any]) -> bytes | None:
    """The entry's bytes when size and sha256 match; ``None`` (with a log line) otherwise."""
    name = entry["name"]
    try:
        data = storage.read_bytes(name)
    except ObjectNotFound:
        log.warning("checkpoint %s named by %s is missing", name, POINTER_NAME)
        return None
    if len(data) != entry.get("size") or hashlib.sha256(data).hexdigest() != entry.get("sha256"):
        log.warning(
            "checkpoint %s is torn or corrupt (%d bytes, expected %s; sha256 mismatch)",
            name, len(data), entry.get("size"),
        )  # fmt: skip
        return None
    return data


def load_latest(
    storage: Storage, map_location: str | torch.device = "cpu"
) -> dict[str, Any] | None:
    """The newest verified checkpoint the pointer names, or ``None`` when there is none.

    Falls back through the pointer's history when the newest object is torn or corrupt, and to
    the newest loadable object when the pointer itself is unreadable.
    """
    try:
        pointer = storage.read_pointer(POINTER_NAME)
    except StorageError as exc:
        log.warning("%s; trying the checkpoint objects newest first", exc)
        return _load_newest_unverified(storage, map_location)
    if pointer is None:
        return None
    entries = _pointer_entries(pointer[0])
    for i, entry in enumerate(entries):
        data = _verified(storage, entry)
        if data is None:
            if i + 1 < len(entries):
                log.warning("falling back to the previous checkpoint %s", entries[i + 1]["name"])
            continue
        state = deserialize(data, map_location, source=entry["name"])
        state["_checkpoint_name"] = entry["name"]
        return state
    raise StorageError(
        f"checkpoint: every checkpoint {POINTER_NAME} names in {storage.uri} is torn or missing"
    )


def _load_newest_unverified(
    storage: Storage, map_location: str | torch.device
) -> dict[str, Any] | None:
    for name in reversed(list_checkpoints(storage)):
        try:
            state = deserialize(storage.read_bytes(name), map_location, source=name)
        except (StorageError, RuntimeError, EOFError, ValueError) as exc:
            log.warning("checkpoint %s does not load (%s); trying an older one", name, exc)
            continue
        state["_checkpoint_name"] = name
        return state
    return None


def _split_object_uri(uri: str) -> tuple[Storage, str] | None:
    """``(storage, name)`` when ``uri`` names one checkpoint object rather than a run folder."""
    if "://" not in uri or uri.startswith("file://"):
        path = Path(uri.removeprefix("file://"))
        return (
            (LocalStorage(path.parent), path.name)
            if path.is_file() or uri.endswith(".pt")
            else None
        )
    if uri.endswith(".pt"):
        parent, _, name = uri.rpartition("/")
        return open_storage(parent), name
    return None


def load_checkpoint(
    uri: str, map_location: str | torch.device = "cpu", field: str = "resume"
) -> dict[str, Any]:
    """Load a checkpoint object (path, ``file://``, ``gs://``) or a run folder's latest.

    Raises ``ConfigError`` naming ``field`` (the option that gave ``uri``) and ``uri`` when
    there is nothing to load.
    """
    target = _split_object_uri(uri)
    if target is not None:
        storage, name = target
        try:
            data = storage.read_bytes(name)
        except ObjectNotFound:
            raise ConfigError(f"{field}: checkpoint {uri} does not exist") from None
        state = deserialize(data, map_location, source=uri, field=field)
        state["_checkpoint_name"] = str(PurePosixPath(uri))
        return state
    state = load_latest(open_storage(uri), map_location)
    if state is None:
        raise ConfigError(f"{field}: {uri} holds no {POINTER_NAME} nor a checkpoint .pt file")
    return state


def load_generator(uri: str, device: str | torch.device = "cpu", which: str = "G_ema") -> Generator:
    """The generator ``which`` (``G_ema`` or ``G``) of a checkpoint, on ``device``, in eval mode."""
    from stylegan_trainer.model.config import NetworkConfig
    from stylegan_trainer.model.generator import Generator

    if which not in ("G_ema", "G"):
        raise ConfigError(f"which: {which!r} is not G_ema or G")
    state = load_checkpoint(uri, map_location="cpu")
    generator = Generator(NetworkConfig.from_dict(state["network"]))
    generator.load_state_dict(state[which])
    return generator.eval().requires_grad_(False).to(device)
