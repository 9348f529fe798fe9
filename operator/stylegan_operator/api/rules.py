"""How a check is written once for both lines of defence, and the base of every model.

Every cross-field check is written once, as a :class:`Rule` holding the CEL expression, the
message and the equivalent Python predicate, so the two lines of defence cannot drift apart
in what they say. :class:`ApiModel` puts a model's rules into its JSON schema (for the CRD)
and runs them when pydantic validates; :class:`FieldRules` does the same for one value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError, core_schema


@dataclass(frozen=True)
class Rule:
    """One validation, written once for both the API server (CEL) and Python.

    Args:
        cel: the CEL expression, evaluated with ``self`` bound to the object the rule sits on.
        message: what the API server and :class:`SpecError` say; names the field from ``spec``.
        check: the same predicate in Python; ``None`` for transition rules (``oldSelf``),
            which only the API server can evaluate.
        field_path: where the API server reports the error, relative to ``self``
            (``.maxNodes``); :class:`SpecError` names the same field.
    """

    cel: str
    message: str
    check: Callable[[Any], bool] | None = None
    field_path: str | None = None

    def to_crd(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rule": self.cel, "message": self.message}
        if self.field_path:
            out["fieldPath"] = self.field_path
        return out


@dataclass(frozen=True)
class FieldRules:
    """Annotated metadata putting rules on one value: CEL in its schema, checks in Python.

    A metadata class rather than ``Field(json_schema_extra=...)`` so it also works on a
    value nested in ``X | None``.
    """

    rules: tuple[Rule, ...]

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        def validate(value: Any) -> Any:
            for rule in self.rules:
                if rule.check is not None and not rule.check(value):
                    raise PydanticCustomError("rule", rule.message)
            return value

        return core_schema.no_info_after_validator_function(validate, handler(source))

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict[str, Any]:
        out = handler(schema)
        out["x-kubernetes-validations"] = [r.to_crd() for r in self.rules]
        return out


class ApiModel(BaseModel):
    """Base: camelCase on the wire, no unknown fields, immutable, cross-field rules."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )
    rules: ClassVar[tuple[Rule, ...]] = ()

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        schema = handler(core_schema)
        target = handler.resolve_ref_schema(schema)
        if cls.rules:
            target["x-kubernetes-validations"] = [r.to_crd() for r in cls.rules]
        return schema

    @model_validator(mode="after")
    def _check_rules(self) -> ApiModel:
        for rule in type(self).rules:
            if rule.check is not None and not rule.check(self):
                raise PydanticCustomError(
                    "rule", rule.message, {"field_path": (rule.field_path or "").lstrip(".")}
                )
        return self


def section(model: type[ApiModel], description: str) -> Any:
    """A sub-object with every field defaulted: ``{}`` on the wire, so nested defaults apply."""
    return Field(default_factory=model, description=description, json_schema_extra={"default": {}})
