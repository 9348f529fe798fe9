"""``stylegan runs``, ``logs`` and ``samples`` without a cluster: rows, the table, the rank-0
pod, the newest grid, and the commands over a stand-in for the API.

The same commands run against the real control plane in
tests/integration/chart/test_cluster_cli.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from stylegan_operator.cli import cluster_commands as cc
from stylegan_operator.cli.main import main

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)


def a_run(name: str = "ffhq256", namespace: str = "faces", age: timedelta = timedelta(hours=5),
          status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    created = (NOW - age).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "stylegan.dev/v1alpha1", "kind": "StyleGANRun",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": created},
        "spec": {"training": {"kimg": 25000}, "resources": {"nodes": 4, "gpusPerNode": 8},
                 **spec},
        "status": status or {},
    }  # fmt: skip


RUNNING = {"phase": "Running", "shape": "4x8", "kimg": 1234.56, "totalKimg": 25000,
           "cost": 4642.561, "currency": "USD", "eta": "3d 4h", "activeJob": "ffhq256-a2"}


# --------------------------------------------------------------------------- rows
def test_a_running_run_becomes_one_row() -> None:
    row = cc.run_row(a_run(status=RUNNING), NOW)
    assert cc.table_cells(row) == [
        "ffhq256", "Running", "4", "1234.6/25000", "4.9%", "4,642.56 USD", "3d 4h", "5h"]
    assert row.age_seconds == 5 * 3600
    wide = {**RUNNING, "projectedCost": 9876.5, "restarts": 2}
    assert cc.table_cells(cc.run_row(a_run(status=wide, resources={"gpuType": "A100"}), NOW),
                          wide=True)[-3:] == ["A100", "9,876.50 USD", "2"]


def test_a_new_run_shows_pending_and_its_spec() -> None:
    run = a_run(status={}, age=timedelta(seconds=42), cost={"currency": "JPY"})
    assert cc.table_cells(cc.run_row(run, NOW)) == [
        "ffhq256", "Pending", "4", "-/25000", "-", "-", "-", "42s"]


def test_money_uses_the_currency_minor_units() -> None:
    row = cc.run_row(a_run(status={**RUNNING, "cost": 506039.4, "currency": "JPY"}), NOW)
    assert cc.format_cost(row) == "506,039 JPY"


@pytest.mark.parametrize(
    ("resources", "shape", "nodes"),
    [
        ({"nodes": 2}, "3x8", "3"),  # the active attempt wins over the spec
        ({"nodes": 2}, None, "2"),
        ({"minNodes": 1, "maxNodes": 4}, None, "1-4"),
        ({"gpusPerNode": 8}, None, "1"),  # nodes defaults to 1
        ({}, None, None),
    ],
)
def test_node_count(resources: dict[str, Any], shape: str | None, nodes: str | None) -> None:
    run = {"spec": {"resources": resources}, "status": {"shape": shape} if shape else {}}
    assert cc.node_count(run) == nodes


@pytest.mark.parametrize(
    ("seconds", "age"),
    [(0, "0s"), (119, "119s"), (120, "2m"), (125, "2m5s"), (600, "10m"), (3 * 3600, "3h"),
     (3 * 3600 + 5 * 60, "3h5m"), (8 * 3600 + 59, "8h"), (47 * 3600, "47h"),
     (2 * 86400 + 3 * 3600, "2d3h"), (9 * 86400, "9d"), (800 * 86400, "2y70d"),
     (None, "<unknown>")],
)
def test_ages_read_like_kubectls(seconds: float | None, age: str) -> None:
    assert cc.format_age(seconds) == age


def test_table_columns_line_up_and_namespaces_come_first_with_all() -> None:
    rows = cc.sort_rows([
        cc.run_row(a_run("b-run", "zeta", status=RUNNING), NOW),
        cc.run_row(a_run("a-long-run-name", "alpha", status={"phase": "Succeeded"}), NOW),
    ])  # fmt: skip
    table = cc.format_table(rows, all_namespaces=True).splitlines()
    assert table[0].split() == ["NAMESPACE", *cc.TABLE_COLUMNS]
    assert [line.split()[1] for line in table[1:]] == ["a-long-run-name", "b-run"]
    starts = [line.index("PHASE") for line in table[:1]]
    assert all(line[starts[0] - 3:starts[0]] == "   " for line in table[1:])
    assert cc.format_table(rows).splitlines()[0].split() == list(cc.TABLE_COLUMNS)


# --------------------------------------------------------------------------- logs
def job(name: str, attempt: int) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"stylegan.dev/attempt": str(attempt)}}}


def pod(name: str, index: str, created: str, deleting: bool = False,
        as_annotation: bool = False) -> dict[str, Any]:
    where = "annotations" if as_annotation else "labels"
    meta: dict[str, Any] = {"name": name, "creationTimestamp": created,
                            where: {cc.COMPLETION_INDEX: index}}
    if deleting:
        meta["deletionTimestamp"] = created
    return {"metadata": meta}


def test_the_active_job_is_the_status_one_else_the_newest_attempt() -> None:
    jobs = [job("r-a1", 1), job("r-a3", 3), job("r-a2", 2)]
    assert cc.active_job_name({"status": {"activeJob": "r-a2"}}, jobs) == "r-a2"
    assert cc.active_job_name({"status": {}}, jobs) == "r-a3"
    assert cc.active_job_name({}, []) is None


def test_rank0_is_completion_index_0_and_a_replacement_wins() -> None:
    pods = [
        pod("r-a1-1-x", "1", "2026-05-01T10:00:00Z"),
        pod("r-a1-0-old", "0", "2026-05-01T10:00:00Z"),
        pod("r-a1-0-new", "0", "2026-05-01T11:00:00Z"),
        pod("r-a1-0-dying", "0", "2026-05-01T11:30:00Z", deleting=True),
    ]
    assert cc.rank0_pod(pods)["metadata"]["name"] == "r-a1-0-new"
    assert cc.rank0_pod([pod("p", "0", "t", as_annotation=True)])["metadata"]["name"] == "p"
    assert cc.rank0_pod([pod("p", "1", "t")]) is None


# --------------------------------------------------------------------------- samples
def test_the_newest_grid_is_the_one_with_most_images() -> None:
    names = ["samples/reals.png", "samples/fakes-000004000.png", "samples/fakes-000012000.png",
             "samples/fakes-000008000.png", "checkpoints/ckpt-000012000.pt"]
    assert cc.latest_grid(names) == ("samples/fakes-000012000.png", 12000)
    assert cc.latest_grid(["samples/reals.png"]) is None


def test_samples_copies_the_newest_grid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the default output file lands in the working directory
    store = tmp_path / "run"
    (store / "samples").mkdir(parents=True)
    (store / "samples" / "fakes-000004000.png").write_bytes(b"old")
    (store / "samples" / "fakes-000016000.png").write_bytes(b"\x89PNG newest")
    out = tmp_path / "grid.png"
    result = CliRunner().invoke(cc.samples_cmd, ["faces", "--storage", str(store), "-f", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == b"\x89PNG newest"
    default = CliRunner().invoke(cc.samples_cmd, ["faces", "--storage", str(store)],
                                 catch_exceptions=False)
    assert "faces-16kimg.png" in default.output
    assert (tmp_path / "faces-16kimg.png").read_bytes() == b"\x89PNG newest"


def test_samples_without_a_grid_yet_is_retryable(tmp_path: Path) -> None:
    result = CliRunner().invoke(cc.samples_cmd, ["faces", "--storage", str(tmp_path)])
    assert result.exit_code == cc.EXIT_RETRYABLE
    assert "no sample grid yet" in result.output


def test_samples_from_an_unknown_scheme_is_bad_input(tmp_path: Path) -> None:
    result = CliRunner().invoke(cc.samples_cmd, ["faces", "--storage", "s3://bucket/run"])
    assert result.exit_code == cc.EXIT_CONFIG
    assert "s3://bucket/run" in result.output


def test_samples_list_prints_every_grid_oldest_first(tmp_path: Path) -> None:
    samples = tmp_path / "samples"
    samples.mkdir()
    for name in ("fakes-000016000.png", "fakes-000004000.png", "reals.png"):
        (samples / name).write_bytes(b"\x89PNG")
    result = CliRunner().invoke(cc.samples_cmd, ["faces", "--storage", str(tmp_path), "--list"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "KIMG   GRID",
        f"4      {tmp_path}/samples/fakes-000004000.png",
        f"16     {tmp_path}/samples/fakes-000016000.png",
    ]
    empty = CliRunner().invoke(cc.samples_cmd, ["faces", "--storage", str(samples), "--list"])
    assert empty.exit_code == cc.EXIT_RETRYABLE and "no sample grid yet" in empty.output
    both = CliRunner().invoke(main, ["samples", "faces", "--list", "-f", str(tmp_path / "g.png")])
    assert both.exit_code == cc.EXIT_CONFIG
    assert "use --list or --output-file, not both" in both.output


# --------------------------------------------------------------------------- commands
@dataclass
class FakeCluster:
    """Answers like ``cluster_client.Cluster`` from fixed objects."""

    runs: list[dict[str, Any]]
    jobs: list[dict[str, Any]] = field(default_factory=list)
    pods: list[dict[str, Any]] = field(default_factory=list)
    namespace: str = "faces"
    logged: list[str] = field(default_factory=list)

    def list_runs(self, namespace: str | None, selector: str | None) -> list[dict[str, Any]]:
        return [r for r in self.runs
                if namespace is None or r["metadata"]["namespace"] == namespace]

    def get_run(self, namespace: str, name: str) -> dict[str, Any]:
        for run in self.runs:
            if (run["metadata"]["namespace"], run["metadata"]["name"]) == (namespace, name):
                return run
        raise cc.CommandError(f"StyleGANRun {namespace}/{name}: not found")

    def run_jobs(self, namespace: str, run: str) -> list[dict[str, Any]]:
        return self.jobs

    def job_pods(self, namespace: str, job: str) -> list[dict[str, Any]]:
        return self.pods

    def stream_log(self, namespace: str, pod: str, **_: Any) -> Iterable[bytes]:
        self.logged.append(pod)
        yield b"tick 1 kimg 0.1\n"
        yield b"tick 2 kimg 0.2\n"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    cluster = FakeCluster(runs=[a_run(status=RUNNING), a_run("other", "elsewhere")])
    monkeypatch.setattr(cc.Cluster, "connect", classmethod(lambda cls, k, c: cluster))
    return cluster


def test_runs_lists_the_context_namespace(fake: FakeCluster) -> None:
    result = CliRunner().invoke(cc.runs_cmd, [])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == list(cc.TABLE_COLUMNS)
    assert [line.split()[0] for line in lines[1:]] == ["ffhq256"]


def test_runs_json_has_every_namespace_with_all(fake: FakeCluster) -> None:
    result = CliRunner().invoke(cc.runs_cmd, ["-A", "-o", "json"])
    rows = json.loads(result.output)
    assert [(r["namespace"], r["name"]) for r in rows] == [("elsewhere", "other"),
                                                           ("faces", "ffhq256")]
    assert rows[1]["cost"] == 4642.561 and rows[1]["currency"] == "USD"


def test_runs_yaml_has_the_same_rows_and_wide_adds_columns(fake: FakeCluster) -> None:
    as_json = json.loads(CliRunner().invoke(cc.runs_cmd, ["-A", "-o", "json"]).output)
    as_yaml = yaml.safe_load(CliRunner().invoke(cc.runs_cmd, ["-A", "-o", "yaml"]).output)
    def timeless(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k != "age_seconds"} for r in rows]  # two 'now's

    assert timeless(as_yaml) == timeless(as_json) and len(as_json) == 2
    wide = CliRunner().invoke(cc.runs_cmd, ["-o", "wide"]).output.splitlines()
    assert wide[0].split() == [*cc.TABLE_COLUMNS, *cc.WIDE_COLUMNS]
    assert len(wide[1].split()) > len(wide[0].split())  # money cells are "N USD"


def test_output_is_a_format_so_a_file_name_there_is_a_usage_error(fake: FakeCluster) -> None:
    result = CliRunner().invoke(main, ["runs", "-o", "runs.json"])
    assert result.exit_code == cc.EXIT_CONFIG
    assert "'runs.json' is not one of 'table', 'wide', 'yaml', 'json'" in result.output


def test_runs_refuses_a_namespace_and_all(fake: FakeCluster) -> None:
    result = CliRunner().invoke(main, ["runs", "-n", "x", "-A"])
    assert result.exit_code == cc.EXIT_CONFIG and "not both" in result.output


def test_logs_streams_rank_0_of_the_active_attempt(fake: FakeCluster) -> None:
    fake.jobs = [job("ffhq256-a1", 1), job("ffhq256-a2", 2)]
    fake.pods = [pod("ffhq256-a2-1-b", "1", "t1"), pod("ffhq256-a2-0-a", "0", "t1")]
    result = CliRunner().invoke(cc.logs_cmd, ["ffhq256"])
    assert result.exit_code == 0, result.output
    assert fake.logged == ["ffhq256-a2-0-a"]
    assert result.output == "tick 1 kimg 0.1\ntick 2 kimg 0.2\n"


def test_logs_of_a_run_without_an_attempt_is_retryable(fake: FakeCluster) -> None:
    fake.runs[0]["status"] = {"phase": "Pending"}
    result = CliRunner().invoke(cc.logs_cmd, ["ffhq256"])
    assert result.exit_code == cc.EXIT_RETRYABLE
    assert "no attempt yet (phase Pending)" in result.output


def test_logs_of_an_unknown_run_is_bad_input(fake: FakeCluster) -> None:
    result = CliRunner().invoke(cc.logs_cmd, ["nope"])
    assert result.exit_code == cc.EXIT_CONFIG
    assert "faces/nope: not found" in result.output


def test_samples_of_a_run_without_checkpoints_says_why(fake: FakeCluster) -> None:
    result = CliRunner().invoke(cc.samples_cmd, ["ffhq256"])
    assert result.exit_code == cc.EXIT_CONFIG
    assert "no spec.checkpoints.uri" in result.output


def test_samples_reads_the_runs_checkpoint_storage(fake: FakeCluster, tmp_path: Path) -> None:
    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / "fakes-000002000.png").write_bytes(b"grid")
    fake.runs[0]["spec"]["checkpoints"] = {"uri": str(tmp_path)}
    out = tmp_path / "out.png"
    result = CliRunner().invoke(cc.samples_cmd, ["ffhq256", "--output-file", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == b"grid"


# --------------------------------------------------------------------------- API errors
def _raise(exc: BaseException) -> Any:
    raise exc


@pytest.mark.parametrize(
    ("error", "exit_code", "message"),
    [
        (404, cc.EXIT_CONFIG, "run x: not found"),
        (403, cc.EXIT_CONFIG, "run x: forbidden (403"),
        (400, cc.EXIT_RETRYABLE, 'container "trainer" in pod p is waiting to start'),
        (503, cc.EXIT_RETRYABLE, "run x: 503"),
    ],
)
def test_api_errors_become_exit_codes_with_the_servers_words(
    error: int, exit_code: int, message: str,
) -> None:
    from kubernetes.client.exceptions import ApiException

    exc = ApiException(status=error, reason="Reason")
    exc.body = json.dumps({"kind": "Status", "message":
                           'container "trainer" in pod p is waiting to start'}).encode()
    cluster = cc.Cluster(api_client=None, namespace="faces")
    with pytest.raises(cc.CommandError) as caught:
        cluster._call("run x", _raise, exc)
    assert caught.value.exit_code == exit_code
    assert message in caught.value.message


def test_an_unreachable_api_server_is_retryable() -> None:
    from urllib3.exceptions import MaxRetryError

    cluster = cc.Cluster(api_client=None, namespace="faces")
    with pytest.raises(cc.CommandError) as caught:
        cluster._call("list runs", _raise, MaxRetryError(None, "/apis", "connection refused"))
    assert caught.value.exit_code == cc.EXIT_RETRYABLE
    assert "API server out of reach" in caught.value.message
