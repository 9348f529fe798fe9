"""The chart's values documentation: every value has a `# --` comment, the README is current.

hack/chart-readme.py builds the README's values table from values.yaml; run it after
changing a value (``python hack/chart-readme.py``).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from tests.support import ROOT
from tests.unit.chart.helmtool import CHART

SCRIPT = ROOT / "hack" / "chart-readme.py"


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chart_readme", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["chart_readme"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


chart_readme = _load_script()


def leaves(values: Any, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    if isinstance(values, dict) and values:
        return set().union(*(leaves(v, (*prefix, k)) for k, v in values.items()))
    return {prefix}


def test_the_readme_values_table_is_current() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr + "\nrun: python hack/chart-readme.py"


def test_every_value_of_the_chart_is_documented() -> None:
    text = (CHART / "values.yaml").read_text()
    rows = chart_readme.parse_values(text)
    documented = {tuple(r.key.split(".")) for r in rows}
    for leaf in leaves(yaml.safe_load(text)):
        assert any(leaf[: len(d)] == d for d in documented), f"{'.'.join(leaf)} undocumented"
    assert all(r.description for r in rows)
    readme = (CHART / "README.md").read_text()
    for row in rows:
        assert f"| `{row.key}` |" in readme


def test_an_undocumented_value_is_refused_naming_it() -> None:
    text = "image:\n  # -- The repository.\n  repository: x\n  tag: v1\n"
    with pytest.raises(chart_readme.ValuesDocError, match=r"values.yaml:4: image.tag has no"):
        chart_readme.parse_values(text)


def test_a_documented_map_is_one_row_and_comments_continue() -> None:
    text = (
        "# A plain comment documents nothing.\n"
        "\n"
        "# -- Compute resources,\n"
        "# per container.\n"
        "resources:\n"
        "  limits:\n"
        "    memory: 1Gi\n"
        "# -- Tolerations.\n"
        "tolerations:\n"
        "- key: a\n"
        "  operator: Exists\n"
        "section:\n"
        "  # -- A flag.\n"
        "  flag: true\n"
    )
    rows = chart_readme.parse_values(text)
    assert [(r.key, r.type, r.default) for r in rows] == [
        ("resources", "object", '{"limits": {"memory": "1Gi"}}'),
        ("tolerations", "list", '[{"key": "a", "operator": "Exists"}]'),
        ("section.flag", "bool", "true"),
    ]
    assert rows[0].description == "Compute resources, per container."


def test_a_stale_readme_is_reported(tmp_path: Path) -> None:
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    values = chart / "values.yaml"
    values.write_text(values.read_text().replace(
        "# -- Debug logging (`--verbose`).", "# -- Debug logging, very chatty."))
    check = [sys.executable, str(SCRIPT), "--chart", str(chart), "--check"]
    proc = subprocess.run(check, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "stale" in proc.stderr
    subprocess.run([sys.executable, str(SCRIPT), "--chart", str(chart)], check=True,
                   capture_output=True, timeout=60)
    assert "Debug logging, very chatty." in (chart / "README.md").read_text()
    assert subprocess.run(check, capture_output=True, timeout=60).returncode == 0


def test_a_readme_without_markers_is_refused() -> None:
    with pytest.raises(chart_readme.ValuesDocError, match="markers"):
        chart_readme.update_readme("# a README\n", "| table |")
