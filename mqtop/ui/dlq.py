"""DLQ browser: peek, search, group, view and select dead letters; the writes are in
:mod:`mqtop.ui.dlq_writes` (every one behind a confirmation, through the dead-letter service)."""

from __future__ import annotations

import time
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal
from textual.widgets import Footer, Input, Label, ProgressBar, Static

from collectors.base import PeekedMessage
from mqtop.dlq import DeadLetterService
from mqtop.dlq.preflight import readonly_refusal
from mqtop.engine import describe_error
from mqtop.kernel.errors import MqtopError
from mqtop.kernel.safe import safe_text
from mqtop.ui.dlq_rows import (
    GROUPING_TITLES,
    GROUPINGS,
    Search,
    common_origin,
    group_counts,
    message_row,
    visible,
)
from mqtop.ui.dlq_viewer import VIEWER_LIMIT, MessageViewer, message_text
from mqtop.ui.dlq_writes import DlqWrites
from mqtop.ui.formats import plural, truncate_middle
from mqtop.ui.keys import DLQ, bindings
from mqtop.ui.modals import ConfirmModal
from mqtop.ui.tables import RowTable, Spec, fill_table

__all__ = ["VIEWER_LIMIT", "DlqScreen", "MessageViewer", "message_text"]

PAGE = 100  # messages per "load more"
MAX_WINDOW = 5000  # at most this many messages peeked at once
WRITE_ACTIONS = frozenset({"replay", "move", "purge", "edit"})
MESSAGE_COLUMNS = (
    Spec("sel", " ", 10),
    Spec("id", "Id", 9, name=True, minimum=10),
    Spec("age", "Age", 6),
    Spec("reason", "Reason", 8, name=True, minimum=8),
    Spec("count", "#", 3),
    Spec("original", "Original", 7, name=True, minimum=10),
    Spec("size", "Size", 6),
    Spec("body", "Body", 5, name=True, minimum=12, tail=True),
)


