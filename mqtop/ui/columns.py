"""Choose, hide and reorder the overview's columns (saved in the dashboard's state file)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label

from mqtop.ui.rows import COLUMN_BY_KEY, DEFAULT_ORDER
from mqtop.ui.tables import RowTable

ESSENTIAL = frozenset({"queue"})  # the overview without its queue names means nothing


class ColumnsScreen(ModalScreen[tuple[str, ...] | None]):
    """Space shows / hides, K / J (or shift+↑ / shift+↓) move, d restores, Enter saves."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("enter", "save", "Save", priority=True),
        Binding("space", "flip", "Show/hide"),
        Binding("K,shift+up", "move(-1)", "Move up", key_display="K"),
        Binding("J,shift+down", "move(1)", "Move down", key_display="J"),
        Binding("d", "defaults", "Defaults"),
    ]

    def __init__(self, shown: Sequence[str]) -> None:
        super().__init__()
        hidden = [k for k in DEFAULT_ORDER if k not in shown]
        self.order = [*shown, *hidden]
        self.shown = set(shown)

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(Text("Overview columns", style="bold"), id="dialog-title")
            yield RowTable(id="columns")
            yield Label(
                Text(
                    "Space show/hide · K/J move up/down · d defaults · Enter saves · Esc cancels",
                    style="dim",
                )
            )

    def on_mount(self) -> None:
        """List the columns."""
        table = self.query_one(RowTable)
        table.add_column(" ", key="shown", width=3)
        table.add_column("Column", key="title", width=9)
        table.add_column("Shows", key="help")
        self._fill(0)
        table.focus()

    def _fill(self, cursor: int) -> None:
        table = self.query_one(RowTable)
        table.clear()
        for key in self.order:
            column = COLUMN_BY_KEY[key]
            mark = "[x]" if key in self.shown else "[ ]"
            table.add_row(mark, column.title, Text(column.help, style="dim"), key=key)
        table.move_cursor(row=cursor)

    def _cursor(self) -> int:
        return self.query_one(RowTable).cursor_row

    def action_flip(self) -> None:
        """Show or hide the column under the cursor (the queue stays)."""
        index = self._cursor()
        key = self.order[index]
        if key in ESSENTIAL:
            self.notify("the queue column always stays", severity="warning")
            return
        self.shown.symmetric_difference_update({key})
        self._fill(index)

    def action_move(self, step: int) -> None:
        """Move the column under the cursor up or down."""
        index = self._cursor()
        target = index + step
        if not 0 <= target < len(self.order):
            return
        self.order[index], self.order[target] = self.order[target], self.order[index]
        self._fill(target)

    def action_defaults(self) -> None:
        """Every column, in the default order."""
        self.order = list(DEFAULT_ORDER)
        self.shown = set(DEFAULT_ORDER)
        self._fill(0)

    def action_save(self) -> None:
        """Use (and save) this choice."""
        self.dismiss(tuple(k for k in self.order if k in self.shown))

    def action_cancel(self) -> None:
        """Keep the columns as they were."""
        self.dismiss(None)
