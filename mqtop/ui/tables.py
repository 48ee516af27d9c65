"""The dashboard's list tables: one behaviour for every list (keys as in :mod:`mqtop.ui.keys`)."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.widgets import DataTable

from mqtop.ui.keys import NAVIGATION, bindings


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
