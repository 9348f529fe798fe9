"""``stylegan runs``, ``logs`` and ``samples``: the runs of a cluster, seen from a laptop.

* ``stylegan runs`` lists StyleGANRuns with progress and money (NAME PHASE NODES KIMG
  PROGRESS COST ETA AGE), from the API server through the kubernetes client, like ``kubectl
  get``, the cost formatted in the run's currency; ``-o wide`` adds GPU, PROJECTED and
  RESTARTS, and ``-o json``/``-o yaml`` give the same rows to scripts.
* ``stylegan logs RUN`` prints the trainer log of rank 0 (the pod of job completion index 0
  of the run's active attempt), ``--follow`` streams it; once that pod is gone, or with
  ``--attempt N``, the copy rank 0 left beside the checkpoints (:mod:`.attempt_logs`).
* ``stylegan samples RUN [-f FILE]`` copies the newest sample grid from the run's checkpoint
  storage (``samples/fakes-<nimg>.png``, written by the trainer's rank 0 next to its
  checkpoints at every snapshot, gs:// included) through
  ``stylegan_common.storage.open_storage``; ``--list`` prints every grid there instead.
  Grids are never pruned, unlike checkpoints, so the whole history of a run stays listed.

Talking to the API server is :mod:`.cluster_client`'s, naming the sample grids
:mod:`.sample_grids`'. The row building and formatting are pure functions over the API's
JSON, tested without a cluster. Exit codes follow the CLI's contract: 64 for a bad request
(an unknown run, a run without checkpoints, a missing bucket or no credentials for it), 75
for what a retry may fix (the API server or the storage out of reach, no grid yet).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import click
import yaml

from stylegan_common.cli import output_file_option, output_option
from stylegan_common.errors import EXIT_CONFIG, EXIT_RETRYABLE
from stylegan_operator.cli.attempt_logs import (
    archived_attempts,
    last_lines,
    read_attempt_log,
    wanted_attempt,
)
from stylegan_operator.cli.cluster_client import Cluster, CommandError
from stylegan_operator.cli.sample_grids import (
    SAMPLES_PREFIX,
    checkpoint_uri,
    fake_grids,
    format_grid_list,
    latest_grid,
)
from stylegan_operator.cost.metering import parse_time
from stylegan_operator.cost.pricing import CostError, format_money, format_progress
from stylegan_operator.reconcile import render

COMPLETION_INDEX: Final = "batch.kubernetes.io/job-completion-index"
NONE: Final = "-"

TABLE_COLUMNS: Final = ("NAME", "PHASE", "NODES", "KIMG", "PROGRESS", "COST", "ETA", "AGE")
WIDE_COLUMNS: Final = ("GPU", "PROJECTED", "RESTARTS")


# --------------------------------------------------------------------------- pure: rows
@dataclass(frozen=True)
class RunRow:
    """One line of ``stylegan runs``; also its JSON and YAML form (``-o json|yaml``)."""

    namespace: str
    name: str
    phase: str | None
    nodes: str | None
    kimg: float | None
    total_kimg: int | None
    cost: float | None
    currency: str | None
    projected_cost: float | None
    eta: str | None
    created: str | None
    age_seconds: float | None
    gpu_type: str | None = None
    restarts: int | None = None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def node_count(run: Mapping[str, Any]) -> str | None:
    """Nodes of the active attempt (``status.shape`` is ``<nodes>x<gpus>``), else the spec's
    count: ``nodes``, or ``min-max`` for an elastic run."""
    status = run.get("status") or {}
    shape = status.get("shape")
    if isinstance(shape, str) and "x" in shape:
        return shape.split("x", 1)[0]
    resources = (run.get("spec") or {}).get("resources") or {}
    if resources.get("nodes") is not None:
        return str(resources["nodes"])
    low, high = resources.get("minNodes"), resources.get("maxNodes")
    if low is not None and high is not None:
        return f"{low}-{high}"
    return "1" if resources else None  # spec.resources.nodes defaults to 1


def run_row(run: Mapping[str, Any], now: datetime) -> RunRow:
    """The row of one StyleGANRun (the API's JSON) as seen at ``now``."""
    meta = run.get("metadata") or {}
    status = run.get("status") or {}
    spec = run.get("spec") or {}
    created = parse_time(meta.get("creationTimestamp"))
    total = status.get("totalKimg", (spec.get("training") or {}).get("kimg"))
    currency = status.get("currency") or (spec.get("cost") or {}).get("currency")
    return RunRow(
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        phase=status.get("phase"),
        nodes=node_count(run),
        kimg=_number(status.get("kimg")),
        total_kimg=int(total) if isinstance(total, int | float) else None,
        cost=_number(status.get("cost")),
        currency=currency,
        projected_cost=_number(status.get("projectedCost")),
        eta=status.get("eta"),
        created=meta.get("creationTimestamp"),
        age_seconds=max(0.0, (now - created).total_seconds()) if created else None,
        gpu_type=(spec.get("resources") or {}).get("gpuType"),
        restarts=int(status["restarts"]) if isinstance(status.get("restarts"), int) else None,
    )


def format_age(seconds: float | None) -> str:
    """A compact age as kubectl prints it: 45s, 3m20s, 12m, 5h7m, 20h, 3d4h, 12d, 2y30d."""
    if seconds is None:
        return "<unknown>"
    s = int(seconds)
    minutes, hours, days = s // 60, s // 3600, s // 86400
    if s < 120:
        return f"{s}s"
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    years = days // 365
    return f"{years}y{days % 365}d" if days % 365 else f"{years}y"


def format_kimg(row: RunRow) -> str:
    done = NONE if row.kimg is None else f"{row.kimg:.1f}"
    return done if row.total_kimg is None else f"{done}/{row.total_kimg}"


def format_percent(row: RunRow) -> str:
    if row.kimg is None or not row.total_kimg:
        return NONE
    return format_progress(row.kimg, row.total_kimg)


def _money(amount: float | None, currency: str | None) -> str:
    if amount is None:
        return NONE
    try:
        return format_money(amount, currency or "USD")
    except CostError:  # an odd currency in the status: show the number anyway
        return f"{amount:,.2f} {currency}"


def format_cost(row: RunRow) -> str:
    return _money(row.cost, row.currency)


def table_cells(row: RunRow, wide: bool = False) -> list[str]:
    cells = [
        row.name,
        row.phase or "Pending",
        row.nodes or NONE,
        format_kimg(row),
        format_percent(row),
        format_cost(row),
        row.eta or NONE,
        format_age(row.age_seconds),
    ]
    if wide:
        restarts = NONE if row.restarts is None else str(row.restarts)
        cells += [row.gpu_type or NONE, _money(row.projected_cost, row.currency), restarts]
    return cells


def format_table(
    rows: Sequence[RunRow], all_namespaces: bool = False, wide: bool = False
) -> str:
    """Columns padded like kubectl's (three spaces apart); NAMESPACE first with ``-A``;
    ``wide`` adds GPU, PROJECTED and RESTARTS, as ``kubectl get -o wide`` adds columns."""
    header = [*TABLE_COLUMNS, *(WIDE_COLUMNS if wide else ())]
    lines = [table_cells(r, wide) for r in rows]
    if all_namespaces:
        header.insert(0, "NAMESPACE")
        lines = [[r.namespace, *cells] for r, cells in zip(rows, lines, strict=True)]
    widths = [max(len(c) for c in column) for column in zip(header, *lines, strict=True)]

    def join(cells: Sequence[str]) -> str:
        return "   ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join(join(cells) for cells in [header, *lines]) + "\n"


def sort_rows(rows: Iterable[RunRow]) -> list[RunRow]:
    return sorted(rows, key=lambda r: (r.namespace, r.name))


# --------------------------------------------------------------------------- pure: logs
def attempt_of(job: Mapping[str, Any]) -> int:
    labels = (job.get("metadata") or {}).get("labels") or {}
    try:
        return int(labels.get(render.LABEL_ATTEMPT, 0))
    except (TypeError, ValueError):
        return 0


def active_job_name(run: Mapping[str, Any], jobs: Sequence[Mapping[str, Any]]) -> str | None:
    """``status.activeJob``, else the run's Job of the highest attempt."""
    active = (run.get("status") or {}).get("activeJob")
    if active:
        return str(active)
    if not jobs:
        return None
    newest = max(jobs, key=attempt_of)
    return str((newest.get("metadata") or {}).get("name"))


def _completion_index(pod: Mapping[str, Any]) -> str | None:
    meta = pod.get("metadata") or {}
    return (meta.get("labels") or {}).get(COMPLETION_INDEX) or (
        meta.get("annotations") or {}
    ).get(COMPLETION_INDEX)


def rank0_pod(pods: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The pod of completion index 0 (torchrun's rendezvous host, the trainer's rank 0).

    A replaced pod can leave two with index 0: the one not being deleted, created last, wins.
    """
    candidates = [p for p in pods if _completion_index(p) == "0"]
    if not candidates:
        return None

    def key(pod: Mapping[str, Any]) -> tuple[bool, str]:
        meta = pod.get("metadata") or {}
        return (not meta.get("deletionTimestamp"), str(meta.get("creationTimestamp") or ""))

    return max(candidates, key=key)


# --------------------------------------------------------------------------- commands
def _connection_options(fn: Any) -> Any:
    fn = click.option("--context", default=None, help="kubeconfig context to use.")(fn)
    # No envvar here: the kubernetes client reads KUBECONFIG itself, colon-separated
    # lists included.
    fn = click.option(
        "--kubeconfig", default=None,
        help="kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).",
    )(fn)  # fmt: skip
    return fn


def _namespace_option(fn: Any) -> Any:
    return click.option(
        "-n", "--namespace", default=None,
        help="Namespace of the run (default: the kubeconfig context's).",
    )(fn)  # fmt: skip


@click.command("runs")
@_namespace_option
@click.option("-A", "--all-namespaces", is_flag=True, help="List runs of every namespace.")
@click.option("-l", "--selector", default=None, help="Label selector, e.g. team=faces.")
@output_option("table", "wide", "yaml", "json",
               help="A table for people (wide: more columns), or the rows for scripts.")
@_connection_options
def runs_cmd(
    namespace: str | None, all_namespaces: bool, selector: str | None, output: str,
    kubeconfig: str | None, context: str | None,
) -> None:
    """List StyleGANRuns: phase, nodes, progress, cost so far, time left, age."""
    if namespace and all_namespaces:
        raise click.UsageError("use --namespace or --all-namespaces, not both")
    cluster = Cluster.connect(kubeconfig, context)
    scope = None if all_namespaces else (namespace or cluster.namespace)
    now = datetime.now(UTC)
    rows = sort_rows(run_row(r, now) for r in cluster.list_runs(scope, selector))
    if output == "json":
        click.echo(json.dumps([asdict(r) for r in rows], indent=2))
        return
    if output == "yaml":
        click.echo(yaml.safe_dump([asdict(r) for r in rows], sort_keys=False), nl=False)
        return
    if not rows:
        where = "any namespace" if scope is None else f"namespace {scope}"
        click.echo(f"No StyleGANRuns found in {where}.", err=True)
        return
    click.echo(format_table(rows, all_namespaces, wide=output == "wide"), nl=False)


@click.command("logs")
@click.argument("run")
@_namespace_option
@click.option("-f", "--follow", is_flag=True, help="Stream the log until the pod ends.")
@click.option("--tail", type=click.IntRange(min=0), default=None, help="Only the last N lines.")
@click.option("-p", "--previous", is_flag=True, help="The log of the container's previous run.")
@click.option("--timestamps", is_flag=True, help="Prefix each line with its time.")
@click.option(
    "--attempt", type=click.IntRange(min=1), default=None, metavar="N",
    help="The log attempt N left beside the checkpoints (read after its pods are gone).",
)  # fmt: skip
@_connection_options
def logs_cmd(
    run: str, namespace: str | None, follow: bool, tail: int | None, previous: bool,
    timestamps: bool, attempt: int | None, kubeconfig: str | None, context: str | None,
) -> None:
    """Print the trainer log of RUN's rank 0 (completion index 0 of the active attempt).

    When that pod is gone (the attempt failed, was preempted, or the run ended and its Job
    was deleted), or with --attempt N, the log is read from logs/attempt-<N>/log.txt under
    spec.checkpoints.uri, where rank 0 copies it at every tick and when it exits.
    """
    if attempt is not None and (follow or previous):
        raise click.UsageError("--attempt reads a finished log: not with --follow/--previous")
    cluster = Cluster.connect(kubeconfig, context)
    ns = namespace or cluster.namespace
    resource = cluster.get_run(ns, run)
    if attempt is not None:
        _print_archived_log(resource, f"{ns}/{run}", attempt, tail)
        return
    job = active_job_name(resource, cluster.run_jobs(ns, run))
    pod = None if job is None else rank0_pod(cluster.job_pods(ns, job))
    if pod is None:
        if not previous and checkpoint_uri(resource) and wanted_attempt(resource, None):
            _print_archived_log(resource, f"{ns}/{run}", None, tail)
            return
        if job is None:
            phase = (resource.get("status") or {}).get("phase") or "Pending"
            raise CommandError(f"run {ns}/{run} has no attempt yet (phase {phase})",
                               EXIT_RETRYABLE)
        raise CommandError(
            f"run {ns}/{run}: Job {job} has no pod of completion index 0 (yet)", EXIT_RETRYABLE
        )
    pod_name = str(pod["metadata"]["name"])
    out = sys.stdout.buffer
    for chunk in cluster.stream_log(
        ns, pod_name, follow=follow, tail=tail, previous=previous, timestamps=timestamps
    ):
        out.write(chunk)
        out.flush()


@click.command("samples")
@click.argument("run")
@_namespace_option
@output_file_option("Where to write the PNG (default: <run>-<kimg>kimg.png).")
@click.option(
    "--storage", default=None, metavar="URI",
    help="Read from this storage instead of spec.checkpoints.uri (e.g. a local copy of a "
    "claim's folder).",
)  # fmt: skip
@click.option(
    "--list", "list_only", is_flag=True,
    help="Print every grid (kimg and where it is, oldest first) instead of fetching one.",
)  # fmt: skip
@_connection_options
def samples_cmd(
    run: str, namespace: str | None, output_file: Path | None, storage: str | None,
    list_only: bool, kubeconfig: str | None, context: str | None,
) -> None:
    """Fetch RUN's newest sample grid (seeds 0..N of G_ema) from its checkpoint storage.

    The trainer's rank 0 writes a grid at every snapshot to samples/fakes-<nimg>.png under
    spec.checkpoints.uri, a claim's folder or gs://bucket/prefix alike (for gs:// the
    credentials are the usual Google ones: GOOGLE_APPLICATION_CREDENTIALS or gcloud's
    application-default login). Grids are kept for the whole run; only checkpoints are
    pruned. Exit 64: no such run, no spec.checkpoints, no bucket or no credentials; 75:
    no grid yet, or the storage out of reach.
    """
    if list_only and output_file is not None:
        raise click.UsageError("use --list or --output-file, not both")
    uri = storage
    if uri is None:
        cluster = Cluster.connect(kubeconfig, context)
        ns = namespace or cluster.namespace
        uri = checkpoint_uri(cluster.get_run(ns, run))
        if not uri:
            raise CommandError(
                f"run {ns}/{run} has no spec.checkpoints.uri: its grids stayed in the pods' "
                "scratch folder; give spec.checkpoints (gs://... or a claim) to keep them"
            )
    if list_only:
        click.echo(format_grid_list(uri, _list_grids(uri)), nl=False)
        return
    output_path = _fetch_grid(uri, run, output_file)
    click.echo(f"wrote {output_path}")


def _print_archived_log(
    resource: Mapping[str, Any], where: str, attempt: int | None, tail: int | None
) -> None:
    """Print the log an attempt left in the checkpoint storage (the current one for None)."""
    from stylegan_common.storage import open_storage

    uri = checkpoint_uri(resource)
    if not uri:
        raise CommandError(f"run {where} has no spec.checkpoints.uri: its logs stayed in the "
                           "pods; give spec.checkpoints (gs://... or a claim) to keep them")
    number = wanted_attempt(resource, attempt)
    assert number is not None  # the caller checked
    with _storage_errors(uri):
        store = open_storage(uri)
        data = read_attempt_log(store, number)
        if data is None:
            kept = archived_attempts(store)
            raise CommandError(
                f"run {where}: no log of attempt {number} under {uri}/logs/ (attempts with a "
                f"log: {', '.join(map(str, kept)) or 'none yet'})",
                EXIT_CONFIG if attempt is not None and kept else EXIT_RETRYABLE,
            )
    if attempt is None:
        click.echo(f"(the pod of attempt {number} is gone: its log from "
                   f"{uri}/logs/attempt-{number}/)", err=True)
    sys.stdout.buffer.write(last_lines(data, tail))
    sys.stdout.buffer.flush()


@contextlib.contextmanager
def _storage_errors(uri: str) -> Iterator[None]:
    """Storage failures as the CLI's exit codes: a wrong URI, bucket or credentials is a bad
    request (64, the trainer's ConfigError), anything else may pass on a retry (75)."""
    from stylegan_common.errors import ConfigError, StorageError

    try:
        yield
    except ConfigError as exc:
        message = f"--storage/spec.checkpoints.uri {uri}: {exc}"
        raise CommandError(message, EXIT_CONFIG) from exc
    except StorageError as exc:
        raise CommandError(f"{uri}: {exc}", EXIT_RETRYABLE) from exc


def _no_grid_yet(uri: str) -> CommandError:
    return CommandError(
        f"{uri}: no sample grid yet (looked for {SAMPLES_PREFIX}fakes-<nimg>.png; the "
        "trainer writes one with every snapshot)",
        EXIT_RETRYABLE,
    )


def _list_grids(uri: str) -> list[tuple[str, int]]:
    from stylegan_common.storage import open_storage

    with _storage_errors(uri):
        grids = fake_grids(open_storage(uri).list(SAMPLES_PREFIX))
    if not grids:
        raise _no_grid_yet(uri)
    return grids


def _fetch_grid(uri: str, run: str, output_file: Path | None) -> Path:
    from stylegan_common.storage import open_storage

    with _storage_errors(uri):
        store = open_storage(uri)
        found = latest_grid(store.list(SAMPLES_PREFIX))
        if found is None:
            raise _no_grid_yet(uri)
        name, nimg = found
        data = store.read_bytes(name)
    path = output_file or Path(f"{run}-{nimg / 1000:g}kimg.png")
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise CommandError(f"--output-file {path}: cannot write: {exc}") from exc
    return path
