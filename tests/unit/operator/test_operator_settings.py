"""The operator's wiring without a cluster: settings, flags, and the reconcile gate.

What the handlers do against a real API server is in tests/integration/operator.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import kopf
import pytest
from click.testing import CliRunner

from stylegan_operator.controller import handlers
from stylegan_operator.controller.handlers import OperatorConfig, owner_run
from stylegan_operator.controller.runner import operator_cmd, operator_env
from stylegan_operator.reconcile.observe import Observed


def test_config_defaults_and_environment() -> None:
    default = OperatorConfig.from_env({})
    assert default == OperatorConfig()
    assert default.metrics_port == 9090 and default.interval == 20.0
    env = {"STYLEGAN_OPERATOR_INTERVAL": "2", "STYLEGAN_OPERATOR_METRICS_PORT": "0",
           "STYLEGAN_OPERATOR_TRAINER_IMAGE": "reg/t:1",
           "STYLEGAN_OPERATOR_REPORT_STATUS": "false"}
    config = OperatorConfig.from_env(env)
    assert config.interval == 2.0 and config.metrics_port is None
    assert config.trainer_image == "reg/t:1" and config.report_status is False


def test_a_bad_variable_is_named() -> None:
    with pytest.raises(ValueError, match="STYLEGAN_OPERATOR_INTERVAL"):
        OperatorConfig.from_env({"STYLEGAN_OPERATOR_INTERVAL": "soon"})


def test_flags_become_the_environment_the_handlers_read(tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text("prices:\n  nvidia-tesla-v100: 1.5\n")
    env = operator_env(interval=5, metrics_port=9999, trainer_image="reg/t:2", prices=prices,
                       image_pull_grace=60, report_status=True)
    config = OperatorConfig.from_env(env)
    assert (config.interval, config.metrics_port, config.trainer_image) == (5.0, 9999, "reg/t:2")
    assert config.image_pull_grace == 60.0
    decisions = config.lifecycle_config()
    assert decisions.catalog.unit_price("nvidia-tesla-v100") == 1.5
    assert decisions.trainer_image == "reg/t:2"


def test_the_gpu_type_label_setting() -> None:
    assert OperatorConfig.from_env({}).lifecycle_config().gpu_type_label == "stylegan.dev/gpu-type"
    assert OperatorConfig().image_pull_grace == 1800.0
    env = operator_env(interval=5, metrics_port=0, trainer_image=None, prices=None,
                       image_pull_grace=60, report_status=True,
                       gpu_type_label="example.com/accelerator")
    assert OperatorConfig.from_env(env).gpu_type_label == "example.com/accelerator"
    assert OperatorConfig.from_env({"STYLEGAN_OPERATOR_GPU_TYPE_LABEL": "-"}).gpu_type_label is None
    with pytest.raises(ValueError, match="STYLEGAN_OPERATOR_GPU_TYPE_LABEL: 'a b' is not"):
        OperatorConfig.from_env({"STYLEGAN_OPERATOR_GPU_TYPE_LABEL": "a b"})


def test_an_unreadable_price_catalog_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "prices.yaml"
    bad.write_text("prices: [")
    with pytest.raises(ValueError, match="prices.yaml"):
        OperatorConfig(prices_file=str(bad)).lifecycle_config()


def test_namespace_and_all_namespaces_exclude_each_other() -> None:
    result = CliRunner().invoke(operator_cmd, ["-n", "a", "-A"])
    assert result.exit_code != 0 and "not both" in result.output


def test_startup_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handlers, "CONFIG", OperatorConfig(metrics_port=None))
    settings = kopf.OperatorSettings()
    handlers.configure(settings=settings, logger=logging.getLogger("test"))
    assert settings.persistence.finalizer == "stylegan.dev/finalizer"
    assert settings.persistence.progress_storage.prefix == "stylegan.dev"
    assert settings.persistence.diffbase_storage.prefix == "stylegan.dev"
    assert settings.watching.server_timeout == 300 and isinstance(
        settings.watching.server_timeout, int)
    assert settings.watching.client_timeout == 330.0
    assert settings.watching.connect_timeout == 30.0
    assert settings.posting.level == logging.WARNING
    assert settings.scanning.disabled is True


def test_the_run_of_a_job_or_pod() -> None:
    job = {"metadata": {"ownerReferences": [
        {"kind": "StyleGANRun", "name": "faces", "controller": True}]}}
    pod = {"metadata": {"annotations": {"stylegan.dev/run-name": "faces"},
                        "ownerReferences": [{"kind": "Job", "name": "faces-a1",
                                             "controller": True}]}}
    assert owner_run(job) == "faces" and owner_run(pod) == "faces"
    assert owner_run({"metadata": {}}) is None


class SlowKube:
    """Blocks the first reconcile in ``observe`` until told to go on."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.observed_extra: list[list[Any]] = []

    def get_run(self, namespace: str, name: str) -> dict[str, Any]:
        return {"metadata": {"name": name, "namespace": namespace, "uid": "u",
                             "deletionTimestamp": "2026-01-01T00:00:00Z"}}

    def observe(self, run: Any, extra: Any = (), gpu_type_label: Any = None) -> Observed:
        self.observed_extra.append(list(extra))
        self.entered.set()
        self.release.wait(timeout=10)
        return Observed()

    def apply(self, run: Any, plan: Any) -> list[str]:
        return []


def test_concurrent_requests_for_one_run_fold_into_one_rerun(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kube = SlowKube()
    monkeypatch.setattr(handlers.STATE, "kube", kube)
    log = logging.getLogger("test")
    results: list[Any] = []
    first = threading.Thread(target=lambda: results.append(
        handlers.reconcile("ml", "faces", log)))
    first.start()
    assert kube.entered.wait(timeout=10)
    pod = {"metadata": {"uid": "p1"}}
    assert handlers.reconcile("ml", "faces", log, [pod]) is None  # folded
    assert handlers.reconcile("ml", "faces", log) is None
    kube.release.set()
    first.join(timeout=10)
    assert len(kube.observed_extra) == 2  # the first pass and one rerun
    assert kube.observed_extra[1] == [pod]  # the pod rode along
    assert ("ml", "faces") not in handlers.STATE.running
