"""Time-series store: rates with counter resets, bounded memory, rollups, downsampling,
immutable views and persistence reload (pure logic: no broker)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from mqtop.kernel.model import BrokerSnapshot, SeriesKey, SeriesSample
from mqtop.kernel.store import TimeSeriesStore, downsample, increase
from mqtop.persist import HistoryDB

KEY = SeriesKey("b", "q", None)


def snap(
    t: float,
    values: dict[str, float | None],
    key: SeriesKey = KEY,
    up: bool = True,
    kind: str = "queue",
) -> BrokerSnapshot:
    series = (SeriesSample(key=key, kind=kind, values=values),) if up else ()
    return BrokerSnapshot(
        broker=key.broker,
        type="x",
        time=t,
        up=up,
        duration=0.01,
        series=series,
        error=None if up else "down",
    )


def test_increase_handles_counter_reset():
    assert increase([10, 20, 30]) == 20
    # restart: 30 -> 5 counts as +5 (the counter started again from 0)
    assert increase([10, 30, 5, 15]) == 20 + 5 + 10
    assert increase([math.nan, 7]) is None
    assert increase([3]) is None


def test_rate_from_counter_with_reset():
    store = TimeSeriesStore(interval=1.0, recent=60, retention=600, rate_window=10)
    for i, total in enumerate([100, 110, 120, 5, 15]):  # reset between t=2 and t=3
        store.ingest(snap(1000.0 + i, {"published_total": total, "queue_length": 1}))
    view = store.view(KEY)
    assert view is not None
    # increases: 10, 10, 5 (reset), 10 = 35 over 4 s
    assert view.metrics["publish_rate"] == pytest.approx(35 / 4)
    assert store.rate(KEY, "published_total", window=1.5) == pytest.approx(10.0)


def test_null_is_never_zero():
    store = TimeSeriesStore(interval=1.0)
    store.ingest(snap(1.0, {"queue_length": 5, "consumers": None}))
    view = store.view(KEY)
    assert view is not None
    assert view.metrics["queue_length"] == 5
    assert view.metrics["consumers"] is None
    assert view.metrics["publish_rate"] is None  # no counter: unknown, not 0
    assert view.metrics["error_rate"] is None


def test_error_ratio_from_counters():
    store = TimeSeriesStore(interval=1.0, rate_window=100)
    store.ingest(snap(1.0, {"processed_total": 0, "dead_lettered_total": 0}))
    store.ingest(snap(2.0, {"processed_total": 90, "dead_lettered_total": 10}))
    view = store.view(KEY)
    assert view is not None
    assert view.metrics["error_rate"] == pytest.approx(0.1)
    assert view.metrics["processing_rate"] == pytest.approx(90.0)


def test_raw_ring_is_bounded_and_rollups_cover_retention():
    store = TimeSeriesStore(interval=1.0, recent=30, retention=600, rollup_buckets=60)
    for i in range(2000):
        store.ingest(snap(float(i), {"queue_length": float(i)}))
    raw = store.window_values(KEY, "queue_length", 10_000)
    assert len(raw) <= 32  # recent / interval + 2
    assert raw[-1] == (1999.0, 1999.0)
    seen = []
    for i in range(2000, 6000):
        store.ingest(snap(float(i), {"queue_length": float(i)}))
        seen.append(store.memory_bytes())
    # steady state: no growth (the broker's ring of poll times is trimmed now and then, so
    # the figure moves within a few hundred bytes and never trends up)
    assert max(seen[2000:]) <= max(seen[:2000])
    assert max(seen) - min(seen) < 8 * 600
    # older than the raw window: rollup buckets (10 s each), averaged
    points = store.range(KEY, "queue_length", start=5400, end=5999, points=1000)
    assert points
    assert points[0][0] >= 5400 - 10
    bucket_points = [p for p in points if p[0] < 5969]
    assert bucket_points, points[:3]
    t0, v0 = bucket_points[0]
    assert v0 == pytest.approx(t0 + 4.5)  # average of t0..t0+9


def test_counter_rates_from_rollups():
    store = TimeSeriesStore(interval=1.0, recent=20, retention=1000, rollup_buckets=100)
    for i in range(500):
        store.ingest(snap(float(i), {"published_total": float(i * 3)}))
    old = [
        p
        for p in store.range(KEY, "publish_rate", start=100, end=400, points=1000)
        if p[1] is not None
    ]
    assert old
    assert all(v == pytest.approx(3.0) for _, v in old)


def test_downsample_limits_points_and_averages():
    points = [(float(i), float(i)) for i in range(1000)]
    out = downsample(points, 10)
    assert len(out) == 10
    assert out[0][1] == pytest.approx(49.5)
    assert downsample(points[:5], 10) == points[:5]
    with_gaps = [(0.0, None), (1.0, 2.0), (2.0, None)]
    assert downsample(with_gaps, 1) == [(1.0, 2.0)]


def test_views_are_immutable_snapshots():
    store = TimeSeriesStore(interval=1.0)
    store.ingest(snap(1.0, {"queue_length": 1}))
    view = store.view(KEY)
    assert view is not None
    with pytest.raises(TypeError):
        view.metrics["queue_length"] = 99  # type: ignore[index]
    store.ingest(snap(2.0, {"queue_length": 2}))
    assert view.metrics["queue_length"] == 1  # the old view did not change under the reader
    again = store.view(KEY)
    assert again is not None and again.metrics["queue_length"] == 2
    points = store.range(KEY, "queue_length", 0, 10)
    assert isinstance(points, tuple)


def test_sorted_views_are_reused_until_the_next_write():
    store = TimeSeriesStore(interval=1.0)
    other = SeriesKey("a", "z", None)
    store.ingest(snap(1.0, {"queue_length": 1}))
    store.ingest(snap(1.0, {"queue_length": 5}, key=other))
    first = store.views()
    assert [v.key for v in first] == [other, KEY]  # sorted by broker, queue, group
    first.reverse()  # a caller's list is its own
    second = store.views()
    assert [v.key for v in second] == [other, KEY]
    assert second[0] is first[1]  # the same immutable views, not rebuilt
    store.ingest(snap(2.0, {}, up=False))  # broker "b" down: its series turns stale
    third = store.views()
    assert [(v.key, v.stale) for v in third] == [(other, False), (KEY, True)]
    assert [v.key for v in store.views(include_stale=False)] == [other]
    assert [v.key for v in store.views("b")] == [KEY]


def test_broker_down_marks_series_stale_and_recovers():
    store = TimeSeriesStore(interval=1.0)
    store.ingest(snap(1.0, {"queue_length": 3}))
    store.ingest(snap(2.0, {}, up=False))
    view = store.view(KEY)
    assert view is not None and view.stale
    assert view.metrics["queue_length"] == 3  # last value kept, flagged stale
    store.ingest(snap(3.0, {"queue_length": 4}))
    view = store.view(KEY)
    assert view is not None and not view.stale


def test_series_the_broker_stops_listing_is_removed_after_three_successful_polls():
    store = TimeSeriesStore(interval=1.0)
    other = SeriesKey("b", "other", None)
    store.ingest(snap(1.0, {"queue_length": 9}, key=other))
    store.ingest(snap(2.0, {"queue_length": 1}))  # lists q only
    store.ingest(snap(3.0, {}, up=False))  # a failed poll proves nothing: not counted
    store.ingest(snap(4.0, {"queue_length": 1}))
    view = store.view(other)
    assert view is not None and view.stale and view.metrics["queue_length"] == 9
    store.ingest(snap(5.0, {"queue_length": 1}))
    assert store.view(other) is None
    assert [v.key for v in store.views()] == [KEY] and store.removed == 1
    # a new queue of the same name later is a new series
    store.ingest(snap(6.0, {"queue_length": 2}, key=other))
    view = store.view(other)
    assert view is not None and not view.stale and view.metrics["queue_length"] == 2


def test_series_gaining_metrics_keeps_history():
    store = TimeSeriesStore(interval=1.0)
    store.ingest(snap(1.0, {"queue_length": 1}))
    store.ingest(snap(2.0, {"queue_length": 2, "consumers": 5}))
    assert [v for _, v in store.window_values(KEY, "queue_length", 100)] == [1, 2]
    assert [v for _, v in store.window_values(KEY, "consumers", 100)] == [None, 5]


def test_subscribers_called_after_ingest():
    store = TimeSeriesStore(interval=1.0)
    seen: list[float] = []
    unsubscribe = store.subscribe(lambda s: seen.append(s.time))
    store.ingest(snap(1.0, {"queue_length": 1}))
    unsubscribe()
    store.ingest(snap(2.0, {"queue_length": 1}))
    assert seen == [1.0]


def test_series_evicted_after_retention():
    store = TimeSeriesStore(interval=1.0, recent=10, retention=100)
    other = SeriesKey("b", "other", None)
    store.ingest(snap(0.0, {"queue_length": 1}, key=other))
    for i in range(1, 200):
        store.ingest(snap(float(i), {"queue_length": 1}))
    assert store.view(other) is None
    assert store.view(KEY) is not None


def test_persistence_reload(tmp_path: Path):
    path = tmp_path / "history.db"
    now = 100_000.0
    store = TimeSeriesStore(interval=1.0, recent=60, retention=3600, rollup_buckets=60)
    db = HistoryDB(path, store)
    for i in range(600):
        t = now - 600 + i
        store.ingest(snap(t, {"queue_length": float(i), "published_total": float(i * 2)}))
        if i % 50 == 0:
            db.flush(now=t)
    db.flush(now=now)
    before_raw = store.window_values(KEY, "queue_length", 30)
    before_old = store.range(KEY, "queue_length", start=now - 500, end=now - 100, points=1000)
    db.close()

    fresh = TimeSeriesStore(interval=1.0, recent=60, retention=3600, rollup_buckets=60)
    db2 = HistoryDB(path, fresh)
    loaded = db2.load(now=now)
    assert loaded > 0
    assert fresh.window_values(KEY, "queue_length", 30) == before_raw
    after_old = fresh.range(KEY, "queue_length", start=now - 500, end=now - 100, points=1000)
    assert after_old == before_old
    view = fresh.view(KEY)
    assert view is not None and view.stale  # history, not a live reading
    assert view.metrics["publish_rate"] == pytest.approx(2.0)
    # new samples continue the restored series
    fresh.ingest(snap(now + 1, {"queue_length": 1000.0, "published_total": 1200.0}))
    view = fresh.view(KEY)
    assert view is not None and not view.stale
    db2.flush(now=now + 1)
    db2.close()
