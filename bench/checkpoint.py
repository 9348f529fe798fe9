"""How big a full training checkpoint is, and how fast it saves and loads, to GCS and to disk.

For the ``stylegan2`` preset at each resolution asked (256 and 1024 by default) it builds G, D
and G_ema and two Adam optimizers with their moment buffers filled (one step on zero
gradients: the state has its full size without any forward pass), then, for each target:

* ``gcs``: a fake-gcs-server it starts itself (the same helper the tests use,
  ``hack/fakegcs.py``), through the real google-cloud-storage client and ``GCSStorage``;
* ``local``: a temporary folder through ``LocalStorage``;

it times ``save_checkpoint`` (serialise, sha256, create-only write, pointer compare-and-swap)
and ``load_latest`` (pointer, read, size + sha256 check, ``torch.load``), and the bare object
write and read on their own. Prints a table; asserts nothing (bench/ never fails a build).

    .venv/bin/python bench/checkpoint.py [--resolutions 256 1024] [--chunk-mib 64]

The emulator keeps objects in memory and runs on the same machine, so the gcs rows measure
the client, the HTTP path and the protocol, not a real network. It also re-hashes (MD5 and
CRC32C) everything received so far after every chunk of a resumable upload, so its upload time
grows with size^2 / chunk size: small chunks make it, not the client, the bottleneck.
"""

from __future__ import annotations

import argparse
import copy
import gc
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from google.cloud import storage as google_storage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "hack"))

import fakegcs  # noqa: E402

from stylegan_common.storage import LocalStorage, Storage  # noqa: E402
from stylegan_common.storage.gcs import DEFAULT_CHUNK_SIZE, GCSStorage  # noqa: E402
from stylegan_trainer.model.networks import build_networks, count_parameters  # noqa: E402
from stylegan_trainer.train.checkpoint import load_latest, save_checkpoint, serialize  # noqa: E402
from stylegan_trainer.train.presets import resolve_preset  # noqa: E402

MB = 1e6
T = TypeVar("T")


@dataclass
class Row:
    target: str
    resolution: int
    params_m: float
    size_mb: float
    save_s: float
    load_s: float
    put_s: float
    get_s: float

    def cells(self) -> list[str]:
        def rate(seconds: float) -> str:
            return f"{self.size_mb / seconds:8.1f}" if seconds > 0 else "       -"

        return [
            f"{self.target:<6}", f"{self.resolution:>5}", f"{self.params_m:>8.1f}",
            f"{self.size_mb:>8.1f}", f"{self.save_s:>7.2f}", rate(self.save_s),
            f"{self.load_s:>7.2f}", rate(self.load_s), f"{self.put_s:>7.2f}", rate(self.put_s),
            f"{self.get_s:>7.2f}", rate(self.get_s),
        ]  # fmt: skip


HEADER = ["target", "res", "params M", "size MB", "save s", "save MB/s", "load s",
          "load MB/s", "put s", "put MB/s", "get s", "get MB/s"]  # fmt: skip


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def adam_with_state(module: torch.nn.Module, lr: float, betas: tuple[float, float]
                    ) -> torch.optim.Adam:
    """An Adam whose exp_avg/exp_avg_sq exist, as they do after the first training step."""
    optimizer = torch.optim.Adam(module.parameters(), lr=lr, betas=betas)
    for p in module.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return optimizer


def training_state(resolution: int) -> tuple[dict[str, Any], int]:
    """Everything a checkpoint of the stylegan2 preset holds, and G + D's parameter count."""
    preset = resolve_preset("stylegan2", resolution)
    torch.manual_seed(0)
    G, D = build_networks(preset.network)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    state = {
        "network": preset.network.to_dict(), "options": preset.to_dict(),
        "G": G.state_dict(), "D": D.state_dict(), "G_ema": G_ema.state_dict(),
        "opt_G": adam_with_state(G, preset.lr_g, preset.betas).state_dict(),
        "opt_D": adam_with_state(D, preset.lr_d, preset.betas).state_dict(),
        "augment": {}, "ada": {"p": 0.0}, "pl_mean": torch.zeros([]),
        "cur_nimg": 1000, "tick": 1, "rng": {}, "sampler": {"position": 0},
    }  # fmt: skip
    return state, count_parameters(G) + count_parameters(D)


def measure(target: str, storage: Storage, state: dict[str, Any], resolution: int,
            params: int) -> Row:
    name, save_s = timed(lambda: save_checkpoint(storage, state, kimg=1.0, keep=1))
    loaded, load_s = timed(lambda: load_latest(storage))
    assert loaded is not None and loaded["_checkpoint_name"] == name
    del loaded
    size, put_s, get_s = put_and_get(storage, serialize(dict(state, format="bench")))
    storage.delete(name)
    gc.collect()
    return Row(target, resolution, params / 1e6, size / MB, save_s, load_s, put_s, get_s)


def put_and_get(storage: Storage, data: bytes) -> tuple[int, float, float]:
    """Size and seconds of the bare object write and read, without the protocol around them."""
    _, put_s = timed(lambda: storage.write_bytes("bench/raw.pt", data))
    back, get_s = timed(lambda: storage.read_bytes("bench/raw.pt"))
    assert back == data
    storage.delete("bench/raw.pt")
    return len(data), put_s, get_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--chunk-mib", type=int, default=DEFAULT_CHUNK_SIZE // 2**20,
                        help="resumable upload chunk size in MiB (default: GCSStorage's)")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-checkpoint-") as tmp:
        server = fakegcs.start_fake_gcs(Path(tmp) / "fake-gcs-server.log")
        try:
            os.environ["STORAGE_EMULATOR_HOST"] = server.url
            os.environ.setdefault("GOOGLE_CLOUD_PROJECT", "bench")
            google_storage.Client().create_bucket("bench")
            for resolution in args.resolutions:
                state, params = training_state(resolution)
                targets: list[tuple[str, Storage]] = [
                    ("gcs", GCSStorage(f"gs://bench/r{resolution}",
                                       chunk_size=args.chunk_mib * 1024 * 1024)),
                    ("local", LocalStorage(Path(tmp) / f"r{resolution}")),
                ]
                for target, storage in targets:
                    row = measure(target, storage, state, resolution, params)
                    rows.append(row)
                    print(" ".join(row.cells()), file=sys.stderr, flush=True)
                del state
                gc.collect()
        finally:
            server.stop()

    print(f"checkpoint save/load, stylegan2 preset, torch {torch.__version__}, "
          f"{os.cpu_count()} CPUs; gcs = fake-gcs-server on loopback, "
          f"{args.chunk_mib} MiB chunks; MB = 10^6 bytes")
    widths = [max(len(h), len(c)) for h, c in zip(HEADER, rows[0].cells(), strict=True)]
    print("  ".join(h.rjust(w) for h, w in zip(HEADER, widths, strict=True)))
    for row in rows:
        print("  ".join(c.strip().rjust(w) for c, w in zip(row.cells(), widths, strict=True)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
