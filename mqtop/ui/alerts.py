"""Alerts: firing and pending alerts, recent resolutions, silences."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.widgets import DataTable, Footer, Label, Static

from alerts.model import Alert, AlertState
from mqtop.kernel.durations import humanize_seconds
from mqtop.kernel.safe import safe_text
from mqtop.ui.alerting import glob_escape
from mqtop.ui.base import DashboardScreen
from mqtop.ui.formats import SEVERITY_SYMBOL, metric_text, plural
from mqtop.ui.keys import ALERTS, bindings
from mqtop.ui.messages import DataRefreshed
from mqtop.ui.modals import SilenceModal
from mqtop.ui.tables import RowTable, Spec, fill_table


def state_cell(alert: Alert) -> Text:
    """State as symbol + word + colour (never colour alone)."""
    if alert.silenced:
        return Text("⊘ silenced", "dim")
    if alert.state == AlertState.FIRING and alert.held_until is not None:
        return Text("⏸ held", "yellow")  # firing, condition false: the summary says until when
    if alert.state == AlertState.FIRING:
        style = {"critical": "bold red", "warning": "bold yellow"}.get(alert.severity, "cyan")
        return Text(f"{SEVERITY_SYMBOL.get(alert.severity, '▲')} firing", style)
    if alert.state == AlertState.PENDING:
        return Text("◔ pending", "yellow")
    if alert.state == AlertState.RESOLVED:
        return Text("✓ resolved", "green")
    return Text(alert.state.value, "dim")


def _value(value: float | None, metric: str | None = None) -> str:
    """A value as every screen shows its metric (lag ``1m33s``, group status ``STALL``)."""
    return metric_text(metric, value)


def _clock(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC).strftime("%H:%M:%SZ")


ALERT_COLUMNS = (
    Spec("state", "State", 10),
    Spec("sev", "Sev", 1),
    Spec("rule", "Rule", 9, name=True, minimum=8),
    Spec("series", "Series", 9, name=True, minimum=12),
    Spec("value", "Value", 8),
    Spec("threshold", "Thr", 4),
    Spec("since", "Since", 5),
    Spec("summary", "Summary", 3, name=True, minimum=12),
)
RESOLVED_COLUMNS = (
    Spec("resolved", "Resolved", 8),
    Spec("sev", "Sev", 1),
    Spec("rule", "Rule", 9, name=True, minimum=8),
    Spec("series", "Series", 9, name=True, minimum=12),
    Spec("summary", "Summary", 3, name=True, minimum=12),
)
SILENCE_COLUMNS = (
    Spec("id", "Id", 10),
    Spec("rule", "Rule", 9, name=True, minimum=8),
    Spec("matchers", "Matchers", 8, name=True, minimum=12),
    Spec("until", "Until", 7),
    Spec("comment", "Comment", 3, name=True, minimum=8),
)


def series_label(alert: Alert) -> str:
    """``broker/queue [group]`` (escaped): two alerts of one queue stay apart by rule."""
    label = "/".join(safe_text(v) for v in (alert.broker, alert.queue) if v) or "-"
    return f"{label} [{safe_text(alert.group)}]" if alert.group else label


def rule_metrics(rules: Iterable[Any]) -> dict[str, str | None]:
    """The metric whose format shows each rule's value (None: a plain number)."""
    out: dict[str, str | None] = {"GroupStalled": "group_status"}
    for rule in rules:
        function = getattr(rule, "function", None)
        out[rule.name] = rule.metric if function in (None, "avg", "max") else None
    return out


def silence_matchers(alert: Alert) -> dict[str, str]:
    """Labels that pin a silence to this alert's series."""
    out: dict[str, str] = {}
    for label in ("broker", "queue", "group"):
        value = getattr(alert, label)
        if value is not None:
            out[label] = glob_escape(value)
    return out


