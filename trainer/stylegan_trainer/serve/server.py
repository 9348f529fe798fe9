"""The face server: a run's generator behind HTTP (``stylegan serve``).

Endpoints: ``GET /face?seed=N[&psi=0.7][&size=S]`` a PNG (the same parameters give the same
bytes: constant noise, seeded latents, as ``stylegan generate``); ``GET /`` a page with one
face and seed/psi controls; ``/healthz`` (the process answers); ``/readyz`` (200 once a
generator is loaded, 503 before: the Deployment's readiness probe); ``/metrics``
(Prometheus: images served, request latency by endpoint, the checkpoint's kimg, reloads).
A bad parameter is a 400 naming it (``params``); nothing a client sends makes a 500.

Python's ``ThreadingHTTPServer``: one thread a request, no dependency beyond the trainer's;
torch runs the generator with the GIL released, so concurrent requests overlap on a GPU.
Generation itself is serialised by a lock per server (one forward at a time keeps memory
bounded); requests are not batched together yet.
"""

from __future__ import annotations

import html
import io
import json
import logging
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import torch
import torch.nn.functional as F
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from stylegan_trainer.sampling.generate import generate_images, to_pil
from stylegan_trainer.serve.params import BadRequest, parse_face
from stylegan_trainer.serve.source import GeneratorSource

log = logging.getLogger(__name__)

ENDPOINTS = ("/", "/face", "/healthz", "/readyz", "/metrics")


class FaceMetrics:
    """The server's own registry (never prometheus_client's global one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.images = Counter("stylegan_serve_images", "Faces generated.",
                              registry=self.registry)
        self.latency = Histogram("stylegan_serve_request_duration_seconds",
                                 "Time to answer a request, by endpoint.", ["endpoint"],
                                 registry=self.registry)
        self.kimg = Gauge("stylegan_serve_checkpoint_kimg",
                          "Training progress (kimg) of the checkpoint being served.",
                          registry=self.registry)
        self.reloads = Counter("stylegan_serve_reloads", "Generators swapped in after start.",
                               registry=self.registry)


def _png(image: Any) -> bytes:
    buffer = io.BytesIO()
    to_pil(image).save(buffer, format="PNG")
    return buffer.getvalue()


class FaceServer:
    """What the handler needs: the source, the defaults, the metrics and a lock."""

    def __init__(self, source: GeneratorSource, psi: float = 0.7, max_size: int = 1024) -> None:
        self.source, self.psi, self.max_size = source, psi, max_size
        self.metrics = FaceMetrics()
        self.lock = threading.Lock()

    def face(self, query: dict[str, list[str]]) -> bytes:
        served = self.source.current()
        if served is None:
            raise LookupError("no checkpoint loaded yet")
        request = parse_face(query, self.psi, int(served.G.img_resolution), self.max_size)
        with self.lock, torch.no_grad():
            image = generate_images(served.G, [request.seed], truncation_psi=request.psi,
                                    device=self.source.device)[0]
        if request.size != image.shape[-1]:
            scaled = F.interpolate(image[None].float(), size=request.size, mode="area")
            image = scaled[0].round().clamp(0, 255).to(torch.uint8)
        self.metrics.images.inc()
        return _png(image)

    def page(self, query: dict[str, list[str]]) -> bytes:
        seed = query.get("seed", ["0"])[0]
        psi = query.get("psi", [str(self.psi)])[0]
        served = self.source.current()
        about = (f"{html.escape(served.name)}, kimg {served.kimg:.1f}" if served
                 else "no checkpoint loaded yet")
        return PAGE.format(seed=html.escape(seed), psi=html.escape(psi), about=about).encode()


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Faces of people who do not exist</title>
<style>body{{font-family:sans-serif;margin:2em;text-align:center}}
img{{width:min(80vmin,512px);image-rendering:auto;border-radius:4px}}</style></head>
<body><h1>A face of nobody</h1>
<p><img id="face" alt="a generated face" src="face?seed={seed}&psi={psi}"></p>
<form id="controls" onsubmit="show(); return false;">
<label>seed <input id="seed" type="number" min="0" max="4294967295" value="{seed}"></label>
<label>psi <input id="psi" type="number" min="0" max="2" step="0.05" value="{psi}"></label>
<button id="show" type="submit">show</button>
<button id="another" type="button" onclick="another_face()">another face</button>
</form><p id="about">{about}</p>
<script>
function show() {{
  const seed = document.getElementById("seed").value;
  const psi = document.getElementById("psi").value;
  document.getElementById("face").src = "face?seed=" + seed + "&psi=" + psi;
}}
function another_face() {{
  document.getElementById("seed").value = Math.floor(Math.random() * 4294967296);
  show();
}}
</script></body></html>
"""


def make_handler(server: FaceServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802  # the name http.server calls
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
            endpoint = url.path if url.path in ENDPOINTS else "other"
            began = time.perf_counter()
            try:
                self._route(url.path, query)
            finally:
                server.metrics.latency.labels(endpoint).observe(time.perf_counter() - began)

        def _route(self, path: str, query: dict[str, list[str]]) -> None:
            if path == "/healthz":
                return self._send(200, b"ok\n", "text/plain")
            if path == "/readyz":
                ready = server.source.current() is not None
                return self._send(200 if ready else 503,
                                  b"ready\n" if ready else b"no checkpoint loaded\n",
                                  "text/plain")
            if path == "/metrics":
                served = server.source.current()
                if served is not None:
                    server.metrics.kimg.set(served.kimg)
                return self._send(200, generate_latest(server.metrics.registry),
                                  "text/plain; version=0.0.4")
            if path == "/":
                return self._send(200, server.page(query), "text/html; charset=utf-8")
            if path == "/face":
                try:
                    return self._send(200, server.face(query), "image/png")
                except BadRequest as exc:
                    return self._send(400, json.dumps({"error": str(exc)}).encode(),
                                      "application/json")
                except LookupError as exc:
                    return self._send(503, json.dumps({"error": str(exc)}).encode(),
                                      "application/json")
            known = ", ".join(ENDPOINTS)
            self._send(404, json.dumps({"error": f"{path}: not found; try {known}"}).encode(),
                       "application/json")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store" if code != 200 else "max-age=60")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            log.debug("%s %s", self.address_string(), format % args)

    return Handler


def make_http_server(server: FaceServer, host: str, port: int) -> ThreadingHTTPServer:
    """Bound, not yet serving (``serve_forever``); port 0 picks a free one."""
    httpd = ThreadingHTTPServer((host, port), make_handler(server))
    httpd.daemon_threads = True
    return httpd
