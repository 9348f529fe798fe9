"""The operator's ``STYLEGAN_OPERATOR_*`` environment variables, checked by a pydantic model.

The Helm chart and ``stylegan operator``'s flags (``runner.operator_env``) set them, and
``handlers.OperatorConfig.from_env`` reads them through :func:`read_environment`: each
variable is a field whose alias is its full name, so a bad value is refused with one line
naming the variable (``STYLEGAN_OPERATOR_INTERVAL: 'soon' is not a number``).

Other variables are ignored, not refused: the kubelet adds service links to every pod
(``STYLEGAN_OPERATOR_SERVICE_HOST``, ``STYLEGAN_OPERATOR_PORT`` for a Service named
``stylegan-operator``), which share the prefix. An empty value means "not set".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, field_validator

from stylegan_common.validation import validate_model

ENV_PREFIX: Final = "STYLEGAN_OPERATOR_"
NO_LABEL: Final = "-"
"""What ``GPU_TYPE_LABEL`` is set to (or ``none``) for no label of the cluster's own."""

Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]


def _var(name: str) -> Any:
    return Field(None, alias=ENV_PREFIX + name)


class OperatorEnvironment(BaseModel):
    """The variables; ``None``: not set (the ``OperatorConfig`` default applies)."""

    model_config = ConfigDict(extra="ignore")

    interval: Seconds | None = _var("INTERVAL")
    metrics_port: Annotated[int, Field(ge=0, le=65535)] | None = _var("METRICS_PORT")
    metrics_address: str | None = _var("METRICS_ADDRESS")
    trainer_image: str | None = _var("TRAINER_IMAGE")
    prices_file: str | None = _var("PRICES_FILE")
    image_pull_grace: Seconds | None = _var("IMAGE_PULL_GRACE")
    report_status: bool | None = _var("REPORT_STATUS")  # true/false, yes/no, on/off, 1/0
    gpu_type_label: str | None = _var("GPU_TYPE_LABEL")
    retry_delay: Seconds | None = _var("RETRY_DELAY")
    server_timeout: Seconds | None = _var("SERVER_TIMEOUT")
    client_timeout: Seconds | None = _var("CLIENT_TIMEOUT")
    connect_timeout: Seconds | None = _var("CONNECT_TIMEOUT")
    request_timeout: Seconds | None = _var("REQUEST_TIMEOUT")
    workers: Annotated[int, Field(ge=0)] | None = _var("WORKERS")

    @field_validator("gpu_type_label")
    @classmethod
    def _label_key(cls, raw: str | None) -> str | None:
        """A label key (``prefix/name``); ``-`` or ``none`` stay as they are (no label)."""
        if raw is None or raw.strip().lower() in (NO_LABEL, "none"):
            return raw
        key = raw.strip()
        name = key.rsplit("/", 1)[-1]
        if key.count("/") > 1 or not re.fullmatch(
            r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?", name
        ):
            raise ValueError(
                f"{raw!r} is not a node label key (prefix/name, e.g. example.com/gpu-type)"
            )
        return key


def read_environment(env: Mapping[str, str]) -> OperatorEnvironment:
    """The operator's variables in ``env``; ``ValueError`` naming the variable when bad."""
    given = {k: v for k, v in env.items() if k.startswith(ENV_PREFIX) and v != ""}
    return validate_model(OperatorEnvironment, given, ValueError)
