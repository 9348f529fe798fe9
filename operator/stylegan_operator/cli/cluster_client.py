"""The kubernetes client of ``stylegan runs|logs|samples``: reads with the CLI's exit codes.

:class:`Cluster` reads StyleGANRuns, their Jobs, pods and trainer logs, and turns every API
failure into a :class:`CommandError`: 64 (``EXIT_CONFIG``) for what the user must fix (an
unknown run, no permission), 75 (``EXIT_RETRYABLE``) for what a retry may fix (the API
server out of reach or failing).

Credentials and the default namespace come from the kubeconfig (``--kubeconfig``,
``KUBECONFIG``, ``~/.kube/config``; ``--context``), else from the pod's ServiceAccount.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import click

from stylegan_common.errors import EXIT_CONFIG, EXIT_RETRYABLE
from stylegan_common.kubeapi import api_error, out_of_reach
from stylegan_operator.api.names import GROUP, PLURAL, VERSION
from stylegan_operator.reconcile import render

LABEL_JOB_NAME: Final = "batch.kubernetes.io/job-name"


class CommandError(click.ClickException):
    """A failure the user can act on; ``exit_code`` follows the CLI's contract."""

    def __init__(self, message: str, exit_code: int = EXIT_CONFIG) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click reads it per instance


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
            raise CommandError(f"{what}: {api_error(exc)}", EXIT_RETRYABLE) from None
        except Exception as exc:
            if out_of_reach(exc):
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
