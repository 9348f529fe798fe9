"""The operator's line of defence: a StyleGANRun spec parsed into a :class:`RunSpec`.

The API server already checked the same rules (the CRD's schema and CEL); the operator
checks again with :func:`validate_spec`, which raises a :class:`SpecError` naming the field
(``spec.resources.maxNodes``) in the same words the API server uses.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from stylegan_operator.api.names import KIND
from stylegan_operator.api.spec import RunSpec


class SpecError(ValueError):
    """A spec the operator refuses; ``field`` is its path, e.g. ``spec.model.resolution``.

    The operator turns it into a ``kopf.PermanentError``: retrying cannot fix a bad spec.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def _field_name(loc: tuple[Any, ...]) -> str:
    out = "spec"
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def validate_spec(obj: dict[str, Any]) -> RunSpec:
    """Parse a StyleGANRun ``spec`` (or a whole StyleGANRun) into a :class:`RunSpec`.

    Raises:
        SpecError: on the first problem, naming the field, e.g. ``spec.resources.gpusPerNode``.
    """
    if not isinstance(obj, dict):
        raise SpecError("spec", f"must be an object, got {type(obj).__name__}")
    if obj.get("kind") == KIND and "spec" in obj:
        obj = obj["spec"]
        if not isinstance(obj, dict):
            raise SpecError("spec", "must be an object")
    try:
        # Strict, as the API server types JSON: "32" is no integer there, so none here.
        return RunSpec.model_validate(obj, strict=True)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        extra = (err.get("ctx") or {}).get("field_path")
        if extra:
            loc += tuple(extra.split("."))
        reason = err["msg"]
        if err["type"] not in ("rule", "missing") and "input" in err:
            reason += f" (got {err['input']!r})"
        raise SpecError(_field_name(loc), reason) from None
