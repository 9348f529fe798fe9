"""Rank 0's progress reports into the run's status: the patch, the sender thread, the env.

The real PATCH against an API server (with the run's own ServiceAccount token) is exercised
by tests/integration/operator and tests/e2e; here the sender is a fake.
"""

from __future__ import annotations

import threading
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


def test_the_kubernetes_sender_patches_the_run_status_through_the_api_client() -> None:
    from stylegan_trainer.report.status import kubernetes_sender

    calls: list[tuple] = []

    class Reply:
        status, reason = 200, "OK"

        def read(self) -> bytes:
            return b"{}"

    class FakeApiClient:  # the two methods kubernetes >= 35 clients use
        def param_serialize(self, **kw):  # type: ignore[no-untyped-def]
            calls.append(("serialize", kw["method"], kw["resource_path"], kw["body"]))
            return kw["method"], "https://api" + kw["resource_path"], kw["header_params"], \
                kw["body"], []

        def call_api(self, method, url, **kw):  # type: ignore[no-untyped-def]
            calls.append(("call", method, url))
            return Reply()

    kubernetes_sender("ns", "run", FakeApiClient())({"status": {"progress": {"kimg": 1.0}}})
    path = "/apis/stylegan.dev/v1alpha1/namespaces/ns/styleganruns/run/status"
    assert calls == [("serialize", "PATCH", path, {"status": {"progress": {"kimg": 1.0}}}),
                     ("call", "PATCH", "https://api" + path)]
