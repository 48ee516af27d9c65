"""Immutable samples and snapshots, and the fixed metric vocabulary.

Collectors emit :class:`BrokerSnapshot` objects; the store keeps their values as time
series; every consumer (CLI, alerts, dashboard, exporter) reads the store. Metric names are
the public contract. Counters are monotonic totals the store turns into rates; they are not
printed themselves.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple


class MetricKind(enum.Enum):
    """How a stored value behaves over time."""

    GAUGE = "gauge"
    COUNTER = "counter"


@dataclass(frozen=True, slots=True)
class MetricDef:
    """One metric: its name, kind and meaning."""

    name: str
    kind: MetricKind
    help: str
    unit: str = ""
    public: bool = True
    derived_from: str | None = None  # counter a public rate is derived from


# Public metrics, in display order (names fixed by the contract).
PUBLIC_METRICS: tuple[MetricDef, ...] = (
    MetricDef("queue_length", MetricKind.GAUGE, "Messages waiting to be consumed.", "messages"),
    MetricDef("in_flight", MetricKind.GAUGE, "Delivered but not yet acknowledged.", "messages"),
    MetricDef(
        "publish_rate",
        MetricKind.GAUGE,
        "Messages per second entering the queue.",
        "messages/s",
        derived_from="published_total",
    ),
    MetricDef(
        "processing_rate",
        MetricKind.GAUGE,
        "Messages per second acknowledged or consumed.",
        "messages/s",
        derived_from="processed_total",
    ),
    MetricDef(
        "error_rate",
        MetricKind.GAUGE,
        "Share of messages dead-lettered: dead-lettered / (processed + dead-lettered).",
        "ratio",
    ),
    MetricDef("latency_seconds", MetricKind.GAUGE, "Age of the oldest waiting message.", "seconds"),
    MetricDef(
        "consumer_lag_messages", MetricKind.GAUGE, "Consumer group lag in messages.", "messages"
    ),
    MetricDef(
        "consumer_lag_seconds",
        MetricKind.GAUGE,
        "How far behind in time the group is (now minus timestamp of the next message).",
        "seconds",
    ),
    MetricDef("consumers", MetricKind.GAUGE, "Active consumers or group members.", "consumers"),
    MetricDef(
        "dlq_length", MetricKind.GAUGE, "Length of this queue's dead-letter queue.", "messages"
    ),
    MetricDef(
        "group_status",
        MetricKind.GAUGE,
        "Health status of a consumer group or queue: 0 OK, 1 WARN, 2 STALL, 3 STOP, 4 ERROR.",
        "",
    ),
    MetricDef(
        "dlq_inflow_rate",
        MetricKind.GAUGE,
        "Messages per second entering this queue's dead-letter queue.",
        "messages/s",
    ),
)

# Monotonic totals collectors may report; the store derives rates from them.
COUNTER_METRICS: tuple[MetricDef, ...] = (
    MetricDef("published_total", MetricKind.COUNTER, "Messages ever published.", public=False),
    MetricDef("processed_total", MetricKind.COUNTER, "Messages ever acknowledged.", public=False),
    MetricDef(
        "dead_lettered_total", MetricKind.COUNTER, "Messages ever dead-lettered.", public=False
    ),
)

METRICS: Mapping[str, MetricDef] = MappingProxyType(
    {m.name: m for m in PUBLIC_METRICS + COUNTER_METRICS}
)
PUBLIC_METRIC_NAMES: tuple[str, ...] = tuple(m.name for m in PUBLIC_METRICS)
COUNTER_NAMES: frozenset[str] = frozenset(m.name for m in COUNTER_METRICS)

GROUP_STATUS_NAMES: tuple[str, ...] = ("OK", "WARN", "STALL", "STOP", "ERROR")


def group_status_name(value: float | None) -> str | None:
    """Map a numeric group_status to its name (None stays None)."""
    if value is None or math.isnan(value):
        return None
    index = int(value)
    return GROUP_STATUS_NAMES[index] if 0 <= index < len(GROUP_STATUS_NAMES) else None


class SeriesKey(NamedTuple):
    """Identity of one series: the three labels of the contract."""

    broker: str
    queue: str
    group: str | None = None

    def label(self) -> str:
        """Compact human label: ``broker/queue`` or ``broker/queue [group]``."""
        base = f"{self.broker}/{self.queue}"
        return f"{base} [{self.group}]" if self.group else base


_EMPTY: Mapping[str, Any] = MappingProxyType({})
_METRIC_NAMES = frozenset(METRICS)
_NUMBER = (int, float)


@dataclass(frozen=True, slots=True)
class SeriesSample:
    """Values of one series at one poll.

    ``values`` holds gauges and counters by metric name; a metric the broker does not
    expose is simply absent (or None) and is reported as null. ``info`` carries detail that
    is not a time series (partition table, FIFO flag, status text).
    """

    key: SeriesKey
    kind: str
    values: Mapping[str, float | None]
    dlq: str | None = None
    info: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    def __post_init__(self) -> None:
        values = dict(self.values)
        if not _METRIC_NAMES.issuperset(values):
            unknown = next(name for name in values if name not in METRICS)
            raise ValueError(f"unknown metric {unknown!r}")
        for name, value in values.items():
            # exact float / int / None first: the checks run for every series of every poll
            kind = type(value)
            if kind is float:
                if value != value:  # NaN
                    raise ValueError(f"metric {name!r} must be a number or None, got {value!r}")
            elif (
                value is not None
                and kind is not int
                and (not isinstance(value, _NUMBER) or math.isnan(value))
            ):
                raise ValueError(f"metric {name!r} must be a number or None, got {value!r}")
        object.__setattr__(self, "values", MappingProxyType(values))
        if not isinstance(self.info, MappingProxyType):
            object.__setattr__(self, "info", MappingProxyType(dict(self.info)))

    @classmethod
    def trusted(
        cls,
        key: SeriesKey,
        kind: str,
        values: dict[str, float | None],
        dlq: str | None = None,
        info: dict[str, Any] | None = None,
    ) -> SeriesSample:
        """A sample built without the checks of the constructor, for a collector whose values
        are typed by its own code: every name in ``values`` is a metric of :data:`METRICS` and
        every value a float, an int or None, never NaN. The result is the same read-only sample
        the constructor makes; ``values`` and ``info`` are wrapped, not copied, so the caller
        hands them over and keeps no reference. Anything decoded from untrusted input as it
        is (plugins, configuration) goes through the constructor."""
        new = object.__new__(cls)
        _set_key(new, key)
        _set_kind(new, kind)
        _set_values(new, MappingProxyType(values))
        _set_dlq(new, dlq)
        _set_info(new, MappingProxyType(info) if info else _EMPTY)
        return new

    def with_values(
        self, added: Mapping[str, float | None], info: Mapping[str, Any] | None = None
    ) -> SeriesSample:
        """A copy with metrics added (``info`` merged under the sample's own), validating only
        what is added: the engine enriches every sample of every poll this way."""
        for name, value in added.items():
            if name not in METRICS:
                raise ValueError(f"unknown metric {name!r}")
            if value is not None and (not isinstance(value, int | float) or math.isnan(value)):
                raise ValueError(f"metric {name!r} must be a number or None, got {value!r}")
        new = object.__new__(SeriesSample)
        object.__setattr__(new, "key", self.key)
        object.__setattr__(new, "kind", self.kind)
        object.__setattr__(new, "values", MappingProxyType({**self.values, **added}))
        object.__setattr__(new, "dlq", self.dlq)
        merged = MappingProxyType({**info, **self.info}) if info else self.info
        object.__setattr__(new, "info", merged)
        return new


# the slots' own setters: what SeriesSample.trusted fills a new sample through
_SLOTS: Mapping[str, Any] = vars(SeriesSample)
_set_key = _SLOTS["key"].__set__
_set_kind = _SLOTS["kind"].__set__
_set_values = _SLOTS["values"].__set__
_set_dlq = _SLOTS["dlq"].__set__
_set_info = _SLOTS["info"].__set__


@dataclass(frozen=True, slots=True)
class BrokerSnapshot:
    """The outcome of one poll of one broker."""

    broker: str
    type: str
    time: float  # wall-clock seconds since the epoch when the poll started
    up: bool
    duration: float  # seconds the collection took
    series: tuple[SeriesSample, ...] = ()
    error: str | None = None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BrokerStatus:
    """Health of a broker as tracked by the polling engine."""

    name: str
    type: str
    address: str
    up: bool | None  # None until the first poll finished
    last_poll: float | None = None
    last_success: float | None = None
    last_duration: float | None = None
    error: str | None = None
    consecutive_failures: int = 0
    interval: float = 5.0
    warnings: tuple[str, ...] = ()
    # when the last successful poll finished and its data was stored (``last_success`` is
    # when that poll started): staleness is judged from here, so a slow poll is not "old"
    last_refresh: float | None = None
    timeout: float | None = None  # the deadline of one poll, when the engine knows it

    def staleness(self, now: float) -> float | None:
        """Seconds since the last successful poll stored its data (None if there never was one)."""
        last = self.last_refresh if self.last_refresh is not None else self.last_success
        return None if last is None else max(0.0, now - last)

    def stale_limit(self, polls: float) -> float:
        """Age beyond which data is stale: ``polls`` intervals, or one interval plus the
        poll's timeout when that is longer (a poll may take that long and still succeed)."""
        return max(polls * self.interval, self.interval + (self.timeout or 0.0))

    def is_stale(self, now: float, polls: float = 2.5) -> bool:
        """True when no successful poll stored data within :meth:`stale_limit`."""
        age = self.staleness(now)
        return age is None or age > self.stale_limit(polls)


@dataclass(frozen=True, slots=True)
class SeriesView:
    """What readers see of a series: labels, kind, DLQ and current public metrics."""

    key: SeriesKey
    kind: str
    dlq: str | None
    metrics: Mapping[str, float | None]
    info: Mapping[str, Any]
    updated: float  # time of the last sample
    stale: bool = False

    def get(self, metric: str) -> float | None:
        """Current value of a metric (None when unknown)."""
        return self.metrics.get(metric)


_VIEW_NEW = object.__new__
_VIEW_SET: tuple[Any, ...] = tuple(
    SeriesView.__dict__[name].__set__
    for name in ("key", "kind", "dlq", "metrics", "info", "updated", "stale")
)


def new_view(  # noqa: PLR0917 (positional: one call per series and poll)
    key: SeriesKey,
    kind: str,
    dlq: str | None,
    metrics: Mapping[str, float | None],
    info: Mapping[str, Any],
    updated: float,
    stale: bool,
) -> SeriesView:
    """A :class:`SeriesView` with the given fields, built through its slots rather than the
    frozen dataclass' ``__init__`` (about four times faster: the store builds one per series
    and poll). The view is as immutable as any other."""
    view = _VIEW_NEW(SeriesView)
    s_key, s_kind, s_dlq, s_metrics, s_info, s_updated, s_stale = _VIEW_SET
    s_key(view, key)
    s_kind(view, kind)
    s_dlq(view, dlq)
    s_metrics(view, metrics)
    s_info(view, info)
    s_updated(view, updated)
    s_stale(view, stale)
    return view
