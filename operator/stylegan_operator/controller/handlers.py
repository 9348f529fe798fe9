"""The kopf handlers: thin triggers for one level-triggered :func:`reconcile` of a run.

Whatever happens (the run is created, changed or found at start-up; a Job, pod or server
Deployment of the run changes; the periodic timer fires), the handler names the run and
calls :func:`reconcile`, which reads the run and what it owns afresh, asks
``reconcile.decide`` for a plan, applies it through ``kube`` and posts the plan's Events.
No handler decides anything itself.

Concurrency: kopf runs handlers for different objects at once (a run, each of its Jobs and
pods), so reconciles of one run are serialised here; requests that arrive while one runs
fold into a single rerun (the pods they carried are kept).

Finalizers: none is needed for clean-up (everything a run makes carries an ownerReference
to it; the garbage collector deletes it). kopf adds its finalizer (``stylegan.dev/finalizer``)
only while the timer has work on a run (``decide.wants_timer``): an unfinished run, or a
finished one waiting for its TTL; kopf drops it once the run finishes without a TTL.

Errors: a spec the operator refuses is a ``kopf.PermanentError`` (after the run's status
says Failed, naming the field); an API failure that a retry can fix is a
``kopf.TemporaryError`` with a delay; the Job/pod event handlers and the timer only log, as
the next event or tick reconciles again.

Configuration comes from the environment (``stylegan operator`` sets it from its flags), so
``kopf run -m stylegan_operator.controller.handlers`` works too: see :class:`OperatorConfig`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, cast

import kopf
import yaml

from stylegan_operator.api.names import CUSTOM_GPU_TYPE_LABEL, GROUP, PLURAL, VERSION
from stylegan_operator.controller import health, metrics
from stylegan_operator.controller.settings import NO_LABEL, read_environment
from stylegan_operator.cost.pricing import PriceCatalog
from stylegan_operator.kube.client import Kube, KubeError
from stylegan_operator.reconcile import render
from stylegan_operator.reconcile.decide import decide, wants_timer
from stylegan_operator.reconcile.observe import LifecycleConfig, is_disrupted
from stylegan_operator.reconcile.plan import Plan, run_reference

PREFIX: Final = "stylegan.dev"
FINALIZER: Final = f"{PREFIX}/finalizer"
DISRUPTED_MEMORY_SECONDS: Final = 600.0


@dataclass(frozen=True)
class OperatorConfig:
    """The operator's settings, read from ``STYLEGAN_OPERATOR_*`` environment variables."""

    interval: float = 20.0
    """Seconds between periodic reconciles of a run (cost, deadline, TTL)."""
    metrics_port: int | None = 9090
    """Port of the Prometheus endpoint (/metrics); None or 0: not served."""
    metrics_address: str = "0.0.0.0"
    trainer_image: str | None = None
    prices_file: str | None = None
    """A YAML price catalog (``cost.PriceCatalog.from_dict``), e.g. a mounted ConfigMap."""
    image_pull_grace: float = 1800.0
    """Seconds a pod may fail to pull its image before the run fails (``LifecycleConfig``)."""
    report_status: bool = True
    gpu_type_label: str | None = CUSTOM_GPU_TYPE_LABEL
    """The cluster's own node label for GPU types; ``-`` (or ``none``) turns it off."""
    retry_delay: float = 10.0
    """Delay of ``kopf.TemporaryError`` after a transient API failure."""
    server_timeout: float = 300.0
    client_timeout: float = 330.0
    connect_timeout: float = 30.0
    request_timeout: float = 60.0
    workers: int = 8
    error_backoffs: tuple[float, ...] = field(default=(1, 2, 4, 8, 16, 30))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorConfig:
        """The settings from ``env`` (default: the process's), checked by
        ``settings.OperatorEnvironment``; ``ValueError`` naming a bad variable."""
        given = read_environment(os.environ if env is None else env)
        if given.gpu_type_label is None:
            label: str | None = CUSTOM_GPU_TYPE_LABEL
        elif given.gpu_type_label.strip().lower() in (NO_LABEL, "none"):
            label = None
        else:
            label = given.gpu_type_label
        values = {
            name: value
            for name, value in given.model_dump(exclude={"gpu_type_label"}).items()
            if value is not None
        }
        # 0 turns the metrics endpoint off; a zero interval or worker count means the default.
        if values.get("metrics_port") == 0:
            values["metrics_port"] = None
        for name in ("interval", "workers"):
            if values.get(name) == 0:
                del values[name]
        return cls(**values, gpu_type_label=label)

    def lifecycle_config(self) -> LifecycleConfig:
        catalog = PriceCatalog()
        if self.prices_file:
            path = Path(self.prices_file)
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError) as exc:
                raise ValueError(f"{path}: cannot read the price catalog: {exc}") from exc
            catalog = PriceCatalog.from_dict(data)
        return LifecycleConfig(
            catalog=catalog,
            trainer_image=self.trainer_image,
            image_pull_grace_seconds=self.image_pull_grace,
            report_status=self.report_status,
            gpu_type_label=self.gpu_type_label,
        )


