"""The operator's ``STYLEGAN_OPERATOR_*`` variables: one line naming a bad one."""

from __future__ import annotations

import pytest

from stylegan_operator.controller.handlers import OperatorConfig


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("INTERVAL", "soon", "STYLEGAN_OPERATOR_INTERVAL: 'soon' is not a number"),
        ("IMAGE_PULL_GRACE", "-5", "STYLEGAN_OPERATOR_IMAGE_PULL_GRACE: '-5' must be at least 0"),
        ("METRICS_PORT", "70000", "STYLEGAN_OPERATOR_METRICS_PORT: '70000' must be at most 65535"),
        ("WORKERS", "2.5", "STYLEGAN_OPERATOR_WORKERS: '2.5' is not an integer"),
        ("REPORT_STATUS", "maybe", "STYLEGAN_OPERATOR_REPORT_STATUS: 'maybe' is not a bool"),
        ("GPU_TYPE_LABEL", "a/b/c", "STYLEGAN_OPERATOR_GPU_TYPE_LABEL: 'a/b/c' is not a node"),
    ],
)
def test_a_bad_variable_is_one_line_naming_it(name: str, value: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        OperatorConfig.from_env({f"STYLEGAN_OPERATOR_{name}": value})
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)


def test_service_links_and_empty_values_are_not_settings() -> None:
    env = {"STYLEGAN_OPERATOR_SERVICE_HOST": "10.0.0.1", "STYLEGAN_OPERATOR_PORT": "tcp://x:80",
           "STYLEGAN_OPERATOR_INTERVAL": "", "STYLEGAN_OPERATOR_WORKERS": "0"}  # fmt: skip
    assert OperatorConfig.from_env(env) == OperatorConfig()


def test_values_are_read_as_their_types() -> None:
    config = OperatorConfig.from_env({
        "STYLEGAN_OPERATOR_REPORT_STATUS": "no", "STYLEGAN_OPERATOR_WORKERS": "3",
        "STYLEGAN_OPERATOR_RETRY_DELAY": "2.5", "STYLEGAN_OPERATOR_GPU_TYPE_LABEL": "none",
    })  # fmt: skip
    assert (config.report_status, config.workers, config.retry_delay) == (False, 3, 2.5)
    assert config.gpu_type_label is None
