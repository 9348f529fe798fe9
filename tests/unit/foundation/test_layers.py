"""The layers of docs/architecture.md, held by reading every source module's imports.

Each package's ``__init__`` docstring says what it may import; ``ALLOWED`` below is the same
rule in a form a test can check. Every import statement counts, at module level or inside a
function (a lazy import is still a dependency), except those under ``if TYPE_CHECKING:``,
which never run. Names the CLI loads by string (``stylegan_operator.cli.main.COMMANDS``) are not
imports: that indirection is what keeps ``stylegan --help`` free of torch.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SOURCE_ROOTS = ("common", "operator", "trainer")
OURS = ("stylegan_common", "stylegan_operator", "stylegan_trainer")

ALLOWED: dict[str, set[str]] = {
    # shared: nothing of either program
    "stylegan_common": {"stylegan_common"},
    # operator, bottom to top
    "stylegan_operator.api": {"stylegan_operator.api"},
    "stylegan_operator.cost": {"stylegan_operator.api", "stylegan_operator.cost",
                               "=stylegan_common.validation"},
    "stylegan_operator.reconcile": {
        "=stylegan_operator", "stylegan_operator.api", "stylegan_operator.cost",
        "stylegan_operator.reconcile"},
    "stylegan_operator.kube": {
        "stylegan_operator.api", "stylegan_operator.cost", "stylegan_operator.reconcile",
        "stylegan_operator.kube", "stylegan_common"},
    "stylegan_operator.controller": {
        "stylegan_operator.api", "stylegan_operator.cost", "stylegan_operator.reconcile",
        "stylegan_operator.kube", "stylegan_operator.controller", "stylegan_common"},
    "stylegan_operator.cli": {"stylegan_operator", "stylegan_common"},
    # trainer, bottom to top
    "stylegan_trainer.model": {"stylegan_trainer.model", "stylegan_common"},
    "stylegan_trainer.data": {"stylegan_trainer.data", "stylegan_common"},
    "stylegan_trainer.report": {"stylegan_trainer.report", "stylegan_common"},
    "stylegan_trainer.sampling": {
        "stylegan_trainer.sampling", "stylegan_trainer.model", "stylegan_common"},
    "stylegan_trainer.quality": {
        "stylegan_trainer.quality", "stylegan_trainer.data", "stylegan_trainer.sampling",
        "stylegan_trainer.model", "stylegan_common"},
    "stylegan_trainer.train": {
        "stylegan_trainer.train", "stylegan_trainer.model", "stylegan_trainer.data",
        "stylegan_trainer.sampling", "stylegan_trainer.quality", "stylegan_trainer.report",
        "stylegan_common"},
    "stylegan_trainer.serve": {
        "stylegan_trainer.serve", "stylegan_trainer.train", "stylegan_trainer.sampling",
        "stylegan_trainer.model", "stylegan_common"},
    "stylegan_trainer.cli": {"stylegan_trainer", "stylegan_common"},
}
"""Package -> what its modules may import: a package and its subpackages, or ``=module`` for
that one module alone (``stylegan_operator`` itself holds only ``__version__``)."""

NO_IO_PACKAGES = ("stylegan_operator.api", "stylegan_operator.reconcile")
"""Pure layers: no client libraries, no network or process modules, no ``open()``."""
IO_MODULES = ("kopf", "kubernetes", "google", "requests", "urllib", "http", "socket",
              "subprocess", "aiohttp", "stylegan_common.storage", "stylegan_common.kubeapi")


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. stylegan_operator.reconcile.render
    target: str  # what it imports, e.g. stylegan_operator.api.spec
    line: int

    def where(self) -> str:
        return f"{self.module}:{self.line} imports {self.target}"


def _module_name(path: Path) -> str:
    root = next(r for r in SOURCE_ROOTS if path.is_relative_to(ROOT / r))
    parts = list(path.relative_to(ROOT / root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def _imports(path: Path, module: str | None = None) -> Iterator[Import]:
    module = module or _module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _type_checking_lines(tree)
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing package
                package = module.split(".")
                if not path.name == "__init__.py":
                    package = package[:-1]
                base = ".".join(package[: len(package) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            yield Import(module, target, node.lineno)
            for alias in node.names:  # `from pkg import submodule`
                yield Import(module, f"{target}.{alias.name}", node.lineno)


def _source_files() -> list[Path]:
    return sorted(p for r in SOURCE_ROOTS for p in (ROOT / r).rglob("*.py"))


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _layer_of(module: str) -> str | None:
    candidates = [p for p in ALLOWED if _within(module, p)]
    return max(candidates, key=len) if candidates else None


def _permits(entry: str, target: str) -> bool:
    return target == entry[1:] if entry.startswith("=") else _within(target, entry)


def _our_package(target: str) -> bool:
    return any(_within(target, ours) for ours in OURS)


def _is_submodule_alias(target: str) -> bool:
    """``from pkg.mod import name`` also yields ``pkg.mod.name``; only real modules count."""
    parts = target.split(".")
    for root in SOURCE_ROOTS:
        base = ROOT / root / Path(*parts)
        if base.with_suffix(".py").exists() or (base / "__init__.py").exists():
            return False
    return True


ALL_IMPORTS = [imp for path in _source_files() for imp in _imports(path)]


def test_every_source_module_belongs_to_a_layer() -> None:
    homeless = sorted({i.module for i in ALL_IMPORTS if _layer_of(i.module) is None}
                      - {"stylegan_operator", "stylegan_trainer"})
    assert not homeless, f"modules outside every package of ALLOWED: {homeless}"


def _violations(imports: list[Import]) -> list[str]:
    wrong = []
    for imp in imports:
        layer = _layer_of(imp.module)
        if layer is None or not _our_package(imp.target):
            continue
        target = imp.target
        if target.count(".") and _is_submodule_alias(target):
            # `from pkg.mod import func` also yields pkg.mod.func: judge pkg.mod instead.
            target = target.rpartition(".")[0]
        if not any(_permits(entry, target) for entry in ALLOWED[layer]):
            wrong.append(f"{imp.where()} (allowed: {sorted(ALLOWED[layer])})")
    return wrong


def test_imports_follow_the_layers() -> None:
    wrong = _violations(ALL_IMPORTS)
    assert not wrong, "layer violations:\n" + "\n".join(wrong)


def test_the_operator_never_imports_the_trainer() -> None:
    wrong = [i.where() for i in ALL_IMPORTS
             if _within(i.module, "stylegan_operator") and _within(i.target, "stylegan_trainer")]
    assert not wrong, wrong


def test_the_shared_package_imports_neither_program_nor_torch() -> None:
    wrong = [i.where() for i in ALL_IMPORTS if _within(i.module, "stylegan_common")
             and any(_within(i.target, p) for p in ("stylegan_operator", "stylegan_trainer",
                                                    "torch", "numpy"))]
    assert not wrong, wrong


def test_storage_backends_import_the_protocol_never_the_reverse() -> None:
    base = [i.where() for i in ALL_IMPORTS if i.module == "stylegan_common.storage.base"
            and _within(i.target, "stylegan_common.storage")
            and i.target != "stylegan_common.storage.base"]
    assert not base, f"the protocol module imports a backend: {base}"
    backends = {p.stem for p in (ROOT / "common/stylegan_common/storage").glob("*.py")} - {
        "__init__", "base"}
    assert {"local", "gcs"} <= backends
    for backend in backends:
        targets = {i.target for i in ALL_IMPORTS
                   if i.module == f"stylegan_common.storage.{backend}"}
        assert "stylegan_common.storage.base" in targets, f"{backend} does not use the protocol"


@pytest.mark.parametrize("package", NO_IO_PACKAGES)
def test_pure_layers_do_no_io(package: str) -> None:
    wrong = [i.where() for i in ALL_IMPORTS if _within(i.module, package)
             and any(_within(i.target, io) for io in IO_MODULES)]
    for path in _source_files():
        if not _within(_module_name(path), package):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                    node.func.id == "open":
                wrong.append(f"{_module_name(path)}:{node.lineno} calls open()")
    assert not wrong, wrong


@pytest.mark.parametrize("package", sorted({p.split(".")[0] for p in ALLOWED} | set(ALLOWED)))
def test_every_package_says_in_three_lines_what_it_holds_and_may_import(package: str) -> None:
    init = next(ROOT / r / Path(*package.split(".")) / "__init__.py" for r in SOURCE_ROOTS
                if (ROOT / r / Path(*package.split(".")) / "__init__.py").exists())
    doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
    lines = [line for line in doc.splitlines() if line.strip()]
    assert 2 <= len(lines) <= 3, f"{init.relative_to(ROOT)}: docstring of {len(lines)} lines"
    assert "import" in doc, f"{init.relative_to(ROOT)} does not say what it may import"


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    """Upward imports are caught, a lazy one in a function body included."""
    source = ROOT / "operator/stylegan_operator/reconcile/render.py"
    assert any(i.target.startswith("stylegan_operator.api") for i in _imports(source))
    upward = [Import("stylegan_operator.reconcile.render", "stylegan_operator.kube.client", 1),
              Import("stylegan_trainer.model.ops", "stylegan_trainer.train.loop", 2),
              Import("stylegan_operator.reconcile.render", "stylegan_operator", 3)]
    assert [w.split(" (")[0] for w in _violations(upward)] == [
        "stylegan_operator.reconcile.render:1 imports stylegan_operator.kube.client",
        "stylegan_trainer.model.ops:2 imports stylegan_trainer.train.loop"]
    module = tmp_path / "fake.py"
    module.write_text("from typing import TYPE_CHECKING\n"
                      "if TYPE_CHECKING:\n    from stylegan_operator.controller import runner\n"
                      "def f():\n    from stylegan_operator.kube import client\n")
    found = _violations(list(_imports(module, "stylegan_operator.reconcile.fake")))
    assert [w.split(" (")[0] for w in found] == [
        "stylegan_operator.reconcile.fake:5 imports stylegan_operator.kube",
        "stylegan_operator.reconcile.fake:5 imports stylegan_operator.kube.client"]
