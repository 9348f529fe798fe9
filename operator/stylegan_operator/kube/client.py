"""Every Kubernetes API call the operator makes, and nothing else.

Objects travel as the plain JSON dicts the API server speaks (camelCase), the same shape
``render`` builds and ``cost`` reads; the kubernetes client is used only for its
configuration loading (in-cluster or KUBECONFIG) and its authenticated HTTP.

Idempotence is kept here: a create that finds the object (409 AlreadyExists) and a delete
or patch that finds nothing (404) are successes, so applying one plan twice, or after a
crash half-way through, converges. Failures are :class:`KubeError`: ``transient`` for what
a retry can fix (5xx, 429, conflicts, timeouts, a lost connection), not for a request the
API server refuses for what it is (400, 403, 422).

What the operator touches (and ``manifests/rbac`` grants): StyleGANRuns and their status,
Jobs, Pods (read only), ConfigMaps, Services, ServiceAccounts, Roles and RoleBindings in the
runs' namespaces, and Events (posted by kopf).
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any, Final

from stylegan_common.kubeapi import api_message as _api_message
from stylegan_common.kubeapi import send
from stylegan_operator.api.names import GROUP, PLURAL, VERSION
from stylegan_operator.reconcile import render
from stylegan_operator.reconcile.observe import Observed
from stylegan_operator.reconcile.plan import Plan, diff_status

MERGE_PATCH: Final = "application/merge-patch+json"
REQUEST_TIMEOUT: Final = (10.0, 60.0)  # (connect, read) seconds

# kind -> (API prefix, plural) of the namespaced kinds the operator creates or deletes.
KINDS: Final[dict[str, tuple[str, str]]] = {
    "ServiceAccount": ("/api/v1", "serviceaccounts"),
    "Service": ("/api/v1", "services"),
    "ConfigMap": ("/api/v1", "configmaps"),
    "Pod": ("/api/v1", "pods"),
    "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles"),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings"),
    "Job": ("/apis/batch/v1", "jobs"),
    "StyleGANRun": (f"/apis/{GROUP}/{VERSION}", PLURAL),
}
TRANSIENT_STATUSES: Final = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class KubeError(RuntimeError):
    """An API call failed; ``transient`` says whether retrying later can help."""

    def __init__(self, message: str, *, status: int | None = None, transient: bool) -> None:
        super().__init__(message)
        self.status = status
        self.transient = transient


def collection_path(kind: str, namespace: str) -> str:
    try:
        prefix, plural = KINDS[kind]
    except KeyError:
        known = ", ".join(sorted(KINDS))
        raise ValueError(f"kind {kind!r} is not one the operator manages ({known})") from None
    return f"{prefix}/namespaces/{urllib.parse.quote(namespace)}/{plural}"


def object_path(kind: str, namespace: str, name: str) -> str:
    return f"{collection_path(kind, namespace)}/{urllib.parse.quote(name)}"


def run_selector(run_name: str) -> str:
    """The label selector of everything a run owns."""
    return f"{render.LABEL_RUN}={render.label_value(run_name)}"


class Kube:
    """The operator's API access; one instance per process (its HTTP pool is thread-safe)."""

    def __init__(self, api_client: Any) -> None:
        self.api = api_client

    @classmethod
    def from_environment(cls) -> Kube:
        """In-cluster credentials when running in a pod, else KUBECONFIG (kopf does the same)."""
        import kubernetes

        try:
            kubernetes.config.load_incluster_config()
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config()
        return cls(kubernetes.client.ApiClient())

    # -- raw requests ------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: Mapping[str, str] | None = None,
        content_type: str | None = None,
        ok_missing: bool = False,
        ok_exists: bool = False,
    ) -> dict[str, Any] | None:
        """One API call; the decoded JSON reply, or None for a tolerated 404/409."""
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        try:
            status, reason, data = send(self.api, method, path, headers, body,
                                        query=list((query or {}).items()),
                                        timeout=REQUEST_TIMEOUT)
        except Exception as exc:  # urllib3/socket errors: the API server is out of reach
            message = f"{method} {path}: {type(exc).__name__}: {exc}"
            raise KubeError(message, transient=True) from exc
        if status == 404 and ok_missing:
            return None
        if status == 409 and ok_exists:
            return None
        if not 200 <= status < 300:
            raise KubeError(
                f"{method} {path}: {status} {reason}: {_api_message(data)}",
                status=status,
                transient=status in TRANSIENT_STATUSES,
            )
        return json.loads(data) if data else {}

    def list_objects(self, kind: str, namespace: str, selector: str) -> list[dict[str, Any]]:
        reply = self.request("GET", collection_path(kind, namespace), query={
            "labelSelector": selector})  # fmt: skip
        return list((reply or {}).get("items") or [])

    # -- runs --------------------------------------------------------------------------
    def get_run(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.request("GET", object_path("StyleGANRun", namespace, name), ok_missing=True)

    def patch_run_status(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        self.request(
            "PATCH",
            object_path("StyleGANRun", namespace, name) + "/status",
            {"status": dict(patch)},
            content_type=MERGE_PATCH,
            ok_missing=True,
        )

    def delete_run(self, namespace: str, name: str) -> None:
        self.delete("StyleGANRun", namespace, name)

    # -- what a run owns ---------------------------------------------------------------
    def observe(
        self, run: Mapping[str, Any], extra_pods: Iterable[Mapping[str, Any]] = ()
    ) -> Observed:
        """The run's Jobs, pods, ConfigMaps, Service and trainer account; ``extra_pods`` (seen
        in events, maybe gone since) are added unless listed."""
        meta = run.get("metadata") or {}
        namespace, name = str(meta["namespace"]), str(meta["name"])
        selector = run_selector(name)
        jobs = self.list_objects("Job", namespace, selector)
        pods = self.list_objects("Pod", namespace, selector)
        listed = {(p.get("metadata") or {}).get("uid") for p in pods}
        pods += [dict(p) for p in extra_pods if (p.get("metadata") or {}).get("uid") not in listed]
        config_maps = self.list_objects("ConfigMap", namespace, selector)
        service = self.request(
            "GET", object_path("Service", namespace, render.service_name(name)), ok_missing=True
        )
        # The trainer's account, Role and RoleBinding, so that deleted ones are made again.
        accounts = [{**o, "kind": kind} for kind in ("ServiceAccount", "Role", "RoleBinding")
                    for o in self.list_objects(kind, namespace, selector)]
        return Observed.from_api(run, jobs, pods, config_maps, service, accounts)

    def create(self, obj: Mapping[str, Any]) -> bool:
        """Create ``obj`` in its namespace; False when it was there already."""
        meta = obj.get("metadata") or {}
        path = collection_path(str(obj.get("kind")), str(meta.get("namespace")))
        return self.request("POST", path, dict(obj), ok_exists=True) is not None

    def patch(self, kind: str, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        self.request(
            "PATCH", object_path(kind, namespace, name), dict(patch),
            content_type=MERGE_PATCH, ok_missing=True,
        )  # fmt: skip

    def delete(self, kind: str, namespace: str, name: str, propagation: str = "Background",
               ) -> None:
        """Delete; the garbage collector removes the dependants (pods). ``Foreground`` keeps
        the object, terminating, until they are gone."""
        self.request(
            "DELETE", object_path(kind, namespace, name),
            {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation},
            ok_missing=True,
        )  # fmt: skip

    # -- plans -------------------------------------------------------------------------
    def apply(self, run: Mapping[str, Any], plan: Plan) -> list[str]:
        """Carry out ``plan`` in the order its docstring gives; what was done, for the log."""
        meta = run.get("metadata") or {}
        namespace, name = str(meta["namespace"]), str(meta["name"])
        done: list[str] = []
        for obj in plan.creates:
            if self.create(obj):
                done.append(f"created {obj['kind']} {obj['metadata']['name']}")
        for job, patch in plan.job_patches:
            self.patch("Job", namespace, job, patch)
            done.append(f"patched Job {job} {json.dumps(patch, sort_keys=True)}")
        seen: set[tuple[str, str]] = set()
        for kind, victim in plan.deletes:
            if (kind, victim) not in seen:
                seen.add((kind, victim))
                self.delete(kind, namespace, victim)
                done.append(f"deleted {kind} {victim}")
        for job in dict.fromkeys(plan.job_stops):
            self.delete("Job", namespace, job, propagation="Foreground")
            done.append(f"deleted Job {job} (foreground: its pods stop first)")
        patch = diff_status(run.get("status") or {}, plan.status)
        if patch:
            self.patch_run_status(namespace, name, patch)
            done.append("status " + ", ".join(sorted(patch)))
        if plan.delete_run:
            self.delete_run(namespace, name)
            done.append("deleted the run (ttlSecondsAfterFinished)")
        return done


