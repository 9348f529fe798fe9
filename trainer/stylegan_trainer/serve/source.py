"""Where the served generator comes from, and how it is swapped when training moves on.

``--checkpoint`` is one checkpoint object (served as it is) or a run's checkpoint storage
(a folder or ``gs://`` prefix holding ``latest.json``): then the newest verified checkpoint is
loaded (``train.checkpoint.load_checkpoint``, with its fallback past torn objects), and a
background thread reads the pointer every ``reload_seconds``; when its generation moved, the
new generator is built beside the old one and swapped in with one assignment under a lock.
Requests in flight finish on the generator they started with, so a reload drops nothing.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import torch

from stylegan_common.storage import open_storage
from stylegan_trainer.train.checkpoint import POINTER_NAME, load_checkpoint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Served:
    """One loaded generator and what it came from."""

    G: Any
    name: str
    kimg: float


def _load(uri: str, device: torch.device) -> Served:
    from stylegan_trainer.model.config import NetworkConfig
    from stylegan_trainer.model.generator import Generator

    state = load_checkpoint(uri, map_location="cpu", field="--checkpoint")
    G = Generator(NetworkConfig.from_dict(state["network"]))
    G.load_state_dict(state["G_ema"])
    G = G.eval().requires_grad_(False).to(device)
    nimg = state.get("cur_nimg") or 0
    return Served(G, str(state.get("_checkpoint_name") or uri), float(nimg) / 1000)


class GeneratorSource:
    """The generator to serve now (:meth:`current`), reloaded as ``latest.json`` moves."""

    def __init__(self, uri: str, device: torch.device, reload_seconds: float = 30.0) -> None:
        self.uri, self.device, self.reload_seconds = uri, device, reload_seconds
        self._lock = threading.Lock()
        self._served: Served | None = None
        self._generation: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reloads = 0

    @property
    def follows_pointer(self) -> bool:
        return not self.uri.rstrip("/").endswith(".pt")

    def _pointer_generation(self) -> int | None:
        pointer = open_storage(self.uri).read_pointer(POINTER_NAME)
        return None if pointer is None else int(pointer[1])

    def load(self) -> Served:
        """Load what ``--checkpoint`` names now (raises ``ConfigError`` when nothing is there)."""
        generation = self._pointer_generation() if self.follows_pointer else None
        served = _load(self.uri, self.device)
        with self._lock:
            self._served, self._generation = served, generation
        log.info("serving %s (kimg %.1f)", served.name, served.kimg)
        return served

    def current(self) -> Served | None:
        with self._lock:
            return self._served

    def check_for_new(self) -> bool:
        """Reload when the pointer's generation moved; whether a new generator was swapped in."""
        if not self.follows_pointer:
            return False
        generation = self._pointer_generation()
        if generation is None or generation == self._generation:
            return False
        self.load()
        self.reloads += 1
        return True

    def start_watching(self) -> None:
        """Poll the pointer in a daemon thread until :meth:`stop`."""
        if not self.follows_pointer or self._thread is not None:
            return

        def watch() -> None:
            while not self._stop.wait(self.reload_seconds):
                try:
                    if self._served is None:
                        self.load()
                    else:
                        self.check_for_new()
                except Exception as exc:  # keep serving the old generator
                    log.warning("reloading %s failed: %s", self.uri, exc)

        self._thread = threading.Thread(target=watch, name="reload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
