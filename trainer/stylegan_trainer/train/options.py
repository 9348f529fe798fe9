"""What a training run is asked to do: ``TrainingOptions``, their checks and their parsers.

Kept apart from the loop so that a config file, the command line and ``--set`` overrides can
be read and validated (``ConfigError`` naming the bad field, exit 64) before anything is built.
``None`` in an option means "the preset's value"; the preset itself is resolved in build.py.

The checks are a pydantic model, :class:`OptionsModel` (strict types: a bool must be a bool,
an int an int; bounds as ``Field`` constraints; validators for the special formats), and its
errors become one line through ``stylegan_common.validation``. ``TrainingOptions`` itself
stays a plain dataclass that the model feeds: the command line sets flags on it after the
file is read, the tests and the benchmark build it with keyword arguments and
``dataclasses.replace``, and checkpoints record ``asdict`` of it, all before or without a
validation; a pydantic ``TrainingOptions`` would refuse a bad value at construction, where
those callers do not expect it. So ``from_mapping`` validates a file's values (merged over
the defaults, the message naming the file) and ``validate`` validates the finished options.

``resume: latest`` is read when the run starts, not when its options were written: the newest
verified checkpoint ``latest.json`` of ``checkpoint_uri`` names then. ``resume_fallback`` (the
operator's ``spec.checkpoints.resumeFrom``) is used only while that storage holds none yet, so
an attempt started from an options file written long ago still continues from the newest work.
``init_from`` (``spec.initFrom``) likewise only applies while that storage holds no checkpoint:
it gives a fresh run its first weights (init_from.py), and a restarted attempt resumes its own.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationInfo,
    field_validator,
)

from stylegan_common.errors import ConfigError
from stylegan_common.trainer_metrics import check_port
from stylegan_common.validation import validate_model
from stylegan_trainer.data.dataset import check_resolution
from stylegan_trainer.report.progress import PROGRESS_BAR_MODES
from stylegan_trainer.train.presets import PRESET_NAMES

# ADA (Karras et al. 2020): by default p can move from 0 to 1 in this many kimg.
ADA_KIMG = 500
AUGMENT_MODES = ("auto", "ada", "noaug", "fixed:<p>")
DEVICES = ("auto", "cpu", "cuda", "cuda:N")
MIXED_PRECISION = ("auto", "fp16", "bf16", "none")


@dataclass
class TrainingOptions:
    """What a run is asked to do. ``None`` means "the preset's value"."""

    dataset: str = "builtin:lfw"
    preset: str = "auto"
    resolution: int = 256
    kimg: float | None = None  # target length; None: the preset's total_kimg
    batch: int | None = None  # global batch over all ranks; None: the preset's
    # Images per GPU in one forward/backward pass (the official batch_gpu); the rank's share
    # of the batch runs in batch/ranks/batch_per_gpu rounds whose gradients add up. None: one
    # round of the whole share.
    batch_per_gpu: int | None = None
    snapshot_kimg: float = 200.0  # checkpoint + sample grid every this many kimg
    seed: int = 0
    outdir: str = "out/train"
    xflip: bool = False
    augment: str = "auto"  # auto (ADA, as the published default) | ada | noaug | fixed:<p>
    ada_kimg: float = ADA_KIMG  # ADA can move p from 0 to 1 in this many kimg
    # Reduced precision in the 4 top resolutions, CUDA only (fp32 on a CPU whatever it says):
    # auto (bf16 on GPUs with native bf16, compute capability 8+: A100, L4, H100; else fp16
    # with the published clamp: V100, T4) | fp16 | bf16 | none (fp32, TF32 off). true means
    # fp16 (or the mp_dtype override), false none, as configs written before "auto" say.
    mixed_precision: bool | str = "auto"
    resume: str = "latest"  # latest (from the checkpoint storage, none if empty) | none | URI
    # With resume: latest, what to start from while the checkpoint storage holds no
    # checkpoint yet (spec.checkpoints.resumeFrom): a checkpoint object or a run folder.
    resume_fallback: str | None = None
    # Weights to start a fresh run from (transfer learning; init_from.py): a checkpoint of this
    # project or a run folder, or a published StyleGAN2-ADA network pickle (.pkl). G, D and
    # G_ema only, at kimg 0; not read again once the run has a checkpoint of its own.
    init_from: str | None = None
    max_seconds: float | None = None  # stop cleanly after this much wall time
    tick_kimg: float = 4.0
    device: str = "auto"
    data_workers: int | str = "auto"  # loader processes per rank: auto | 0 (in-process) | N
    cond: bool = False  # condition on the dataset's labels
    checkpoint_uri: str | None = None  # where checkpoints go; None: outdir
    keep_checkpoints: int = 3
    grid_seeds: int = 32  # the sample grid shows seeds 0..grid_seeds-1 every snapshot
    progress_bar: str = "auto"  # auto (when stderr is a TTY) | on | off
    metrics_port: int = 0  # rank 0 serves Prometheus /metrics here; 0: off (pods use 9400)
    overrides: dict[str, Any] = field(default_factory=dict)  # preset fields, e.g. lr_g, r1_gamma

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str = "options") -> TrainingOptions:
        """Options from a config file's mapping; ``-`` and ``_`` are interchangeable in keys.

        Raises ``ConfigError`` naming ``source`` and the bad key: an unknown key with the valid
        ones, a bad value with what would be valid.
        """
        given = {str(key).replace("-", "_"): value for key, value in values.items()}
        merged = {**cls().to_dict(), **given}
        checked = validate_model(
            OptionsModel, merged, ConfigError, prefix=f"{source}: ", noun="option"
        )
        return cls(**checked.model_dump())

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the first bad field and what would be valid."""
        validate_model(OptionsModel, self.to_dict(), ConfigError)


