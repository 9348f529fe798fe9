"""When a run's faces are served: the server of ``spec.serve`` made, kept, rolled and removed.

Level-triggered like the rest of the decision. Wanted when ``spec.serve.enabled`` and either
the run has Succeeded, or ``whileTraining`` and the run has reported a checkpoint
(``status.lastCheckpoint``, from the trainer's progress report). Then:

* the Deployment and the Service ``<run>-faces`` (``serve_render``) go into the plan's
  server-side applies when they are missing (deleted by someone: made again, with a
  ``Recreated`` Event) or when what the operator renders changed (their
  ``stylegan.dev/serve-digest`` annotation differs): a changed psi, image or resource request
  rolls the Deployment with no pod down before its successor is ready;
* ``status.serve`` holds the in-cluster URL and the replicas asked for and ready, and the
  ``Serving`` condition is True while at least one server pod is ready (it loaded a
  checkpoint), False with the reason otherwise (``ServerStarting``, ``ScaledToZero``,
  ``WaitingForCheckpoint``, ``WaitingForSuccess``, ``ServeDisabled``).

When it is not wanted (disabled, or still waiting), the two objects are deleted and
``status.serve`` removed. A run whose spec is invalid leaves its server as it is; a deleted
run takes it along through the owner references.

The server's lifetimes are not metered into the run's cost (``observe`` leaves its pods
out): the cost is what training spends.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stylegan_operator.api.spec import RunSpec
from stylegan_operator.reconcile.conditions import (
    REASON_RECREATED,
    REASON_SCALED_TO_ZERO,
    REASON_SERVE_DISABLED,
    REASON_SERVER_READY,
    REASON_SERVER_STARTING,
    REASON_WAITING_FOR_CHECKPOINT,
    REASON_WAITING_FOR_SUCCESS,
    SERVING,
    SUCCEEDED,
    condition,
)
from stylegan_operator.reconcile.observe import _int, _is_deleting
from stylegan_operator.reconcile.plan import _Decision
from stylegan_operator.reconcile.serve_render import (
    ANNOTATION_SERVE_DIGEST,
    build_serve_deployment,
    build_serve_service,
    serve_name,
    serve_url,
)


def has_checkpoint(progress: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """Whether the run has reported a checkpoint (now, or in an earlier reconcile)."""
    for source in (progress.get("lastCheckpoint"), status.get("lastCheckpoint")):
        if isinstance(source, Mapping) and source.get("uri"):
            return True
    return False


def waiting_reason(spec: RunSpec, phase: str | None, checkpoint: bool) -> tuple[str, str] | None:
    """Why an enabled server does not run yet, as (reason, message); None: it should run."""
    if phase == SUCCEEDED:
        return None
    if not spec.serve.while_training:
        return (REASON_WAITING_FOR_SUCCESS, "spec.serve.whileTraining is false: the server "
                "starts once the run has Succeeded")
    if not checkpoint:
        uri = spec.checkpoints.uri if spec.checkpoints else "spec.checkpoints"
        return (REASON_WAITING_FOR_CHECKPOINT,
                f"the server starts with the run's first checkpoint in {uri}")
    return None


def drive_serving(d: _Decision, spec: RunSpec | None, progress: Mapping[str, Any]) -> None:
    """Write the server's objects, status and condition into the draft (module docstring)."""
    if spec is None:
        return
    if not spec.serve.enabled:
        _remove(d, REASON_SERVE_DISABLED, "spec.serve.enabled is false")
        return
    waiting = waiting_reason(spec, d.phase, has_checkpoint(progress, d.old))
    if waiting is not None:
        _remove(d, *waiting)
        return
    _ensure(d, spec)


def _digest_of(obj: Mapping[str, Any] | None) -> str | None:
    if obj is None:
        return None
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_SERVE_DIGEST)


def _ensure(d: _Decision, spec: RunSpec) -> None:
    run_meta = {"name": d.name, "namespace": d.namespace, "uid": d.meta.get("uid"),
                "generation": d.generation}
    wanted = (
        (build_serve_service(run_meta), d.observed.serving_service),
        (build_serve_deployment(run_meta, spec, image=d.config.trainer_image,
                                gpu_type_label=d.config.gpu_type_label), d.observed.serving),
    )
    recreated: list[str] = []
    for want, have in wanted:
        if have is not None and _is_deleting(have):
            continue  # made again once it is gone (its deletion is an event too)
        if have is None or _digest_of(have) != _digest_of(want):
            d.plan.applies.append(want)
            if have is None and d.old.get("serve"):
                recreated.append(f"{want['kind']} {want['metadata']['name']}")
    if recreated:
        d.event("Warning", REASON_RECREATED, "re-created " + ", ".join(recreated)
                + " (deleted while spec.serve.enabled is true)")
    url = serve_url(d.name, d.namespace)
    replicas = spec.serve.replicas
    observed = d.observed.serving
    ready = _int(((observed or {}).get("status") or {}).get("readyReplicas"))
    d.status["serve"] = {"url": url, "replicas": replicas, "readyReplicas": ready}
    if replicas == 0:
        d.cond(SERVING, False, REASON_SCALED_TO_ZERO, "spec.serve.replicas is 0")
    elif ready > 0:
        if d.cond(SERVING, True, REASON_SERVER_READY,
                  f"{ready}/{replicas} server pods ready at {url}"):
            d.event("Normal", SERVING, f"serving faces at {url} (kubectl port-forward "
                    f"svc/{serve_name(d.name)} 8080:80)")
    else:
        d.cond(SERVING, False, REASON_SERVER_STARTING,
               f"0/{replicas} server pods ready: a pod is ready once it loaded a checkpoint")


def _remove(d: _Decision, reason: str, message: str) -> None:
    """Delete what runs of the server; say why in the condition, once there is one."""
    existing = [kind for kind, obj in (("Deployment", d.observed.serving),
                                       ("Service", d.observed.serving_service))
                if obj is not None and not _is_deleting(obj)]
    for kind in existing:
        d.plan.deletes.append((kind, serve_name(d.name)))
    if "serve" in d.old:
        d.status["serve"] = None  # removed by the merge patch
    if existing or condition(d.old, SERVING) is not None or reason != REASON_SERVE_DISABLED:
        d.cond(SERVING, False, reason, message)
