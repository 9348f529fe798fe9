"""The project's own plumbing: the CLI entry point and the pinned tool versions."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from stylegan_operator.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parents[3]


def test_help_lists_only_commands_that_load() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0, result.output
    listed = re.findall(r"^  (\w+)\s", result.output.split("Commands:")[1], re.M)
    assert listed, result.output
    for name in listed:
        assert name in COMMANDS
        sub = CliRunner().invoke(main, [name, "--help"])
        assert sub.exit_code == 0, f"stylegan {name} --help failed:\n{sub.output}"


def test_console_script_runs_without_importing_torch() -> None:
    # Nor matplotlib: only `stylegan plot` (and the demo's plot) may load it.
    code = ("import sys; from stylegan_operator.cli import main; "
            "sys.argv=['stylegan','--help']\n"
            "try:\n main()\nexcept SystemExit: pass\n"
            "assert 'torch' not in sys.modules, 'help imported torch'\n"
            "assert 'matplotlib' not in sys.modules, 'help imported matplotlib'")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_every_tool_module_pins_the_version_in_versions_env() -> None:
    versions = dict(line.split("=", 1) for line in (ROOT / "hack/versions.env").read_text()
                    .splitlines() if line and not line.startswith("#"))
    expect = {
        "k8s": ("k8s.io/kubernetes", versions["K8S_VERSION"]),
        "etcd": ("go.etcd.io/etcd/server/v3", versions["ETCD_VERSION"]),
        "kwok": ("sigs.k8s.io/kwok", versions["KWOK_VERSION"]),
        "helm": ("helm.sh/helm/v3", versions["HELM_VERSION"]),
        "fakegcs": ("github.com/fsouza/fake-gcs-server", versions["FAKE_GCS_VERSION"]),
    }
    for tool, (module, version) in expect.items():
        gomod = (ROOT / "hack/tools" / tool / "go.mod").read_text()
        assert re.search(rf"^\s*(require\s+)?{re.escape(module)} {re.escape(version)}\b", gomod,
                         re.M), f"hack/tools/{tool}/go.mod does not pin {module} {version}"
        assert (ROOT / "hack/tools" / tool / "go.sum").exists()
    staging = "v0" + versions["K8S_VERSION"][2:]
    k8s = (ROOT / "hack/tools/k8s/go.mod").read_text()
    replaced = re.findall(r"(k8s\.io/[a-z0-9-]+) => k8s\.io/[a-z0-9-]+ (v\S+)", k8s)
    assert len(replaced) >= 30
    assert {v for _, v in replaced} == {staging}