# ---------------------------------------------------------------------------------------------
# The checks


def _reusing(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A validator from a check that raises ``ConfigError("<field>: <reason>")``: the reason
    becomes the validation error, so that the one-line message adds the file and the path."""

    def validator(value: Any) -> Any:
        try:
            check(value)
        except ConfigError as exc:
            raise ValueError(str(exc).split(": ", 1)[-1]) from None
        return value

    return validator


def _one_of(choices: tuple[str, ...]) -> Callable[[str], str]:
    def validator(value: str) -> str:
        if value not in choices:
            raise ValueError(f"{value!r} is not one of {', '.join(choices)}")
        return value

    return validator


def _not_empty(hint: str) -> Callable[[str], str]:
    def validator(value: str) -> str:
        if not value:
            raise ValueError(f"empty; {hint}")
        return value

    return validator


def _positive_batch(value: int | None) -> int | None:
    if value is not None and value < 1:
        raise ValueError(f"{value} must be a positive number of images")
    return value


def _device(value: str) -> str:
    if value in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", value):
        return value
    raise ValueError(f"{value!r} is not one of {', '.join(DEVICES)}")


def _precision(value: Any) -> Any:
    """One of MIXED_PRECISION, or a bool from configs written before ``auto`` (true: fp16)."""
    if isinstance(value, bool) or value in MIXED_PRECISION:
        return value
    raise ValueError(f"{value!r} is not one of {', '.join(MIXED_PRECISION)} (or true/false)")


def _mapping(value: Any) -> Any:
    if not isinstance(value, dict):
        raise ValueError("must be a mapping of preset fields, e.g. {lr_g: 0.002}")
    return value


Kimg = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class OptionsModel(BaseModel):
    """The checks of :class:`TrainingOptions`, one field each (the defaults live there)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    dataset: Annotated[
        StrictStr, AfterValidator(_not_empty("give a folder, a .zip, builtin:lfw or gs://..."))
    ]
    preset: Annotated[StrictStr, AfterValidator(_one_of(PRESET_NAMES))]
    resolution: Annotated[StrictInt, AfterValidator(_reusing(check_resolution))]
    kimg: Kimg | None
    batch: Annotated[StrictInt | None, AfterValidator(_positive_batch)]
    batch_per_gpu: Annotated[StrictInt | None, AfterValidator(_positive_batch)]
    snapshot_kimg: Kimg
    seed: StrictInt = Field(ge=0, lt=2**32)
    outdir: Annotated[
        StrictStr,
        AfterValidator(_not_empty("give a folder for samples, stats and progress")),
    ]
    xflip: StrictBool
    augment: Annotated[Any, AfterValidator(_reusing(lambda v: parse_augment(v)))]
    ada_kimg: Kimg
    mixed_precision: Annotated[Any, AfterValidator(_precision)]
    resume: Annotated[
        StrictStr, AfterValidator(_not_empty("use latest, none, or a checkpoint path/URI"))
    ]
    resume_fallback: Any
    init_from: Any
    max_seconds: float | None = Field(ge=0, allow_inf_nan=False)
    tick_kimg: Kimg
    device: Annotated[StrictStr, AfterValidator(_device)]
    data_workers: Annotated[Any, AfterValidator(_reusing(lambda v: parse_data_workers(v)))]
    cond: StrictBool
    checkpoint_uri: StrictStr | None
    keep_checkpoints: StrictInt = Field(ge=1)
    grid_seeds: StrictInt = Field(ge=1, le=1024)
    progress_bar: Annotated[StrictStr, AfterValidator(_one_of(PROGRESS_BAR_MODES))]
    metrics_port: Annotated[Any, AfterValidator(_reusing(check_port))]
    overrides: Annotated[Any, AfterValidator(_mapping)]

    @field_validator("resume_fallback")
    @classmethod
    def _fallback(cls, value: Any, info: ValidationInfo) -> Any:
        """A fallback is a checkpoint path/URI, and only ``resume: latest`` ever falls back."""
        if value is None:
            return None
        if not isinstance(value, str) or value in ("", "latest", "none"):
            raise ValueError(
                f"{value!r} is not valid; give a checkpoint path/URI or a run folder to start "
                "from while checkpoint_uri holds no checkpoint yet"
            )
        resume = info.data.get("resume")
        if resume is not None and resume != "latest":
            raise ValueError(
                f"applies only with resume: latest, not resume: {resume}; "
                "drop resume_fallback or use resume: latest"
            )
        return value


    @field_validator("init_from")
    @classmethod
    def _init_from(cls, value: Any, info: ValidationInfo) -> Any:
        """Weights for a fresh start; a run told where to *continue* from cannot also be."""
        if value is None:
            return None
        if not isinstance(value, str) or value in ("", "latest", "none"):
            raise ValueError(
                f"{value!r} is not valid; give a checkpoint path/URI, a run folder or a "
                "StyleGAN2-ADA network pickle (.pkl)"
            )
        resume = info.data.get("resume")
        if resume not in (None, "latest", "none"):
            raise ValueError(
                f"cannot go with resume: {resume}, which continues that checkpoint; drop "
                "init_from or use resume: latest"
            )
        if info.data.get("resume_fallback") is not None:
            raise ValueError(
                "cannot go with resume_fallback, which continues a checkpoint (counters and "
                "optimisers too) where init_from starts at kimg 0 from its weights; give one"
            )
        return value


def parse_augment(spec: str) -> tuple[str, float]:
    """``auto``/``ada``/``noaug``/``fixed:<p>`` -> (mode, initial p)."""
    if not isinstance(spec, str):
        raise ConfigError(f"augment: {spec!r} is not one of {', '.join(AUGMENT_MODES)}")
    if spec in ("auto", "ada", "noaug"):
        return spec, 0.0
    if spec.startswith("fixed:"):
        try:
            p = float(spec[len("fixed:") :])
        except ValueError:
            p = float("nan")
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"augment: {spec!r} needs a probability in [0, 1], e.g. fixed:0.2")
        return "fixed", p
    raise ConfigError(f"augment: {spec!r} is not one of {', '.join(AUGMENT_MODES)}")


def parse_data_workers(value: Any) -> int | None:
    """``auto`` -> None; a whole number >= 0 (or its digits, as a flag gives it) -> that int."""
    if value == "auto":
        return None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ConfigError(
        f"data_workers: {value!r} is not valid; use auto or a whole number >= 0 "
        "(0 loads the images in the training process)"
    )
