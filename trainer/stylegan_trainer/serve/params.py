"""The query parameters of the face server, parsed and checked before any work is done.

Each parser takes the raw query (``urllib.parse.parse_qs`` output) and returns plain values
or raises :class:`BadRequest` naming the parameter and what would be valid; the server turns
that into a 400 with the message. Limits keep a request from costing the server more than a
face: a seed fits the 32-bit seeds ``stylegan generate`` uses, a size is a power of two no
larger than the model draws (the server only downsamples), psi stays in a range where
truncation means something.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

MAX_SEED = 2**32 - 1
PSI_RANGE = (0.0, 2.0)
MIN_SIZE = 4

Query = Mapping[str, Sequence[str]]


class BadRequest(ValueError):
    """A parameter the server refuses; the message names it."""


@dataclass(frozen=True)
class FaceRequest:
    seed: int
    psi: float
    size: int


def _one(query: Query, name: str) -> str | None:
    values = query.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise BadRequest(f"{name}: given {len(values)} times; give it once")
    return values[0]


def parse_seed(query: Query, name: str = "seed") -> int:
    raw = _one(query, name)
    if raw is None:
        raise BadRequest(f"{name}: required, an integer from 0 to {MAX_SEED}")
    try:
        seed = int(raw)
    except ValueError:
        raise BadRequest(f"{name}: {raw!r} is not an integer from 0 to {MAX_SEED}") from None
    if not 0 <= seed <= MAX_SEED:
        raise BadRequest(f"{name}: {seed} is out of range; use 0 to {MAX_SEED}")
    return seed


def parse_psi(query: Query, default: float) -> float:
    raw = _one(query, "psi")
    if raw is None:
        return default
    try:
        psi = float(raw)
    except ValueError:
        raise BadRequest(f"psi: {raw!r} is not a number from {PSI_RANGE[0]} to "
                         f"{PSI_RANGE[1]}") from None
    if not math.isfinite(psi) or not PSI_RANGE[0] <= psi <= PSI_RANGE[1]:
        raise BadRequest(f"psi: {raw} is out of range; use {PSI_RANGE[0]} to {PSI_RANGE[1]} "
                         "(1 = no truncation, 0.7 the usual)")
    return psi


def parse_size(query: Query, resolution: int, limit: int) -> int:
    """The output size: the model's resolution by default, else a smaller power of two."""
    biggest = min(resolution, limit)
    raw = _one(query, "size")
    if raw is None:
        return biggest
    valid = f"a power of two from {MIN_SIZE} to {biggest}"
    try:
        size = int(raw)
    except ValueError:
        raise BadRequest(f"size: {raw!r} is not {valid}") from None
    if size < MIN_SIZE or size > biggest or size & (size - 1):
        raise BadRequest(f"size: {size} is not {valid}")
    return size


def parse_face(query: Query, default_psi: float, resolution: int, limit: int) -> FaceRequest:
    return FaceRequest(parse_seed(query), parse_psi(query, default_psi),
                       parse_size(query, resolution, limit))
