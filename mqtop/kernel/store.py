"""Embedded time-series store: bounded, in-process, fed by the polling engine.

Layout, per series:
* raw rows at poll resolution covering ``recent`` seconds, run-length encoded (a row of
  values per run of equal rows), their times shared by the series of a broker (``TimeRing``);
* rollup buckets (min, max, sum, count, last per metric) covering ``retention`` at a coarser
  resolution, computed from the ring when a bucket closes. For counters the "sum" slot holds the
  reset-aware increase inside the bucket, so rates over long windows stay exact.

A series its broker stops listing is marked stale at once and removed after
``REMOVE_AFTER_POLLS`` successful polls of that broker in a row without it (a deleted queue does
not stay with its last numbers); a failed poll counts for nothing. Unknown values are stored as
NaN and always read back as None. Readers get immutable views
(tuples and read-only mappings built on read); no caller ever holds a buffer the writer mutates.
Derived values (rates, error ratio) are computed lazily on read and cached until the next write.
"""

from __future__ import annotations

import math
import operator
import threading
import time
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from mqtop.kernel.model import (
    PUBLIC_METRIC_NAMES,
    BrokerSnapshot,
    SeriesKey,
    SeriesSample,
    SeriesView,
    new_view,
)
from mqtop.kernel.series import AVG as _AVG
from mqtop.kernel.series import DERIVED_RATES as _DERIVED_RATES
from mqtop.kernel.series import INC as _INC
from mqtop.kernel.series import LAST as _LAST
from mqtop.kernel.series import MAX as _MAX
from mqtop.kernel.series import MIN as _MIN
from mqtop.kernel.series import NAN, Layout, RollupTier, SeriesBuffer, TimeRing, layout_of
from mqtop.kernel.series import ROLL as _ROLL

_EMPTY: Mapping[str, Any] = MappingProxyType({})

MAX_RAW_ROWS = 20_000
# successful polls of its broker in a row without a series before the series is removed
REMOVE_AFTER_POLLS = 3

# public rate metric -> counter it is derived from
DERIVED_RATES: Mapping[str, str] = MappingProxyType(_DERIVED_RATES)

Point = tuple[float, float | None]


def _nan_to_none(value: float) -> float | None:
    return None if value != value else value


@dataclass(frozen=True, slots=True)
class RollupSpec:
    """Resolution of the rollup tier."""

    bucket: float
    buckets: int


def increase(values: Sequence[float]) -> float | None:
    """Reset-aware increase of a counter over consecutive samples (NaNs skipped)."""
    total = 0.0
    prev: float | None = None
    seen = 0
    for v in values:
        if v != v:
            continue
        seen += 1
        if prev is not None:
            total += v - prev if v >= prev else v  # a drop means the counter restarted
        prev = v
    return total if seen >= 2 else None


def _rate_in(ts: Sequence[float], col: Sequence[float]) -> float | None:
    """Reset-aware per-second rate of a counter column (NaNs skipped)."""
    total = 0.0
    prev = math.nan
    first_t = last_t = math.nan
    seen = 0
    for t, v in zip(ts, col, strict=True):
        if v != v:
            continue
        if seen:
            total += v - prev if v >= prev else v  # a drop: the counter restarted
        else:
            first_t = t
        prev = v
        last_t = t
        seen += 1
    span = last_t - first_t
    if seen < 2 or not span > 0:
        return None
    return total / span


Runs = list[tuple[float, float, int, int]]


def _rate_runs(runs: Runs, vals: array[float], width: int, j: int) -> float | None:
    """``_rate_in`` over rows given as runs of equal rows (``SeriesBuffer.runs_since``): the
    steps inside a run are zero, so a run counts as its first and last row."""
    total = 0.0
    prev = first_t = last_t = NAN
    seen = 0
    for t0, t1, n, r in runs:
        v = vals[r * width + j]
        if v != v:
            continue
        if seen:
            total += v - prev if v >= prev else v  # a drop: the counter restarted
        else:
            first_t = t0
        prev = v
        last_t = t1
        seen += n
    span = last_t - first_t
    if seen < 2 or not span > 0:
        return None
    return total / span


