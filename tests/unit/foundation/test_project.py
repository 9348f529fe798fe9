"""The project's own plumbing: the CLI entry point and the pinned tool versions."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from stylegan_operator.cli.main import COMMANDS, main

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
    code = ("import sys; from stylegan_operator.cli.main import main; "
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


# Blocks the trainer extra's libraries the way a `pip install stylegan-operator` (no extras)
# lacks them: a None entry in sys.modules makes both find_spec and import see no module.
_WITHOUT_TRAINER_EXTRA = (
    "import sys\n"
    "for name in ('torch', 'numpy', 'PIL', 'skimage', 'tqdm', 'matplotlib'):\n"
    "    sys.modules[name] = None\n"
)


def _run_without_trainer_extra(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _WITHOUT_TRAINER_EXTRA + code],
                          capture_output=True, text=True, timeout=120)


def test_every_operator_and_common_module_imports_without_the_trainer_extra() -> None:
    code = (
        "import importlib, pkgutil\n"
        "import stylegan_common, stylegan_operator\n"
        "for package in (stylegan_common, stylegan_operator):\n"
        "    for info in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):\n"
        "        importlib.import_module(info.name)\n"
        "        print(info.name)\n"
    )
    proc = _run_without_trainer_extra(code)
    assert proc.returncode == 0, proc.stderr
    imported = proc.stdout.split()
    assert "stylegan_operator.controller.handlers" in imported
    assert "stylegan_common.storage.gcs" in imported


def test_trainer_commands_without_the_extra_name_it_and_exit_64() -> None:
    code = (
        "from stylegan_operator.cli.main import main\n"
        "import sys; sys.argv = ['stylegan'] + sys.argv[1:]\n"
        "main()\n"
    )
    help_ = _run_without_trainer_extra(code.replace("sys.argv[1:]", "['--help']"))
    assert help_.returncode == 0, help_.stderr
    ready, _, needs = help_.stdout.partition("Needs pip install 'stylegan-operator[trainer]'")
    assert needs, help_.stdout
    assert re.search(r"^\s+train\s", needs, re.M) and re.search(r"^\s+estimate\s", ready, re.M)
    assert not re.search(r"^\s+train\s", ready, re.M)
    train = _run_without_trainer_extra(code.replace("sys.argv[1:]", "['train', '--config', 'x']"))
    assert train.returncode == 64, (train.stdout, train.stderr)
    assert "pip install 'stylegan-operator[trainer]'" in train.stderr
    assert "Traceback" not in train.stderr
