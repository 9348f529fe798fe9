"""What a training run is asked to do: ``TrainingOptions``, their checks and their parsers.

Kept apart from the loop so that a config file, the command line and ``--set`` overrides can
be read and validated (``ConfigError`` naming the bad field, exit 64) before anything is built.
``None`` in an option means "the preset's value"; the preset itself is resolved in build.py.

``resume: latest`` is read when the run starts, not when its options were written: the newest
verified checkpoint ``latest.json`` of ``checkpoint_uri`` names then. ``resume_fallback`` (the
operator's ``spec.checkpoints.resumeFrom``) is used only while that storage holds none yet, so
an attempt started from an options file written long ago still continues from the newest work.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stylegan_common.errors import ConfigError
from stylegan_common.trainer_metrics import check_port
from stylegan_trainer.data.dataset import check_resolution
from stylegan_trainer.report.progress import PROGRESS_BAR_MODES
from stylegan_trainer.train.presets import PRESET_NAMES

# ADA (Karras et al. 2020): by default p can move from 0 to 1 in this many kimg.
ADA_KIMG = 500
AUGMENT_MODES = ("auto", "ada", "noaug", "fixed:<p>")
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
    augment: str = "auto"  # auto (ADA below 30k images) | ada | noaug | fixed:<p>
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

        Raises ``ConfigError`` naming ``source`` and the unknown key, with the valid ones.
        """
        known = set(cls.field_names())
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            name = str(key).replace("-", "_")
            if name not in known:
                raise ConfigError(
                    f"{source}: unknown option {key!r}; valid: {', '.join(cls.field_names())}"
                )
            kwargs[name] = value
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the first bad field and what would be valid."""
        _check_type("dataset", self.dataset, str)
        if not self.dataset:
            raise ConfigError("dataset: empty; give a folder, a .zip, builtin:lfw or gs://...")
        if self.preset not in PRESET_NAMES:
            raise ConfigError(f"preset: {self.preset!r} is not one of {', '.join(PRESET_NAMES)}")
        check_resolution(self.resolution)
        _check_positive("kimg", self.kimg, optional=True)
        if self.batch is not None:
            _check_type("batch", self.batch, int)
            if self.batch < 1:
                raise ConfigError(f"batch: {self.batch} must be a positive number of images")
        if self.batch_per_gpu is not None:
            _check_type("batch_per_gpu", self.batch_per_gpu, int)
            if self.batch_per_gpu < 1:
                raise ConfigError(f"batch_per_gpu: {self.batch_per_gpu} must be a positive "
                                  "number of images")
        _check_positive("snapshot_kimg", self.snapshot_kimg)
        _check_type("seed", self.seed, int)
        if not 0 <= self.seed < 2**32:
            raise ConfigError(f"seed: {self.seed} must be in [0, 2^32)")
        _check_type("outdir", self.outdir, str)
        if not self.outdir:
            raise ConfigError("outdir: empty; give a folder for samples, stats and progress")
        _check_type("xflip", self.xflip, bool)
        parse_augment(self.augment)
        _check_positive("ada_kimg", self.ada_kimg)
        if not isinstance(self.mixed_precision, bool) and (
            self.mixed_precision not in MIXED_PRECISION
        ):
            raise ConfigError(f"mixed_precision: {self.mixed_precision!r} is not one of "
                              f"{', '.join(MIXED_PRECISION)} (or true/false)")
        _check_type("resume", self.resume, str)
        if not self.resume:
            raise ConfigError("resume: empty; use latest, none, or a checkpoint path/URI")
        self._check_resume_fallback()
        _check_positive("max_seconds", self.max_seconds, optional=True, allow_zero=True)
        _check_positive("tick_kimg", self.tick_kimg)
        _check_type("device", self.device, str)
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ConfigError(f"device: {self.device!r} is not one of auto, cpu, cuda, cuda:N")
        parse_data_workers(self.data_workers)
        _check_type("cond", self.cond, bool)
        if self.checkpoint_uri is not None:
            _check_type("checkpoint_uri", self.checkpoint_uri, str)
        _check_type("keep_checkpoints", self.keep_checkpoints, int)
        if self.keep_checkpoints < 1:
            raise ConfigError(f"keep_checkpoints: {self.keep_checkpoints} must be at least 1")
        _check_type("grid_seeds", self.grid_seeds, int)
        if not 1 <= self.grid_seeds <= 1024:
            raise ConfigError(f"grid_seeds: {self.grid_seeds} must be from 1 to 1024")
        if self.progress_bar not in PROGRESS_BAR_MODES:
            raise ConfigError(
                f"progress_bar: {self.progress_bar!r} is not one of {', '.join(PROGRESS_BAR_MODES)}"
            )
        check_port(self.metrics_port)
        if not isinstance(self.overrides, dict):
            raise ConfigError("overrides: must be a mapping of preset fields, e.g. {lr_g: 0.002}")


    def _check_resume_fallback(self) -> None:
        """A fallback is a checkpoint path/URI, and only ``resume: latest`` ever falls back."""
        value = self.resume_fallback
        if value is None:
            return
        if not isinstance(value, str) or value in ("", "latest", "none"):
            raise ConfigError(
                f"resume_fallback: {value!r} is not valid; give a checkpoint path/URI or a run "
                "folder to start from while checkpoint_uri holds no checkpoint yet"
            )
        if self.resume != "latest":
            raise ConfigError(
                f"resume_fallback: applies only with resume: latest, not resume: {self.resume}; "
                "drop resume_fallback or use resume: latest"
            )


def _check_type(name: str, value: Any, kind: type) -> None:
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if not ok:
        raise ConfigError(f"{name}: {value!r} is not a {kind.__name__}")


def _check_positive(
    name: str, value: Any, optional: bool = False, allow_zero: bool = False
) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{name}: {value!r} is not a number")
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{name}: {value!r} must be {'>= 0' if allow_zero else '> 0'}")


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
