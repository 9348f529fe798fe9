"""One clear line from a pydantic ``ValidationError``, for every config file a user writes.

Both programs read files a person writes (the trainer's options file, the price catalog, a
benchmark result fed to ``stylegan estimate``) through pydantic models, and both must refuse a
bad one the same way: with *one* message that names the key path as the user wrote it
(``cost.prices['H100'].spot``, ``seed``), the bad value, and what would be valid, so that the
command can exit 64 with it. pydantic's own rendering is several lines per error, names the
model class and links to its website; :func:`validation_message` turns it into that line and
:func:`validate_model` raises it as the caller's error class (``ConfigError``, ``CostError``).

The path is rendered by walking the model along the error's location, so a dict key prints as
``['key']`` and a field as ``.name`` (its alias, the way the file spells it), and an unknown
key lists the valid keys of the model where it was found.

Models written for this module should avoid unions of several types (pydantic reports one
error per member): take ``Any`` and check the value in a validator instead. A validator's
``ValueError`` text is used as the whole reason, so it should include the value when that
helps (``f"{value!r} is not one of ..."``).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

__all__ = ["validate_model", "validation_message"]

M = TypeVar("M", bound=BaseModel)

# How each pydantic type error reads after "<key>: <value> is not ".
_TYPE_NAMES = {
    "bool_type": "a bool (true or false)",
    "bool_parsing": "a bool (true or false)",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "a string",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "tuple_type": "a list",
}
# Bounds: pydantic's ctx key -> how it reads after "<key>: <value> must be ".
_BOUNDS = {"gt": "> {}", "ge": "at least {}", "lt": "< {}", "le": "at most {}"}
_MAX_VALUE_CHARS = 60


def validate_model(
    model: type[M],
    data: Any,
    error: type[Exception],
    *,
    root: str = "",
    prefix: str = "",
    noun: str = "key",
) -> M:
    """``model`` validated from ``data``; ``error(one line)`` naming the key otherwise."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(validation_message(exc, model, root=root, prefix=prefix, noun=noun)) from None


def validation_message(
    exc: ValidationError,
    model: type[BaseModel],
    *,
    root: str = "",
    prefix: str = "",
    noun: str = "key",
) -> str:
    """The first error of ``exc`` as ``<prefix><path>: <reason>``; the other bad paths named.

    ``root`` starts every path (``cost`` gives ``cost.prices['V100']``); ``prefix`` comes
    before it (a file name, ``"run.yaml: "``); ``noun`` names an unknown key (``option``).
    """
    errors = exc.errors(include_url=False)
    if not errors:  # pydantic never raises an empty error, but keep the message useful
        return f"{prefix}{root or model.__name__}: invalid"
    first = errors[0]
    if first["type"] == "extra_forbidden":
        parent = tuple(first["loc"][:-1])
        extras = [e for e in errors if e["type"] == "extra_forbidden"
                  and tuple(e["loc"][:-1]) == parent]
        path, node = _walk(model, parent, root)
        keys = ", ".join(repr(e["loc"][-1]) for e in extras)
        plural = "s" if len(extras) > 1 else ""
        message = f"unknown {noun}{plural} {keys}"
        valid = _valid_keys(node)
        if valid:
            message += f"; valid: {', '.join(valid)}"
        shown = {id(e) for e in extras}
    else:
        path, _ = _walk(model, tuple(first["loc"]), root)
        message = _reason(first)
        shown = {id(first)}
    line = f"{prefix}{path}: {message}" if path else f"{prefix}{message}"
    others = []
    for err in errors:
        other, _ = _walk(model, tuple(err["loc"]), root)
        if id(err) not in shown and other not in others and other != path:
            others.append(other)
    if others:
        line += f" (also wrong: {', '.join(others)})"
    return line


def _reason(err: Mapping[str, Any]) -> str:
    kind = err["type"]
    value = _show(err.get("input"))
    ctx = err.get("ctx") or {}
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])  # our validators write the whole reason, value included
    if kind == "missing":
        return "required"
    if kind in _TYPE_NAMES:
        return f"{value} is not {_TYPE_NAMES[kind]}"
    if kind == "finite_number":
        return f"{value} must be a finite number"
    for bound, text in _BOUNDS.items():
        if bound in ctx:
            return f"{value} must be {text.format(_number(ctx[bound]))}"
    msg = str(err.get("msg", "invalid"))
    return f"{value} is not valid: {msg[:1].lower()}{msg[1:]}"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 3] + "..."


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _walk(model: type[BaseModel], loc: Sequence[Any], root: str) -> tuple[str, Any]:
    """The printed path of ``loc`` inside ``model``, and the type found at its end."""
    path = root
    node: Any = model
    for item in loc:
        node = _unwrap(node)
        origin = typing.get_origin(node)
        if item == "[key]":
            node = None  # the key itself was bad; the path already shows it
        elif _is_model(node) and isinstance(item, str):
            field = _field(node, item)
            path = f"{path}.{item}" if path else str(item)
            node = field.annotation if field is not None else None
        elif origin is not None and _is_mapping(origin):
            path += f"[{item!r}]"
            args = typing.get_args(node)
            node = args[1] if len(args) == 2 else None
        elif isinstance(item, int):
            path += f"[{item}]"
            args = typing.get_args(node)
            node = args[0] if args else None
        else:
            path = f"{path}.{item}" if path else str(item)
            node = None
    return path, _unwrap(node)


def _unwrap(node: Any) -> Any:
    """``X`` from ``Annotated[X, ...]`` and ``X | None``."""
    while True:
        origin = typing.get_origin(node)
        if origin is typing.Annotated:
            node = typing.get_args(node)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(node) if a is not type(None)]
            if len(members) != 1:
                return node
            node = members[0]
        else:
            return node


def _is_mapping(origin: Any) -> bool:
    return isinstance(origin, type) and issubclass(origin, Mapping)  # origins are plain classes


def _field(model: type[BaseModel], key: str) -> Any:
    for name, field in model.model_fields.items():
        if key in (name, field.alias, field.validation_alias):
            return field
    return None


def _is_model(node: Any) -> bool:
    return isinstance(node, type) and not typing.get_args(node) and issubclass(node, BaseModel)


def _valid_keys(node: Any) -> list[str]:
    if _is_model(node):
        return [field.alias or name for name, field in node.model_fields.items()]
    return []
