"""Every key of the dashboard, in one place: screens build their bindings, footers and help here.

A key means the same thing on every screen where it exists: ``Enter`` opens what the cursor is
on, ``Esc`` goes back (or clears what is being typed), ``Home`` / ``End`` jump to the first and
last row, ``/`` filters or searches, ``r`` replays, ``?`` lists the keys of the current screen
and ``:`` jumps anywhere by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from textual.binding import Binding, BindingType


@dataclass(frozen=True, slots=True)
class Key:
    """One key: the Textual key names, the action, the footer label and the help line."""

    keys: str  # Textual key names, comma separated ("escape,backspace")
    action: str
    label: str  # short, for the footer
    help: str  # one line, for ``?``
    show: bool = True  # in the footer
    display: str | None = None  # how the key is written ("?", "/", "P")
    priority: bool = False  # before the focused widget (Enter over a table's own Enter)

    @property
    def shown_keys(self) -> str:
        """The key as an operator reads it in help."""
        if self.display:
            return self.display
        return " / ".join(_NAMES.get(k, k) for k in self.keys.split(","))

    def binding(self) -> Binding:
        """The Textual binding."""
        return Binding(
            self.keys,
            self.action,
            self.label,
            show=self.show,
            key_display=self.display,
            priority=self.priority,
        )


_NAMES: Mapping[str, str] = {
    "escape": "Esc",
    "backspace": "Backspace",
    "enter": "Enter",
    "space": "Space",
    "slash": "/",
    "colon": ":",
    "question_mark": "?",
    "pageup": "PgUp",
    "pagedown": "PgDn",
    "home": "Home",
    "end": "End",
    "up": "↑",
    "down": "↓",
    "tab": "Tab",
}

GLOBAL: tuple[Key, ...] = (
    Key("q", "quit", "Quit", "quit (asks first while a write runs)"),
    Key("question_mark", "help", "Help", "the keys of this screen", display="?"),
    Key(
        "colon",
        "command",
        "Go to",
        "go to a broker, queue, screen or action by name",
        display=":",
    ),
    Key("A", "alerts", "Alerts", "the alerts screen", display="A"),
    Key("ctrl+t", "change_theme", "Theme", "change the colour theme", show=False),
)

# moving in any list (the overview's table, the alerts', the DLQ browser's): listed once in help
NAVIGATION: tuple[Key, ...] = (
    Key("up,k", "cursor_up", "Up", "previous row", show=False, display="↑ / k"),
    Key("down,j", "cursor_down", "Down", "next row", show=False, display="↓ / j"),
    Key("pageup", "page_up", "Page up", "one page up", show=False),
    Key("pagedown", "page_down", "Page down", "one page down", show=False),
    Key("home", "first", "First", "first row", show=False),
    Key("end", "last", "Last", "last row", show=False),
)

OVERVIEW: tuple[Key, ...] = (
    Key(
        "enter",
        "detail",
        "Detail",
        "detail: charts, partitions, consumers",
        priority=True,
    ),
    Key("slash", "filter", "Filter", "filter rows: text, or a glob with * ? [", display="/"),
    Key("escape", "clear_filter", "Clear", "clear the filter", show=False),
    Key("s", "sort_next", "Sort", "sort by the next column"),
    Key("S", "sort_previous", "Sort back", "sort by the previous column", show=False, display="S"),
    Key("r", "sort_reverse", "Reverse", "reverse the sort order"),
    Key("g", "toggle_group", "Group", "group rows by broker"),
    Key("d", "dlq", "DLQ", "DLQ browser of the queue's dead letters"),
    Key("c", "columns", "Columns", "choose, hide and reorder columns (saved)"),
    Key("t", "toggle_totals", "Totals", "show or hide the totals line", show=False),
)

DETAIL: tuple[Key, ...] = (
    Key("escape,backspace", "back", "Back", "back to the previous screen"),
    Key("1", "window(0)", "5m", "charts over the last 5 minutes"),
    Key("2", "window(1)", "1h", "charts over the last hour"),
    Key("3", "window(2)", "24h", "charts over the last 24 hours"),
    Key("4", "window(3)", "7d", "charts over 7 days (series read from a Prometheus source)"),
    Key("5", "window(4)", "30d", "charts over 30 days (series read from a Prometheus source)"),
    Key("d", "dlq", "DLQ", "DLQ browser of this queue's dead-letter queue"),
)

ALERTS: tuple[Key, ...] = (
    Key("escape,backspace", "back", "Back", "back to the previous screen"),
    Key("enter", "open", "Open", "detail of the alert's series", priority=True),
    Key("s", "silence", "Silence", "silence the alert under the cursor"),
    Key("u", "unsilence", "Unsilence", "remove the silence under the cursor (silences table)"),
    Key("tab", "focus_next", "Next table", "move between the alerts and the silences", show=False),
)

DLQ: tuple[Key, ...] = (
    Key("escape,backspace", "back", "Back", "back (clears the search first)"),
    Key("enter", "view", "View", "the message in full (body, headers, properties)", priority=True),
    Key("space", "toggle_select", "Select", "select / unselect the message, move down"),
    Key("a", "select_all", "All", "select every message shown (again: none)"),
    Key(
        "slash",
        "search",
        "Search",
        "search: text in body, header values, death reason",
        display="/",
    ),
    Key("g", "group", "Group", "group by death reason, error class or original queue"),
    Key("r", "replay", "Replay", "replay the selection (or, asked first, every message)"),
    Key("m", "move", "Move", "move the selection (or every message) to another queue"),
    Key("e", "edit", "Edit", "edit the message in $EDITOR, then replay the edited copy"),
    Key("w", "export", "Export", "write the selection (or what is shown) as JSON lines"),
    Key("l", "load_more", "More", "load the next 100 messages"),
    Key("P", "purge", "Purge", "delete every message of the queue", display="P"),
    Key("f5,ctrl+r", "reload", "Reload", "peek again", show=False),
)

VIEWER: tuple[Key, ...] = (
    Key("escape,q", "close", "Close", "back to the list"),
    Key("r", "replay", "Replay", "replay this message"),
    Key("e", "edit", "Edit", "edit this message in $EDITOR, then replay the edited copy"),
    Key("x", "toggle_hex", "Hex/text", "switch between the decoded body and a hex dump"),
)

HELP: tuple[Key, ...] = (
    Key("escape,q,question_mark", "close", "Close", "close help", display="Esc"),
)

SCREENS: Mapping[str, tuple[Key, ...]] = {
    "overview": OVERVIEW,
    "detail": DETAIL,
    "alerts": ALERTS,
    "dlq": DLQ,
    "viewer": VIEWER,
}
TABLE_SCREENS = frozenset({"overview", "alerts", "dlq"})


def bindings(keys: Sequence[Key]) -> list[BindingType]:
    """Textual bindings of a key list (a screen's ``BINDINGS``)."""
    return [key.binding() for key in keys]


def help_rows(screen: str) -> list[tuple[str, str, str]]:
    """(key, what it does, "all" for keys of every screen) for ``?``: the screen's keys,
    moving, then the keys that work everywhere."""
    rows = [(k.shown_keys, k.help, "") for k in SCREENS.get(screen, ())]
    if screen in TABLE_SCREENS:
        rows.append(("↑↓ jk PgUp PgDn", "move; Home / End: first / last row", ""))
    rows += [(k.shown_keys, k.help, "all") for k in GLOBAL if k.action != "change_theme"]
    rows.append(("ctrl+p", "command palette: every action, themes", "all"))
    return rows
