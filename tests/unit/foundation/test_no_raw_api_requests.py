"""No module sends HTTP to the Kubernetes API server by hand (issue 16).

Every request goes through the ``kubernetes`` client's own APIs: the operator's
``DynamicClient`` calls, the typed and custom-object APIs of the CLI and the trainer. What
would bring a hand-written layer back is caught in the source of ``common/``, ``operator/``
and ``trainer/``: a call to the client's request internals (``ApiClient.param_serialize``,
``call_api``), or a string that spells an API server path (``/api/v1...``, ``/apis/...``).
Docstrings may still name such paths; code may not.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SOURCE_ROOTS = ("common", "operator", "trainer")
INTERNALS = frozenset({"param_serialize", "call_api"})
API_PATH = re.compile(r"(?<![\w.-])/apis?/")


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the constants that are docstrings (of the module, a class or a function)."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def raw_requests(source: str, where: str) -> list[str]:
    """Where ``source`` reaches past the client into raw requests."""
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        name = node.attr if isinstance(node, ast.Attribute) else \
            node.id if isinstance(node, ast.Name) else None
        if isinstance(node, ast.Constant) and node.value in INTERNALS:  # getattr(api, "...")
            name = node.value
        if name in INTERNALS:
            found.append(f"{where}:{node.lineno} uses {name}")
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                id(node) not in docstrings and API_PATH.search(node.value):
            found.append(f"{where}:{node.lineno} spells an API path: {node.value!r}")
    return sorted(found, key=lambda hit: int(hit.split(":")[1].split(" ")[0]))


def test_no_module_builds_api_requests_by_hand() -> None:
    found = [hit for root in SOURCE_ROOTS for path in sorted((ROOT / root).rglob("*.py"))
             for hit in raw_requests(path.read_text(encoding="utf-8"),
                                     str(path.relative_to(ROOT)))]
    assert not found, "requests to the API server built by hand:\n" + "\n".join(found)


def test_the_check_sees_each_way_back() -> None:
    source = '''
"""A docstring may say /apis/batch/v1."""
def send(api, ns, name):
    """So may this one: /api/v1/pods."""
    request = api.param_serialize(method="GET", resource_path="/api/v1/namespaces")
    api.call_api(*request)
    getattr(api, "call_api")
    return f"/apis/stylegan.dev/v1alpha1/namespaces/{ns}/styleganruns/{name}"
gcs = "https://storage.googleapis.com/storage/v1/b"
prometheus = "http://prometheus:9090" + "/api/v1/query"
'''
    found = raw_requests(source, "fake.py")
    assert found == [
        "fake.py:5 uses param_serialize",
        "fake.py:5 spells an API path: '/api/v1/namespaces'",
        "fake.py:6 uses call_api",
        "fake.py:7 uses call_api",
        "fake.py:8 spells an API path: '/apis/stylegan.dev/v1alpha1/namespaces/'",
        "fake.py:10 spells an API path: '/api/v1/query'",
    ]
