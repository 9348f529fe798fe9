"""The smallest Kubernetes API client the project needs, shared by the operator and the trainer.

One authenticated request through a ``kubernetes`` ``ApiClient`` that works across client
versions, and the API server's own message from an error reply. It lives in the trainer
package because the trainer (rank 0 patching its run's status) is the lower layer; the
operator imports it from here. Nothing here imports torch.
"""

from __future__ import annotations

import json
from typing import Any


def send(
    api: Any, method: str, path: str, headers: dict[str, str], body: Any, *,
    query: list[tuple[str, str]] | None = None, timeout: tuple[float, float] = (10.0, 60.0),
) -> tuple[int, str, bytes]:
    """(status, reason, body) of one request; never raises for an HTTP error status.

    Clients from kubernetes 35 on (OpenAPI generator 7) split ``param_serialize`` and
    ``call_api`` and return every status; older ones raise ``ApiException`` for errors.
    """
    query = query or []
    if hasattr(api, "param_serialize"):
        method, url, headers, body, post = api.param_serialize(
            method=method, resource_path=path, query_params=query, header_params=headers,
            body=body, auth_settings=["BearerToken"],
        )  # fmt: skip
        reply = api.call_api(method, url, header_params=headers, body=body, post_params=post,
                             _request_timeout=timeout)
        return int(reply.status), str(reply.reason), as_bytes(reply.read())
    from kubernetes.client.exceptions import ApiException

    try:
        reply = api.call_api(
            path, method, query_params=query, header_params=headers, body=body,
            auth_settings=["BearerToken"], _preload_content=False,
            _return_http_data_only=True, _request_timeout=timeout,
        )  # fmt: skip
    except ApiException as exc:
        return int(exc.status or 0), str(exc.reason), as_bytes(exc.body)
    return int(reply.status), str(reply.reason), as_bytes(reply.data)


def as_bytes(data: Any) -> bytes:
    if data is None:
        return b""
    return data.encode() if isinstance(data, str) else bytes(data)


def api_message(body: Any) -> str:
    """The API server's own words from an error reply (a Status object), e.g. why a log
    cannot be read yet (``container "trainer" ... is waiting to start``)."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    try:
        return str(json.loads(body).get("message") or body)
    except (TypeError, ValueError, AttributeError):
        return str(body)[:500]