CONFIG = OperatorConfig.from_env()


class _State:
    """Process-wide state: the API access, the decision config and the reconcile gate."""

    def __init__(self) -> None:
        self.kube: Kube | None = None
        self.decisions: LifecycleConfig | None = None
        self.lock = threading.Lock()
        self.running: set[tuple[str, str]] = set()
        self.pending: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
        self.disrupted: dict[tuple[str, str], dict[str, tuple[float, Mapping[str, Any]]]] = {}
        self.reconciles = 0
        self.last_reconcile: float | None = None
        self.metrics_server: Any = None

    def api(self) -> Kube:
        if self.kube is None:
            self.kube = Kube.from_environment()
        return self.kube

    def queue_depth(self) -> tuple[int, int]:
        """(runs with a reconcile waiting, runs being reconciled) for /metrics."""
        with self.lock:
            return len(self.pending), len(self.running)

    def config(self) -> LifecycleConfig:
        if self.decisions is None:
            self.decisions = CONFIG.lifecycle_config()
        return self.decisions


STATE = _State()


# --------------------------------------------------------------------------- reconcile
def reconcile(
    namespace: str,
    name: str,
    logger: kopf.Logger,
    extra_pods: Iterable[Mapping[str, Any]] = (),
) -> Plan | None:
    """Bring one run a step closer to its spec; None when another thread does it now.

    Raises:
        KubeError: an API call failed (``transient`` says whether a retry may help).
    """
    key = (namespace, name)
    pods = list(extra_pods)
    with STATE.lock:
        if key in STATE.running:
            STATE.pending.setdefault(key, []).extend(pods)
            return None
        STATE.running.add(key)
    try:
        while True:
            plan = _timed_reconcile_once(namespace, name, logger, pods)
            with STATE.lock:
                more = STATE.pending.pop(key, None)
                if more is None:
                    STATE.running.discard(key)
                    return plan
            pods = more
    except BaseException:
        with STATE.lock:
            STATE.running.discard(key)
            STATE.pending.pop(key, None)
        raise


def _timed_reconcile_once(
    namespace: str, name: str, logger: kopf.Logger, pods: list[Mapping[str, Any]],
) -> Plan | None:
    """:func:`_reconcile_once`, timed and counted on the operator's health metrics."""
    started = time.monotonic()
    outcome = "error"
    try:
        plan = _reconcile_once(namespace, name, logger, pods)
        outcome = "ok"
        return plan
    except KubeError as exc:
        metrics.HEALTH.count_api_error(exc.status)
        outcome = "transient" if exc.transient else "error"
        raise
    finally:
        metrics.HEALTH.observe_reconcile(time.monotonic() - started, outcome)


def _remember_disrupted(key: tuple[str, str], pods: Iterable[Mapping[str, Any]]) -> list[Any]:
    """Disrupted pods vanish quickly; keep the ones seen in events for a while."""
    now = time.monotonic()
    with STATE.lock:
        memory = STATE.disrupted.setdefault(key, {})
        for pod in pods:
            if is_disrupted(pod):
                memory[str((pod.get("metadata") or {}).get("uid"))] = (now, pod)
        for uid in [u for u, (seen, _) in memory.items() if now - seen > DISRUPTED_MEMORY_SECONDS]:
            del memory[uid]
        if not memory:
            STATE.disrupted.pop(key, None)
        return [pod for _, pod in memory.values()]


