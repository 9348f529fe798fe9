"""Rank 0 reports its progress into its StyleGANRun's status (``styleganruns/status``).

Why the trainer pushes rather than the operator pulling: the trainer merge-patches
``status.progress`` through the API server, so the operator never has to reach pod IPs
(private clusters and network policies allow it, as does the local test cluster whose
pods have no network at all); a report survives operator restarts because it is stored
in the run itself; and it costs one small PATCH per tick. The trainer may do nothing else:
the operator gives its pods a ServiceAccount bound to a Role with ``get`` and ``patch`` on
``styleganruns/status`` for this one run (``resourceNames``), and copies the report into
the top-level status fields (``kimg``, ``secPerKimg``, ``lastCheckpoint``) itself.

:func:`hooks_from_env` is what the training loop calls: it returns a
:class:`StatusReporter` (a ``progress.ProgressHook``) when ``STYLEGAN_RUN`` names the run
and an API server is reachable (in-cluster credentials, or ``KUBECONFIG``), else nothing.
The namespace comes from ``STYLEGAN_NAMESPACE``, ``STYLEGAN_RUN_NAMESPACE``,
``POD_NAMESPACE`` or the in-cluster namespace file.

Reporting never slows or stops training: patches are sent by a background thread (the
newest report wins; older unsent ones are dropped), each with a short timeout, and a failed
patch is logged once and retried with the next report.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from stylegan_common import kubeapi

LOG = logging.getLogger(__name__)

GROUP: Final = "stylegan.dev"
VERSION: Final = "v1alpha1"
PLURAL: Final = "styleganruns"
MERGE_PATCH: Final = "application/merge-patch+json"
ENV_RUN: Final = "STYLEGAN_RUN"
ENV_NAMESPACES: Final = ("STYLEGAN_NAMESPACE", "STYLEGAN_RUN_NAMESPACE", "POD_NAMESPACE")
ENV_ATTEMPT: Final = "STYLEGAN_ATTEMPT"
SA_NAMESPACE_FILE: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
REQUEST_TIMEOUT: Final = (5.0, 10.0)  # (connect, read) seconds
FLUSH_TIMEOUT: Final = 10.0
_NIMG = re.compile(r"ckpt-(\d+)")

Sender = Callable[[dict[str, Any]], None]


def checkpoint_uri(base: str | None, name: str) -> str:
    """A checkpoint name (``checkpoints/ckpt-000120000.pt``) as a URI under ``base``."""
    if "://" in name or name.startswith("/") or not base:
        return name
    return f"{base.rstrip('/')}/{name.lstrip('/')}"


def checkpoint_kimg(name: str) -> float | None:
    """The training progress a checkpoint's name records (its image count)."""
    found = _NIMG.search(name)
    return int(found.group(1)) / 1000 if found else None


def progress_patch(
    progress: Mapping[str, Any],
    checkpoint_base: str | None,
    attempt: int | None = None,
) -> dict[str, Any]:
    """The merge patch for ``status.progress`` from the trainer's progress record.

    ``progress`` is what ``progress.Reporter`` hands its hooks: ``kimg``, ``total_kimg``,
    ``sec_per_kimg``, ``last_checkpoint`` (a name under the checkpoint folder),
    ``last_checkpoint_at`` (when it was written), ``updated_at`` and ``error``.
    """
    out: dict[str, Any] = {
        "kimg": _number(progress.get("kimg")),
        "totalKimg": _number(progress.get("total_kimg")),
        "secPerKimg": _number(progress.get("sec_per_kimg")),
        "updatedAt": progress.get("updated_at"),
        "error": progress.get("error"),
    }
    name = progress.get("last_checkpoint")
    if name:
        kimg = checkpoint_kimg(str(name))
        out["lastCheckpoint"] = {
            "uri": checkpoint_uri(checkpoint_base, str(name)),
            "kimg": kimg if kimg is not None else out["kimg"],
            "time": progress.get("last_checkpoint_at") or progress.get("updated_at"),
        }
    if attempt is not None:
        out["attempt"] = attempt
    return {"status": {"progress": out}}


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return round(number, 4) if number == number and abs(number) != float("inf") else None


