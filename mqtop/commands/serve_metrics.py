"""``mqtop serve``'s own families on /metrics: alert states and the daemon's health.

Both are built per scrape from one :class:`Health` snapshot, so a scrape never mixes one
evaluation's alerts with another's counters. The alert families (one series per pending or
firing alert: thousands when a rule matches many queues) change once per evaluation: they are
handed to the exposition as :class:`~mqtop.exposition.CachedFamilies` keyed on the snapshot's
alert tuple, rendered and compressed once per evaluation instead of once per scrape.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from alerts.model import Alert, AlertState
from mqtop import __version__
from mqtop.exposition import CachedFamilies
from mqtop.kernel.model import BrokerStatus
from mqtop.kernel.store import TimeSeriesStore


@dataclass(frozen=True, slots=True)
class Health:
    """The daemon's own numbers and the alerts of the same evaluation, published together by
    the event loop for the HTTP thread (a scrape never sees one cycle's alerts with another
    cycle's counters)."""

    started: float
    last_evaluation: float | None = None
    evaluation_seconds: float = 0.0
    evaluations: int = 0
    reloads: Mapping[str, int] = field(default_factory=dict)
    last_reload_ok: bool = True
    last_reload: float | None = None
    notifications: Mapping[tuple[str, str], int] = field(default_factory=dict)
    silences: int = 0
    interval: float = 5.0
    alerts: tuple[Alert, ...] = ()


def alert_families(health: Health) -> CachedFamilies:
    """``mqtop_alert`` and the firing / pending counts of ``health``'s evaluation."""
    alerts = health.alerts
    return CachedFamilies("alerts", alerts, lambda: _alert_families(alerts))


def _alert_families(alerts: tuple[Alert, ...]) -> Iterable[Any]:
    from prometheus_client.core import GaugeMetricFamily

    labels = ["rule", "severity", "state", "broker", "queue", "group"]
    active = GaugeMetricFamily(
        "mqtop_alert",
        "1 for every pending or firing alert (state label: pending or firing).",
        labels=labels,
    )
    firing: dict[str, int] = {"info": 0, "warning": 0, "critical": 0}
    pending: dict[str, int] = dict.fromkeys(firing, 0)
    for alert in alerts:
        active.add_metric(
            [
                alert.rule,
                alert.severity,
                alert.state.value,
                alert.broker or "",
                alert.queue or "",
                alert.group or "",
            ],
            1.0,
        )
        counts = firing if alert.state is AlertState.FIRING else pending
        counts[alert.severity] = counts.get(alert.severity, 0) + 1
    yield active
    for name, counts, text in (
        ("mqtop_alerts_firing", firing, "Firing alerts by severity."),
        ("mqtop_alerts_pending", pending, "Pending alerts by severity."),
    ):
        family = GaugeMetricFamily(name, text, labels=["severity"])
        for severity, count in counts.items():
            family.add_metric([severity], float(count))
        yield family


class SeriesCounts:
    """Live series per broker, counted once per store generation (not once per scrape)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cached: tuple[int, dict[str, int]] | None = None

    def get(self, store: TimeSeriesStore) -> dict[str, int]:
        """{broker: live series} of ``store`` now."""
        with self._lock:
            generation = store.generation
            if self._cached is not None and self._cached[0] == generation:
                return self._cached[1]
            counts: dict[str, int] = {}
            for view in store.views(include_stale=False):
                counts[view.key.broker] = counts.get(view.key.broker, 0) + 1
            self._cached = (generation, counts)
            return counts


class DaemonCollector:
    """prometheus_client collector for the daemon's health (the alerts: alert_families)."""

    def __init__(
        self, health: Health, statuses: Iterable[BrokerStatus], series: Mapping[str, int]
    ) -> None:
        self._health = health
        self._statuses = list(statuses)
        self._series = series

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        health = self._health
        yield GaugeMetricFamily(
            "mqtop_silences_active", "Silences in force.", value=float(health.silences)
        )

        statuses = self._statuses
        now = time.time()
        last = GaugeMetricFamily(
            "mqtop_broker_last_success_timestamp_seconds",
            "Time of the last successful poll.",
            labels=["broker"],
        )
        failures = GaugeMetricFamily(
            "mqtop_broker_consecutive_failures",
            "Polls failed in a row.",
            labels=["broker"],
        )
        stale = GaugeMetricFamily(
            "mqtop_broker_stale",
            "1 when no poll succeeded within 2.5 poll intervals.",
            labels=["broker"],
        )
        series = GaugeMetricFamily(
            "mqtop_series", "Live series (queues x groups) per broker.", labels=["broker"]
        )
        per_broker = self._series
        for status in statuses:
            if status.last_success is not None:
                last.add_metric([status.name], status.last_success)
            failures.add_metric([status.name], float(status.consecutive_failures))
            stale.add_metric([status.name], 1.0 if status.is_stale(now) else 0.0)
            series.add_metric([status.name], float(per_broker.get(status.name, 0)))
        yield last
        yield failures
        yield stale
        yield series

        yield GaugeMetricFamily(
            "mqtop_evaluation_duration_seconds",
            "Duration of the last alert evaluation.",
            value=health.evaluation_seconds,
        )
        if health.last_evaluation is not None:
            yield GaugeMetricFamily(
                "mqtop_evaluation_last_timestamp_seconds",
                "Time of the last alert evaluation.",
                value=health.last_evaluation,
            )
        yield CounterMetricFamily(
            "mqtop_evaluations", "Alert evaluation cycles.", value=float(health.evaluations)
        )
        notifications = CounterMetricFamily(
            "mqtop_notifications",
            "Notifications by notifier and result (sent, failed, dropped).",
            labels=["notifier", "result"],
        )
        for (name, result), count in sorted(health.notifications.items()):
            notifications.add_metric([name, result], float(count))
        yield notifications
        reloads = CounterMetricFamily(
            "mqtop_config_reloads", "Config reloads (SIGHUP) by result.", labels=["result"]
        )
        for result in ("success", "failure"):
            reloads.add_metric([result], float(health.reloads.get(result, 0)))
        yield reloads
        yield GaugeMetricFamily(
            "mqtop_config_last_reload_successful",
            "1 when the last config reload succeeded (or none was attempted).",
            value=1.0 if health.last_reload_ok else 0.0,
        )
        info = GaugeMetricFamily("mqtop_build_info", "mqtop version.", labels=["version"])
        info.add_metric([__version__], 1.0)
        yield info
        yield GaugeMetricFamily(
            "mqtop_start_time_seconds", "When the daemon started.", value=health.started
        )
