"""``stylegan_common.validation``: a pydantic error becomes one line naming the key path."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool

from stylegan_common.validation import validate_model


class Bad(Exception):
    pass


def _even(value: int) -> int:
    if value % 2:
        raise ValueError(f"{value} is odd; give an even number")
    return value


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    on_demand: float = Field(1.0, gt=0, alias="onDemand")
    flag: StrictBool = False


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    count: int = Field(1, ge=1, le=8)
    even: Annotated[int, AfterValidator(_even)] = 0
    items: dict[str, Inner] = Field(default_factory=dict)
    listed: list[Inner] = Field(default_factory=list)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"count": 9}, "top: count: 9 must be at most 8"),
        ({"count": 0}, "top: count: 0 must be at least 1"),
        ({"count": "many"}, "top: count: 'many' is not an integer"),
        ({"even": 3}, "top: even: 3 is odd; give an even number"),
        ({"items": {"a": {"onDemand": -1}}}, "top: items['a'].onDemand: -1 must be > 0"),
        ({"items": {"a": {"flag": "yes"}}}, "top: items['a'].flag: 'yes' is not a bool"),
        ({"listed": [{}, {"onDemand": 0}]}, "top: listed[1].onDemand: 0 must be > 0"),
        ({"items": {"a": {"spot": 1}}},
         "top: items['a']: unknown key 'spot'; valid: onDemand, flag"),
        ({"cuont": 1, "evne": 2},
         "top: unknown keys 'cuont', 'evne'; valid: count, even, items, listed"),
        ({"items": []}, "top: items: [] is not a mapping"),
        ([1, 2], "top: [1, 2] is not a mapping"),
    ],
)
def test_one_line_names_the_key_path_and_what_is_valid(data: Any, message: str) -> None:
    with pytest.raises(Bad) as info:
        validate_model(Outer, data, Bad, prefix="top: ")
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value) and "pydantic" not in str(info.value)


def test_the_root_starts_every_path_and_other_bad_keys_are_named() -> None:
    with pytest.raises(Bad) as info:
        validate_model(Outer, {"count": 0, "even": 1, "items": {"x": {"flag": 1}}}, Bad,
                       root="cost")
    assert str(info.value) == (
        "cost.count: 0 must be at least 1 (also wrong: cost.even, cost.items['x'].flag)"
    )


def test_a_valid_mapping_comes_back_as_the_model() -> None:
    assert validate_model(Outer, {"count": 2}, Bad).count == 2
