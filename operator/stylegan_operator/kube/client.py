"""Every Kubernetes API call the operator makes, and nothing else.

Objects travel as the plain JSON dicts the API server speaks (camelCase), the same shape
``render`` builds and ``cost`` reads. The requests go through the official client's
``kubernetes.dynamic.DynamicClient``, chosen over the typed APIs (``CoreV1Api``,
``BatchV1Api``, ...) because it keeps those dicts as they are: it takes a dict body and
hands back the server's JSON (``ResourceInstance.to_dict()``), where the typed APIs parse
every reply into generated models (pydantic ones from kubernetes 35 on) that drop the fields
they do not know and must be turned back into camelCase dicts, and it serves all nine kinds
below through one create/get/patch/delete instead of one method name per kind and verb.
Its one cost is discovery: the first call for each kind asks the API server where that kind
lives (the API groups, then that group's resource list), once per process, under a lock
because kopf calls in from several threads; the client keeps the answers in a file in the
temporary folder, keyed by the API server's address (an emptyDir in the operator's pod).
Configuration (in-cluster, else KUBECONFIG) and authentication are the client's too.

Idempotence is kept here: a create that finds the object (409 AlreadyExists) and a delete
or patch that finds nothing (404) are successes, so applying one plan twice, or after a
crash half-way through, converges. Failures are :class:`KubeError`: ``transient`` for what
a retry can fix (5xx, 429, conflicts, timeouts, a lost connection), not for a request the
API server refuses for what it is (400, 403, 422).

What the operator touches (and ``manifests/rbac`` grants): StyleGANRuns and their status,
Jobs, Pods (read only), ConfigMaps, Services, ServiceAccounts, Roles and RoleBindings in the
runs' namespaces, the Deployments of ``spec.serve`` (server-side apply, field manager
:data:`FIELD_MANAGER`), Events (posted by kopf), and, for elastic runs, Nodes and the pods
bound to them cluster-wide (read only; without that right an elastic attempt asks for
maxNodes).
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from stylegan_common.kubeapi import api_error, out_of_reach
from stylegan_operator.api.names import API_VERSION, CUSTOM_GPU_TYPE_LABEL
from stylegan_operator.reconcile import render
from stylegan_operator.reconcile.capacity import free_nodes
from stylegan_operator.reconcile.observe import Observed
from stylegan_operator.reconcile.plan import Plan, diff_status
from stylegan_operator.reconcile.serve_render import serve_name

MERGE_PATCH: Final = "application/merge-patch+json"
FIELD_MANAGER: Final = "stylegan-operator"
REQUEST_TIMEOUT: Final = (10.0, 60.0)  # (connect, read) seconds

# kind -> apiVersion of the kinds the operator reads, creates or deletes (Node: read only,
# the free capacity of elastic runs, ``reconcile.capacity``).
KINDS: Final[dict[str, str]] = {
    "Node": "v1",
    "ServiceAccount": "v1",
    "Service": "v1",
    "ConfigMap": "v1",
    "Pod": "v1",
    "Role": "rbac.authorization.k8s.io/v1",
    "RoleBinding": "rbac.authorization.k8s.io/v1",
    "Job": "batch/v1",
    "Deployment": "apps/v1",
    "StyleGANRun": API_VERSION,
}
TRANSIENT_STATUSES: Final = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class KubeError(RuntimeError):
    """An API call failed; ``transient`` says whether retrying later can help."""

    def __init__(self, message: str, *, status: int | None = None, transient: bool) -> None:
        super().__init__(message)
        self.status = status
        self.transient = transient


def api_version_of(kind: str) -> str:
    try:
        return KINDS[kind]
    except KeyError:
        known = ", ".join(sorted(KINDS))
        raise ValueError(f"kind {kind!r} is not one the operator manages ({known})") from None


def _any_alive(pods: Iterable[Mapping[str, Any]]) -> bool:
    """Whether a pod of the run still holds (or waits for) a node."""
    return any(
        (p.get("status") or {}).get("phase") in ("Pending", "Running")
        and not (p.get("metadata") or {}).get("deletionTimestamp")
        for p in pods
    )


def run_selector(run_name: str) -> str:
    """The label selector of everything a run owns."""
    return f"{render.LABEL_RUN}={render.label_value(run_name)}"


class Kube:
    """The operator's API access; one instance per process (its HTTP pool is thread-safe)."""

    def __init__(self, api_client: Any) -> None:
        self.api = api_client
        self._dynamic: Any = None
        self._resources: dict[str, Any] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_environment(cls) -> Kube:
        """In-cluster credentials when running in a pod, else KUBECONFIG (kopf does the same)."""
        import kubernetes

        try:
            kubernetes.config.load_incluster_config()
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config()
        return cls(kubernetes.client.ApiClient())

    # -- one call ----------------------------------------------------------------------
    def resource(self, kind: str) -> Any:
        """The dynamic client's handle on ``kind`` (discovered on first use, then kept)."""
        api_version = api_version_of(kind)
        with self._lock:
            if kind not in self._resources:
                if self._dynamic is None:
                    from kubernetes.dynamic import DynamicClient

                    self._dynamic = DynamicClient(self.api)
                self._resources[kind] = self._dynamic.resources.get(
                    api_version=api_version, kind=kind)  # fmt: skip
            return self._resources[kind]

    def call(
        self,
        what: str,
        request: Callable[[], Any],
        *,
        ok_missing: bool = False,
        ok_exists: bool = False,
    ) -> dict[str, Any] | None:
        """Run ``request`` (one client call); the reply as a dict, None for a tolerated
        404/409. ``what`` names the call in errors, e.g. ``create Job ns/run-a0``."""
        from kubernetes.client.exceptions import ApiException
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        try:
            reply = request()
        except ApiException as exc:
            status = int(exc.status or 0)
            if (status == 404 and ok_missing) or (status == 409 and ok_exists):
                return None
            raise KubeError(f"{what}: {api_error(exc)}", status=status,
                            transient=status in TRANSIENT_STATUSES) from None
        except ResourceNotFoundError as exc:  # discovery: the API server serves no such kind
            raise KubeError(f"{what}: {exc} (is the CRD installed?)", transient=True) from exc
        except Exception as exc:
            if not out_of_reach(exc):
                raise
            message = f"{what}: API server out of reach: {type(exc).__name__}: {exc}"
            raise KubeError(message, transient=True) from exc
        to_dict = getattr(reply, "to_dict", None)
        return dict(to_dict()) if callable(to_dict) else {}

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """One object, or None when there is none."""
        return self.call(
            f"get {kind} {namespace}/{name}",
            lambda: self.resource(kind).get(name=name, namespace=namespace,
                                            _request_timeout=REQUEST_TIMEOUT),
            ok_missing=True,
        )  # fmt: skip

    def list_objects(self, kind: str, namespace: str, selector: str) -> list[dict[str, Any]]:
        reply = self.call(
            f"list {kind} in {namespace} ({selector})",
            lambda: self.resource(kind).get(namespace=namespace, label_selector=selector,
                                            _request_timeout=REQUEST_TIMEOUT),
        )  # fmt: skip
        return list((reply or {}).get("items") or [])

    # -- runs --------------------------------------------------------------------------
    def get_run(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get("StyleGANRun", namespace, name)

    def patch_run_status(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        self.call(
            f"patch StyleGANRun {namespace}/{name} status",
            lambda: self.resource("StyleGANRun").subresources["status"].patch(
                body={"status": dict(patch)}, name=name, namespace=namespace,
                content_type=MERGE_PATCH, _request_timeout=REQUEST_TIMEOUT),
            ok_missing=True,
        )  # fmt: skip

    def delete_run(self, namespace: str, name: str) -> None:
        self.delete("StyleGANRun", namespace, name)

    # -- what a run owns ---------------------------------------------------------------
    def observe(
        self, run: Mapping[str, Any], extra_pods: Iterable[Mapping[str, Any]] = (),
        gpu_type_label: str | None = CUSTOM_GPU_TYPE_LABEL,
    ) -> Observed:
        """The run's Jobs, pods, ConfigMaps, Service, trainer account and server; ``extra_pods``
        (seen in events, maybe gone since) are added unless listed. For an elastic run with no
        attempt alive, the free nodes of its shape too (``Observed.free_nodes``)."""
        meta = run.get("metadata") or {}
        namespace, name = str(meta["namespace"]), str(meta["name"])
        selector = run_selector(name)
        jobs = self.list_objects("Job", namespace, selector)
        pods = self.list_objects("Pod", namespace, selector)
        listed = {(p.get("metadata") or {}).get("uid") for p in pods}
        pods += [dict(p) for p in extra_pods if (p.get("metadata") or {}).get("uid") not in listed]
        config_maps = self.list_objects("ConfigMap", namespace, selector)
        service = self.get("Service", namespace, render.service_name(name))
        # The trainer's account, Role and RoleBinding, so that deleted ones are made again.
        accounts = [{**o, "kind": kind} for kind in ("ServiceAccount", "Role", "RoleBinding")
                    for o in self.list_objects(kind, namespace, selector)]
        # The server of spec.serve, read whether or not it is enabled: a disabled one that
        # still runs is deleted.
        faces = serve_name(name)
        serving = self.get("Deployment", namespace, faces)
        serving_service = self.get("Service", namespace, faces)
        observed = Observed.from_api(run, jobs, pods, config_maps, service, accounts,
                                     serving, serving_service)
        resources = (run.get("spec") or {}).get("resources") or {}
        if resources.get("minNodes") is not None and not _any_alive(observed.pods):
            free = self.free_nodes(str(resources.get("gpuType")),
                                   int(resources.get("gpusPerNode") or 1), gpu_type_label)
            observed = dataclasses.replace(observed, free_nodes=free)
        return observed

    def free_nodes(self, gpu_type: str, gpus_per_node: int,
                   gpu_type_label: str | None = CUSTOM_GPU_TYPE_LABEL) -> int | None:
        """Nodes with ``gpus_per_node`` GPUs of ``gpu_type`` free; None without the right to
        list nodes and pods cluster-wide (an operator confined to namespaces)."""
        try:
            nodes = self.call("list Node", lambda: self.resource("Node").get(
                _request_timeout=REQUEST_TIMEOUT))
            pods = self.call("list Pod in every namespace", lambda: self.resource("Pod").get(
                field_selector="status.phase!=Succeeded,status.phase!=Failed",
                _request_timeout=REQUEST_TIMEOUT))
        except KubeError as exc:
            if exc.status == 403:
                return None
            raise
        return free_nodes((nodes or {}).get("items") or [], (pods or {}).get("items") or [],
                          gpu_type, gpus_per_node, gpu_type_label)

    def create(self, obj: Mapping[str, Any]) -> bool:
        """Create ``obj`` in its namespace; False when it was there already."""
        kind = str(obj.get("kind"))
        meta = obj.get("metadata") or {}
        namespace = str(meta.get("namespace"))
        reply = self.call(
            f"create {kind} {namespace}/{meta.get('name')}",
            lambda: self.resource(kind).create(body=dict(obj), namespace=namespace,
                                               _request_timeout=REQUEST_TIMEOUT),
            ok_exists=True,
        )  # fmt: skip
        return reply is not None

    def server_side_apply(self, obj: Mapping[str, Any]) -> None:
        """Send ``obj`` whole as the operator's intent (server-side apply, forced: the operator
        owns these objects); the API server creates it, or updates it and drops the fields
        the operator set before and no longer sends."""
        kind = str(obj.get("kind"))
        meta = obj.get("metadata") or {}
        namespace = str(meta.get("namespace"))
        self.call(
            f"apply {kind} {namespace}/{meta.get('name')}",
            lambda: self.resource(kind).server_side_apply(
                body=dict(obj), namespace=namespace, field_manager=FIELD_MANAGER,
                force_conflicts=True, _request_timeout=REQUEST_TIMEOUT),
        )  # fmt: skip

    def patch(self, kind: str, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        self.call(
            f"patch {kind} {namespace}/{name}",
            lambda: self.resource(kind).patch(
                body=dict(patch), name=name, namespace=namespace, content_type=MERGE_PATCH,
                _request_timeout=REQUEST_TIMEOUT),
            ok_missing=True,
        )  # fmt: skip

    def delete(self, kind: str, namespace: str, name: str, propagation: str = "Background",
               ) -> None:
        """Delete; the garbage collector removes the dependants (pods). ``Foreground`` keeps
        the object, terminating, until they are gone."""
        self.call(
            f"delete {kind} {namespace}/{name}",
            lambda: self.resource(kind).delete(
                name=name, namespace=namespace, propagation_policy=propagation,
                _request_timeout=REQUEST_TIMEOUT),
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
        for obj in plan.applies:
            self.server_side_apply(obj)
            done.append(f"applied {obj['kind']} {obj['metadata']['name']}")
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


