"""Spec changes while a run lives: which apply now, which wait for the next attempt.

An attempt's Job and its immutable ConfigMap are written once, from the spec of their time,
so a later change to what they were made from cannot reach the pods already running. Rather
than report such a change as handled (``status.observedGeneration`` moves on every
reconcile), the run says so in its ``SpecChangePending`` condition, naming the fields. Per
field:

* refused by the API server (CEL transition rules, ``api.spec``): ``spec.model`` (a
  checkpoint of one network cannot resume another) and ``spec.checkpoints.uri`` once set
  (the next attempt would find no checkpoint and start from scratch);
* applied at the next reconcile, so never pending: ``spec.cost`` (prices, budget, its
  action), ``spec.runPolicy`` (backoff limit, deadline, TTL: the operator enforces them),
  ``spec.suspend`` and ``spec.serve`` (its Deployment rolls, ``reconcile.serving``);
* applied at the next attempt, pending until then: the rest, each second-level field on its
  own (``spec.training.kimg``, ``spec.resources.image``, ``spec.distributed.*``, ...) and
  ``spec.queueName``. The next attempt comes with a restart, a preemption, a resume after a
  suspension, or at once when the user deletes the attempt's Job (the operator then starts
  the next one, resuming from the newest checkpoint).

How: each Job carries :data:`ANNOTATION_SPEC_DIGESTS`, a short digest of every field above
as the validated spec had it (defaults filled in, so spelling a default out is no change);
the condition compares them with the current spec. Jobs without the annotation (made by an
older operator) are not judged, nor fields the Job's digests do not hold (added to the spec by
a newer operator: their old value is not known).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Final

from stylegan_operator.api.spec import RunSpec
from stylegan_operator.reconcile import render
from stylegan_operator.reconcile.conditions import (
    FINISHED,
    REASON_NEXT_ATTEMPT,
    REASON_SPEC_APPLIED,
    SPEC_CHANGE_PENDING,
    condition,
)
from stylegan_operator.reconcile.plan import _Decision

ANNOTATION_SPEC_DIGESTS: Final = "stylegan.dev/spec-digests"
APPLIED_LIVE: Final = frozenset({"cost", "runPolicy", "suspend", "serve"})
IMMUTABLE: Final = frozenset({"model"})  # and checkpoints.uri, which never differs here


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def spec_digests(spec: RunSpec) -> dict[str, str]:
    """Field path (``training.kimg``) -> digest of its value, for the fields an attempt fixes."""
    out: dict[str, str] = {}
    for key, value in spec.model_dump(by_alias=True, mode="json").items():
        if key in APPLIED_LIVE or key in IMMUTABLE:
            continue
        if isinstance(value, dict):
            out.update({f"{key}.{sub}": _digest(v) for sub, v in value.items()})
        else:
            out[key] = _digest(value)  # a scalar, or a section that is absent (None)
    return out


def digests_annotation(spec: RunSpec) -> str:
    return json.dumps(spec_digests(spec), sort_keys=True, separators=(",", ":"))


def changed_fields(job: Mapping[str, Any], spec: RunSpec) -> list[str] | None:
    """The ``spec.*`` fields that differ from what ``job`` was made from; None: not known."""
    annotations = (job.get("metadata") or {}).get("annotations") or {}
    try:
        then = json.loads(annotations[ANNOTATION_SPEC_DIGESTS])
    except (KeyError, TypeError, ValueError):
        return None
    if not isinstance(then, dict):
        return None
    now = spec_digests(spec)
    changed: set[str] = set()
    # Only the fields the Job knew: one a newer operator added has no digest to compare with.
    for key, digest in then.items():
        if now.get(key) == digest:
            continue
        section = key.split(".", 1)[0]
        # A section added or removed (checkpoints) is named once, not with each of its fields.
        changed.add(section if key not in now and section in now else key)
    return [f"spec.{k}" for k in sorted(changed)]


def note_spec_changes(d: _Decision, spec: RunSpec) -> None:
    """Set ``SpecChangePending`` for the attempt the run is on (module docstring)."""
    attempt = d.status.get("attempt") or d.old.get("attempt")
    name = render.job_name(d.name, int(attempt)) if attempt else None
    made_now = any(o.get("kind") == "Job" for o in d.plan.creates)
    job = d.observed.jobs.get(int(attempt)) if attempt else None
    changed: list[str] | None = []
    if d.phase not in FINISHED and not made_now and job is not None:
        changed = changed_fields(job, spec)
        if changed is None:
            return
    if changed:
        generation = ((job or {}).get("metadata") or {}).get("annotations", {}).get(
            render.ANNOTATION_GENERATION, "?")
        d.cond(SPEC_CHANGE_PENDING, True, REASON_NEXT_ATTEMPT,
               f"{', '.join(changed)} changed since Job {name} was made (generation "
               f"{generation}); its pods keep what they started with, and the change applies "
               f"at the next attempt (a restart, a preemption or a resume; delete Job {name} "
               "to start one now, resuming from the newest checkpoint)")
    elif (condition({"conditions": d.conditions}, SPEC_CHANGE_PENDING) or {}).get(
            "status") == "True":
        if d.phase in FINISHED:
            text = "the run has finished"
        elif job is None and not made_now:
            text = "no attempt runs now; the next one is made from the current spec"
        else:
            text = f"the current attempt (Job {name}) runs the current spec"
        d.cond(SPEC_CHANGE_PENDING, False, REASON_SPEC_APPLIED, text)
