"""Fitting table columns to the terminal: values are never cut, names shrink in the middle,
low-priority columns go first, and spare width goes to the names (no Textual here)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Col:
    """A column as the fitter sees it."""

    key: str
    title: str
    natural: int  # the width its content asks for (at least the title and a sort arrow)
    priority: int = 5  # the lowest goes first when the terminal is narrow
    name: bool = False  # a name: shrinks (cut in the middle) and takes the spare width
    minimum: int = 6  # a name never shrinks below this
    hide: bool = False  # a name that is hidden rather than cut (the overview's kind, group)


def fit(columns: Sequence[Col], width: int, gap: int = 1) -> list[tuple[Col, int]]:
    """The columns that fit ``width`` cells with their widths.

    Value columns keep their natural width (a number is never cut). While the line is too
    wide, the column of lowest priority gives up its room: a name shrinks to its minimum
    (cut in the middle), a value column is hidden. If the line is still too wide, names of
    higher priority shrink too, and at last columns are hidden by priority. Spare width is
    left to the caller (the overview gives it to the queue).
    """
    shown = list(columns)
    widths = {c.key: c.natural for c in shown}

    def total() -> int:
        return sum(widths[c.key] for c in shown) + gap * max(0, len(shown) - 1)

    for column in sorted(columns, key=lambda c: (c.priority, -c.natural)):
        if total() <= width:
            break
        if column.name and not column.hide:
            widths[column.key] = min(widths[column.key], column.minimum)
        elif len(shown) > 1:
            shown.remove(column)
    while total() > width and len(shown) > 1:
        shown.remove(min(shown, key=lambda c: (c.priority, -c.natural)))
    return [(c, widths[c.key]) for c in shown]