class AlertsScreen(DashboardScreen):
    """Firing and pending alerts, recent resolutions and active silences."""

    KEYMAP = "alerts"

    BINDINGS: ClassVar[list[BindingType]] = bindings(ALERTS)

    def __init__(self) -> None:
        super().__init__()
        self._alerts: list[Alert] = []
        self._silences: list[Any] = []
        self._stale = False

    def compose(self) -> ComposeResult:
        yield Static(id="alerts-title")
        yield RowTable(id="alerts-table", zebra_stripes=True)
        yield Label(Text("Recent resolutions", style="bold"), classes="section")
        yield RowTable(id="resolved-table")
        yield Label(Text("Silences (Tab: move here, u: remove)", style="bold"), classes="section")
        yield RowTable(id="silences-table")
        yield Footer()

    def on_resize(self) -> None:
        """Refit the columns to the new width."""
        if self.is_mounted:
            self.refresh_tables()

    def on_mount(self) -> None:
        """Set up the tables."""
        self.refresh_tables()
        self.query_one("#alerts-table", DataTable).focus()

    def on_data_refreshed(self, message: DataRefreshed) -> None:
        """Redraw when visible (three tables rebuilt: not for a screen nobody sees)."""
        if self.is_current or self.app.screen.is_modal:
            self.refresh_tables()
        else:
            self._stale = True

    def on_screen_resume(self) -> None:
        """Catch up with data that came while another screen was on top."""
        if self._stale:
            self._stale = False
            self.refresh_tables()

    def refresh_tables(self) -> None:
        """Fill the three tables from the app's data."""
        data = self.host.data
        now = self.host.clock()
        order = {AlertState.FIRING: 0, AlertState.PENDING: 1}
        self._alerts = sorted(
            data.alerts,
            key=lambda a: (a.silenced, order.get(a.state, 2), -a.severity_rank, a.rule),
        )
        firing = sum(1 for a in self._alerts if a.state == AlertState.FIRING and not a.silenced)
        held = sum(1 for a in self._alerts if a.held_until is not None and not a.silenced)
        pending = sum(1 for a in self._alerts if a.state == AlertState.PENDING)
        title = Text()
        title.append(" Alerts ", "bold reverse")
        title.append(f"  {firing} firing")
        if held:
            title.append(f" ({held} held: condition false, see Summary)", "yellow")
        title.append(f" · {pending} pending · {plural(len(data.silences), 'silence')}")
        if not self.host.alert_source.available:
            title.append("  (alert evaluation unavailable)", "yellow")
        self.query_one("#alerts-title", Static).update(title)

        table = self.query_one("#alerts-table", DataTable)
        cursor = table.cursor_row
        metrics = rule_metrics(self.host.config.alerts)
        width = self.size.width or 80
        rows: list[list[str | Text]] = []
        for alert in self._alerts:
            since = alert.fired_at or alert.active_since
            summary = alert.summary
            if alert.held_until is not None:
                left = humanize_seconds(max(0.0, alert.held_until - now))
                summary = f"clears in {left} · {summary}"
            rows.append(
                [
                    state_cell(alert),
                    alert.severity,
                    Text(safe_text(alert.rule, 40)),
                    Text(series_label(alert)),
                    _value(alert.value, metrics.get(alert.rule)),
                    _value(alert.threshold, metrics.get(alert.rule)),
                    humanize_seconds(now - since) if since is not None else "-",
                    Text(safe_text(summary, 300)),
                ]
            )
        # refitted on every refresh: values whole, names cut in the middle when narrow
        fill_table(table, ALERT_COLUMNS, rows, width)
        if self._alerts:
            table.move_cursor(row=min(cursor, len(self._alerts) - 1))

        resolved = self.query_one("#resolved-table", DataTable)
        rows = [
            [
                _clock(alert.resolved_at),
                alert.severity,
                Text(safe_text(alert.rule, 40)),
                Text(series_label(alert)),
                Text(safe_text(alert.summary, 200)),
            ]
            for alert in data.resolved[:20]
        ]
        fill_table(resolved, RESOLVED_COLUMNS, rows, width)

        silences = self.query_one("#silences-table", DataTable)
        silences_cursor = silences.cursor_row
        self._silences = list(data.silences)
        rows = []
        for silence in self._silences:
            matchers = getattr(silence, "matchers", {}) or {}
            rows.append(
                [
                    Text(safe_text(getattr(silence, "id", "?"), 20)),
                    Text(safe_text(getattr(silence, "rule", "*") or "*", 40)),
                    Text(safe_text(", ".join(f"{k}={v}" for k, v in dict(matchers).items()), 80)),
                    _clock(getattr(silence, "until", None)),
                    Text(safe_text(getattr(silence, "comment", "") or "", 80)),
                ]
            )
        fill_table(silences, SILENCE_COLUMNS, rows, width)
        if self._silences:
            silences.move_cursor(row=min(silences_cursor, len(self._silences) - 1))

    def selected_alert(self) -> Alert | None:
        """The alert under the cursor."""
        table = self.query_one("#alerts-table", DataTable)
        if not self._alerts or table.cursor_row < 0 or table.cursor_row >= len(self._alerts):
            return None
        return self._alerts[table.cursor_row]

    def action_back(self) -> None:
        """Back."""
        self.dismiss(None)

    def action_open(self) -> None:
        """Open the selected alert's series."""
        from mqtop.kernel.model import SeriesKey

        alert = self.selected_alert()
        if alert is None or alert.broker is None or alert.queue is None:
            return
        self.host.open_detail(SeriesKey(alert.broker, alert.queue, alert.group))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on an alert opens its series."""
        if event.data_table.id == "alerts-table":
            self.action_open()

    @work(exclusive=True, group="silence")
    async def action_silence(self) -> None:
        """Silence the selected alert for a chosen time."""
        alert = self.selected_alert()
        if alert is None:
            self.notify("no alert selected", severity="warning")
            return
        where = "/".join(v for v in (alert.broker, alert.queue, alert.group) if v)
        label = f"{safe_text(alert.rule, 40)} on {safe_text(where, 80) or 'everything'}"
        choice = await self.app.push_screen_wait(SilenceModal(label))
        if choice is None:
            return
        seconds, comment = choice
        until = self.host.clock() + seconds
        try:
            self.host.alert_source.silence(
                alert.rule, silence_matchers(alert), until, comment or "silenced from the dashboard"
            )
        except Exception as exc:
            self.notify(safe_text(f"cannot silence: {exc}", 200), severity="error")
            return
        self.notify(f"silenced {label} for {humanize_seconds(seconds)}")
        self.host.request_refresh()

    def action_unsilence(self) -> None:
        """Remove the silence under the cursor of the silences table (when it has the focus)."""
        table = self.query_one("#silences-table", DataTable)
        if not self._silences:
            self.notify("no silences", severity="warning")
            return
        if self.focused is not table:
            # never remove a silence the operator is not pointing at
            self.notify(
                "point at a silence first: Tab to the silences table, then u",
                severity="warning",
            )
            return
        if not 0 <= table.cursor_row < len(self._silences):
            return
        silence = self._silences[table.cursor_row]
        try:
            self.host.alert_source.unsilence(getattr(silence, "id", ""))
        except Exception as exc:
            self.notify(safe_text(f"cannot unsilence: {exc}", 200), severity="error")
            return
        self.notify("silence removed")
        self.host.request_refresh()