def _reconcile_once(
    namespace: str,
    name: str,
    logger: kopf.Logger,
    extra_pods: list[Mapping[str, Any]],
) -> Plan | None:
    kube = STATE.api()
    run = kube.get_run(namespace, name)
    if run is None:
        metrics.remove_run(namespace, name)
        with STATE.lock:
            STATE.disrupted.pop((namespace, name), None)
        return None
    remembered = _remember_disrupted((namespace, name), extra_pods)
    listed = {str((p.get("metadata") or {}).get("uid")) for p in extra_pods}
    extra = list(extra_pods) + [
        p for p in remembered if str((p.get("metadata") or {}).get("uid")) not in listed
    ]
    config = STATE.config()
    observed = kube.observe(run, extra, gpu_type_label=config.gpu_type_label)
    plan = decide(run, observed, datetime.now(UTC), config)
    done = kube.apply(run, plan)
    reference = run_reference(run)
    for event in plan.events:
        kopf.event(cast(kopf.Body, reference), type=event.type, reason=event.reason,
                   message=event.message)
    if plan.delete_run:
        metrics.remove_run(namespace, name)
    elif plan.sample is not None:
        metrics.update_run(plan.sample)
    with STATE.lock:
        STATE.reconciles += 1
        STATE.last_reconcile = time.monotonic()
    if done:
        # Cost and progress move on every tick; say so only when debugging.
        routine = not (plan.creates or plan.applies or plan.job_patches or plan.deletes
                       or plan.job_stops or plan.events or plan.delete_run)
        logger.log(logging.DEBUG if routine else logging.INFO, "reconciled %s/%s (%s): %s",
                   namespace, name, plan.phase, "; ".join(done))
    return plan


def _reconcile_or_retry(
    namespace: str, name: str, logger: kopf.Logger,
    extra_pods: Iterable[Mapping[str, Any]] = (),
) -> Plan | None:
    """:func:`reconcile` with API failures as kopf errors (retried when transient)."""
    try:
        return reconcile(namespace, name, logger, extra_pods)
    except KubeError as exc:
        if exc.transient:
            raise kopf.TemporaryError(str(exc), delay=CONFIG.retry_delay) from exc
        raise kopf.PermanentError(str(exc)) from exc


# --------------------------------------------------------------------------- handlers
@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, logger: kopf.Logger, **_: Any) -> None:
    """kopf settings (control-plane-and-reliability.md B5) and the /metrics endpoint."""
    settings.persistence.finalizer = FINALIZER
    # Our own annotation names, so nothing says kopf.zalando.org on a run (kopf #321/#346).
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration"
    )
    # Watch streams that go silent behind a load balancer look healthy for ever (kopf #585,
    # #810, #1120): the server ends each watch after server_timeout, the client gives up a
    # little later, and kopf re-lists and re-watches.
    settings.watching.server_timeout = int(CONFIG.server_timeout)  # the API wants an integer
    settings.watching.client_timeout = CONFIG.client_timeout
    settings.watching.connect_timeout = CONFIG.connect_timeout
    settings.networking.request_timeout = CONFIG.request_timeout
    settings.networking.connect_timeout = CONFIG.connect_timeout
    settings.networking.error_backoffs = CONFIG.error_backoffs
    # Only our own Events (lifecycle transitions) and kopf's warnings become Events.
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = "stylegan-operator"
    settings.execution.max_workers = CONFIG.workers
    # No CRD/namespace scanning: the CRD is installed first, and the operator needs no
    # cluster-wide read of CRDs or namespaces (least privilege, manifests/rbac).
    settings.scanning.disabled = True
    if CONFIG.metrics_port:
        from prometheus_client import start_http_server

        STATE.metrics_server = start_http_server(
            CONFIG.metrics_port, addr=CONFIG.metrics_address, registry=metrics.REGISTRY
        )
        logger.info("serving /metrics on %s:%d", CONFIG.metrics_address, CONFIG.metrics_port)
    health.count_watch_restarts(metrics.HEALTH)
    metrics.HEALTH.watch_queue(STATE.queue_depth)
    STATE.config()  # a bad price catalog stops the start-up, not the first reconcile


