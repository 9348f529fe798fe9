"""End to end: the real trainer, launched as the operator rendered it, reports into the run.

A CPU run (2 nodes x 1 process, builtin:lfw, the cpu preset at 32x32, 1 kimg) is created on
the local control plane with the operator running. The test then takes the pod template
of the Job the operator made and runs its command (``stylegan torchrun``) as two local
"nodes" over loopback: the rendezvous endpoint's host becomes 127.0.0.1, each process gets its
``JOB_COMPLETION_INDEX``, the trainer's options come from the attempt's ConfigMap (written
to a temporary folder, outdir moved there), and the status reporter authenticates with a
token of the run's own ServiceAccount, so the per-run Role is what allows the patches.

What must show: the run's status on the API server carries the trainer's progress (kimg
above 0, sec/kimg, the last checkpoint), copied by the operator into the top-level fields.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import crd, operator_kubeconfig  # noqa: F401  (fixtures)
from tests.integration.operator.conftest import (  # noqa: F401  (fixtures)
    OperatorProcess,
    Runs,
    operator,
    runs,
)
from tests.support import ROOT, Kubectl, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

VENV_BIN = ROOT / ".venv" / "bin"
TRAIN_TIMEOUT_S = 240.0


def cpu_run(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "stylegan.dev/v1alpha1", "kind": "StyleGANRun",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": {"resolution": 32, "preset": "cpu", "augment": "ada"},
            "training": {"kimg": 1, "batchSize": 16, "snapshotKimg": 1},
            "dataset": {"uri": "builtin:lfw", "xflip": True},
            "resources": {"nodes": 2, "gpusPerNode": 1, "gpuType": "cpu",
                          "resources": {"requests": {"cpu": "1"}}},
            "cost": {"pricePerGpuHour": 0.05},
        },
    }


def token_kubeconfig(admin_kubeconfig: Path, token: str, path: Path) -> Path:
    admin = json.loads(admin_kubeconfig.read_text())
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "trainer",
        "clusters": admin["clusters"],
        "users": [{"name": "trainer", "user": {"token": token}}],
        "contexts": [{"name": "trainer", "context": {
            "cluster": admin["clusters"][0]["name"], "user": "trainer"}}],
    }))
    path.chmod(0o600)
    return path


def local_node_command(args: list[str], index: int, port: int, config: Path) -> list[str]:
    """The pod's torchrun arguments for node ``index`` of a group on this machine."""
    out = [a.replace("$(JOB_COMPLETION_INDEX)", str(index)) for a in args]
    endpoint = out.index("--rdzv-endpoint") + 1
    out[endpoint] = f"127.0.0.1:{port}"
    conf = out.index("--rdzv-conf") + 1
    # Both agents share one host: say which one keeps the c10d store.
    out[conf] += f",is_host={'true' if index == 0 else 'false'}"
    out[out.index("--config") + 1] = str(config)
    out[out.index("--no-python"):out.index("--no-python")] = ["--local-addr", "127.0.0.1"]
    return out


def pod_env(container: dict[str, Any], namespace: str, index: int, job: str) -> dict[str, str]:
    """The container's literal environment, plus what the kubelet would fill in."""
    env = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    env.update(POD_NAMESPACE=namespace, STYLEGAN_RUN_NAMESPACE=namespace,
               POD_NAME=f"{job}-{index}", NODE_NAME="localhost",
               JOB_COMPLETION_INDEX=str(index))
    return env


def test_the_trainer_reports_progress_into_the_run_status(
    cluster: Any, kubectl: Kubectl, namespace: str, tmp_path: Path,
    operator: OperatorProcess, runs: Runs,  # noqa: F811  (the fixtures imported above)
) -> None:
    import localcluster

    name = "e2e"
    runs.apply(cpu_run(name, namespace))
    wait_for(lambda: runs.job_names(name) == [f"{name}-a1"], timeout=60, what="the Job")
    job = kubectl.json("job", f"{name}-a1", namespace=namespace)
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["stylegan", "torchrun"]
    account = pod["serviceAccountName"]
    assert pod["automountServiceAccountToken"] is True

    config_map = kubectl.json("configmap", f"{name}-a1-config", namespace=namespace)
    options = yaml.safe_load(config_map["data"]["train.yaml"])
    options["outdir"] = str(tmp_path / "out")  # the pod's scratch folder, here
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump(options))
    token = kubectl("create", "token", account, "--duration=30m",
                    namespace=namespace).stdout.strip()
    kubeconfig = token_kubeconfig(cluster.kubeconfig, token, tmp_path / "trainer-kubeconfig")

    port = localcluster.free_port()
    procs: list[subprocess.Popen] = []
    logs: list[Path] = []
    try:
        for index in (0, 1):
            home = tmp_path / f"node{index}"
            home.mkdir()
            env = {**os.environ, **pod_env(container, namespace, index, f"{name}-a1")}
            env.update(KUBECONFIG=str(kubeconfig), HOME=str(home),
                       XDG_CACHE_HOME=str(home / "cache"), TORCH_HOME=str(home / "torch"),
                       PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}", OMP_NUM_THREADS="1")
            program, *subcommand = container["command"]
            argv = [str(VENV_BIN / program), *subcommand,
                    *local_node_command(container["args"], index, port, config)]
            log = home / "log.txt"
            logs.append(log)
            with log.open("wb") as out:
                procs.append(subprocess.Popen(argv, env=env, cwd=home, stdout=out,
                                              stderr=subprocess.STDOUT,
                                              start_new_session=True))
        for proc, log in zip(procs, logs, strict=True):
            try:
                code = proc.wait(timeout=TRAIN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pytest.fail(f"the trainer ran past {TRAIN_TIMEOUT_S:.0f} s:\n"
                            + log.read_text(errors="replace")[-4000:])
            assert code == 0, log.read_text(errors="replace")[-4000:]
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    status = runs.wait_status(
        name,
        lambda s: (s.get("kimg") or 0) > 0 and s.get("secPerKimg") and s.get("lastCheckpoint"),
        "the trainer's progress in the run's top-level status", timeout=30)
    progress = status["progress"]
    assert progress["kimg"] >= 1.0 and progress["totalKimg"] == 1.0
    assert progress["secPerKimg"] > 0 and progress["attempt"] == 1
    assert status["kimg"] == pytest.approx(progress["kimg"], abs=1e-3)
    assert status["lastCheckpoint"]["uri"].startswith(str(tmp_path / "out"))
    assert Path(status["lastCheckpoint"]["uri"]).exists()
    assert status["eta"] and status["projectedCost"] is not None
