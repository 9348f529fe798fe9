"""What the operator and the trainer share about the ``kubernetes`` client: reading its errors.

Every request goes through the official client (the operator's ``kube.client`` through its
``DynamicClient``, the trainer's status reporter and the CLI through the typed APIs); nothing
in the project builds a URL or sends HTTP to the API server itself, and
``tests/unit/foundation/test_no_raw_api_requests.py`` keeps it so. What is left to share is
turning a failure into one line that carries the API server's own words, and telling a
server that could not be reached from one that answered. It lives here because the trainer (rank 0
patching its run's status) is the lower layer; the operator imports it from here. Nothing
here imports torch, and ``kubernetes`` only when a function is called.
"""

from __future__ import annotations

import json
from typing import Any


def api_message(body: Any) -> str:
    """The API server's own words from an error reply (a Status object), e.g. why a log
    cannot be read yet (``container "trainer" ... is waiting to start``)."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    try:
        return str(json.loads(body).get("message") or body)
    except (TypeError, ValueError, AttributeError):
        return str(body)[:500]


def api_error(exc: Any) -> str:
    """``404 Not Found: styleganruns.stylegan.dev "x" not found`` from an ``ApiException``."""
    return f"{exc.status} {exc.reason}: {api_message(exc.body)}"


def out_of_reach(exc: BaseException) -> bool:
    """Whether ``exc`` says the API server could not be reached or answered nothing usable:
    urllib3's errors (a refused or reset connection, a timeout, TLS) and socket errors."""
    import urllib3

    return isinstance(exc, urllib3.exceptions.HTTPError | OSError)
