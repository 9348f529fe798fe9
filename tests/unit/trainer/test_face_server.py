"""``stylegan serve`` on loopback: a real server over a real (tiny) training run's checkpoints.

The parameters are refused with a 400 naming them; the same seed gives the same PNG; readyz
says 503 until a checkpoint exists and 200 after; when training moves ``latest.json`` the
server swaps generators while requests keep coming, none of them failing; /metrics passes
promtool.
"""

from __future__ import annotations

import io
import json
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import PIL.Image
import pytest
import torch
from tests.support import require_binary, wait_for

from stylegan_trainer.report.progress import SilentReporter
from stylegan_trainer.serve.params import BadRequest, parse_face
from stylegan_trainer.serve.server import FaceServer, make_http_server
from stylegan_trainer.serve.source import GeneratorSource
from stylegan_trainer.train.loop import Trainer
from stylegan_trainer.train.options import TrainingOptions

TINY = {"z_dim": 16, "w_dim": 16, "channel_base": 128, "channel_max": 16,
        "mapping_layers": 1}


def train(dataset: str, outdir: Path, kimg: float, resume: str = "none") -> None:
    options = TrainingOptions(
        dataset=dataset, preset="cpu", resolution=8, batch=4, kimg=kimg, outdir=str(outdir),
        resume=resume, progress_bar="off", device="cpu", grid_seeds=4, snapshot_kimg=1.0,
        tick_kimg=1.0, overrides=dict(TINY),
    )  # fmt: skip
    assert Trainer(options, reporter=SilentReporter()).run() == 0


@pytest.fixture
def run_dir(tmp_path: Path, noise_dataset: Callable[..., str]) -> Path:
    out = tmp_path / "run"
    train(noise_dataset(12, seed=6), out, kimg=0.008)
    return out


class Served:
    def __init__(self, source: GeneratorSource) -> None:
        self.server = FaceServer(source, psi=0.7, max_size=64)
        self.httpd = make_http_server(self.server, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def get(self, path: str) -> tuple[int, bytes, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=30) as reply:
                return reply.status, reply.read(), reply.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), exc.headers.get("Content-Type", "")

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serving(run_dir: Path) -> Iterator[Served]:
    source = GeneratorSource(str(run_dir), torch.device("cpu"), 3600)
    source.load()
    served = Served(source)
    yield served
    served.close()


@pytest.mark.parametrize(("query", "field"), [
    ({}, "seed"), ({"seed": ["x"]}, "seed"), ({"seed": ["-1"]}, "seed"),
    ({"seed": [str(2**32)]}, "seed"), ({"seed": ["1", "2"]}, "seed"),
    ({"seed": ["1"], "psi": ["nan"]}, "psi"), ({"seed": ["1"], "psi": ["3"]}, "psi"),
    ({"seed": ["1"], "size": ["6"]}, "size"), ({"seed": ["1"], "size": ["4096"]}, "size"),
    ({"seed": ["1"], "size": ["2"]}, "size"),
])
def test_bad_parameters_are_refused_naming_them(query: dict[str, Any], field: str) -> None:
    with pytest.raises(BadRequest, match=rf"^{field}: "):
        parse_face(query, 0.7, resolution=256, limit=1024)


def test_a_face_is_a_png_and_the_same_seed_gives_the_same_bytes(serving: Served) -> None:
    code, first, kind = serving.get("/face?seed=7&psi=0.5")
    assert code == 200 and kind == "image/png"
    assert PIL.Image.open(io.BytesIO(first)).size == (8, 8)
    assert serving.get("/face?seed=7&psi=0.5")[1] == first
    assert serving.get("/face?seed=8&psi=0.5")[1] != first
    code, small, _ = serving.get("/face?seed=7&psi=0.5&size=4")
    assert code == 200 and PIL.Image.open(io.BytesIO(small)).size == (4, 4)


