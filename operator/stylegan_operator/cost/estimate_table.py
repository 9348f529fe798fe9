"""Plain-text output of ``stylegan estimate``: the aligned table and the notes under it.

Kept apart from ``estimate`` because it only formats finished :class:`EstimateRow` rows
(the JSON output is :meth:`EstimateRow.to_json`).
"""

from __future__ import annotations

from collections.abc import Sequence

from stylegan_operator.cost.calibration import PRESET_LABEL
from stylegan_operator.cost.estimate import EstimateRow
from stylegan_operator.cost.pricing import FRIENDLY_NAMES, PriceCatalog, format_money

_COLUMNS = ("preset", "resolution", "kimg", "gpu", "gpus", "time", "GPU-hours", "cost", "basis")


def _cells(row: EstimateRow) -> tuple[str, ...]:
    return (
        PRESET_LABEL.get(row.preset, row.preset),
        f"{row.resolution}x{row.resolution}",
        f"{row.kimg:,.0f}",
        FRIENDLY_NAMES.get(row.gpu_type, row.gpu_type),
        f"{row.gpus}" if row.nodes == 1 else f"{row.nodes}x{row.gpus_per_node}",
        row.time,
        f"{row.gpu_hours:,.1f}",
        format_money(row.cost, row.currency),
        row.basis,
    )


def render_table(rows: Sequence[EstimateRow]) -> str:
    """A plain-text table, columns aligned, numbers right-aligned."""
    body = [_cells(r) for r in rows]
    widths = [max(len(c[i]) for c in [_COLUMNS, *body]) for i in range(len(_COLUMNS))]
    right = {2, 4, 5, 6, 7}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(_COLUMNS), line(["-" * w for w in widths]), *map(line, body)])


def render_notes(rows: Sequence[EstimateRow], catalog: PriceCatalog) -> str:
    lines: list[str] = []
    for row in rows:
        for note in row.notes:
            # "published" is already said by the basis column; JSON keeps the detail.
            if not note.startswith("published ") and note not in lines:
                lines.append(note)
    for row in rows:
        name = FRIENDLY_NAMES.get(row.gpu_type, row.gpu_type)
        line = f"price {name}: {row.price_per_gpu_hour_usd:g} USD per GPU-hour ({row.price_source})"
        if line not in lines:
            lines.append(line)
    if rows and rows[0].currency != "USD":
        lines.append(
            f"1 USD = {catalog.rate(rows[0].currency):g} {rows[0].currency} (display only)"
        )
    return "\n".join(f"* {line}" for line in lines)
