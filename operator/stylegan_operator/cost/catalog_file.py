"""The price catalog file as a user writes it (Helm ``cost:`` values, ``--catalog``): its model.

:class:`CatalogFile` checks the shape and every value of the mapping (unknown keys, a price
that is not a positive finite number, a currency that is not a 3-letter code) and nothing
else; ``pricing.PriceCatalog.from_dict`` then merges what was given over the defaults, which
needs to know what the defaults hold (a new GPU type must give ``onDemand``; a missing
``spot`` falls back). GPU type names stay as written here, so that an error names the key the
user wrote (``cost.prices['H100']``); the merge maps them onto catalog keys with
``canonical_gpu_type``.

Prices and rates are read the lax way (``"9.8"`` from a quoted Helm value is 9.8), as the
catalog always has; a bool is refused, though, since ``true`` is never meant as a price.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

__all__ = ["CatalogFile", "PriceEntry", "currency_code"]

SHORT_FORM_HINT = "a price per GPU-hour, or a mapping with onDemand/spot"


def currency_code(value: Any) -> str:
    """A 3-letter ISO 4217 code, upper case; ``ValueError`` with the reason otherwise."""
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z]{3}", value.strip()):
        raise ValueError(f"expected a 3-letter ISO 4217 code, got {value!r}")
    return value.strip().upper()


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    return value


def _gpu_type_key(value: Any) -> str:
    named = isinstance(value, str | int | float) and not isinstance(value, bool)
    if not named or not str(value).strip():
        raise ValueError(f"{value!r} is not a GPU type name (e.g. nvidia-tesla-v100, H100)")
    return str(value)


def _empty_if_null(value: Any) -> Any:
    return {} if value is None else value  # ``prices:`` with nothing under it in YAML


Price = Annotated[float, BeforeValidator(_no_bool), Field(gt=0, allow_inf_nan=False)]
NodePrice = Annotated[float, BeforeValidator(_no_bool), Field(ge=0, allow_inf_nan=False)]
Currency = Annotated[str, BeforeValidator(currency_code)]
GpuTypeKey = Annotated[str, BeforeValidator(_gpu_type_key)]


class PriceEntry(BaseModel):
    """One GPU type's prices in USD; only the fields given override (``model_fields_set``).

    The short form ``H100: 9.8`` reads as one price for on-demand and spot, no node price.
    """

    model_config = ConfigDict(extra="forbid")

    on_demand: Price = Field(None, alias="onDemand")  # type: ignore[assignment]
    spot: Price = Field(None)  # type: ignore[assignment]
    node_on_demand: NodePrice = Field(None, alias="nodeOnDemand")  # type: ignore[assignment]
    node_spot: NodePrice = Field(None, alias="nodeSpot")  # type: ignore[assignment]
    source: str | None = None
    """Where the figures come from; the key path when not given."""

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            return value  # a mapping is checked field by field; anything else is refused
        try:
            price = float(value)
        except ValueError:
            raise ValueError(f"{value!r} is not {SHORT_FORM_HINT}") from None
        if not math.isfinite(price) or price <= 0:
            raise ValueError(f"{value!r} must be a finite number > 0 ({SHORT_FORM_HINT})")
        return {"onDemand": price, "spot": price, "nodeOnDemand": 0.0, "nodeSpot": 0.0}


class CatalogFile(BaseModel):
    """The ``cost:`` mapping: display currency, exchange rates per USD, prices per GPU type."""

    model_config = ConfigDict(extra="forbid")

    currency: Currency | None = None
    exchange_rates: dict[Currency, Price] = Field(default_factory=dict, alias="exchangeRates")
    prices: dict[GpuTypeKey, PriceEntry] = Field(default_factory=dict)

    @field_validator("exchange_rates", "prices", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return _empty_if_null(value)
