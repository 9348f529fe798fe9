"""``stylegan runs``, ``logs`` and ``samples``: the runs of a cluster, seen from a laptop.

* ``stylegan runs`` lists StyleGANRuns with progress and money (NAME PHASE NODES KIMG COST
  ETA AGE), from the API server through the kubernetes client, like ``kubectl get`` but
  with the cost formatted in the run's currency; ``-o json`` gives the same rows to scripts.
* ``stylegan logs RUN`` prints the trainer log of rank 0 (the pod of job completion index 0
  of the run's active attempt), ``--follow`` streams it.
* ``stylegan samples RUN -o FILE`` copies the newest sample grid from the run's checkpoint
  storage (``samples/fakes-<nimg>.png``, written by the trainer's rank 0 next to its
  checkpoints at every snapshot, gs:// included) through
  ``stylegan_common.storage.open_storage``; ``--list`` prints every grid there instead.
  Grids are never pruned, unlike checkpoints, so the whole history of a run stays listed.

Credentials and the default namespace come from the kubeconfig (``--kubeconfig``,
``KUBECONFIG``, ``~/.kube/config``; ``--context``), else from the pod's ServiceAccount.
The row building and formatting are pure functions over the API's JSON, tested without a
cluster. Exit codes follow the CLI's contract: 64 for a bad request (an unknown run, a run
without checkpoints, a missing bucket or no credentials for it), 75 for what a retry may fix
(the API server or the storage out of reach, no grid yet).
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import click

from stylegan_common.kubeapi import api_message as _api_message
from stylegan_operator.api.names import GROUP, PLURAL, VERSION
from stylegan_operator.cost.pricing import CostError, format_money, parse_time
from stylegan_operator.reconcile import render

EXIT_BAD_INPUT: Final = 64
EXIT_RETRYABLE: Final = 75

LABEL_JOB_NAME: Final = "batch.kubernetes.io/job-name"
COMPLETION_INDEX: Final = "batch.kubernetes.io/job-completion-index"
SAMPLES_PREFIX: Final = "samples/"
_FAKES: Final = re.compile(r"^samples/fakes-(?P<nimg>\d+)\.png$")
NONE: Final = "-"

TABLE_COLUMNS: Final = ("NAME", "PHASE", "NODES", "KIMG", "COST", "ETA", "AGE")


class CommandError(click.ClickException):
    """A failure the user can act on; ``exit_code`` follows the CLI's contract."""

    def __init__(self, message: str, exit_code: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click reads it per instance


# --------------------------------------------------------------------------- pure: rows
@dataclass(frozen=True)
class RunRow:
    """One line of ``stylegan runs``; also its JSON form (``-o json``)."""

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


def format_cost(row: RunRow) -> str:
    if row.cost is None:
        return NONE
    try:
        return format_money(row.cost, row.currency or "USD")
    except CostError:  # an odd currency in the status: show the number anyway
        return f"{row.cost:,.2f} {row.currency}"


def table_cells(row: RunRow) -> list[str]:
    return [
        row.name,
        row.phase or "Pending",
        row.nodes or NONE,
        format_kimg(row),
        format_cost(row),
        row.eta or NONE,
        format_age(row.age_seconds),
    ]


def format_table(rows: Sequence[RunRow], all_namespaces: bool = False) -> str:
    """Columns padded like kubectl's (three spaces apart); NAMESPACE first with ``-A``."""
    header = list(TABLE_COLUMNS)
    lines = [table_cells(r) for r in rows]
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


# ------------------------------------------------------------------------ pure: samples
def fake_grids(names: Iterable[str]) -> list[tuple[str, int]]:
    """The ``samples/fakes-<nimg>.png`` among object names with their image counts, oldest
    first (``reals.png`` and everything else left out)."""
    grids = []
    for name in names:
        match = _FAKES.match(name)
        if match:
            grids.append((name, int(match.group("nimg"))))
    return sorted(grids, key=lambda grid: (grid[1], grid[0]))


def latest_grid(names: Iterable[str]) -> tuple[str, int] | None:
    """The newest ``samples/fakes-<nimg>.png`` among object names, and its image count."""
    grids = fake_grids(names)
    return grids[-1] if grids else None


def object_uri(storage_uri: str, name: str) -> str:
    """Where object ``name`` of the storage at ``storage_uri`` is, for people to read."""
    return f"{storage_uri.rstrip('/')}/{name}"


def format_grid_list(storage_uri: str, grids: Sequence[tuple[str, int]]) -> str:
    """``stylegan samples --list``: one line per grid, KIMG then where it is."""
    lines = [("KIMG", "GRID")] + [(f"{nimg / 1000:g}", object_uri(storage_uri, name))
                                  for name, nimg in grids]
    width = max(len(kimg) for kimg, _ in lines)
    return "".join(f"{kimg:<{width}}   {where}\n" for kimg, where in lines)


def checkpoint_uri(run: Mapping[str, Any]) -> str | None:
    return ((run.get("spec") or {}).get("checkpoints") or {}).get("uri")


# --------------------------------------------------------------------------- API access
@dataclass
class Cluster:
    """The kubernetes client, configured, and the namespace a command defaults to."""

    api_client: Any
    namespace: str

    @classmethod
    def connect(cls, kubeconfig: str | None, context: str | None) -> Cluster:
        import kubernetes

        try:
            kubernetes.config.load_kube_config(config_file=kubeconfig, context=context)
            _, active = kubernetes.config.list_kube_config_contexts(config_file=kubeconfig)
            chosen = active
            if context:
                contexts, _ = kubernetes.config.list_kube_config_contexts(config_file=kubeconfig)
                chosen = next((c for c in contexts if c.get("name") == context), active)
            namespace = ((chosen or {}).get("context") or {}).get("namespace") or "default"
        except (kubernetes.config.ConfigException, OSError) as exc:
            if kubeconfig or context:
                raise CommandError(f"--kubeconfig/--context: {exc}") from exc
            try:
                kubernetes.config.load_incluster_config()
            except kubernetes.config.ConfigException:
                raise CommandError(
                    f"no Kubernetes credentials: {exc}; set KUBECONFIG or pass --kubeconfig"
                ) from exc
            ns_file = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
            namespace = ns_file.read_text().strip() if ns_file.exists() else "default"
        return cls(kubernetes.client.ApiClient(), namespace)

    def _call(self, what: str, method: Any, *args: Any, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            return method(*args, **kwargs)
        except ApiException as exc:
            if exc.status == 404:
                raise CommandError(f"{what}: not found") from None
            if exc.status in (401, 403):
                raise CommandError(f"{what}: forbidden ({exc.status} {exc.reason})") from None
            raise CommandError(
                f"{what}: {exc.status} {exc.reason}: {_api_message(exc.body)}", EXIT_RETRYABLE
            ) from None
        except OSError as exc:  # urllib3 wraps socket errors in OSError subclasses
            raise CommandError(f"{what}: API server out of reach: {exc}", EXIT_RETRYABLE) from exc
        except Exception as exc:
            if type(exc).__module__.startswith("urllib3"):
                message = f"{what}: API server out of reach: {exc}"
                raise CommandError(message, EXIT_RETRYABLE) from exc
            raise

    def _plain(self, obj: Any) -> Any:
        """A typed client object as the API's camelCase JSON."""
        return self.api_client.sanitize_for_serialization(obj)

    def list_runs(self, namespace: str | None, selector: str | None) -> list[dict[str, Any]]:
        import kubernetes

        api = kubernetes.client.CustomObjectsApi(self.api_client)
        kwargs = {"label_selector": selector} if selector else {}
        if namespace is None:
            reply = self._call(
                "list StyleGANRuns in all namespaces",
                api.list_cluster_custom_object, GROUP, VERSION, PLURAL, **kwargs,
            )  # fmt: skip
        else:
            reply = self._call(
                f"list StyleGANRuns in namespace {namespace}",
                api.list_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, **kwargs,
            )  # fmt: skip
        return list(reply.get("items") or [])

    def get_run(self, namespace: str, name: str) -> dict[str, Any]:
        import kubernetes

        api = kubernetes.client.CustomObjectsApi(self.api_client)
        return dict(self._call(
            f"StyleGANRun {namespace}/{name}",
            api.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name,
        ))  # fmt: skip

    def run_jobs(self, namespace: str, run: str) -> list[dict[str, Any]]:
        import kubernetes

        api = kubernetes.client.BatchV1Api(self.api_client)
        reply = self._call(
            f"list Jobs of run {namespace}/{run}", api.list_namespaced_job, namespace,
            label_selector=f"{render.LABEL_RUN}={render.label_value(run)}",
        )  # fmt: skip
        return list(self._plain(reply).get("items") or [])

    def job_pods(self, namespace: str, job: str) -> list[dict[str, Any]]:
        import kubernetes

        api = kubernetes.client.CoreV1Api(self.api_client)
        reply = self._call(
            f"list pods of Job {namespace}/{job}", api.list_namespaced_pod, namespace,
            label_selector=f"{LABEL_JOB_NAME}={job}",
        )  # fmt: skip
        return list(self._plain(reply).get("items") or [])

    def stream_log(
        self, namespace: str, pod: str, *, follow: bool, tail: int | None, previous: bool,
        timestamps: bool,
    ) -> Iterable[bytes]:
        import kubernetes

        api = kubernetes.client.CoreV1Api(self.api_client)
        kwargs: dict[str, Any] = {
            "container": render.TRAINER_CONTAINER, "follow": follow, "previous": previous,
            "timestamps": timestamps, "_preload_content": False,
        }  # fmt: skip
        if tail is not None:
            kwargs["tail_lines"] = tail
        response = self._call(
            f"log of pod {namespace}/{pod}", api.read_namespaced_pod_log, pod, namespace, **kwargs
        )
        try:
            yield from response.stream(4096, decode_content=True)
        finally:
            response.release_conn()


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
@click.option(
    "-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True,
    help="A table for people, or JSON rows for scripts.",
)  # fmt: skip
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
    if not rows:
        where = "any namespace" if scope is None else f"namespace {scope}"
        click.echo(f"No StyleGANRuns found in {where}.", err=True)
        return
    click.echo(format_table(rows, all_namespaces=all_namespaces), nl=False)


@click.command("logs")
@click.argument("run")
@_namespace_option
@click.option("-f", "--follow", is_flag=True, help="Stream the log until the pod ends.")
@click.option("--tail", type=click.IntRange(min=0), default=None, help="Only the last N lines.")
@click.option("-p", "--previous", is_flag=True, help="The log of the container's previous run.")
@click.option("--timestamps", is_flag=True, help="Prefix each line with its time.")
@_connection_options
def logs_cmd(
    run: str, namespace: str | None, follow: bool, tail: int | None, previous: bool,
    timestamps: bool, kubeconfig: str | None, context: str | None,
) -> None:
    """Print the trainer log of RUN's rank 0 (completion index 0 of the active attempt)."""
    cluster = Cluster.connect(kubeconfig, context)
    ns = namespace or cluster.namespace
    resource = cluster.get_run(ns, run)
    job = active_job_name(resource, cluster.run_jobs(ns, run))
    if job is None:
        phase = (resource.get("status") or {}).get("phase") or "Pending"
        raise CommandError(f"run {ns}/{run} has no attempt yet (phase {phase})", EXIT_RETRYABLE)
    pod = rank0_pod(cluster.job_pods(ns, job))
    if pod is None:
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
@click.option(
    "-o", "--output", "output", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Where to write the PNG (default: <run>-<kimg>kimg.png).",
)  # fmt: skip
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
    run: str, namespace: str | None, output: Path | None, storage: str | None, list_only: bool,
    kubeconfig: str | None, context: str | None,
) -> None:
    """Fetch RUN's newest sample grid (seeds 0..N of G_ema) from its checkpoint storage.

    The trainer's rank 0 writes a grid at every snapshot to samples/fakes-<nimg>.png under
    spec.checkpoints.uri, a claim's folder or gs://bucket/prefix alike (for gs:// the
    credentials are the usual Google ones: GOOGLE_APPLICATION_CREDENTIALS or gcloud's
    application-default login). Grids are kept for the whole run; only checkpoints are
    pruned. Exit 64: no such run, no spec.checkpoints, no bucket or no credentials; 75:
    no grid yet, or the storage out of reach.
    """
    if list_only and output is not None:
        raise click.UsageError("use --list or --output, not both")
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
    output_path = _fetch_grid(uri, run, output)
    click.echo(f"wrote {output_path}")


@contextlib.contextmanager
def _storage_errors(uri: str) -> Iterator[None]:
    """Storage failures as the CLI's exit codes: a wrong URI, bucket or credentials is a bad
    request (64, the trainer's ConfigError), anything else may pass on a retry (75)."""
    from stylegan_common.errors import ConfigError, StorageError

    try:
        yield
    except ConfigError as exc:
        raise CommandError(f"--storage/spec.checkpoints.uri {uri}: {exc}") from exc
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


def _fetch_grid(uri: str, run: str, output: Path | None) -> Path:
    from stylegan_common.storage import open_storage

    with _storage_errors(uri):
        store = open_storage(uri)
        found = latest_grid(store.list(SAMPLES_PREFIX))
        if found is None:
            raise _no_grid_yet(uri)
        name, nimg = found
        data = store.read_bytes(name)
    path = output or Path(f"{run}-{nimg / 1000:g}kimg.png")
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise CommandError(f"--output {path}: cannot write: {exc}") from exc
    return path
