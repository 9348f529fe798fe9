"""Rooms of a size a newcomer can read: no source module over 500 lines, no function over 80,
and docs/architecture.md names only modules that exist (and every package there is)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SOURCES = sorted(p for root in ("common", "operator", "trainer")
                 for p in (ROOT / root).rglob("*.py"))
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_module_and_function_sizes(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_MODULE_LINES, "split the module by responsibility"
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines, line {node.lineno})"
            for node in ast.walk(ast.parse(text))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and (node.end_lineno or 0) - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_the_architecture_page_names_real_modules_and_every_package() -> None:
    page = (ROOT / "docs/architecture.md").read_text(encoding="utf-8")
    names = {p.name for p in SOURCES} | {p.name for p in (ROOT / "tests").rglob("*.py")}
    mentioned = set(re.findall(r"\b([a-z_]+\.py)\b", page))
    assert mentioned, "the page names no module"
    assert not mentioned - names, f"modules that do not exist: {sorted(mentioned - names)}"
    packages = {p.parent.name for p in SOURCES if p.name == "__init__.py"}
    missing = sorted(name for name in packages if not re.search(rf"\b{name}\b", page))
    assert not missing, f"packages docs/architecture.md does not show: {missing}"
