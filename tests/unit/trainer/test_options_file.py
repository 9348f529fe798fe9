"""The trainer's options file (``stylegan train --config``): one line naming file and key."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from stylegan_common.errors import EXIT_CONFIG, ConfigError
from stylegan_trainer.train.options import OptionsModel, TrainingOptions


@pytest.mark.parametrize(
    ("values", "message"),
    [
        # a wrong type: strict, so neither a string nor a float passes for an int
        ({"seed": "7"}, "options.yaml: seed: '7' is not an integer"),
        ({"resolution": 64.0}, "options.yaml: resolution: 64.0 is not an integer"),
        ({"xflip": "yes"}, "options.yaml: xflip: 'yes' is not a bool"),
        ({"batch": True}, "options.yaml: batch: True is not an integer"),
        ({"kimg": "ten"}, "options.yaml: kimg: 'ten' is not a number"),
        # out of range
        ({"seed": -1}, "options.yaml: seed: -1 must be at least 0"),
        ({"seed": 2**32}, "options.yaml: seed: 4294967296 must be < 4294967296"),
        ({"grid_seeds": 5000}, "options.yaml: grid_seeds: 5000 must be at most 1024"),
        ({"snapshot_kimg": 0}, "options.yaml: snapshot_kimg: 0 must be > 0"),
        ({"max_seconds": float("inf")}, "options.yaml: max_seconds: inf must be a finite number"),
        # special formats
        ({"augment": "fixed:2"}, "options.yaml: augment: 'fixed:2' needs a probability in [0, 1]"),
        ({"device": "cuda:first"}, "options.yaml: device: 'cuda:first' is not one of auto, cpu, "
                                   "cuda, cuda:N"),
        ({"resume": "none", "resume_fallback": "gs://b/x.pt"},
         "options.yaml: resume_fallback: applies only with resume: latest, not resume: none"),
        ({"metrics_port": 70000}, "options.yaml: metrics_port: 70000 is not a port number"),
    ],
)
def test_a_bad_value_in_the_file_names_the_file_and_the_key(
    values: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        TrainingOptions.from_mapping(values, source="options.yaml")
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)
    assert info.value.exit_code == EXIT_CONFIG


def test_an_unknown_key_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as info:
        TrainingOptions.from_mapping({"learning-rate": 0.1}, source="options.yaml")
    valid = ", ".join(TrainingOptions.field_names())
    assert str(info.value) == f"options.yaml: unknown option 'learning_rate'; valid: {valid}"


def test_every_bad_key_is_named_in_the_one_line() -> None:
    with pytest.raises(ConfigError) as info:
        TrainingOptions.from_mapping({"seed": -1, "xflip": 1, "tick_kimg": -2}, "options.yaml")
    assert str(info.value) == (
        "options.yaml: seed: -1 must be at least 0 (also wrong: xflip, tick_kimg)"
    )


def test_good_values_come_through_and_ints_are_numbers_where_a_number_is_asked() -> None:
    options = TrainingOptions.from_mapping(
        {"kimg": 10, "device": "cuda:1", "data_workers": "2", "augment": "fixed:0.2"}
    )
    assert options.kimg == 10.0 and isinstance(options.kimg, float)
    assert (options.device, options.data_workers, options.augment) == ("cuda:1", "2", "fixed:0.2")
    assert dataclasses.replace(options, seed=5).seed == 5  # still a plain dataclass


def test_validate_checks_what_flags_set_after_the_file() -> None:
    options = TrainingOptions.from_mapping({"seed": 1})
    options.keep_checkpoints = 0  # as build_options sets a flag
    with pytest.raises(ConfigError, match="^keep_checkpoints: 0 must be at least 1$"):
        options.validate()


def test_the_model_checks_every_option_and_nothing_else() -> None:
    assert list(OptionsModel.model_fields) == TrainingOptions.field_names()
    TrainingOptions().validate()  # the defaults are valid


def test_train_exits_64_with_one_line_for_a_bad_file(tmp_path: Path) -> None:
    from stylegan_trainer.cli.train_commands import train_cmd

    config = tmp_path / "options.yaml"
    config.write_text(yaml.safe_dump({"outdir": str(tmp_path / "out"), "seed": -3}))
    result = CliRunner().invoke(train_cmd, ["--config", str(config)])
    assert result.exit_code == EXIT_CONFIG, result.output
    assert result.output.strip().splitlines() == [f"error: {config}: seed: -3 must be at least 0"]
    assert not (tmp_path / "out").exists()
