"""Where a run's sample grids are and which is newest: pure functions over object names.

The trainer's rank 0 writes ``samples/fakes-<nimg>.png`` next to its checkpoints at every
snapshot; ``stylegan samples`` lists them, picks the newest, and names where each one is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

SAMPLES_PREFIX: Final = "samples/"
_FAKES: Final = re.compile(r"^samples/fakes-(?P<nimg>\d+)\.png$")


def fake_grids(names: Iterable[str]) -> list[tuple[str, int]]:
    """The ``samples/fakes-<nimg>.png`` among object names with their image counts, oldest
    first (``reals.png`` and everything else left out)."""
    grids = []
    for name in names:
        match = _FAKES.match(name)
        if match:
            grids.append((name, int(match.group("nimg"))))
    return sorted(grids, key=lambda grid: (grid[1], grid[0]))


def latest_grid(names: Iterable[str]) -> tuple[str, int] | None:
    """The newest ``samples/fakes-<nimg>.png`` among object names, and its image count."""
    grids = fake_grids(names)
    return grids[-1] if grids else None


def object_uri(storage_uri: str, name: str) -> str:
    """Where object ``name`` of the storage at ``storage_uri`` is, for people to read."""
    return f"{storage_uri.rstrip('/')}/{name}"


def format_grid_list(storage_uri: str, grids: Sequence[tuple[str, int]]) -> str:
    """``stylegan samples --list``: one line per grid, KIMG then where it is."""
    lines = [("KIMG", "GRID")] + [(f"{nimg / 1000:g}", object_uri(storage_uri, name))
                                  for name, nimg in grids]
    width = max(len(kimg) for kimg, _ in lines)
    return "".join(f"{kimg:<{width}}   {where}\n" for kimg, where in lines)


def checkpoint_uri(run: Mapping[str, Any]) -> str | None:
    return ((run.get("spec") or {}).get("checkpoints") or {}).get("uri")
