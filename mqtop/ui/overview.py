"""Overview: every series of every broker in one table, with broker health on top."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from functools import partial
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult, SystemCommand
from textual.binding import BindingType
from textual.css.query import NoMatches
from textual.widgets import Footer, Input, Static

from mqtop.kernel.durations import humanize_seconds
from mqtop.kernel.model import BrokerStatus
from mqtop.kernel.safe import safe_text
from mqtop.ui.arranged import Arranged, Arrangement, prepare
from mqtop.ui.base import DashboardScreen
from mqtop.ui.columns import ColumnsScreen
from mqtop.ui.formats import SEVERITY_SYMBOL
from mqtop.ui.keys import OVERVIEW, bindings
from mqtop.ui.messages import DataRefreshed
from mqtop.ui.rows import (
    COLUMN_BY_KEY,
    DEFAULT_ORDER,
    SORTABLE,
    Row,
    dlq_target,
    sparkline,
)
from mqtop.ui.totals import totals_line
from mqtop.ui.vtable import SeriesTable

TREND_WINDOW = 300.0


def broker_line(statuses: Iterable[BrokerStatus], now: float) -> Text:
    """Broker health: a symbol and a word per broker, last poll age and poll interval."""
    text = Text(no_wrap=False, overflow="fold")
    first = True
    for status in statuses:
        if not first:
            text.append("  ")
        first = False
        name = safe_text(status.name, 40)
        every = humanize_seconds(status.interval)
        if status.up is None:
            text.append("◌ ", "dim")
            text.append(name, "bold")
            text.append(" connecting…", "dim")
            continue
        polled = (
            humanize_seconds(max(0.0, now - status.last_poll))
            if status.last_poll is not None
            else "-"
        )
        if status.up:
            stale = status.is_stale(now)
            text.append("◇ " if stale else "● ", "yellow" if stale else "green")
            text.append(name, "bold")
            text.append(" stale" if stale else " up", "yellow" if stale else "green")
            text.append(f" {polled} ago/{every}", "dim")
        else:
            age = status.staleness(now)
            text.append("✗ ", "bold red")
            text.append(name, "bold")
            text.append(" DOWN", "bold red")
            text.append(
                f" last ok {humanize_seconds(age) + ' ago' if age is not None else 'never'}",
                "dim",
            )
            if status.error:
                error = safe_text(status.error)
                text.append(f" ({error[:44] + '…' if len(error) > 45 else error})", "red")
    if first:
        text.append("no brokers configured: add some to mqtop.yaml (see `mqtop init`)", "yellow")
    return text


# header lines of a fixed height (mqtop.tcss): their text never changes the layout
_ONE_LINE = frozenset({"#title", "#totals"})


def _shape(plain: str) -> tuple[int, list[int]]:
    """Length and word breaks of a line: equal shapes wrap into the same number of lines."""
    return len(plain), [i for i, c in enumerate(plain) if c in " \n"]


class OverviewScreen(DashboardScreen):
    """One table of every series across brokers."""

    KEYMAP = "overview"

    BINDINGS: ClassVar[list[BindingType]] = bindings(OVERVIEW)
    # the screen's first focus goes to its table, never to the hidden search box above it
    # (Textual's auto-focus counts a widget with display off as focusable)
    AUTO_FOCUS = "#series"

    def __init__(self) -> None:
        super().__init__()
        self.sort_column = "backlog"
        self.sort_descending = True
        self.filter_text = ""
        self.group_by_broker = False
        self._dirty = True
        self._shown = 0
        self._trend_cache: dict[tuple[object, int], str] = {}
        self._header_text: dict[str, Text] = {}

    def compose(self) -> ComposeResult:
        yield Static(id="title")
        yield Static(id="brokers")
        yield Static(id="totals")
        # above the table, never at the bottom where notifications pop up
        yield Input(placeholder="filter: text or glob (orders*, */dlq), Esc clears", id="filter")
        yield SeriesTable(self._trend, id="series")
        yield Footer()

    @property
    def table(self) -> SeriesTable:
        """The series table."""
        return self.query_one(SeriesTable)

    def on_mount(self) -> None:
        """Draw what the app has so far."""
        self.query_one("#filter", Input).display = False
        prefs = self.host.prefs
        if prefs.columns:
            self.table.set_order(prefs.columns)
        self.query_one("#totals", Static).display = prefs.totals
        self.table.set_sort(self.sort_column, self.sort_descending)
        self.table.focus()
        self.rebuild()

    def on_data_refreshed(self, message: DataRefreshed) -> None:
        """New data: rebuild now when visible (or under a modal), else on resume."""
        self._trend_cache.clear()
        if self.is_current or self.app.screen.is_modal:
            self.rebuild()
        else:
            self._dirty = True

    def on_screen_resume(self) -> None:
        """Catch up with data that arrived while another screen was on top."""
        if self._dirty:
            self.rebuild()

    def on_tick(self) -> None:
        """Once a second: poll ages in the header move on (not while the screen's widgets are
        still being built or already taken down, as when the app exits)."""
        if self.is_current and self.is_mounted:
            try:
                self._update_header()
            except NoMatches:
                pass

    @property
    def arrangement(self) -> Arrangement:
        """The current sort, filter and grouping (the data build arranges rows for it)."""
        return Arrangement(
            self.sort_column, self.sort_descending, self.filter_text, self.group_by_broker
        )

    def rebuild(self) -> None:
        """Show the current rows: as the worker arranged them when the arrangement is still
        the same (no per-row work here), else arranged now; visible rows render lazily."""
        self._dirty = False
        data = self.host.data
        arrangement = self.arrangement
        arranged = data.arranged
        if arranged is None or arranged.arrangement != arrangement:
            every = None
            if data.totals is not None and data.names is not None:
                every = (data.totals, data.broker_totals, data.names)
            arranged = prepare(data.rows, arrangement, data.statuses, every=every)
        table = self.table
        if self.filter_text:
            table.empty_text = f"no series match {safe_text(self.filter_text, 60)!r}"
        elif not data.polled:
            table.empty_text = "waiting for the first poll…"
        else:
            table.empty_text = "no series: the brokers report no queues (see include / exclude)"
        table.show(arranged)
        self._shown = arranged.shown
        self._draw_totals(arranged)
        self._update_header()

    def _draw_totals(self, arranged: Arranged) -> None:
        box = self.query_one("#totals", Static)
        if not box.display:
            return
        each = arranged.broker_totals
        brokers = [(safe_text(b, 20), t) for b, t in sorted(each, key=lambda item: item[0])]
        self._put("#totals", totals_line(arranged.totals, brokers, (self.size.width or 80) - 2))

    def _update_header(self) -> None:
        data = self.host.data
        now = self.host.clock()
        firing = data.firing_count
        crit = data.critical_count
        title = Text()
        title.append(" mqtop ", "bold reverse")
        title.append(f" {len(data.rows)} series", "bold")
        if self.filter_text:
            title.append(f" · {self._shown} shown · filter: ")
            title.append(safe_text(self.filter_text, 40), "bold")
        held = data.held_count  # firing while the condition is false: counted apart
        if firing:
            title.append(" · ")
            symbol = SEVERITY_SYMBOL["critical" if crit else "warning"]
            title.append(
                f"{symbol} {firing} firing" + (f" ({crit} critical)" if crit else ""),
                "bold red" if crit else "bold yellow",
            )
        elif not held:
            title.append(" · ✓ no alerts firing", "green")
        if held:
            title.append(f" · ⏸ {held} held (condition false; A shows until when)", "yellow")
        if data.info_count:
            title.append(f" · {SEVERITY_SYMBOL['info']} {data.info_count} info", "cyan")
        column = COLUMN_BY_KEY[self.sort_column].title
        title.append(f" · sort {column} {'▼' if self.sort_descending else '▲'}", "dim")
        if self.group_by_broker:
            title.append(" · grouped by broker", "dim")
        self._put("#title", title)
        config = self.host.config
        names = [b.name for b in config.brokers] + [s.name for s in config.sources]
        # the engine's own statuses: newer than the last data build's copy
        live = self.host.engine.statuses
        statuses = [live.get(n) or data.statuses.get(n) for n in names]
        # brokers read from a source: only those down (a fleet has too many to list); from the
        # build's copy, which the engine's thread does not change while this iterates
        statuses += [s for n, s in data.statuses.items() if s.up is False and n not in names]
        self._put("#brokers", broker_line([s for s in statuses if s is not None], now))

    def _put(self, selector: str, text: Text) -> None:
        """Show ``text`` in a header line: nothing when unchanged (the once-a-second tick),
        and no layout of the whole screen when the line's height cannot change: the title and
        the totals are one line high whatever they say, and the broker health wraps into the
        same number of lines when only characters changed in place ("3s ago" to "4s ago":
        same length, same word breaks). A layout repaints every widget of the screen."""
        shown = self._header_text.get(selector)
        if shown is not None and shown == text:
            return
        self._header_text[selector] = text
        same_shape = selector in _ONE_LINE or (
            shown is not None and _shape(shown.plain) == _shape(text.plain)
        )
        self.query_one(selector, Static).update(text, layout=not same_shape)

    # -- trend sparkline (visible rows only) -----------------------------------------

    def _trend(self, row: Row, width: int) -> str:
        cache_key = (row.key, width)
        cached = self._trend_cache.get(cache_key)
        if cached is not None:
            return cached
        now = self.host.data.time
        points = self.host.engine.store.range(
            row.key, "queue_length", now - TREND_WINDOW, now, points=width
        )
        values = [v for _, v in points]
        text = sparkline(values, width) if values else ""
        self._trend_cache[cache_key] = text
        return text

    # -- actions -----------------------------------------------------------------------

    def on_series_table_activated(self, message: SeriesTable.Activated) -> None:
        """Enter or click on a row opens its detail."""
        message.stop()
        self.host.open_detail(message.row.key)

    def on_series_table_header_clicked(self, message: SeriesTable.HeaderClicked) -> None:
        """Click on a title sorts by that column (again: reverse)."""
        message.stop()
        self.sort_by(message.column)

    def sort_by(self, column: str, descending: bool | None = None) -> None:
        """Sort by a column: a new column starts descending for numbers, ascending for text."""
        if descending is None:
            if column == self.sort_column:
                descending = not self.sort_descending
            else:
                descending = COLUMN_BY_KEY[column].align == "right" or column == "alert"
        self.sort_column = column
        self.sort_descending = descending
        self.table.set_sort(column, descending)
        self.rebuild()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Enter belongs to the filter box while it has the focus."""
        return not (action == "detail" and isinstance(self.app.focused, Input))

    def action_detail(self) -> None:
        """Open the detail of the selected series."""
        self.table.action_activate()

    def action_sort_next(self) -> None:
        """Sort by the next column."""
        index = SORTABLE.index(self.sort_column)
        self.sort_by(SORTABLE[(index + 1) % len(SORTABLE)])

    def action_sort_previous(self) -> None:
        """Sort by the previous column."""
        index = SORTABLE.index(self.sort_column)
        self.sort_by(SORTABLE[(index - 1) % len(SORTABLE)])

    def action_sort_reverse(self) -> None:
        """Reverse the sort order."""
        self.sort_by(self.sort_column, not self.sort_descending)

    @work(exclusive=True, group="columns")
    async def action_columns(self) -> None:
        """Choose, hide and reorder the columns (kept in the dashboard's state file)."""
        current = self.host.prefs.columns or DEFAULT_ORDER
        chosen = await self.app.push_screen_wait(ColumnsScreen(current))
        if chosen is None:
            return
        self.host.save_prefs(replace(self.host.prefs, columns=chosen))
        self.table.set_order(chosen)
        self.rebuild()

    def action_toggle_totals(self) -> None:
        """Show or hide the totals line (kept)."""
        box = self.query_one("#totals", Static)
        box.display = not box.display
        self.host.save_prefs(replace(self.host.prefs, totals=box.display))
        self.rebuild()

    def action_toggle_group(self) -> None:
        """Group rows under their broker, or not."""
        self.group_by_broker = not self.group_by_broker
        self.rebuild()

    def action_filter(self) -> None:
        """Show the filter box."""
        box = self.query_one("#filter", Input)
        box.display = True
        box.value = self.filter_text
        box.focus()

    def apply_filter(self, text: str) -> None:
        """Show only the rows matching ``text`` (the ``:`` bar's "broker NAME")."""
        box = self.query_one("#filter", Input)
        box.display = True
        box.value = text
        self.filter_text = text
        self.table.focus()
        self.rebuild()

    def action_clear_filter(self) -> None:
        """Clear the filter and hide the box."""
        box = self.query_one("#filter", Input)
        box.display = False
        if self.filter_text or box.value:
            box.value = ""
            self.filter_text = ""
            self.rebuild()
        self.table.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        """Filter as the operator types."""
        if event.input.id == "filter":
            self.filter_text = event.value
            self.rebuild()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter keeps the filter and returns to the table."""
        if event.input.id == "filter":
            self.filter_text = event.value
            if not event.value:
                event.input.display = False
            self.table.focus()

    def action_dlq(self) -> None:
        """Open the DLQ browser: the row's DLQ, or the row itself when it is a DLQ."""
        row = self.table.cursor_row
        if row is None or row.is_header:
            self.notify("select a queue first", severity="warning")
            return
        target = dlq_target(row, self.host.data.views)
        if target is None:
            self.notify(
                f"{safe_text(row.queue, 60)} has no known dead-letter queue; "
                "opening the queue itself",
                severity="information",
            )
            target = row.queue
        self.host.open_dlq(row.broker, target)

    def palette_commands(self) -> Iterable[SystemCommand]:
        """Extra palette entries: sort by each column, toggle grouping."""
        for key in SORTABLE:
            column = COLUMN_BY_KEY[key]
            yield SystemCommand(
                f"Sort by {column.title}",
                column.help or f"sort the overview by {column.title}",
                partial(self.sort_by, key),
            )
        yield SystemCommand(
            "Group by broker", "toggle grouping rows by broker", self.action_toggle_group
        )

    def worst_rank(self) -> int:
        """The worst alert rank shown (for tests and the title)."""
        return max((r.alert_rank for r in self.table.rows), default=0)
