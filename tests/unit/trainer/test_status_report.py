"""Rank 0's progress reports into the run's status: the patch, the sender thread, the env.

The real PATCH against an API server (with the run's own ServiceAccount token) is exercised
by tests/integration/operator and tests/e2e; here the sender's request goes through the real
kubernetes client to a stub HTTP server that records it, and the thread gets a fake sender.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from stylegan_trainer.report import status as status_report
from stylegan_trainer.report.status import (
    StatusReporter,
    checkpoint_kimg,
    checkpoint_uri,
    hooks_from_env,
    progress_patch,
)

RECORD = {
    "kimg": 12.3456789,
    "total_kimg": 50,
    "sec_per_kimg": 31.25,
    "last_checkpoint": "checkpoints/ckpt-000012000.pt",
    "updated_at": "2026-05-01T12:00:00+00:00",
    "error": None,
}


def test_the_patch_carries_progress_in_camel_case_and_the_checkpoint_as_a_uri() -> None:
    patch = progress_patch(RECORD, "gs://ckpt/run/", attempt=2)
    assert patch == {"status": {"progress": {
        "kimg": 12.3457, "totalKimg": 50.0, "secPerKimg": 31.25,
        "updatedAt": "2026-05-01T12:00:00+00:00", "error": None, "attempt": 2,
        "lastCheckpoint": {"uri": "gs://ckpt/run/checkpoints/ckpt-000012000.pt", "kimg": 12.0,
                           "time": "2026-05-01T12:00:00+00:00"},
    }}}


def test_the_checkpoint_time_is_when_it_was_written_not_the_last_report() -> None:
    record = dict(RECORD, last_checkpoint_at="2026-05-01T11:00:00+00:00")
    progress = progress_patch(record, "gs://ckpt/run/")["status"]["progress"]
    assert progress["lastCheckpoint"]["time"] == "2026-05-01T11:00:00+00:00"
    assert progress["updatedAt"] == "2026-05-01T12:00:00+00:00"


def test_before_any_checkpoint_or_timing_the_patch_has_none() -> None:
    patch = progress_patch({"kimg": 0.0, "total_kimg": 5, "sec_per_kimg": None}, None)
    progress = patch["status"]["progress"]
    assert "lastCheckpoint" not in progress and progress["secPerKimg"] is None


def test_checkpoint_names_become_uris_under_the_checkpoint_folder() -> None:
    assert checkpoint_uri("/checkpoints/run", "checkpoints/ckpt-1.pt") == (
        "/checkpoints/run/checkpoints/ckpt-1.pt")
    assert checkpoint_uri("gs://b/p", "gs://other/x.pt") == "gs://other/x.pt"
    assert checkpoint_uri(None, "checkpoints/ckpt-1.pt") == "checkpoints/ckpt-1.pt"
    assert checkpoint_kimg("checkpoints/ckpt-000120000-r1.pt") == 120.0
    assert checkpoint_kimg("model.pt") is None


def test_nan_and_infinity_never_reach_the_api() -> None:
    progress = progress_patch({"kimg": float("nan"), "sec_per_kimg": float("inf")}, None)
    assert progress["status"]["progress"]["kimg"] is None
    assert progress["status"]["progress"]["secPerKimg"] is None


class FakeApi:
    """Records patches; can fail, and can hold a send until released."""

    def __init__(self, fail: int = 0) -> None:
        self.patches: list[dict[str, Any]] = []
        self.fail = fail
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, patch: dict[str, Any]) -> None:
        self.gate.wait(timeout=10)
        if self.fail:
            self.fail -= 1
            raise OSError("connection refused")
        self.patches.append(patch)


def test_the_newest_report_wins_and_reports_never_block_training() -> None:
    api = FakeApi()
    api.gate.clear()  # the API server is slow: the first send hangs
    reporter = StatusReporter(api, "gs://ckpt/run")
    try:
        for kimg in (1.0, 2.0, 3.0):
            reporter(dict(RECORD, kimg=kimg))  # returns at once
        api.gate.set()
        assert reporter.flush(timeout=10)
        sent = [p["status"]["progress"]["kimg"] for p in api.patches]
        assert sent[-1] == 3.0 and len(sent) <= 2  # 2.0 was superseded before it was sent
    finally:
        reporter.close()


def test_a_failed_patch_is_logged_once_and_the_next_report_goes_through(
    caplog: pytest.LogCaptureFixture,
) -> None:
    api = FakeApi(fail=2)
    reporter = StatusReporter(api)
    try:
        for kimg in (1.0, 2.0, 3.0):
            reporter(dict(RECORD, kimg=kimg))
            assert reporter.flush(timeout=10)
        assert [p["status"]["progress"]["kimg"] for p in api.patches] == [3.0]
        warnings = [r for r in caplog.records if "cannot report progress" in r.getMessage()]
        assert len(warnings) == 1
    finally:
        reporter.close()


def test_close_sends_what_is_pending() -> None:
    api = FakeApi()
    reporter = StatusReporter(api)
    reporter(dict(RECORD, kimg=9.0))
    reporter.close()
    assert api.patches[-1]["status"]["progress"]["kimg"] == 9.0


def test_outside_a_run_there_is_no_reporter(monkeypatch: pytest.MonkeyPatch) -> None:
    assert hooks_from_env("/tmp/out", env={}) == []
    monkeypatch.setattr(status_report, "SA_NAMESPACE_FILE",
                        status_report.Path("/nonexistent/namespace"))
    assert hooks_from_env("/tmp/out", env={"STYLEGAN_RUN": "faces"}) == []  # no namespace


def test_without_credentials_there_is_no_reporter(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Any) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    env = {"STYLEGAN_RUN": "faces", "STYLEGAN_RUN_NAMESPACE": "ml"}
    assert hooks_from_env("/tmp/out", env=env) == []


def test_the_namespace_comes_from_the_first_variable_set() -> None:
    assert status_report.run_namespace({"POD_NAMESPACE": "b", "STYLEGAN_NAMESPACE": "a"}) == "a"
    assert status_report.run_namespace({"STYLEGAN_RUN_NAMESPACE": "c"}) == "c"


class _ApiServerStub(BaseHTTPRequestHandler):
    """Answers one PATCH the way the API server does: 200 with the object, or a Status."""

    seen: list[tuple[str, str, str, Any]] = []
    answer: tuple[int, dict[str, Any]] = (200, {})

    def do_PATCH(self) -> None:  # noqa: N802  (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append((self.command, self.path, self.headers["Content-Type"], body))
        status, reply = self.answer
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def api_stub() -> Iterator[tuple[type[_ApiServerStub], Any]]:
    import kubernetes

    _ApiServerStub.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ApiServerStub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    config = kubernetes.client.Configuration()
    config.host = f"http://127.0.0.1:{server.server_address[1]}"
    client = kubernetes.client.ApiClient(config)
    try:
        yield _ApiServerStub, client
    finally:
        client.close()
        server.shutdown()
        server.server_close()


def test_the_kubernetes_sender_merge_patches_the_run_status_subresource(api_stub) -> None:
    """The real client over real HTTP: the request the API server sees."""
    from stylegan_trainer.report.status import kubernetes_sender

    stub, client = api_stub
    stub.answer = (200, {"apiVersion": "stylegan.dev/v1alpha1", "kind": "StyleGANRun"})
    kubernetes_sender("ns", "run", client)({"status": {"progress": {"kimg": 1.0}}})
    assert stub.seen == [("PATCH", "/apis/stylegan.dev/v1alpha1/namespaces/ns/styleganruns/"
                          "run/status", "application/merge-patch+json",
                          {"status": {"progress": {"kimg": 1.0}}})]


def test_a_refused_patch_says_why_in_the_api_servers_words(api_stub) -> None:
    from stylegan_trainer.report.status import kubernetes_sender

    stub, client = api_stub
    words = 'styleganruns.stylegan.dev "run" is forbidden: User "system:serviceaccount:ns:x"'
    stub.answer = (403, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                         "message": words, "reason": "Forbidden", "code": 403})
    with pytest.raises(RuntimeError) as failed:
        kubernetes_sender("ns", "run", client)({"status": {"progress": {"kimg": 1.0}}})
    assert str(failed.value) == f"patch styleganruns/run/status in ns: 403 Forbidden: {words}"
