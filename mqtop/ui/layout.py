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


def fit(columns: Sequence[Col], width: int, gap: int = 1) -> list[tuple[Col, int]]:
    """The columns that fit ``width`` cells with their widths.

    Value columns keep their natural width (a number is never cut). While the total is too
    wide even with every name at its minimum, the lowest-priority column is dropped; then
    names shrink (the widest first). Spare width is left to the caller (the overview gives
    it to the queue).
    """
    shown = list(columns)

    def needed(cols: Sequence[Col], names_at_min: bool) -> int:
        widths = [min(c.natural, c.minimum) if c.name and names_at_min else c.natural for c in cols]
        return sum(widths) + gap * max(0, len(cols) - 1)

    while len(shown) > 1 and needed(shown, names_at_min=True) > width:
        shown.remove(min(shown, key=lambda c: (c.priority, -c.natural)))
    widths = {c.key: c.natural for c in shown}
    names = [c for c in shown if c.name]
    over = needed(shown, names_at_min=False) - width
    # shrink the widest names first, never below their minimum
    while over > 0 and names:
        widest = max(names, key=lambda c: widths[c.key] - c.minimum)
        room = widths[widest.key] - widest.minimum
        if room <= 0:
            break
        step = min(room, over, max(1, room // 2))
        widths[widest.key] -= step
        over -= step
    return [(c, widths[c.key]) for c in shown]
