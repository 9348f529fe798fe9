"""Fixtures for the gs:// tests: the real fake-gcs-server and the real google-cloud-storage client.

``fake_gcs`` starts the emulator binary (built by ``hack/build-tools.sh``) once per session and
stops it by its process group at the end, whatever the tests did. A missing binary FAILS the
tests with the reason: these tests exist to exercise the real thing, so skipping would hide
that they never ran. Each test gets its own bucket (``bucket``), and the environment the
client reads (``STORAGE_EMULATOR_HOST``, ``GOOGLE_CLOUD_PROJECT``) is set per test.

``flaky_gcs`` is a second, private emulator behind a :class:`FaultRelay`, for the tests that
break the network; its resumable-upload URLs point at the relay too, so every request of an
upload passes through it.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from google.cloud import storage

from tests.integration.gcs.faults import FaultRelay

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "hack"))

import fakegcs  # noqa: E402


def _start(log_path: Path, external_url: str | None = None, port: int | None = None
           ) -> fakegcs.FakeGCS:
    try:
        return fakegcs.start_fake_gcs(log_path, port=port, external_url=external_url)
    except fakegcs.FakeGCSError as exc:
        pytest.fail(f"fake-gcs-server is needed for the gs:// tests: {exc}")


@pytest.fixture(scope="session")
def fake_gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[fakegcs.FakeGCS]:
    server = _start(tmp_path_factory.mktemp("fake-gcs") / "fake-gcs-server.log")
    try:
        yield server
    finally:
        server.stop()


def _point_client_at(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", url)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "test")
    # Never let a developer's real credentials near the tests.
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)


@pytest.fixture
def gcs_client(fake_gcs: fakegcs.FakeGCS, monkeypatch: pytest.MonkeyPatch) -> storage.Client:
    """A raw client on the session emulator, for setting up and tampering out of band."""
    _point_client_at(monkeypatch, fake_gcs.url)
    return storage.Client()


def new_bucket(client: storage.Client) -> str:
    name = f"t-{uuid.uuid4().hex[:12]}"
    client.create_bucket(name)
    return name


@pytest.fixture
def bucket(gcs_client: storage.Client) -> str:
    """A fresh, empty bucket of its own for the test."""
    return new_bucket(gcs_client)


@dataclass
class FlakyGCS:
    """A private emulator (``direct_url``) reached through ``relay`` (``url``)."""

    server: fakegcs.FakeGCS
    relay: FaultRelay
    bucket: str

    @property
    def url(self) -> str:
        return self.relay.url

    @property
    def direct_url(self) -> str:
        return self.server.url


@pytest.fixture
def flaky_gcs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FlakyGCS]:
    """The environment points at the relay; ``direct_url`` bypasses it."""
    port = fakegcs.free_port()
    relay = FaultRelay(port)
    server = _start(tmp_path / "fake-gcs-flaky.log", external_url=relay.url, port=port)
    try:
        _point_client_at(monkeypatch, relay.url)
        yield FlakyGCS(server, relay, new_bucket(storage.Client()))
    finally:
        relay.close()
        server.stop()