def _increase_runs(runs: Runs, vals: array[float], width: int, j: int) -> float | None:
    """``increase`` over rows given as runs of equal rows."""
    total = 0.0
    prev = NAN
    seen = 0
    for _, _, n, r in runs:
        v = vals[r * width + j]
        if v != v:
            continue
        if seen:
            total += v - prev if v >= prev else v
        prev = v
        seen += n
    return total if seen >= 2 else None


class _Series:
    """One series: labels and state, and its compact buffers (internal; never handed out)."""

    __slots__ = (
        "bucket_start",
        "buf",
        "cached_view",
        "dlq",
        "info",
        "key",
        "kind",
        "last_time",
        "last_values",
        "layout",
        "missed",
        "stable",
        "stale",
    )

    def __init__(
        self, key: SeriesKey, layout: Layout, cap: int, tier: RollupTier, ring: TimeRing
    ) -> None:
        self.key = key
        self.kind = ""
        self.dlq: str | None = None
        self.info: Mapping[str, Any] = _EMPTY
        self.layout = layout
        self.buf = SeriesBuffer(layout, cap, tier, ring)
        self.bucket_start = NAN  # start of the bucket being filled
        self.last_time = NAN
        self.last_values: Mapping[str, float | None] | None = None  # of the newest row
        self.stale = False
        self.missed = 0  # successful polls of the broker in a row that did not list it
        self.cached_view: SeriesView | None = None
        # the view's metrics while the newest run of equal rows covers the rate window:
        # further equal rows leave them as they are, so a quiet series' view is not recomputed
        self.stable: Mapping[str, float | None] | None = None

    @property
    def metrics(self) -> tuple[str, ...]:
        return self.layout.metrics

    @property
    def index(self) -> dict[str, int]:
        return self.layout.index

    def column(self, metric: int, since: float = -math.inf) -> tuple[list[float], list[float]]:
        """Times and values of one metric, oldest first, with t >= since."""
        ts, vs, lo = self.buf.rows(since)
        w = self.layout.width
        return ts[lo:].tolist(), vs[lo * w + metric :: w].tolist()


def _increase_fast(seq: Sequence[float]) -> float | None:
    """``increase`` of a counter column; one C-level pass when it has no gap and no reset."""
    if len(seq) >= 2:
        steps = list(map(operator.sub, seq[1:], seq[:-1]))
        total = math.fsum(steps)
        if total == total and min(steps) >= 0:  # no gap, no restart
            return total
    return increase(seq)


def _key_order(key: SeriesKey) -> tuple[str, str, str]:
    return (key.broker, key.queue, key.group or "")


