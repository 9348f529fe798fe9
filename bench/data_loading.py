"""Benchmark: images/s of the trainer's batch loading from a zip of PNGs, by worker count.

Writes a zip of ``--images`` 256x256 PNGs (smooth colour fields with grain, which compress
about as photos do, unlike pure noise) with ``stylegan dataset``'s layout, then times
``data.BatchLoader`` serving batches of ``--batch`` in the sampler's order with 0 workers (in
the calling process, as before) and with each other ``--workers`` count. The first batch of a
run (worker start-up) is timed apart from the steady rate. The loader runs alone here; in
training the workers decode while the step computes, so with workers the loading leaves the
critical path instead of merely getting faster: the second figure shows that, the time the loop
still waits for each batch when a simulated GPU step (``--step-ms`` of sleep, during which the
training process leaves the CPU free) runs between batches. Printed, never asserted. Usage::

    python bench/data_loading.py [--workers 0 2] [--batches 20] [--step-ms 100] [-o json]
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image


def write_png_zip(path: Path, count: int, resolution: int, seed: int = 0) -> int:
    """``count`` PNGs of ``resolution`` squared in a zip; returns the zip's size in bytes."""
    rng = np.random.default_rng(seed)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for i in range(count):
            coarse = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
            field = PIL.Image.fromarray(coarse).resize(
                (resolution, resolution), PIL.Image.Resampling.BICUBIC
            )
            grain = rng.integers(-6, 7, (resolution, resolution, 3))
            pixels = np.clip(np.asarray(field, dtype=np.int16) + grain, 0, 255).astype(np.uint8)
            buffer = io.BytesIO()
            PIL.Image.fromarray(pixels).save(buffer, format="PNG")
            archive.writestr(f"{i:05d}.png", buffer.getvalue())
        archive.writestr("dataset.json", json.dumps({"labels": None, "resolution": resolution}))
    return path.stat().st_size


def measure(
    zip_path: Path, workers: int, batch: int, batches: int, step_ms: float
) -> dict[str, Any]:
    """Seconds to the first batch, images/s over ``batches`` more, then the wait per batch
    behind a simulated step of ``step_ms``."""
    from stylegan_trainer.data.dataset import open_dataset
    from stylegan_trainer.data.loading import BatchLoader, InfiniteSampler

    dataset = open_dataset(str(zip_path))
    sampler = InfiniteSampler(len(dataset), seed=0, global_batch=batch)
    with BatchLoader(dataset, sampler, workers) as loader:
        begin = time.perf_counter()
        loader.next()
        first = time.perf_counter() - begin
        begin = time.perf_counter()
        for _ in range(batches):
            loader.next()
        seconds = time.perf_counter() - begin
        waited = 0.0
        for _ in range(batches):
            time.sleep(step_ms / 1000)  # a GPU step: this process mostly waits on the device
            begin = time.perf_counter()
            loader.next()
            waited += time.perf_counter() - begin
    return {
        "step_ms": step_ms,
        "wait_ms_per_batch": waited / batches * 1000,
        "workers": workers,
        "first_batch_s": first,
        "images_per_sec": batch * batches / seconds,
        "ms_per_batch": seconds / batches * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=20, help="timed after the first")
    parser.add_argument("--step-ms", type=float, default=100.0, help="simulated step time")
    parser.add_argument("-o", "--output", choices=["text", "json"], default="text",
                        help="text, or one JSON object per line")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)  # as a rank with its own share of the cores
    counts = [0, *sorted({w for w in args.workers if w > 0})]
    with tempfile.TemporaryDirectory(prefix="stylegan-bench-data-") as tmp:
        zip_path = Path(tmp) / "pngs.zip"
        size = write_png_zip(zip_path, args.images, args.resolution)
        results = [measure(zip_path, w, args.batch, args.batches, args.step_ms) for w in counts]
    base = results[0]["images_per_sec"]
    for result in results:
        result.update(
            ratio=result["images_per_sec"] / base, resolution=args.resolution, batch=args.batch,
            images=args.images, zip_bytes=size,
        )  # fmt: skip
        if args.output == "json":
            print(json.dumps(result, sort_keys=True), flush=True)
        else:
            print(
                f"batch loading, {args.images} PNGs {args.resolution}x{args.resolution} "
                f"({size / 2**20:.1f} MiB zip), batch {args.batch}: {result['workers']} workers "
                f"{result['images_per_sec']:.0f} img/s ({result['ms_per_batch']:.1f} ms/batch, "
                f"{result['ratio']:.2f}x of 0 workers; "
                f"first batch {result['first_batch_s']:.2f} s); behind a {args.step_ms:g} ms "
                f"step the loop waits {result['wait_ms_per_batch']:.1f} ms per batch",
                flush=True,
            )


if __name__ == "__main__":
    main()
