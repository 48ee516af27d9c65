"""Rendering metrics for people (table) and machines (JSON, Prometheus text)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from mqtop.kernel.durations import humanize_seconds
from mqtop.kernel.model import PUBLIC_METRICS, BrokerStatus, SeriesView, group_status_name
from mqtop.kernel.safe import safe_text
from mqtop.kernel.secrets import redact


def iso_time(epoch: float) -> str:
    """ISO 8601 UTC with milliseconds."""
    return (
        dt.datetime.fromtimestamp(epoch, tz=dt.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def _num(value: float | None) -> float | int | None:
    if value is None:
        return None
    if float(value).is_integer() and abs(value) < 2**53:
        return int(value)
    return round(value, 6)


def series_json(view: SeriesView) -> dict[str, Any]:
    """One series in the contract's JSON shape."""
    out: dict[str, Any] = {
        "broker": view.key.broker,
        "queue": view.key.queue,
        "group": view.key.group,
        "kind": view.kind,
        "dlq": view.dlq,
        "metrics": {m.name: _num(view.metrics.get(m.name)) for m in PUBLIC_METRICS},
    }
    # every series carries "status": the group's or the queue's health (null while undecided
    # or when the broker does not tell enough, never guessed)
    out["status"] = group_status_name(view.metrics.get("group_status"))
    return out


def broker_json(status: BrokerStatus) -> dict[str, Any]:
    """One broker in the contract's JSON shape."""
    return {
        "name": status.name,
        "type": status.type,
        "up": bool(status.up),
        "error": None if status.error is None else redact(status.error),
    }


def metrics_json(
    statuses: Iterable[BrokerStatus], views: Iterable[SeriesView], now: float
) -> dict[str, Any]:
    """The ``metrics --format json`` document."""
    return {
        "time": iso_time(now),
        "brokers": [broker_json(s) for s in statuses],
        "series": [series_json(v) for v in views],
    }


def _fmt_count(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 10_000_000:
        return f"{value / 1e6:.1f}M"
    if abs(value) >= 100_000:
        return f"{value / 1e3:.0f}k"
    return f"{value:.0f}"


def _fmt_rate(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    if value >= 10:
        return f"{value:.0f}"
    return f"{value:.1f}"


def _fmt_pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("BROKER", "broker"),
    ("QUEUE", "queue"),
    ("GROUP", "group"),
    ("KIND", "kind"),
    ("BACKLOG", "queue_length"),
    ("INFLIGHT", "in_flight"),
    ("IN/s", "publish_rate"),
    ("OUT/s", "processing_rate"),
    ("ERR%", "error_rate"),
    ("AGE", "latency_seconds"),
    ("LAG", "consumer_lag_seconds"),
    ("CONS", "consumers"),
    ("DLQ", "dlq_length"),
)


def cell(view: SeriesView, field: str) -> str:
    """The display text of one table cell (untrusted names escaped)."""
    if field == "broker":
        return safe_text(view.key.broker, 24)
    if field == "queue":
        return safe_text(view.key.queue, 48)
    if field == "group":
        return safe_text(view.key.group or "-", 32)
    if field == "kind":
        return view.kind
    value = view.metrics.get(field)
    if field in ("publish_rate", "processing_rate"):
        return _fmt_rate(value)
    if field == "error_rate":
        return _fmt_pct(value)
    if field in ("latency_seconds", "consumer_lag_seconds"):
        return humanize_seconds(value)
    return _fmt_count(value)


def render_table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    """Plain aligned columns (numbers right-aligned)."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, text in enumerate(row):
            widths[i] = max(widths[i], len(text))
    numeric = [
        all(_looks_numeric(r[i]) for r in rows) if rows else False for i in range(len(headers))
    ]

    def line(cells: Sequence[str]) -> str:
        parts = [
            c.rjust(widths[i]) if numeric[i] else c.ljust(widths[i]) for i, c in enumerate(cells)
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), *(line(r) for r in rows)])


def _looks_numeric(text: str) -> bool:
    return text == "-" or (bool(text) and (text[0].isdigit() or text[0] == "-"))


def metrics_table(statuses: Iterable[BrokerStatus], views: Sequence[SeriesView]) -> str:
    """Human table: broker health lines, then one row per series."""
    lines = []
    for status in statuses:
        state = "up" if status.up else "DOWN"
        detail = f"  ({safe_text(redact(status.error), 200)})" if status.error else ""
        lines.append(f"{status.name} [{status.type}] {state}{detail}")
        for warning in status.warnings:
            lines.append(f"  warning: {safe_text(warning, 300)}")
    headers = [h for h, _ in TABLE_COLUMNS]
    rows = [[cell(v, f) for _, f in TABLE_COLUMNS] for v in views]
    lines.append("")
    lines.append(render_table(rows, headers) if rows else "(no queues found)")
    return "\n".join(lines)


def prometheus_text(statuses: Sequence[BrokerStatus], views: Sequence[SeriesView]) -> str:
    """Prometheus text exposition of the current values (null values are omitted)."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: (statuses, views)))
    return generate_latest(registry).decode("utf-8")


class SnapshotCollector:
    """prometheus_client collector over (statuses, views) supplied by a callable."""

    def __init__(self, source: Any) -> None:
        self._source = source

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import GaugeMetricFamily

        statuses, views = self._source()
        up = GaugeMetricFamily(
            "mqtop_broker_up", "1 when the last poll succeeded.", labels=["broker", "type"]
        )
        duration = GaugeMetricFamily(
            "mqtop_broker_poll_duration_seconds", "Duration of the last poll.", labels=["broker"]
        )
        for status in statuses:
            up.add_metric([status.name, status.type], 1.0 if status.up else 0.0)
            if status.last_duration is not None:
                duration.add_metric([status.name], status.last_duration)
        yield up
        yield duration
        labels = ["broker", "queue", "group"]
        for metric in PUBLIC_METRICS:
            family = GaugeMetricFamily(f"mqtop_{metric.name}", metric.help, labels=labels)
            for view in views:
                value = view.metrics.get(metric.name)
                if value is not None and not view.stale:
                    family.add_metric(
                        [view.key.broker, view.key.queue, view.key.group or ""], value
                    )
            yield family
