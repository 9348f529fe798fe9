"""``bench/gpu_suite.sh --cpu``: the dry run of the script a lent GPU runs first. It must
collect the ``gpu`` tests (skipped here), run the benchmark rows through the real
``stylegan benchmark`` and write the JSON the session records in bench/RESULTS.md, so that
device time is never spent finding a broken script."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from tests.support import ROOT


@pytest.mark.timeout(300)
def test_the_gpu_suite_dry_run_writes_its_figures(tmp_path: Path) -> None:
    proc = subprocess.run(["bash", str(ROOT / "bench" / "gpu_suite.sh"), "--cpu"],
                          env={"OUT": str(tmp_path), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=280, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    suite = json.loads((tmp_path / "suite.json").read_text())
    assert suite["device"]["cuda"] is False
    rows = suite["rows"]
    assert [r.get("batch_per_gpu") for r in rows] == [16, 8]  # one pass, then two rounds
    assert all(r["sec_per_kimg"] > 0 and r["images_per_sec"] > 0 for r in rows), rows
    cases = ET.parse(tmp_path / "gpu-tests.xml").getroot().iter("testcase")
    names = {case.get("name", "").split("[")[0] for case in cases}
    assert {"test_nccl_world_of_one_joins_reduces_and_leaves",
            "test_config_f_1024_at_the_papers_batch_fits_one_gpu_in_rounds"} <= names
    assert "sec/kimg" in proc.stdout  # the table, last


def test_the_real_run_refuses_a_machine_without_cuda(tmp_path: Path) -> None:
    proc = subprocess.run(["bash", str(ROOT / "bench" / "gpu_suite.sh")],
                          env={"OUT": str(tmp_path), "PATH": "/usr/bin:/bin",
                               "PYTHON": str(ROOT / ".venv" / "bin" / "python")},
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2 and "no CUDA device" in proc.stderr
