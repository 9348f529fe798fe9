"""Benchmark: the face server under load on loopback (p50/p99 latency, faces per second).

Trains a few steps of the ``cpu`` preset at 32x32 (the demo's network) into a scratch folder,
serves it with ``stylegan_trainer.serve`` on 127.0.0.1, and sends a fixed number of
``/face`` requests (distinct seeds) from 1, 2 and 4 concurrent clients. Bounded: the request
count, not a duration. Figures are printed, never asserted::

    python bench/serve_load.py [--requests 200] [--resolution 32]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import torch

from stylegan_trainer.report.progress import SilentReporter
from stylegan_trainer.serve.server import FaceServer, make_http_server
from stylegan_trainer.serve.source import GeneratorSource
from stylegan_trainer.train.loop import Trainer
from stylegan_trainer.train.options import TrainingOptions


def tiny_run(outdir: Path, resolution: int) -> None:
    options = TrainingOptions(
        dataset="builtin:lfw", preset="cpu", resolution=resolution, batch=4, kimg=0.008,
        outdir=str(outdir), resume="none", progress_bar="off", device="cpu", grid_seeds=4,
        snapshot_kimg=1.0, tick_kimg=1.0,
    )  # fmt: skip
    Trainer(options, reporter=SilentReporter()).run()


def load(url: str, requests: int, clients: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    lock = threading.Lock()
    seeds = iter(range(requests))

    def client() -> None:
        while True:
            with lock:
                seed = next(seeds, None)
            if seed is None:
                return
            began = time.perf_counter()
            with urllib.request.urlopen(f"{url}/face?seed={seed}", timeout=60) as reply:
                reply.read()
            with lock:
                latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--resolution", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory(prefix="serve-load-") as scratch:
        tiny_run(Path(scratch), args.resolution)
        source = GeneratorSource(scratch, torch.device("cpu"), reload_seconds=3600)
        source.load()
        httpd = make_http_server(FaceServer(source), "127.0.0.1", 0)
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        load(url, 10, 1)  # warm-up
        print(f"cpu preset {args.resolution}x{args.resolution}, {args.requests} requests, "
              f"{torch.get_num_threads()} torch threads")
        base = None
        for clients in (1, 2, 4):
            latencies, seconds = load(url, args.requests, clients)
            latencies.sort()
            p50 = statistics.median(latencies) * 1000
            p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000
            rate = len(latencies) / seconds
            base = base or rate
            print(f"  {clients} clients: p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  "
                  f"{rate:6.1f} faces/s ({rate / base:.2f}x one client)")
        httpd.shutdown()


if __name__ == "__main__":
    main()
