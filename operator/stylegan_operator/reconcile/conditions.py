"""The words a run's status is written in, and the conditions that hold them.

``status.phase`` takes one of the phases below, and each phase is also a condition type
(:data:`PHASE_CONDITIONS`: the one for the current phase True, the others False); the other
condition types (:data:`CREATED`, :data:`PRICED`, the budget's,
:data:`SPEC_CHANGE_PENDING`, :data:`SERVING`) stand on their own. Reasons
are CamelCase, as Kubernetes writes them, and also name the Events. Kept apart so that
every step of the decision, and the tests, share one vocabulary; :func:`set_condition`
moves ``lastTransitionTime`` the way Kubernetes does.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

# --------------------------------------------------------------------------- vocabulary
PENDING: Final = "Pending"
RUNNING: Final = "Running"
RESTARTING: Final = "Restarting"
SUSPENDED: Final = "Suspended"
SUCCEEDED: Final = "Succeeded"
FAILED: Final = "Failed"
FINISHED: Final = (SUCCEEDED, FAILED)

CREATED: Final = "Created"
BUDGET_EXCEEDED: Final = "BudgetExceeded"
BUDGET_AT_RISK: Final = "BudgetAtRisk"
PRICED: Final = "Priced"
PHASE_CONDITIONS: Final = (PENDING, RUNNING, RESTARTING, SUSPENDED, SUCCEEDED, FAILED)

# Reasons (CamelCase, as Kubernetes writes them).
REASON_INVALID_SPEC: Final = "InvalidSpec"
REASON_BAD_CONFIGURATION: Final = "BadConfiguration"
REASON_BACKOFF_LIMIT: Final = "BackoffLimitExceeded"
REASON_DEADLINE: Final = "DeadlineExceeded"
REASON_IMAGE_PULL_FAILED: Final = "ImagePullFailed"
REASON_IMAGE_PULL_BACKOFF: Final = "ImagePullBackOff"
REASON_UNSCHEDULABLE: Final = "Unschedulable"
REASON_QUEUED: Final = "QueuedInKueue"
REASON_PODS_NOT_CREATED: Final = "PodsNotCreated"
REASON_PODS_STARTING: Final = "PodsStarting"
REASON_ATTEMPT_FAILED: Final = "AttemptFailed"
REASON_PREEMPTED: Final = "Preempted"
REASON_RESUMED: Final = "Resumed"
REASON_JOB_DELETED: Final = "JobDeleted"
REASON_INITIAL: Final = "Initial"
REASON_SUSPENDED_BY_USER: Final = "SuspendedBySpec"
REASON_JOB_CREATED: Final = "JobCreated"
REASON_ALL_PODS_RUNNING: Final = "AllPodsRunning"
REASON_COMPLETED: Final = "Completed"
REASON_NO_PRICE: Final = "NoPrice"
REASON_WORK_LOST: Final = "WorkLost"
REASON_RECREATED: Final = "Recreated"

SERVING: Final = "Serving"
"""True while a server pod of spec.serve is ready; False says why not (``reconcile.serving``)."""
REASON_SERVE_DISABLED: Final = "ServeDisabled"
REASON_WAITING_FOR_CHECKPOINT: Final = "WaitingForCheckpoint"
REASON_WAITING_FOR_SUCCESS: Final = "WaitingForSuccess"
REASON_SERVER_STARTING: Final = "ServerStarting"
REASON_SERVER_READY: Final = "ServerReady"
REASON_SCALED_TO_ZERO: Final = "ScaledToZero"

SPEC_CHANGE_PENDING: Final = "SpecChangePending"
REASON_NEXT_ATTEMPT: Final = "AppliesAtNextAttempt"
REASON_SPEC_APPLIED: Final = "SpecApplied"


MESSAGE_LIMIT: Final = 1024  # condition messages stay short; the pod keeps the rest


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _short(message: str | None) -> str:
    text = " ".join((message or "").split())
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 3] + "..."


# --------------------------------------------------------------------------- conditions
def set_condition(
    conditions: list[dict[str, Any]],
    type_: str,
    status: bool,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None,
) -> bool:
    """Set one condition in place; True when its status changed (a transition).

    ``lastTransitionTime`` moves only when the status flips, as Kubernetes does.
    """
    value = "True" if status else "False"
    for cond in conditions:
        if cond.get("type") == type_:
            changed = cond.get("status") != value
            cond.update(status=value, reason=reason, message=_short(message))
            if generation is not None:
                cond["observedGeneration"] = generation
            if changed:
                cond["lastTransitionTime"] = _iso(now)
            return changed
    new: dict[str, Any] = {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": _short(message),
        "lastTransitionTime": _iso(now),
    }
    if generation is not None:
        new["observedGeneration"] = generation
    conditions.append(new)
    return status  # a new False condition is not news


def condition(status: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == type_:
            return cond
    return None


def _is_true(status: Mapping[str, Any], type_: str) -> bool:
    cond = condition(status, type_)
    return cond is not None and cond.get("status") == "True"