def test_bad_requests_get_a_400_and_the_server_keeps_serving(serving: Served) -> None:
    for path in ("/face?seed=abc", "/face?seed=1&size=999999", "/face?seed=1&psi=inf"):
        code, body, kind = serving.get(path)
        assert code == 400 and kind == "application/json", path
        assert json.loads(body)["error"].split(":")[0] in ("seed", "size", "psi")
    assert serving.get("/nothing")[0] == 404
    assert serving.get("/face?seed=1")[0] == 200


def test_the_page_shows_a_face_with_seed_and_psi_controls(serving: Served) -> None:
    code, page, kind = serving.get("/?seed=42")
    text = page.decode()
    assert code == 200 and kind.startswith("text/html")
    assert 'id="face"' in text and 'src="face?seed=42&psi=0.7"' in text
    assert 'id="seed"' in text and 'id="psi"' in text and "http" not in text  # self-contained


def test_readyz_waits_for_the_first_checkpoint(tmp_path: Path, run_dir: Path) -> None:
    empty = tmp_path / "not-yet"
    empty.mkdir()
    source = GeneratorSource(str(empty), torch.device("cpu"), 3600)
    served = Served(source)
    try:
        assert served.get("/healthz")[0] == 200
        assert served.get("/readyz")[0] == 503
        assert served.get("/face?seed=1")[0] == 503
        (empty / "checkpoints").symlink_to(run_dir / "checkpoints")
        (empty / "latest.json").symlink_to(run_dir / "latest.json")
        source.load()
        assert served.get("/readyz")[0] == 200
    finally:
        served.close()


def test_a_newer_checkpoint_is_swapped_in_without_a_failed_request(
    run_dir: Path, noise_dataset: Callable[..., str]
) -> None:
    source = GeneratorSource(str(run_dir), torch.device("cpu"), reload_seconds=1)
    first = source.load()
    served = Served(source)
    failures: list[int] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            code = served.get("/face?seed=3")[0]
            if code != 200:
                failures.append(code)

    threads = [threading.Thread(target=client) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        before = served.get("/face?seed=3")[1]
        train(noise_dataset(12, seed=6), run_dir, kimg=0.016, resume="latest")
        source.start_watching()
        wait_for(lambda: source.current() is not first, timeout=60, what="the newer generator")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
        served.close()
    assert not failures, failures
    assert source.current().kimg > first.kimg and source.reloads == 1
    assert before.startswith(b"\x89PNG")


def test_metrics_pass_promtool(serving: Served, tmp_path: Path) -> None:
    serving.get("/face?seed=1")
    code, text, _ = serving.get("/metrics")
    assert code == 200 and b"stylegan_serve_images_total 1.0" in text
    assert b"stylegan_serve_checkpoint_kimg" in text
    metrics = tmp_path / "metrics.txt"
    metrics.write_bytes(text)
    proc = subprocess.run([require_binary("promtool"), "check", "metrics"], input=text,
                          capture_output=True, timeout=30, check=False)
    assert proc.returncode == 0 and not proc.stdout.strip() and not proc.stderr.strip(), (
        proc.stdout + proc.stderr)


STYLEGAN = Path(__file__).resolve().parents[3] / ".venv" / "bin" / "stylegan"


def test_the_command_prints_its_url_and_serves_until_stopped(run_dir: Path) -> None:
    proc = subprocess.Popen([str(STYLEGAN), "serve", "--checkpoint", str(run_dir),
                             "--port", "0"], stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = ""
        while "serving faces" not in line:
            line = proc.stderr.readline()
            assert line, "stylegan serve exited before serving"
        url = line.strip().rsplit(" at ", 1)[1]
        assert url.startswith("http://127.0.0.1:") and "kimg" in line
        with urllib.request.urlopen(url + "readyz", timeout=30) as reply:
            assert reply.status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_missing_checkpoint_file_exits_64_naming_the_option(tmp_path: Path) -> None:
    proc = subprocess.run([str(STYLEGAN), "serve", "--checkpoint", str(tmp_path / "no.pt")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 64 and "--checkpoint" in proc.stderr, proc.stderr
