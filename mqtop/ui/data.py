"""What the screens show: one consistent picture built from the store (no Textual here)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from weakref import WeakKeyDictionary

from alerts.model import Alert, AlertEvent, AlertState
from mqtop.engine import Engine
from mqtop.kernel.model import BrokerStatus, SeriesKey, SeriesView
from mqtop.ui.alerting import AlertSource
from mqtop.ui.arranged import Arranged, Arrangement, prepare
from mqtop.ui.rows import Row, RowCache, build_rows, name_widths
from mqtop.ui.totals import Totals, totals_by_broker


@dataclass(frozen=True)
class DashboardData:
    """One consistent picture of everything the screens show."""

    time: float
    views: tuple[SeriesView, ...] = ()
    rows: tuple[Row, ...] = ()
    statuses: Mapping[str, BrokerStatus] = field(default_factory=dict)
    alerts: tuple[Alert, ...] = ()
    resolved: tuple[Alert, ...] = ()
    silences: tuple[Any, ...] = ()
    generation: int = 0
    firing_count: int = 0  # firing, not silenced, warning or critical (the header's red count)
    critical_count: int = 0  # of those, critical
    info_count: int = 0  # firing, not silenced, severity info (counted apart)
    held_count: int = 0  # firing, not silenced, condition false: held for flapping (apart)
    polled: bool = False  # at least one broker has answered or failed a poll
    # totals of every row and of each broker's rows (the totals line without a filter),
    # summed here in the worker: at 50,000 rows they cost the UI thread ~100 ms a refresh
    totals: Totals | None = None
    broker_totals: tuple[tuple[str, Totals], ...] = ()
    names: Mapping[str, int] | None = None  # name column widths of every row (name_widths)
    # the rows arranged (sorted, filtered, grouped) for the overview as it was when the build
    # started, in the worker: the UI thread only swaps them in (None: no overview)
    arranged: Arranged | None = None

    def view(self, key: SeriesKey) -> SeriesView | None:
        """The view of one series, if present."""
        for view in self.views:
            if view.key == key:
                return view
        return None

    def alerts_for(self, key: SeriesKey) -> list[Alert]:
        """Alerts on one series."""
        return [
            a
            for a in self.alerts
            if a.broker == key.broker and a.queue == key.queue and a.group == key.group
        ]

    def firing(self) -> list[Alert]:
        """Firing alerts that are not silenced (every severity)."""
        return [a for a in self.alerts if a.state == AlertState.FIRING and not a.silenced]


# the rows of the last build per store, so a series that did not change keeps its row
_ROW_CACHES: WeakKeyDictionary[object, RowCache] = WeakKeyDictionary()


def compute_data(
    engine: Engine,
    alerts: AlertSource,
    statuses: dict[str, BrokerStatus],
    now: float,
    arrangement: Arrangement | None = None,
) -> tuple[DashboardData, list[AlertEvent]]:
    """Evaluate alerts and build the rows (runs in a worker thread; reads the store only),
    arranged for the overview's ``arrangement`` when given."""
    store = engine.store
    events = alerts.evaluate(store, statuses, now)
    current = alerts.alerts()
    views = store.views()
    cache = _ROW_CACHES.get(store)
    if cache is None:
        cache = _ROW_CACHES.setdefault(store, RowCache())
    rows = build_rows(views, statuses, current, now, cache)
    # held alerts (firing, condition false) are counted apart, so the header never claims a
    # problem that is not there now
    firing = [a for a in current if a.state == AlertState.FIRING and not a.silenced]
    now_true = [a for a in firing if a.held_until is None]
    problems = [a for a in now_true if a.severity in ("warning", "critical")]
    (overall, each), names = totals_by_broker(rows), name_widths(rows)
    arranged = None
    if arrangement is not None:
        arranged = prepare(rows, arrangement, statuses, every=(overall, each, names))
    return (
        DashboardData(
            time=now,
            views=tuple(views),
            rows=tuple(rows),
            statuses=statuses,
            alerts=tuple(current),
            resolved=tuple(alerts.recent_resolved(50)),
            silences=tuple(alerts.silences()),
            generation=store.generation,
            firing_count=len(problems),
            critical_count=sum(1 for a in problems if a.severity == "critical"),
            info_count=len(now_true) - len(problems),
            held_count=len(firing) - len(now_true),
            polled=any(s.up is not None for s in statuses.values()) or bool(views),
            totals=overall,
            broker_totals=each,
            names=names,
            arranged=arranged,
        ),
        events,
    )