class DlqScreen(DlqWrites):
    """Messages of one queue (usually a DLQ), searchable and grouped, and the actions on them."""

    KEYMAP = "dlq"
    # the screen's first focus goes to its table, never to the hidden search box above it
    # (Textual's auto-focus counts a widget with display off as focusable)
    AUTO_FOCUS = "#messages"
    BINDINGS: ClassVar[list[BindingType]] = bindings(DLQ)

    def __init__(self, broker: str, queue: str) -> None:
        super().__init__(broker, queue)
        self.window = 0  # how many messages to peek (peek_count, then + PAGE per load more)
        self.total: int | None = None
        self.replay_target: str | None = None
        self.search_text = ""
        self.search = Search(())
        self.grouping: str | None = None  # "reason", "class", "origin"
        self.group: str | None = None  # the opened group (None: the list of groups)
        self.shown: list[int] = []  # indices of the listed messages
        self.loading_since: float | None = None
        self.notice: Text | None = None
        self._groups: list[tuple[str, int]] = []
        self._peek_ok = False

    # -- layout ------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(id="dlq-title")
        yield Static(id="dlq-notice")
        yield Input(
            placeholder="search: text, or reason: class: origin: body: header.NAME: id:",
            id="dlq-search",
        )
        yield RowTable(id="messages", zebra_stripes=True)
        with Horizontal(id="dlq-progress"):
            yield Label("", id="progress-label")
            yield ProgressBar(id="progress", show_eta=False)
        yield Static(id="dlq-result")
        yield Footer()

    def on_mount(self) -> None:
        """Find the broker's actions, then peek."""
        self.window = self.host.peek_count
        self.query_one("#dlq-search", Input).display = False
        self.query_one("#dlq-progress").display = False
        self.query_one("#dlq-result").display = False
        try:
            options = self.host.config.broker(self.broker_name)
            actions = self.host.broker_actions(self.broker_name)
        except Exception as exc:
            self._reason = safe_text(describe_error(exc), 200)
        else:
            if actions is None:
                self._reason = f"{options.type} brokers have no message actions in this version"
            else:
                self._service = DeadLetterService(
                    self.host.config, options, actions, via="dashboard"
                )
                refusal = readonly_refusal(options, "replay, move and purge")
                self._reason = safe_text(refusal.message, 300) if refusal else None
        self._fill()
        self.table.focus()
        if self._service is not None:
            self.load()

    @property
    def table(self) -> RowTable:
        """The list (messages, or groups)."""
        return self.query_one("#messages", RowTable)

    def say(self, notice: Text | None) -> None:
        """Show a notice under the title (kept until the next one)."""
        self.notice = notice
        self.draw_header()

    def draw_header(self) -> None:
        """Title (where replay goes, N of M shown, selection, search, group) and notices."""
        notice = self.notice
        title = Text()
        title.append(" DLQ ", "bold reverse magenta")
        title.append(f" {safe_text(self.broker_name, 40)} / ", "dim")
        title.append(truncate_middle(safe_text(self.queue), 60), "bold")
        target = self.target()
        title.append(" → ", "dim")
        title.append(
            truncate_middle(safe_text(target), 40) if target else "? (replay asks)", "bold green"
        )
        if self.messages or self.total is not None:
            title.append(f" · {self.shown_words()}")
        if self.selected:
            title.append(f" · {len(self.selected)} selected", "bold cyan")
        if self.grouping:
            title.append(f" · by {GROUPING_TITLES[self.grouping]}", "magenta")
            if self.group is not None:
                title.append(f" = {truncate_middle(safe_text(self.group), 30)}", "bold magenta")
        if self.search_text:
            title.append(" · search ", "dim")
            title.append(truncate_middle(safe_text(self.search_text), 30), "bold")
        self.query_one("#dlq-title", Static).update(title)
        box = self.query_one("#dlq-notice", Static)
        lines = Text()
        if self._reason:
            lines.append("⊘ " + self._reason, "yellow")
        if notice is not None:
            if lines:
                lines.append("\n")
            lines.append_text(notice)
        box.update(lines)
        box.display = bool(lines)

    def shown_words(self) -> str:
        """``3 of 27 shown``: what the list holds against what the queue holds."""
        loaded = len(self.messages)
        total = self.total
        listed = len(self.shown) if self.grouping is None or self.group is not None else loaded
        if total is None:
            counted = f"{loaded} peeked (queue size unknown)"
        elif loaded < total:
            counted = f"{loaded} of {total} peeked (l: {min(PAGE, total - loaded)} more)"
        else:
            counted = plural(total, "message")
        if listed != loaded:
            return f"{listed} of {counted} shown"
        if total is not None and loaded < total:
            return f"{loaded} of {total} shown (l: load {min(PAGE, total - loaded)} more)"
        return counted

    def target(self) -> str | None:
        """Where a replay goes: the broker's answer, else the origin shared by every message."""
        if self.replay_target:
            return self.replay_target
        return common_origin(self.messages) if self.messages else None

    # -- enabling ----------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Writes are disabled (shown dimmed) on readonly brokers and while one runs; Enter
        and the letter keys belong to the search box while it has the focus."""
        if isinstance(self.app.focused, Input) and action not in ("back",):
            return False
        if action in WRITE_ACTIONS and (self._reason is not None or self.running is not None):
            return None
        if action in ("reload", "load_more") and self.running is not None:
            return None
        return True

    # -- loading -----------------------------------------------------------------------

    @work(exclusive=True, group="dlq-peek")
    async def load(self, keep_selection: bool = False) -> None:
        """Peek (after warning about side effects), count and find the replay target."""
        service = self._service
        if service is None:
            return
        try:
            warning = await service.peek_warning(self.queue)
        except MqtopError as exc:  # e.g. the queue cannot be found: the peek would fail too
            self.say(Text(safe_text(exc.message, 300), "red"))
            return
        except Exception as exc:
            self.say(Text(f"peek failed: {safe_text(describe_error(exc), 300)}", "red"))
            return
        if warning and not self._peek_ok:
            ok = await self.app.push_screen_wait(
                ConfirmModal(
                    "Peeking has a side effect",
                    Text(safe_text(warning, 1000) + "\n\nPeek anyway?"),
                    "Peek",
                )
            )
            if not ok:
                self.say(Text("not peeked: the side effect was declined", "yellow"))
                return
            self._peek_ok = True
        self.loading_since = time.monotonic()
        self._show_loading()
        try:
            peeked = await service.peek(self.queue, self.window)
            total = await service.count(self.queue)
            target = await service.replay_target(self.queue)
        except MqtopError as exc:
            self.say(Text(safe_text(exc.message, 300), "red"))
            return
        except Exception as exc:
            self.say(Text(f"peek failed: {safe_text(describe_error(exc), 300)}", "red"))
            return
        finally:
            self.loading_since = None
        self._loaded(
            peeked.messages,
            kept=peeked.kept,
            total=total,
            target=target,
            warning=warning,
            keep_selection=keep_selection,
        )

    def _loaded(
        self,
        messages: list[PeekedMessage],
        *,
        kept: int,
        total: int | None,
        target: str | None,
        warning: str | None,
        keep_selection: bool,
    ) -> None:
        before = [m.id for m in self.messages]
        same_head = [m.id for m in messages[: len(before)]] == before
        self.messages = messages
        self.total = total
        self.replay_target = target
        if not (keep_selection and same_head):
            if self.selected and keep_selection:
                self.notify("the queue changed while loading more: selection cleared")
            self.selected.clear()
        self._fill()
        note = Text(safe_text(warning, 300), "dim") if warning else None
        if kept:
            note = Text(
                f"{kept} message(s) had used up their delivery limit: re-published to the back "
                "of the queue so that putting them back did not drop them (see the viewer)",
                "yellow",
            )
        if not self.messages:
            note = Text("(no messages)", "dim")
        self.say(note)

    def _show_loading(self) -> None:
        since = self.loading_since
        if since is None:
            return
        waited = time.monotonic() - since
        what = f"peeking {self.window} message(s)…"
        if waited >= 1:
            what += f" {waited:.0f}s"
        self.say(Text(f"{what} (Esc cancels: nothing is consumed)", "dim"))

    def on_tick(self) -> None:
        """Once a second: how long a peek has been running."""
        if self.loading_since is not None:
            self._show_loading()

    def cancel_load(self) -> None:
        """Stop waiting for a peek (the broker puts back what it was reading)."""
        self.workers.cancel_group(self, "dlq-peek")
        self.loading_since = None
        self.say(Text("peek cancelled: nothing was consumed (F5 peeks again)", "yellow"))

    def action_load_more(self) -> None:
        """Peek the next page too (up to MAX_WINDOW messages)."""
        if self.total is not None and len(self.messages) >= self.total:
            self.notify(f"all {plural(self.total, 'message')} are shown")
            return
        if self.window >= MAX_WINDOW:
            self.notify(f"at most {MAX_WINDOW} messages are peeked at once", severity="warning")
            return
        self.window = min(MAX_WINDOW, len(self.messages) + PAGE)
        self.load(keep_selection=True)

    def action_reload(self) -> None:
        """Peek again."""
        self.load()

    # -- the list ----------------------------------------------------------------------

    def _fill(self) -> None:
        table = self.table
        cursor = table.cursor_row
        table.clear(columns=True)
        self.shown = visible(self.messages, self.search, self.grouping, self.group)
        if self.grouping and self.group is None:
            self._fill_groups(table)
        else:
            self._fill_messages(table)
        if table.row_count:
            table.move_cursor(row=max(0, min(cursor, table.row_count - 1)))
        self.draw_header()

    def _fill_groups(self, table: RowTable) -> None:
        grouping = self.grouping or "reason"
        chosen = [self.messages[i] for i in self.shown]
        width = max(20, self.size.width - 24)
        self._groups = group_counts(chosen, grouping)
        rows: list[list[str | Text]] = [
            [Text(safe_text(name)), str(count), f"{100 * count / max(1, len(chosen)):.0f}%"]
            for name, count in self._groups
        ]
        specs = (
            Spec("group", GROUPING_TITLES[grouping].capitalize(), 9, name=True, minimum=12),
            Spec("count", "Count", 8),
            Spec("share", "Share", 7),
        )
        fill_table(table, specs, rows, width)

    def _fill_messages(self, table: RowTable) -> None:
        now = self.host.clock()
        rows: list[list[str | Text]] = []
        for i in self.shown:
            row = message_row(self.messages[i], now, 300)
            rows.append(
                [
                    "●" if i in self.selected else " ",
                    Text(row.id),
                    row.age,
                    Text(row.reason),
                    row.count,
                    Text(row.original),
                    row.size,
                    Text(row.preview),
                ]
            )
        # widths from the content: ids and queue names cut in the middle, the body at its end
        fill_table(
            table, MESSAGE_COLUMNS, rows, self.size.width or 80, [str(i) for i in self.shown]
        )

    def on_resize(self) -> None:
        """Widths follow the terminal."""
        if self.is_mounted:
            self._fill()

    def cursor_index(self) -> int | None:
        """The message under the cursor (an index into ``messages``), if any."""
        table = self.table
        if self.grouping and self.group is None:
            return None
        if not 0 <= table.cursor_row < len(self.shown):
            return None
        return self.shown[table.cursor_row]

    # -- selection, search, groups, viewing --------------------------------------------

    def action_toggle_select(self) -> None:
        """Select or unselect the message under the cursor, then move down."""
        index = self.cursor_index()
        if index is None:
            return
        self.selected.symmetric_difference_update({index})
        row = self.table.cursor_row
        self.table.update_cell(str(index), "sel", "●" if index in self.selected else " ")
        if row + 1 < self.table.row_count:
            self.table.move_cursor(row=row + 1)
        self.draw_header()

    def action_select_all(self) -> None:
        """Select every message shown (again: none)."""
        shown = set(self.shown)
        if shown <= self.selected:
            self.selected -= shown
        else:
            self.selected |= shown
        self._fill()

    def action_view(self) -> None:
        """Open the group under the cursor, or the message viewer."""
        if self.grouping and self.group is None:
            row = self.table.cursor_row
            if 0 <= row < len(self._groups):
                self.group = self._groups[row][0]
                self._fill()
            return
        index = self.cursor_index()
        if index is None:
            return
        message = self.messages[index]
        self.app.push_screen(
            MessageViewer(message, self.host.clock()),
            lambda choice: self._from_viewer(choice, message),
        )

    def _from_viewer(self, choice: str | None, message: PeekedMessage) -> None:
        if choice == "replay":
            self.replay_messages([message], "this message")
        elif choice == "edit":
            self.edit_message(message)

    def action_group(self) -> None:
        """Group by death reason, then error class, then original queue, then not."""
        keys = [None, *(key for key, _ in GROUPINGS)]
        self.grouping = keys[(keys.index(self.grouping) + 1) % len(keys)]
        self.group = None
        self._fill()

    def action_search(self) -> None:
        """Show the search box."""
        box = self.query_one("#dlq-search", Input)
        box.display = True
        box.value = self.search_text
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        """Search as the operator types."""
        if event.input.id == "dlq-search":
            event.stop()
            self.search_text = event.value
            self.search = Search.parse(event.value)
            self._fill()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter keeps the search and returns to the list."""
        if event.input.id == "dlq-search":
            event.stop()
            if not event.value:
                event.input.display = False
            self.table.focus()

    def on_data_table_row_selected(self, event: RowTable.RowSelected) -> None:
        """A click on the selected row opens it."""
        event.stop()
        self.action_view()

    def action_back(self) -> None:
        """Esc: stop a peek, leave the search box, clear the search, close the group, ungroup,
        then leave (refused while a write runs)."""
        box = self.query_one("#dlq-search", Input)
        if self.loading_since is not None:
            self.cancel_load()
        elif self.app.focused is box:
            box.display = bool(box.value)
            self.table.focus()
        elif self.search_text:
            box.value = ""
            box.display = False
            self.search_text, self.search = "", Search(())
            self._fill()
        elif self.grouping and self.group is not None:
            self.group = None
            self._fill()
        elif self.grouping:
            self.grouping = None
            self._fill()
        elif self.running is not None:
            self.notify(f"{self.running} is running: wait for it to finish", severity="warning")
        else:
            self.dismiss(None)

    def selected_messages(self) -> list[PeekedMessage]:
        """The selected messages in list order."""
        return [self.messages[i] for i in sorted(self.selected) if i < len(self.messages)]

    def shown_messages(self) -> list[PeekedMessage]:
        """The messages the list shows (the opened group, the search)."""
        return [self.messages[i] for i in self.shown]

    def filtered(self) -> bool:
        """True when the list shows part of what was peeked (a group is open, or a search)."""
        return bool(self.search) or (self.grouping is not None and self.group is not None)