class TimeSeriesStore:
    """Bounded in-memory time series for every (broker, queue, group)."""

    def __init__(
        self,
        interval: float = 5.0,
        recent: float = 900.0,
        retention: float = 86400.0,
        rollup_buckets: int = 144,
        rate_window: float | None = None,
    ) -> None:
        self.interval = interval
        self.recent = recent
        self.retention = max(retention, recent)
        bucket = max(self.retention / rollup_buckets, interval, 1.0)
        self.rollup = RollupSpec(bucket=bucket, buckets=math.ceil(self.retention / bucket) + 1)
        self.rate_window = rate_window or max(3 * interval, 15.0)
        self._series: dict[SeriesKey, _Series] = {}
        self._by_broker: dict[str, set[SeriesKey]] = {}
        self._lock = threading.RLock()
        self._subscribers: list[Callable[[BrokerSnapshot], None]] = []
        self._broker_interval: dict[str, float] = {}
        self._closed_buckets: list[tuple[SeriesKey, tuple[str, ...], float, array[float]]] = []
        self.collect_closed_buckets = False  # persistence turns this on
        self.remove_after = REMOVE_AFTER_POLLS
        self.removed = 0  # series removed because their broker stopped listing them
        self.generation = 0  # bumps on every write; cheap change detection for readers
        self._evict_at = -math.inf  # no series can be older than the retention before this
        # sorted views per (broker, include_stale), valid while the generation is unchanged:
        # the engine, the alert evaluator and the dashboard all ask after each poll
        self._views_cache: dict[tuple[str | None, bool], tuple[int, list[SeriesView]]] = {}
        # the series of every broker (None: all) in view order, until a series comes or goes
        self._order: dict[str | None, list[_Series]] = {}
        self._tiers: dict[Layout, RollupTier] = {}
        self._rings: dict[str, TimeRing] = {}  # poll times of each broker, shared by its series

    # -- writing -------------------------------------------------------------------

    def _capacity(self, interval: float) -> int:
        return min(MAX_RAW_ROWS, math.ceil(self.recent / max(interval, 0.01)) + 2)

    def _tier(self, layout: Layout) -> RollupTier:
        """The rollup tier of the series with ``layout`` (one per layout per store)."""
        tier = self._tiers.get(layout)
        if tier is None:
            tier = RollupTier(layout.width, self.rollup.buckets, self.rollup.bucket)
            self._tiers[layout] = tier
        return tier

    def _new_series(self, key: SeriesKey, metrics: tuple[str, ...], interval: float) -> _Series:
        layout = layout_of(metrics)
        ring = self._rings.get(key.broker)
        if ring is None:
            ring = self._rings[key.broker] = TimeRing()
        series = _Series(key, layout, self._capacity(interval), self._tier(layout), ring)
        self._evict_at = -math.inf  # its first time may be older than the oldest one seen
        self._series[key] = series
        self._by_broker.setdefault(key.broker, set()).add(key)
        self._order.clear()
        return series

    def ingest(self, snapshot: BrokerSnapshot, interval: float | None = None) -> None:
        """Store one broker poll. Series the broker no longer reports are marked stale, and
        removed once ``remove_after`` successful polls in a row did not report them."""
        with self._lock:
            if interval is not None:
                self._broker_interval[snapshot.broker] = interval
            ivl = self._broker_interval.get(snapshot.broker, self.interval)
            t = snapshot.time
            written = 0
            if snapshot.up and snapshot.series:
                ring = self._rings.get(snapshot.broker)
                if ring is None:
                    ring = self._rings[snapshot.broker] = TimeRing()
                tid = ring.id_of(t)
                write = self._write
                for sample in snapshot.series:
                    written += write(sample, t, ivl, tid)
                if len(ring.times) >= ring.check_at:
                    self._trim_ring(snapshot.broker, ring)
            ours = self._by_broker.get(snapshot.broker, set())
            # each series is written at most once per poll time: when as many were written
            # as the broker has, none is missing (the usual poll) and no set is built
            if written == len(ours):
                missing: Iterable[SeriesKey] = ()
            else:
                missing = ours - {s.key for s in snapshot.series} if snapshot.up else ours
            gone: list[SeriesKey] = []
            for key in missing:
                series = self._series[key]
                if not series.stale:
                    series.stale = True
                    series.cached_view = None
                if snapshot.up:
                    series.missed += 1
                    if series.missed >= self.remove_after:
                        gone.append(key)
            for key in gone:
                self._remove(key)
            self.removed += len(gone)
            self._evict(t)
            self.generation += 1
            subscribers = list(self._subscribers)
        for callback in subscribers:
            callback(snapshot)

    def _trim_ring(self, broker: str, ring: TimeRing) -> None:
        """Drop the broker's poll times no series refers to any more. Checked again once the
        ring has doubled, so a series that holds old times back costs nothing per poll."""
        low = ring.next_id
        series = self._series
        for key in self._by_broker.get(broker, ()):
            first = series[key].buf.first_id()
            if 0 <= first < low:
                low = first
        ring.trim(low)
        ring.check_at = 2 * len(ring.times) + 64

    def _write(self, sample: SeriesSample, t: float, interval: float, tid: int = -1) -> bool:
        """Store one sample; False when its time is not past the series' newest row.
        ``tid``: the id of ``t`` in the broker's ring of poll times, when known."""
        values = sample.values
        series = self._series.get(sample.key)
        if series is None:
            series = self._new_series(sample.key, tuple(sorted(values)), interval)
        last = series.last_values
        # a quiet queue reports what it reported before (often the very same mapping)
        quiet = last is not None and (last is values or last == values)
        if not quiet and not values.keys() <= series.layout.index.keys():
            series = self._relayout(series, values, interval)
        if t <= series.last_time:
            return False  # out of order or duplicate poll time: keep the ring monotonic
        if not series.bucket_start <= t < series.bucket_start + self.rollup.bucket:
            self._next_bucket(series, t)
        if quiet:
            series.buf.repeat(t, tid)  # the newest row again: a time id and an increment
            if t - series.last_time > self.rate_window:
                series.stable = None  # the window would hold this row alone
        else:
            get = values.get
            row = [NAN if (v := get(m)) is None else v for m in series.metrics]
            series.buf.push(t, row, tid)
            series.last_values = values
            series.stable = None
        series.last_time = t
        series.kind = sample.kind
        series.dlq = sample.dlq
        series.info = sample.info
        series.stale = False
        series.missed = 0
        series.cached_view = None
        return True

    def _next_bucket(self, series: _Series, t: float) -> None:
        """``t`` is past the bucket being filled: close it, and start the one of ``t``."""
        bucket = self.rollup.bucket
        start = t - (t % bucket)
        if start != series.bucket_start:
            if series.bucket_start == series.bucket_start:  # not NaN: close the previous one
                self._close_bucket(series, series.bucket_start)
            series.bucket_start = start

    def _relayout(
        self, old: _Series, values: Mapping[str, float | None], interval: float
    ) -> _Series:
        """A series gained metrics: rebuild its buffers with the wider layout."""
        metrics = tuple(sorted(set(old.metrics) | set(values)))
        ob = old.buf
        layout = layout_of(metrics)
        new = _Series(old.key, layout, ob.cap, self._tier(layout), ob.ring)
        nb = new.buf
        mapping = [metrics.index(m) for m in old.metrics]
        ow, nw = old.layout.width, new.layout.width
        # run by run, so the rows keep their run-length encoding
        first = ob.nrows - ob.count
        skip = first
        r = 0
        for run, n in enumerate(ob.runs):
            shown = n - min(skip, n)
            skip -= n - shown
            if not shown:
                continue
            full = [NAN] * nw
            for j, target in enumerate(mapping):
                full[target] = ob.vals[run * ow + j]
            nb.push(ob.time_at(first + r), full)
            for i in range(1, shown):
                nb.repeat(ob.time_at(first + r + i))
            r += shown
        starts, slots = ob.buckets()
        for i, start in enumerate(starts):
            row = array("f", [NAN]) * nw
            for j, target in enumerate(mapping):
                row[target] = slots[i * ow + j]
            nb.add_bucket(start, row)
        ob.release()
        new.bucket_start = old.bucket_start
        new.last_time = old.last_time
        new.kind, new.dlq, new.info = old.kind, old.dlq, old.info
        self._series[old.key] = new
        self._order.clear()
        return new

    def _close_bucket(self, series: _Series, start: float) -> None:
        """Aggregate the raw rows inside [start, start+bucket) into one bucket.

        The rows of the closing bucket are the newest ones, so only they are expanded from
        their runs; each metric's column is a strided slice, aggregated by C-level builtins
        unless it holds unknown values.
        """
        end = start + self.rollup.bucket
        ts, vs, lo = series.buf.rows(start)
        hi = bisect_left(ts, end, lo)
        if hi <= lo:
            return
        w = series.layout.width
        agg = array("f", [NAN]) * (w * _ROLL)
        counters = series.layout.counters
        for j in range(w):
            col = vs[lo * w + j : hi * w : w]
            total = math.fsum(col)
            if total == total:  # no unknown value (and no inf - inf)
                good: Sequence[float] = col
            else:
                good = [v for v in col if v == v]
                if not good:
                    continue
                total = math.fsum(good)
            base = j * _ROLL
            agg[base + _MAX] = max(good)
            agg[base + _LAST] = good[-1]
            if counters[j]:
                seq = vs[(lo - 1) * w + j : hi * w : w] if lo > 0 else col
                inc = _increase_fast(seq)
                agg[base + _INC] = NAN if inc is None else inc
            else:
                agg[base + _MIN] = min(good)
                agg[base + _AVG] = total / len(good)
        self._store_bucket(series, start, agg)
        if self.collect_closed_buckets:
            self._closed_buckets.append((series.key, series.metrics, start, agg))

    def _store_bucket(self, series: _Series, start: float, agg: array[float]) -> None:
        """Keep the slot readers use of a closed bucket's aggregate (``width * ROLL``)."""
        if start <= series.buf.newest_bucket():
            return  # already have this bucket (e.g. restored from persistence)
        slot = series.layout.rollup_slot
        series.buf.add_bucket(start, array("f", [agg[k] for k in slot]))

    def _evict(self, now: float) -> None:
        """Drop series not updated for longer than the retention (bounded memory)."""
        if now < self._evict_at:
            return  # (a series' last time only moves forward: none can have expired yet)
        horizon = now - self.retention
        dead = [k for k, s in self._series.items() if s.last_time < horizon]
        for key in dead:
            self._remove(key)
        times = (s.last_time for s in self._series.values() if s.last_time == s.last_time)
        oldest = min(times, default=math.inf)
        self._evict_at = oldest + self.retention if oldest < math.inf else -math.inf

    def _remove(self, key: SeriesKey) -> None:
        self._series.pop(key).buf.release()
        self._order.clear()
        keys = self._by_broker.get(key.broker)
        if keys is not None:
            keys.discard(key)
            if not keys:
                self._rings.pop(key.broker, None)  # nothing refers to its poll times

    def load_row(
        self,
        key: SeriesKey,
        kind: str,
        dlq: str | None,
        t: float,
        values: Mapping[str, float | None],
    ) -> None:
        """Restore one persisted raw row (used when loading history)."""
        with self._lock:
            sample = SeriesSample(key=key, kind=kind, values=values, dlq=dlq)
            self._write(sample, t, self._broker_interval.get(key.broker, self.interval))
            series = self._series[key]
            series.stale = True  # restored data is history, not a live reading
            self._evict_at = -math.inf
            self.generation += 1

    def load_bucket(
        self,
        key: SeriesKey,
        kind: str,
        metrics: tuple[str, ...],
        start: float,
        agg: Sequence[float],
    ) -> None:
        """Restore one persisted rollup bucket (older than the raw window)."""
        with self._lock:
            series = self._series.get(key)
            if series is None:
                series = self._new_series(key, metrics, self.interval)
                series.kind = kind
                series.stale = True
            if tuple(series.metrics) != tuple(metrics):
                full = array("f", [NAN]) * (series.layout.width * _ROLL)
                for j, m in enumerate(metrics):
                    if m in series.index:
                        t = series.index[m] * _ROLL
                        full[t : t + _ROLL] = array("f", agg[j * _ROLL : (j + 1) * _ROLL])
                agg = full
            self._store_bucket(series, start, array("f", agg))
            self._evict_at = -math.inf
            series.stable = None
            series.last_time = (
                max(series.last_time, start) if series.last_time == series.last_time else start
            )
            self.generation += 1

    def take_closed_buckets(self) -> list[tuple[SeriesKey, tuple[str, ...], float, array[float]]]:
        """Rollup buckets closed since the last call (for persistence)."""
        with self._lock:
            out, self._closed_buckets = self._closed_buckets, []
            return out

    def subscribe(self, callback: Callable[[BrokerSnapshot], None]) -> Callable[[], None]:
        """Call ``callback(snapshot)`` after every ingest; returns an unsubscribe function."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    # -- reading -------------------------------------------------------------------

    def keys(self) -> list[SeriesKey]:
        """Every series key currently held."""
        with self._lock:
            return list(self._series)

    def __len__(self) -> int:
        return len(self._series)

    def views(self, broker: str | None = None, include_stale: bool = True) -> list[SeriesView]:
        """Current views of every series (optionally of one broker), sorted by key.

        A new list each call (callers may keep or reorder it); the views are shared and
        immutable, and the sorted list is reused until the next write.
        """
        with self._lock:
            cache_key = (broker, include_stale)
            cached = self._views_cache.get(cache_key)
            if cached is not None and cached[0] == self.generation:
                return list(cached[1])
            generation = self.generation
            order = self._order.get(broker)
            if order is None:
                keys: Iterable[SeriesKey] = (
                    self._by_broker.get(broker, set()) if broker is not None else self._series
                )
                order = [self._series[k] for k in sorted(keys, key=_key_order)]
                self._order[broker] = order
            view = self._view
            out = [view(series) for series in order]
        if not include_stale:
            out = [v for v in out if not v.stale]
        with self._lock:
            if len(self._views_cache) > 64:
                self._views_cache.clear()
            self._views_cache[cache_key] = (generation, out)
        return list(out)

    def view(self, key: SeriesKey) -> SeriesView | None:
        """Current view of one series."""
        with self._lock:
            series = self._series.get(key)
            return None if series is None else self._view(series)

    def _view(self, series: _Series) -> SeriesView:
        cached = series.cached_view
        if cached is not None:
            return cached
        if series.stable is not None:
            view = new_view(
                series.key,
                series.kind,
                series.dlq,
                series.stable,
                series.info,
                series.last_time,
                series.stale,
            )
            series.cached_view = view
            return view
        metrics: dict[str, float | None] = dict.fromkeys(PUBLIC_METRIC_NAMES)
        buf = series.buf
        stable = False
        if buf.count:
            layout = series.layout
            newest = buf.newest()
            for j, name in layout.gauges:
                v = newest[j]
                metrics[name] = None if v != v else v
            # the rows of the rate window as runs of equal rows: a few, never expanded
            window: Runs | None = None
            since = series.last_time - self.rate_window - 1e-9
            vals, w = buf.vals, layout.width
            for rate_name, j in layout.rates:
                if metrics[rate_name] is None:
                    window = window or buf.runs_since(since)
                    metrics[rate_name] = _rate_runs(window, vals, w, j)
            if metrics["error_rate"] is None:
                index = layout.index
                if "dead_lettered_total" in index and "processed_total" in index:
                    window = window or buf.runs_since(since)
                    d = _increase_runs(window, vals, w, index["dead_lettered_total"])
                    p = _increase_runs(window, vals, w, index["processed_total"])
                    if d is not None and p is not None and d + p > 0:
                        metrics["error_rate"] = d / (d + p)
            # a window inside the newest run stays as it is while equal rows follow
            stable = window is None or (
                len(window) == 1 and window[0][2] >= 2 and window[0][3] == len(buf.runs) - 1
            )
        view = new_view(
            series.key,
            series.kind,
            series.dlq,
            MappingProxyType(metrics),
            series.info,
            series.last_time,
            series.stale,
        )
        series.cached_view = view
        if stable:
            series.stable = view.metrics
        return view

    def _window(
        self, series: _Series, metric: str, window: float
    ) -> tuple[list[float], list[float]]:
        j = series.index[metric]
        return series.column(j, since=series.last_time - window - 1e-9)

    def _rate(self, series: _Series, counter: str, window: float) -> float | None:
        ts, vs = self._window(series, counter, window)
        return _rate_in(ts, vs)

    def rate(self, key: SeriesKey, counter: str, window: float | None = None) -> float | None:
        """Per-second rate of a counter over the trailing window (reset-aware)."""
        with self._lock:
            series = self._series.get(key)
            if series is None or counter not in series.index:
                return None
            return self._rate(series, counter, window or self.rate_window)

    def window_values(self, key: SeriesKey, metric: str, window: float) -> tuple[Point, ...]:
        """Raw points of a stored metric over the trailing window (None for unknown)."""
        with self._lock:
            series = self._series.get(key)
            if series is None or metric not in series.index:
                return ()
            ts, vs = self._window(series, metric, window)
            return tuple((t, _nan_to_none(v)) for t, v in zip(ts, vs, strict=True))

    def range(
        self,
        key: SeriesKey,
        metric: str,
        start: float,
        end: float | None = None,
        points: int = 120,
    ) -> tuple[Point, ...]:
        """Points of ``metric`` in [start, end], downsampled to at most ``points``.

        Public rate metrics are derived from their counters; older-than-raw ranges come
        from the rollups (bucket averages; counters as bucket rates).
        """
        end = time.time() if end is None else end
        with self._lock:
            series = self._series.get(key)
            if series is None:
                return ()
            raw = self._range_raw(series, metric, start, end)
            oldest = series.buf.oldest_time()
            roll: list[Point] = []
            if oldest != oldest or start < oldest:
                limit = oldest if oldest == oldest else math.inf
                roll = self._range_rollup(series, metric, start, min(end, limit))
        merged = roll + raw
        return tuple(downsample(merged, points))

    def _range_raw(self, series: _Series, metric: str, start: float, end: float) -> list[Point]:
        counter = DERIVED_RATES.get(metric)
        if counter and metric not in series.index and counter in series.index:
            ts, vs = series.column(series.index[counter])
            out: list[Point] = []
            for i in range(1, len(ts)):
                if not (start <= ts[i] <= end):
                    continue
                a, b = vs[i - 1], vs[i]
                dt = ts[i] - ts[i - 1]
                if a != a or b != b or dt <= 0:
                    out.append((ts[i], None))
                else:
                    out.append((ts[i], (b - a if b >= a else b) / dt))
            return out
        if metric not in series.index:
            return []
        ts, vs = series.column(series.index[metric], since=start)
        return [(t, _nan_to_none(v)) for t, v in zip(ts, vs, strict=True) if t <= end]

    def _range_rollup(self, series: _Series, metric: str, start: float, end: float) -> list[Point]:
        counter = DERIVED_RATES.get(metric)
        use_counter = counter is not None and metric not in series.index and counter in series.index
        name = counter if use_counter and counter else metric
        if name not in series.index:
            return []
        j = series.index[name]
        w = series.layout.width
        out: list[Point] = []
        starts, slots = series.buf.buckets()
        # a counter's slot is its increase: a rate when asked for one, else unknown (a
        # counter has no average)
        scale = 1 / self.rollup.bucket if use_counter else NAN if series.layout.counters[j] else 1
        for i, t in enumerate(starts):
            if start <= t < end:
                v = slots[i * w + j] * scale
                out.append((t, None if v != v else v))
        return out

    def memory_bytes(self) -> int:
        """Bytes held by sample buffers (timestamps, values and rollups, compressed or not)."""
        with self._lock:
            rings = sum(r.nbytes() for r in self._rings.values())
            return rings + sum(s.buf.nbytes() for s in self._series.values())

    def raw_samples(self) -> int:
        """Number of raw (series, metric, time) samples currently retained."""
        with self._lock:
            return sum(s.buf.count * s.layout.width for s in self._series.values())


def downsample(points: Sequence[Point], limit: int) -> list[Point]:
    """Reduce to at most ``limit`` points by averaging equal-width time buckets."""
    if limit <= 0 or len(points) <= limit:
        return list(points)
    t0, t1 = points[0][0], points[-1][0]
    span = (t1 - t0) or 1.0
    width = span / limit
    sums = [0.0] * limit
    counts = [0] * limit
    times = [t0 + width * (i + 0.5) for i in range(limit)]
    present = [False] * limit
    for t, v in points:
        i = min(limit - 1, int((t - t0) / width))
        present[i] = True
        if v is not None:
            sums[i] += v
            counts[i] += 1
    return [
        (times[i], sums[i] / counts[i] if counts[i] else None) for i in range(limit) if present[i]
    ]
