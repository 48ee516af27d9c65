"""Detail of one series: charts over 5m / 1h / 24h, partitions, consumers, alerts, its DLQ."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult, SystemCommand
from textual.binding import BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Footer, Static, Tab, Tabs
from textual_plotext import PlotextPlot

from alerts.model import Alert
from mqtop.engine import describe_error
from mqtop.kernel.model import PUBLIC_METRICS, SeriesKey, SeriesView
from mqtop.kernel.safe import safe_text
from mqtop.lint.model import Finding
from mqtop.ui.base import DashboardScreen
from mqtop.ui.formats import SEVERITY_SYMBOL, count_ticks, metric_text, truncate_middle
from mqtop.ui.keys import DETAIL, bindings
from mqtop.ui.messages import DataRefreshed
from mqtop.ui.rows import build_rows, dlq_target

WINDOWS: tuple[tuple[str, float], ...] = (("5m", 300.0), ("1h", 3600.0), ("24h", 86400.0))
# series read from a Prometheus source chart over whatever retention it keeps
LONG_WINDOWS: tuple[tuple[str, float], ...] = (("7d", 7 * 86400.0), ("30d", 30 * 86400.0))
CHART_POINTS = 120
CHART_METRICS = (
    "queue_length",
    "publish_rate",
    "processing_rate",
    "consumer_lag_seconds",
    "latency_seconds",
    "in_flight",
    "consumers",
)
# (widget, title, y axis kind: a metric whose format labels the ticks, or "rate", metrics)
CHARTS: tuple[tuple[str, str, str, tuple[tuple[str, str], ...]], ...] = (
    ("#chart-backlog", "Backlog (messages)", "queue_length", (("queue_length", "backlog"),)),
    (
        "#chart-rates",
        "Rates (messages/s)",
        "rate",
        (("publish_rate", "in"), ("processing_rate", "out")),
    ),
    (
        "#chart-lag",
        "Age / lag",
        "latency_seconds",
        (("consumer_lag_seconds", "group lag"), ("latency_seconds", "oldest")),
    ),
    (
        "#chart-inflight",
        "In flight / consumers",
        "in_flight",
        (("in_flight", "in flight"), ("consumers", "consumers")),
    ),
)


def summary_table(view: SeriesView | None, width: int = 120) -> Table:
    """Every public metric with its current value, as many per line as fit: a value is never
    cut, the metric's name is (in the middle) when a cell is narrow."""
    per_line = max(1, min(4, width // 30))
    cell_width = max(12, (width - 2 * (per_line - 1) - 2) // per_line)
    table = Table.grid(padding=(0, 2))
    for _ in range(per_line):
        table.add_column(no_wrap=True, width=cell_width)
    cells: list[Text] = []
    for metric in PUBLIC_METRICS:
        value = view.get(metric.name) if view is not None else None
        shown = metric_text(metric.name, value)
        cell = Text()
        cell.append(truncate_middle(metric.name, max(4, cell_width - len(shown) - 1)), "dim")
        cell.append(" ")
        cell.append(shown, "bold" if value is not None else "dim")
        cells.append(cell)
    for i in range(0, len(cells), per_line):
        row = cells[i : i + per_line]
        table.add_row(*row, *([Text("")] * (per_line - len(row))))
    return table


def records_table(title: str, records: Sequence[Any]) -> Table | None:
    """A table of broker-provided records (partitions, consumers); every value escaped."""
    rows = [r for r in records if isinstance(r, Mapping | str)]
    if not rows:
        return None
    table = Table(title=title, title_justify="left", title_style="bold", expand=True)
    if all(isinstance(r, str) for r in rows):
        table.add_column("name")
        for r in rows[:200]:
            table.add_row(Text(safe_text(r, 120)))
        return table
    columns: list[str] = []
    for r in rows:
        if isinstance(r, Mapping):
            for k in r:
                if str(k) not in columns:
                    columns.append(str(k))
    for c in columns[:10]:
        table.add_column(Text(safe_text(c, 30)), no_wrap=True)
    for r in rows[:200]:
        if isinstance(r, Mapping):
            table.add_row(
                *[Text(safe_text(_plain(r.get(c)), 60)) for c in columns[:10]],
            )
    if len(rows) > 200:
        table.caption = f"… {len(rows) - 200} more"
    return table


def _plain(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def info_table(info: Mapping[str, Any]) -> Table | None:
    """Scalar details the broker reported (lists get their own tables)."""
    items = [(k, v) for k, v in info.items() if not isinstance(v, list | tuple | dict)]
    if not items:
        return None
    table = Table.grid(padding=(0, 2))
    table.add_column(style="dim", no_wrap=True)
    table.add_column()
    for key, value in items[:40]:
        table.add_row(Text(safe_text(key, 40)), Text(safe_text(_plain(value), 200)))
    return table


def alerts_text(alerts: Iterable[Alert]) -> Text:
    """Alerts of this series, one per line, with state symbol and word."""
    text = Text()
    for alert in alerts:
        style = {"critical": "bold red", "warning": "yellow"}.get(alert.severity, "cyan")
        word = "silenced" if alert.silenced else alert.state.value
        if alert.held_until is not None and not alert.silenced:
            word = "held"  # firing while the condition is false: the summary says until when
        if word == "firing":
            symbol = SEVERITY_SYMBOL.get(alert.severity, "▲")
        else:
            symbol = "⏸" if word == "held" else "◔"
        text.append(f"{symbol} {word} {alert.severity} ", style)
        text.append(f"{safe_text(alert.rule, 60)} ", "bold")
        text.append(safe_text(alert.summary, 200))
        text.append("\n")
    if not text:
        text.append("✓ no alerts on this series", "green")
    return text


def lint_text(findings: Iterable[Finding]) -> Text:
    """`mqtop lint` findings of this queue: severity, rule id, why, and the fix."""
    text = Text()
    text.append("Topology lint (docs/lint.md)\n", "bold")
    for f in findings:
        style = {"critical": "bold red", "warning": "yellow"}.get(f.severity, "cyan")
        text.append(f"{SEVERITY_SYMBOL.get(f.severity, '▲')} {f.severity} ", style)
        text.append(f"{f.rule} ", "bold")
        text.append(safe_text(f.message, 300))
        text.append("\n    fix: ", "dim")
        text.append(f.fix + "\n", "dim")
    return text


class DetailScreen(DashboardScreen):
    """Charts and details of one series."""

    KEYMAP = "detail"

    BINDINGS: ClassVar[list[BindingType]] = bindings(DETAIL)

    def __init__(self, key: SeriesKey) -> None:
        super().__init__()
        self.key = key
        self.window_index = 0
        # charts of a remote series: points read from its source, per window (server-side step)
        self._remote_points: dict[str, list[tuple[float, float | None]]] = {}
        self._remote_for: tuple[int, float] | None = None  # (window, fetched at)
        self.lint_checked = False  # the lint findings were looked up (shown when any)
        self._charts_drawn = False  # the charts were drawn once (the first tab activation draws)

    @property
    def remote(self) -> bool:
        """True when the series is read from a Prometheus source."""
        return self.host.engine.source_of(self.key.broker) is not None

    @property
    def windows(self) -> tuple[tuple[str, float], ...]:
        """The chart windows of this series."""
        return WINDOWS + LONG_WINDOWS if self.remote else WINDOWS

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The 7d and 30d windows exist for series read from a source only."""
        if action == "window" and parameters and not self.remote:
            return int(str(parameters[0])) < len(WINDOWS)
        return True

    def compose(self) -> ComposeResult:
        yield Static(id="detail-title")
        tabs = [Tab(label, id=f"w{i}") for i, (label, _) in enumerate(self.windows)]
        yield Tabs(*tabs, id="windows")
        with VerticalScroll(id="detail-body"):
            yield Static(id="detail-summary")
            with Horizontal(id="charts-top", classes="charts"):
                yield PlotextPlot(id="chart-backlog")
                yield PlotextPlot(id="chart-rates")
            with Horizontal(id="charts-bottom", classes="charts"):
                yield PlotextPlot(id="chart-lag")
                yield PlotextPlot(id="chart-inflight")
            yield Static(id="detail-alerts")
            lint = Static(id="detail-lint")
            lint.display = False  # shown when the queue has findings
            yield lint
            yield Static(id="detail-partitions")
            yield Static(id="detail-consumers")
            yield Static(id="detail-info")
        yield Footer()

    def on_mount(self) -> None:
        """Draw with the data the app has; look up the queue's lint findings."""
        self.refresh_all()
        self._fetch_lint()

    @work(exclusive=True, group="detail-lint", exit_on_error=False)
    async def _fetch_lint(self) -> None:
        """Findings of `mqtop lint` on this queue (the broker's topology, read off the UI)."""
        found = await self.host.lint_findings(self.key.broker)
        mine = [f for f in found or () if f.queue == self.key.queue]
        if self.is_mounted:
            widget = self.query_one("#detail-lint", Static)
            widget.display = bool(mine)
            if mine:
                widget.update(lint_text(mine))
        self.lint_checked = True

    def on_data_refreshed(self, message: DataRefreshed) -> None:
        """Redraw when visible."""
        if self.is_current:
            self.refresh_all()

    def on_resize(self) -> None:
        """The summary's metrics per line follow the width."""
        if self.is_mounted:
            self.refresh_all()

    def on_screen_resume(self) -> None:
        """Catch up after a screen on top closes."""
        self.refresh_all()

    def on_tabs_tab_activated(self, event: Tabs.TabActivated) -> None:
        """Clicking (or arrowing to) a window tab changes the chart window."""
        if event.tab is not None and event.tab.id:
            index = int(event.tab.id[1:])
            if index == self.window_index and self._charts_drawn:
                return  # set by action_window, which drew already: no second draw
            self.window_index = index
            self._draw_charts()

    def action_window(self, index: int) -> None:
        """Show the last 5m / 1h / 24h (7d / 30d for series from a source)."""
        if index >= len(self.windows):
            return
        self.window_index = index
        self.query_one(Tabs).active = f"w{index}"
        self._draw_charts()

    def action_back(self) -> None:
        """Back to the overview."""
        self.dismiss(None)

    def action_dlq(self) -> None:
        """Open this queue's DLQ (or the queue itself when it is a DLQ)."""
        view = self.host.engine.store.view(self.key)
        if view is None:
            return
        (row,) = build_rows([view], {}, [], self.host.clock())
        target = dlq_target(row, self.host.data.views)
        if target is None:
            self.notify("no dead-letter queue is known for this queue", severity="warning")
            return
        self.host.open_dlq(self.key.broker, target)

    def palette_commands(self) -> Iterable[SystemCommand]:
        """Chart windows in the palette."""
        for i, (label, _) in enumerate(self.windows):
            yield SystemCommand(
                f"Chart window {label}", f"show the last {label}", partial(self.action_window, i)
            )

    # -- drawing -----------------------------------------------------------------------

    def refresh_all(self) -> None:
        """Title, summary, charts and tables from the store."""
        view = self.host.engine.store.view(self.key)
        title = Text()
        title.append(" ◀ ", "bold reverse")
        title.append(f" {safe_text(self.key.broker, 40)} / ", "dim")
        title.append(safe_text(self.key.queue, 120), "bold")
        if self.key.group:
            title.append(f"  group {safe_text(self.key.group, 80)}", "bold cyan")
        if view is not None:
            title.append(f"  · {safe_text(view.kind, 20)}", "dim")
            if view.stale:
                title.append("  ◇ stale (not in the last poll)", "yellow")
            if view.dlq:
                title.append("  · DLQ ")
                title.append(safe_text(view.dlq, 80), "bold magenta")
                title.append(" (d)", "dim")
        else:
            title.append("  (no data yet)", "dim")
        self.query_one("#detail-title", Static).update(title)
        width = self.size.width or 120
        self.query_one("#detail-summary", Static).update(summary_table(view, width))
        self.query_one("#detail-alerts", Static).update(
            alerts_text(self.host.data.alerts_for(self.key))
        )
        info = view.info if view is not None else {}
        for widget_id, name, title_text in (
            ("#detail-partitions", "partitions", "Partitions"),
            ("#detail-consumers", "consumers", "Consumers"),
        ):
            records = info.get(name)
            table = (
                records_table(title_text, records) if isinstance(records, list | tuple) else None
            )
            widget = self.query_one(widget_id, Static)
            widget.display = table is not None
            if table is not None:
                widget.update(table)
        details = info_table(info)
        info_widget = self.query_one("#detail-info", Static)
        info_widget.display = details is not None
        if details is not None:
            info_widget.update(details)
        self._draw_charts()

    def chart_data(self, metric: str) -> tuple[str, list[tuple[float, float | None]]]:
        """Where the charted points of a metric come from (``source`` or ``store``) and them."""
        remote = self._remote_points.get(metric) if self._remote_for else None
        if remote is not None:
            return "source", list(remote)
        _, window = self.windows[self.window_index]
        end = self.host.data.time
        return "store", list(
            self.host.engine.store.range(self.key, metric, end - window, end, CHART_POINTS)
        )

    def _series(self, metric: str, start: float, end: float) -> tuple[list[float], list[float]]:
        remote = self._remote_points.get(metric) if self._remote_for else None
        points = (
            remote
            if remote is not None
            else self.host.engine.store.range(self.key, metric, start, end, CHART_POINTS)
        )
        xs: list[float] = []
        ys: list[float] = []
        for t, v in points:
            if v is not None:
                xs.append((t - end) / 60.0)
                ys.append(v)
        return xs, ys

    def _remote_history(self, window: float, end: float) -> None:
        """Ask the source for this window's points when due (never waits for the answer)."""
        if not self.remote:
            return
        fetched = self._remote_for
        refresh = max(self.host.engine.store.interval, window / CHART_POINTS)
        if fetched is None or fetched[0] != self.window_index or end - fetched[1] >= refresh:
            if fetched is not None and fetched[0] != self.window_index:
                self._remote_for = None  # another window: the store's points until it answers
                self._remote_points = {}
            self._fetch_history(self.window_index, end - window, end)

    @work(exclusive=True, group="detail-history", exit_on_error=False)
    async def _fetch_history(self, index: int, start: float, end: float) -> None:
        """Points of every charted metric from the source (query_range, server-side step)."""
        host = self.host
        answers = await asyncio.gather(
            *(host.chart_points(self.key, m, start, end, CHART_POINTS) for m in CHART_METRICS),
            return_exceptions=True,
        )
        if index != self.window_index:
            return
        failed = next((a for a in answers if isinstance(a, BaseException)), None)
        self._remote_for = (index, end)
        if failed is not None:
            self._remote_points = {}
            self.notify(
                safe_text(f"history from the source is unavailable: {describe_error(failed)}", 300),
                severity="warning",
            )
        else:
            self._remote_points = {
                m: list(a)
                for m, a in zip(CHART_METRICS, answers, strict=True)
                if isinstance(a, list)
            }
        if self.is_mounted:
            self._draw_charts(fetch=False)

    def _draw_charts(self, fetch: bool = True) -> None:
        label, window = self.windows[self.window_index]
        end = self.host.data.time
        start = end - window
        if fetch:
            self._remote_history(window, end)
        for widget_id, title, axis, metrics in CHARTS:
            plot = self.query_one(widget_id, PlotextPlot)
            plt = plot.plt
            plt.clear_data()
            plt.clear_figure()
            plt.title(f"{title} · last {label}")
            plt.xlabel("minutes ago")
            values: list[float] = []
            for metric, name in metrics:
                xs, ys = self._series(metric, start, end)
                if xs:
                    plt.plot(xs, ys, label=name, marker="braille")
                    values += ys
            if not values:
                plt.title(f"{title} · last {label} · no data (not exposed or not yet polled)")
            elif axis != "rate":
                # whole numbers on the axis: counts are never 1706.7, seconds read as durations
                ticks = count_ticks(min(values), max(values))
                shown = [metric_text(axis, float(t)) for t in ticks]
                plt.yticks([float(t) for t in ticks], shown)
            plt.xlim(-window / 60.0, 0)
            plot.refresh()
        self._charts_drawn = True
