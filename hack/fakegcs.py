"""Start and stop the real fake-gcs-server (a Google Cloud Storage emulator) on a free port.

Shared by the test fixture (``tests/integration/gcs/conftest.py``) and ``bench/checkpoint.py``;
standard library only, so both can put ``hack/`` on ``sys.path`` and import it.

The binary is built from its Go module (github.com/fsouza/fake-gcs-server, pinned in
``hack/versions.env``) by ``hack/build-tools.sh`` into ``$STYLEGAN_CACHE/bin``. It runs with:

* ``-scheme http``: google-cloud-storage talks plain HTTP to ``STORAGE_EMULATOR_HOST``;
* ``-host 127.0.0.1``: loopback only, never the default ``0.0.0.0``;
* ``-external-url`` and ``-public-host``: the resumable-upload ``Location`` header and the
  media links are built from these, so without them large (resumable) uploads go astray;
* ``-backend memory``: nothing left on disk, a fresh store per start.

v1.55 or later is needed: it is the first release that enforces ``ifGenerationMatch`` on
resumable uploads, which the checkpoint protocol's create-only writes rely on.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from localcluster import free_port  # hack/ is on sys.path wherever this module is

BINARY_NAME = "fake-gcs-server"
DEFAULT_CACHE = Path(os.environ.get("STYLEGAN_CACHE", Path.home() / ".cache" / "stylegan-operator"))
HEALTHCHECK_PATH = "/_internal/healthcheck"


class FakeGCSError(RuntimeError):
    """The emulator binary is missing, or it did not come up (the message carries its log)."""


def find_binary() -> Path:
    """The fake-gcs-server binary from the build cache or ``PATH``; ``FakeGCSError`` if none."""
    candidate = DEFAULT_CACHE / "bin" / BINARY_NAME
    if candidate.exists():
        return candidate
    found = shutil.which(BINARY_NAME)
    if found:
        return Path(found)
    raise FakeGCSError(
        f"{BINARY_NAME} not found in {candidate.parent} or on PATH: build it with "
        f"`hack/build-tools.sh fakegcs` (or `make setup`)"
    )


@dataclass
class FakeGCS:
    """A running emulator: its base URL (the value for ``STORAGE_EMULATOR_HOST``) and process."""

    url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server's process group (it was started in its own session)."""
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=timeout)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=timeout)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + HEALTHCHECK_PATH, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start_fake_gcs(
    log_path: Path,
    binary: Path | None = None,
    port: int | None = None,
    timeout: float = 30.0,
    log_level: str = "warn",
    external_url: str | None = None,
) -> FakeGCS:
    """Start fake-gcs-server on ``127.0.0.1:port`` (a free port by default), in memory.

    ``external_url`` (default: the server's own URL) is where clients are told to send the
    chunks of resumable uploads; a test that puts a relay in front of the server passes the
    relay's URL so that those requests pass through it too.

    Returns once ``/_internal/healthcheck`` answers; raises ``FakeGCSError`` with the tail of
    its log when the binary is missing, the process exits or it is not healthy in ``timeout``.
    The caller owns the process: call :meth:`FakeGCS.stop`.
    """
    binary = binary or find_binary()
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [
        str(binary), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port),
        "-external-url", external_url or url, "-public-host", f"127.0.0.1:{port}",
        "-backend", "memory", "-log-level", log_level,
    ]  # fmt: skip
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        # A session of its own, so stop() can signal the group and nothing outlives the caller.
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    server = FakeGCS(url=url, port=port, process=process, log_path=log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise FakeGCSError(
                f"{binary} exited with {process.returncode} before answering: {server.log_tail()}"
            )
        if _healthy(url):
            return server
        time.sleep(0.1)
    server.stop()
    raise FakeGCSError(f"{binary} did not answer {url}{HEALTHCHECK_PATH} in {timeout:.0f}s: "
                       f"{server.log_tail()}")
