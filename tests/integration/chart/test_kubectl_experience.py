"""``kubectl get sgrun`` and ``kubectl explain`` as a user sees them, and docs/kubectl.md.

The printer columns must fit a terminal (under 100 characters for a typical run), and
``kubectl explain styleganrun.spec.model`` must show the fields' descriptions. Both outputs,
captured from the real API server, are what docs/kubectl.md shows; the test fails when the
page is stale. After an intended change to the CRD's columns or descriptions, rewrite it
with

    STYLEGAN_UPDATE_GOLDEN=1 .venv/bin/python -m pytest \
        tests/integration/chart/test_kubectl_experience.py
"""

from __future__ import annotations

import copy
import json
import os
import re

import pytest
import yaml

from stylegan_operator.cost.pricing import format_money, format_progress
from tests.support import ROOT, Kubectl, wait_for

pytestmark = pytest.mark.cluster

DOC = ROOT / "docs" / "kubectl.md"
UPDATE = os.environ.get("STYLEGAN_UPDATE_GOLDEN") == "1"
EXAMPLE = ROOT / "manifests" / "examples" / "ffhq256-a100.yaml"
TERMINAL_WIDTH = 100
SHOWN_AGE = "26h"  # the AGE the page shows: the real one depends on when the test ran
# A run a day into FFHQ 256 on 8 A100s, as the operator would report it.
TYPICAL_STATUS = {
    "phase": "Running", "shape": "1x8", "kimg": 5123.4, "totalKimg": 25000,
    "secPerKimg": 31.6, "gpuHours": 208.3, "cost": 612.19, "projectedCost": 2987.55,
    "currency": "USD", "eta": "7d 6h", "restarts": 1, "attempt": 2,
    "activeJob": "ffhq256-a100-a2",
    # The printer columns' text, as the operator writes it (reconcile.plan, cost.spend).
    "progressText": format_progress(5123.4, 25000),
    "costText": format_money(612.19, "USD"), "projectedCostText": format_money(2987.55, "USD"),
}  # fmt: skip


def normalise_age(table: str) -> str:
    """The last column (AGE) of each data row set to :data:`SHOWN_AGE`; kubectl pads every
    column but the last, so the others keep their alignment."""
    lines = table.rstrip("\n").splitlines()
    rows = [re.sub(r"\S+$", SHOWN_AGE, line) for line in lines[1:]]
    return "\n".join([lines[0], *rows]) + "\n"


def page(get_output: str, explain_output: str) -> str:
    return f"""# StyleGANRuns with kubectl

The operator's resource is an ordinary Kubernetes object: `kubectl` lists, describes,
explains and watches it. Its short name is `sgrun` (category `stylegan`, so
`kubectl get stylegan` works too). This page shows what `kubectl` prints for it; the
outputs below were captured from a real API server by
`tests/integration/chart/test_kubectl_experience.py`, which fails when this page is stale
(rewrite it with `STYLEGAN_UPDATE_GOLDEN=1` after changing the CRD; only AGE is fixed).

## `kubectl get sgrun`

A run a day into FFHQ 256x256 on one node of 8 A100s:

```console
$ kubectl get sgrun
{get_output}```

The columns: PHASE (Pending, Running, Suspended, Restarting, Succeeded, Failed), SHAPE
(nodes x GPUs per node of the active attempt), PROGRESS (thousands of real images shown so
far as a share of `spec.training.kimg`), COST (spent so far, every attempt included, with its
currency), ETA (time left at the measured speed) and AGE. The table stays under
{TERMINAL_WIDTH} characters wide for run names of about 20 characters. `kubectl get sgrun -o wide`
adds KIMG and TARGET, GPU (type), PROJECTED (the cost at the end at the current speed and
price, with its currency) and RESTARTS. `stylegan runs` prints the same runs (`-o wide`,
`-o json`), and `kubectl get sgrun -w` follows them.

## `kubectl explain styleganrun.spec.model`

Every field of the spec carries its description, generated from the pydantic models in
`operator/stylegan_operator/api/spec.py`:

```console
$ kubectl explain styleganrun.spec.model
{explain_output}```

`kubectl explain styleganrun.spec --recursive` lists every field at once, and
`kubectl explain styleganrun.status` what the operator reports.
"""


@pytest.fixture
def typical_run(kubectl: Kubectl, namespace: str, crd: str) -> str:
    doc = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text()))
    doc["metadata"] = {"name": "ffhq256-a100", "namespace": namespace}
    kubectl.apply(doc)
    kubectl("patch", "styleganrun", "ffhq256-a100", "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": TYPICAL_STATUS}), namespace=namespace)
    return "ffhq256-a100"


def explain_model(kubectl: Kubectl) -> str:
    def published() -> str | None:
        # The OpenAPI document is rebuilt a moment after the CRD changes.
        proc = kubectl("explain", "styleganrun.spec.model", check=False)
        return proc.stdout if proc.returncode == 0 and "resolution" in proc.stdout else None

    return wait_for(published, timeout=60, what="kubectl explain styleganrun.spec.model")  # type: ignore[return-value]


def test_printer_columns_fit_a_terminal_and_docs_show_them(
    kubectl: Kubectl, namespace: str, typical_run: str,
) -> None:
    table = kubectl("get", "sgrun", namespace=namespace).stdout
    lines = table.splitlines()
    assert lines[0].split() == ["NAME", "PHASE", "SHAPE", "PROGRESS", "COST", "ETA", "AGE"]
    assert lines[1].split()[:8] == ["ffhq256-a100", "Running", "1x8", "20.5%", "612.19", "USD",
                                    "7d", "6h"]
    widest = max(len(line) for line in lines)
    assert widest < TERMINAL_WIDTH, f"kubectl get sgrun is {widest} characters wide:\n{table}"
    # Room for a longer name: 20 characters still fit.
    assert widest + (20 - len(typical_run)) < TERMINAL_WIDTH

    wide = kubectl("get", "sgrun", "-o", "wide", namespace=namespace).stdout.splitlines()
    assert wide[0].split()[-5:] == ["KIMG", "TARGET", "GPU", "PROJECTED", "RESTARTS"]
    assert "2,987.55 USD" in wide[1] and "5123.4" in wide[1]

    explain = explain_model(kubectl)
    for field in ("resolution", "preset", "channelBase", "r1Gamma", "augment"):
        match = re.search(rf"^  {field}\t?\s*<[^>]+>\n\s+(\S.*)$", explain, re.M)
        assert match, f"kubectl explain shows no description for spec.model.{field}:\n{explain}"

    wanted = page(normalise_age(table), explain)
    if UPDATE:
        DOC.parent.mkdir(exist_ok=True)
        DOC.write_text(wanted)
    assert DOC.exists(), f"{DOC} missing: run with STYLEGAN_UPDATE_GOLDEN=1"
    assert DOC.read_text() == wanted, (
        f"{DOC.relative_to(ROOT)} differs from what kubectl prints; if the CRD changed on "
        "purpose, rewrite it with STYLEGAN_UPDATE_GOLDEN=1 and review the diff")
    # The README's quick start shows the same table, between these two markers.
    readme = (ROOT / "README.md").read_text()
    shown = readme.split("<!-- kubectl-get-sgrun -->\n")[1].split("<!-- /kubectl-get-sgrun -->")[0]
    assert shown == f"```console\n$ kubectl get sgrun\n{normalise_age(table)}```\n", (
        "README.md's `kubectl get sgrun` block differs from what kubectl prints")
