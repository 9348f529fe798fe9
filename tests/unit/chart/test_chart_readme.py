"""The chart's values documentation: every value has a `# --` comment, the README is current.

helm-docs (built from its Go module by hack/build-tools.sh) renders the README from
charts/stylegan-operator/README.md.gotmpl, its values table from the `# --` comments in
values.yaml; run ``make generate`` after changing a value.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml
from tests.support import require_binary
from tests.unit.chart.helmtool import CHART


def helm_docs(root: Path) -> str:
    """The README helm-docs writes for the chart under ``root`` (written, and returned)."""
    proc = subprocess.run(
        [require_binary("helm-docs"), "--chart-search-root", str(root),
         "--sort-values-order", "file", "--log-level", "warning"],
        capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return (root / CHART.name / "README.md").read_text()


def copy_of_chart(tmp_path: Path) -> Path:
    shutil.copytree(CHART, tmp_path / CHART.name)
    return tmp_path


def leaves(values: Any, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    if isinstance(values, dict) and values:
        return set().union(*(leaves(v, (*prefix, k)) for k, v in values.items()))
    return {prefix}


def table_rows(readme: str) -> dict[str, str]:
    """key -> description of the README's values table."""
    lines = readme.split("| Key | Type | Default | Description |\n", 1)[1].splitlines()
    rows = {}
    for line in lines[1:]:
        if not line.startswith("| "):
            break
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        rows[cells[0]] = cells[-1]
    return rows


def test_the_readme_is_what_helm_docs_writes(tmp_path: Path) -> None:
    assert helm_docs(copy_of_chart(tmp_path)) == (CHART / "README.md").read_text(), (
        "charts/stylegan-operator/README.md is stale: run make generate")


def test_every_value_of_the_chart_is_documented() -> None:
    rows = table_rows((CHART / "README.md").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for leaf in leaves(values):
        covering = [key for key in rows if tuple(key.split(".")) == leaf[: len(key.split("."))]]
        assert covering, f"{'.'.join(leaf)} is not in the values table"
        assert all(rows[key] for key in covering), f"{'.'.join(leaf)} has no `# --` comment"


def test_a_changed_comment_changes_the_table(tmp_path: Path) -> None:
    root = copy_of_chart(tmp_path)
    values = root / CHART.name / "values.yaml"
    values.write_text(values.read_text().replace(
        "# -- Debug logging (`--verbose`).", "# -- Debug logging, very chatty."))
    readme = helm_docs(root)
    assert table_rows(readme)["operator.verbose"] == "Debug logging, very chatty."
    assert readme != (CHART / "README.md").read_text()