class StatusReporter:
    """A progress hook that patches the run's status from a background thread."""

    def __init__(
        self,
        send: Sender,
        checkpoint_base: str | None = None,
        attempt: int | None = None,
        *,
        description: str = "the run's status",
    ) -> None:
        self._send = send
        self.checkpoint_base = checkpoint_base
        self.attempt = attempt
        self.description = description
        self._latest: dict[str, Any] | None = None
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self._warned = False
        self.sent = 0
        self._thread = threading.Thread(target=self._loop, name="status-report", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def __call__(self, progress: Mapping[str, Any]) -> None:
        patch = progress_patch(progress, self.checkpoint_base, self.attempt)
        with self._cond:
            self._latest = patch
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._latest is None and not self._closed:
                    self._cond.wait()
                if self._latest is None:
                    return
                patch, self._latest = self._latest, None
                self._busy = True
            try:
                self._send(patch)
                self.sent += 1
                if self._warned:
                    LOG.info("progress reports to %s work again", self.description)
                    self._warned = False
            except Exception as exc:  # reporting must never take training down
                if not self._warned:
                    LOG.warning("cannot report progress to %s (will retry): %s",
                                self.description, exc)
                    self._warned = True
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def flush(self, timeout: float = FLUSH_TIMEOUT) -> bool:
        """Wait until the newest report was sent (or failed); False on timeout."""
        with self._cond:
            return self._cond.wait_for(
                lambda: self._latest is None and not self._busy, timeout=timeout
            )

    def close(self) -> None:
        """Send what is pending (bounded by :data:`FLUSH_TIMEOUT`), then stop the thread."""
        if self._closed:
            return
        self.flush()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=1.0)


def kubernetes_sender(namespace: str, run: str, api_client: Any) -> Sender:
    """Merge-patch ``styleganruns/<run>/status`` with ``api_client`` (kubernetes package).

    ``CustomObjectsApi`` takes and returns plain dicts and needs no discovery request, so
    the trainer's ServiceAccount needs nothing beyond ``patch`` on its run's status.
    """
    from kubernetes.client import CustomObjectsApi
    from kubernetes.client.exceptions import ApiException

    api = CustomObjectsApi(api_client)
    what = f"patch styleganruns/{run}/status in {namespace}"

    def send(patch: dict[str, Any]) -> None:
        try:
            api.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, PLURAL, run, patch,
                _content_type=MERGE_PATCH, _request_timeout=REQUEST_TIMEOUT,
            )  # fmt: skip
        except ApiException as exc:  # one line with the API server's words, not the dump
            raise RuntimeError(f"{what}: {kubeapi.api_error(exc)}") from None

    return send


def run_namespace(env: Mapping[str, str]) -> str | None:
    for name in ENV_NAMESPACES:
        if env.get(name):
            return env[name]
    try:
        return SA_NAMESPACE_FILE.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _api_client() -> Any | None:
    """A kubernetes ApiClient from in-cluster credentials or KUBECONFIG; None without."""
    try:
        import kubernetes
    except ImportError:
        return None
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        try:
            kubernetes.config.load_kube_config()
        except (kubernetes.config.ConfigException, OSError, TypeError) as exc:
            LOG.info("no Kubernetes credentials (%s): progress stays in progress.json", exc)
            return None
    return kubernetes.client.ApiClient()


def hooks_from_env(
    checkpoint_base: str | None, env: Mapping[str, str] | None = None
) -> list[StatusReporter]:
    """The status reporter for this process's run, or none outside a run.

    Args:
        checkpoint_base: where checkpoints go (``checkpoint_uri`` or ``outdir``), to turn
            the names the loop reports into URIs the operator can resume from.
    """
    env = os.environ if env is None else env
    run = env.get(ENV_RUN)
    if not run:
        return []
    namespace = run_namespace(env)
    if not namespace:
        LOG.warning("%s=%s but no namespace (%s): not reporting progress", ENV_RUN, run,
                    ", ".join(ENV_NAMESPACES))
        return []
    client = _api_client()
    if client is None:
        return []
    attempt = env.get(ENV_ATTEMPT)
    return [
        StatusReporter(
            kubernetes_sender(namespace, run, client),
            checkpoint_base,
            int(attempt) if attempt and attempt.isdigit() else None,
            description=f"styleganruns/{run}/status in {namespace}",
        )
    ]
