"""The dashboard's list tables: one behaviour for every list (keys as in :mod:`mqtop.ui.keys`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.cells import cell_len
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.widgets import DataTable

from mqtop.ui.formats import truncate_middle
from mqtop.ui.keys import NAVIGATION, bindings
from mqtop.ui.layout import Col, fit


class RowTable(DataTable[object]):
    """A row-cursor table where Home / End jump to the first / last row (as in the overview)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *bindings(NAVIGATION),
        Binding("left", "scroll_left", "Left", show=False),
        Binding("right", "scroll_right", "Right", show=False),
    ]

    def __init__(self, *, id: str | None = None, zebra_stripes: bool = False) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=zebra_stripes)

    def action_first(self) -> None:
        """Go to the first row."""
        if self.row_count:
            self.move_cursor(row=0)

    def action_last(self) -> None:
        """Go to the last row."""
        if self.row_count:
            self.move_cursor(row=self.row_count - 1)


@dataclass(frozen=True, slots=True)
class Spec:
    """A column of a list table: what it shows and how readily it gives up room."""

    key: str
    title: str
    priority: int = 5
    name: bool = False  # cut in the middle when narrow; the last name takes the spare room
    minimum: int = 6
    tail: bool = False  # cut at the end instead (a body preview reads from its start)


Cell = str | Text


def _plain(cell: Cell) -> str:
    return cell.plain if isinstance(cell, Text) else cell


def _cut(cell: Cell, width: int, tail: bool = False) -> Cell:
    text = _plain(cell)
    if cell_len(text) <= width:
        return cell
    short = text[: max(0, width - 1)] + "…" if tail else truncate_middle(text, width)
    return Text(short, style=cell.style) if isinstance(cell, Text) else short


def fill_table(
    table: DataTable[object],
    specs: Sequence[Spec],
    rows: Sequence[Sequence[Cell]],
    width: int,
    keys: Sequence[str] | None = None,
) -> list[str]:
    """Replace a table's columns and rows, fitted to ``width`` cells: values whole, names cut
    in the middle, low priorities hidden. Returns the keys of the columns shown."""
    naturals = [
        max([len(spec.title) + 1, *(cell_len(_plain(row[i])) for row in rows)])
        for i, spec in enumerate(specs)
    ]
    cols = [
        Col(s.key, s.title, n, s.priority, name=s.name, minimum=min(s.minimum, n))
        for s, n in zip(specs, naturals, strict=True)
    ]
    # a DataTable pads every cell with a space each side; the scrollbar takes two more
    fitted = fit(cols, max(10, width - 4), gap=2)
    used = sum(w for _, w in fitted) + 2 * len(fitted)
    spare = max(0, width - 2 - used)
    last_name = max((i for i, (c, _) in enumerate(fitted) if c.name), default=None)
    if last_name is not None and spare:
        col, w = fitted[last_name]
        fitted[last_name] = (col, w + spare)
    index = {s.key: i for i, s in enumerate(specs)}
    tails = {s.key for s in specs if s.tail}
    table.clear(columns=True)
    for col, w in fitted:
        table.add_column(col.title, width=w, key=col.key)
    for n, row in enumerate(rows):
        cells = (_cut(row[index[c.key]], w, c.key in tails) for c, w in fitted)
        table.add_row(*cells, key=keys[n] if keys is not None else None)
    return [col.key for col, _ in fitted]