@kopf.on.cleanup()
def stop_metrics(**_: Any) -> None:
    server = STATE.metrics_server
    if isinstance(server, tuple) and server and hasattr(server[0], "shutdown"):
        server[0].shutdown()
    STATE.metrics_server = None


@kopf.on.login()
def login(**kwargs: Any) -> Any:
    """In-cluster credentials, else KUBECONFIG, through the kubernetes client (as kube.py)."""
    return kopf.login_via_client(**kwargs)


@kopf.on.probe(id="reconciles")
def reconciles(**_: Any) -> dict[str, Any]:
    """Liveness detail: how many reconciles ran, and how long ago the last one."""
    with STATE.lock:
        last = STATE.last_reconcile
        return {
            "count": STATE.reconciles,
            "secondsSinceLast": None if last is None else round(time.monotonic() - last, 1),
        }


@kopf.on.resume(GROUP, VERSION, PLURAL, id="resume")
@kopf.on.create(GROUP, VERSION, PLURAL, id="create")
@kopf.on.update(GROUP, VERSION, PLURAL, id="update", field="spec")
def run_changed(name: str, namespace: str | None, logger: kopf.Logger, **_: Any) -> None:
    """The run appeared, changed its spec, or was found when the operator started."""
    plan = _reconcile_or_retry(str(namespace), name, logger)
    if plan is not None and plan.permanent_error:
        raise kopf.PermanentError(plan.permanent_error)


@kopf.on.event(GROUP, VERSION, PLURAL, id="forget-deleted")
def run_event(type: str, name: str, namespace: str | None, **_: Any) -> None:
    """Forget a deleted run's metrics (its objects go with it through ownerReferences)."""
    if type == "DELETED":
        metrics.remove_run(str(namespace), name)


@kopf.timer(
    GROUP, VERSION, PLURAL, id="periodic", interval=CONFIG.interval,
    when=lambda body, **_: wants_timer(body),
)  # fmt: skip
def periodic(name: str, namespace: str | None, logger: kopf.Logger, **_: Any) -> None:
    """Cost (pods accrue time without events), deadlines, progress copies and TTLs."""
    try:
        reconcile(str(namespace), name, logger)
    except KubeError as exc:
        logger.warning("periodic reconcile of %s/%s failed: %s", namespace, name, exc)


def owner_run(body: Mapping[str, Any]) -> str | None:
    """The run that owns a Job (its controller reference), else its run-name annotation."""
    meta = body.get("metadata") or {}
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == "StyleGANRun" and ref.get("controller"):
            return str(ref.get("name"))
    return (meta.get("annotations") or {}).get(render.ANNOTATION_RUN_NAME)


@kopf.on.event("batch", "v1", "jobs", id="job", labels={render.LABEL_RUN: kopf.PRESENT})
def job_event(body: kopf.Body, namespace: str | None, logger: kopf.Logger, **_: Any) -> None:
    """A Job of a run changed (pods started, it finished or failed): reconcile the run."""
    run = owner_run(body)
    if run:
        _reconcile_logged(str(namespace), run, logger)


@kopf.on.event("apps", "v1", "deployments", id="server",
               labels={render.LABEL_RUN: kopf.PRESENT})
def server_event(body: kopf.Body, namespace: str | None, logger: kopf.Logger, **_: Any) -> None:
    """The run's server (spec.serve) changed: pods became ready, or it was deleted (and is
    made again). Also what keeps a finished run's server, which has no timer, in repair."""
    run = owner_run(body)
    if run:
        _reconcile_logged(str(namespace), run, logger)


@kopf.on.event("", "v1", "pods", id="pod", labels={render.LABEL_RUN: kopf.PRESENT})
def pod_event(body: kopf.Body, namespace: str | None, logger: kopf.Logger, **_: Any) -> None:
    """A trainer pod changed; the pod rides along, since a disrupted one may be gone soon."""
    run = owner_run(body)
    if run:
        _reconcile_logged(str(namespace), run, logger, [dict(body)])


def _reconcile_logged(
    namespace: str, run: str, logger: kopf.Logger,
    extra_pods: Iterable[Mapping[str, Any]] = (),
) -> None:
    try:
        reconcile(namespace, run, logger, extra_pods)
    except KubeError as exc:
        logger.warning("reconcile of %s/%s failed (the timer retries): %s", namespace, run, exc)
