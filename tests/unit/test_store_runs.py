"""The store's compact layout (runs of equal rows, one rollup slot, lazy arrays) answers
exactly as the previous ring-buffer store did, and memory follows what changes."""

from __future__ import annotations

import math
import random

import pytest

from benchmarks.baseline_store import TimeSeriesStore as PreviousStore
from mqtop.kernel.model import BrokerSnapshot, SeriesKey, SeriesSample
from mqtop.kernel.store import TimeSeriesStore

METRICS = ["queue_length", "consumers", "published_total", "processed_total", "dead_lettered_total"]


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def _same_points(a: tuple[tuple[float, float | None], ...], b: tuple) -> bool:
    return len(a) == len(b) and all(
        x[0] == y[0] and _same(x[1], y[1]) for x, y in zip(a, b, strict=True)
    )


@pytest.mark.parametrize(
    ("seed", "interval", "recent", "retention", "buckets"),
    [(1, 5.0, 900, 7200, 144), (2, 1.0, 60, 600, 60), (3, 0.5, 120, 1200, 20)],
)
def test_answers_as_the_previous_store(seed, interval, recent, retention, buckets):
    """Random polls (quiet and changing series, unknown values, counter restarts, missing
    series, failed polls, a series gaining metrics): every view after every poll, and the
    windows, rates and ranges now and then, are the previous store's."""
    rng = random.Random(seed)
    kw = {
        "interval": interval,
        "recent": recent,
        "retention": retention,
        "rollup_buckets": buckets,
    }
    old, new = PreviousStore(**kw), TimeSeriesStore(**kw)
    keys = [SeriesKey("b", f"q{i}") for i in range(5)]
    totals = dict.fromkeys(keys, 0.0)
    last: dict[SeriesKey, SeriesSample] = {}
    t = 1_700_000_000.0
    for p in range(400):
        t += interval * rng.choice([1, 1, 1, 1, 0.7, 1.3, 3])
        samples = []
        for k in keys:
            if rng.random() < 0.05:
                continue
            if k in last and rng.random() < 0.6:
                samples.append(last[k])  # a quiet poll: the same values again
                continue
            totals[k] = 0.0 if rng.random() < 0.01 else totals[k] + rng.randint(0, 50)
            names = METRICS[:3] if (p < 100 and k.queue == "q0") else METRICS
            values = {
                m: None
                if rng.random() < 0.05
                else totals[k]
                if m.endswith("_total")
                else float(rng.randint(0, 5))
                for m in names
            }
            last[k] = SeriesSample(key=k, kind="queue", values=values)
            samples.append(last[k])
        snapshot = BrokerSnapshot("b", "redis", t, rng.random() > 0.03, 0.01, tuple(samples))
        old.ingest(snapshot, interval=interval)
        new.ingest(snapshot, interval=interval)
        for a, b in zip(old.views(), new.views(), strict=True):
            assert (a.key, a.stale, a.updated) == (b.key, b.stale, b.updated)
            assert all(_same(a.metrics[m], b.metrics[m]) for m in a.metrics), (p, a, b)
        if p % 37:
            continue
        for k in keys:
            for m in METRICS:
                for window in (interval * 3, recent / 2, recent * 2):
                    assert _same_points(
                        old.window_values(k, m, window), new.window_values(k, m, window)
                    )
                    assert _same(old.rate(k, m, window), new.rate(k, m, window))
            for m in ("queue_length", "publish_rate", "published_total"):
                for start in (t - recent / 3, t - retention / 2, t - retention * 2):
                    assert _same_points(
                        old.range(k, m, start, t, 500), new.range(k, m, start, t, 500)
                    )


def _sample(i: int, value: float) -> SeriesSample:
    return SeriesSample(
        key=SeriesKey("b", f"q{i}"),
        kind="queue",
        values={"queue_length": value, "consumers": 1.0, "published_total": value},
    )


def test_one_poll_allocates_one_row_per_series():
    store = TimeSeriesStore(interval=5.0, recent=900.0, retention=86400.0)
    samples = tuple(_sample(i, float(i)) for i in range(100))
    store.ingest(BrokerSnapshot("b", "redis", 1_700_000_000.0, True, 0.01, samples))
    # a timestamp, a run length and one row of 3 values: not 15 minutes and 24 h preallocated
    assert store.memory_bytes() / 100 < 100


def test_quiet_series_costs_a_timestamp_per_poll():
    quiet = TimeSeriesStore(interval=5.0, recent=900.0, retention=86400.0)
    busy = TimeSeriesStore(interval=5.0, recent=900.0, retention=86400.0)
    same = _sample(0, 7.0)
    for p in range(150):
        t = 1_700_000_000.0 + p * 5.0
        quiet.ingest(BrokerSnapshot("b", "redis", t, True, 0.01, (same,)))
        busy.ingest(BrokerSnapshot("b", "redis", t, True, 0.01, (_sample(0, float(p)),)))
    points = quiet.window_values(SeriesKey("b", "q0"), "queue_length", 10_000)
    assert len(points) == 150 and {v for _, v in points} == {7.0}
    view = quiet.view(SeriesKey("b", "q0"))
    assert view is not None and view.get("publish_rate") == 0.0
    assert quiet.memory_bytes() < busy.memory_bytes() / 2


def test_gaining_a_metric_keeps_the_runs():
    store = TimeSeriesStore(interval=5.0, recent=900.0, retention=86400.0)
    same = _sample(0, 7.0)
    for p in range(100):
        store.ingest(BrokerSnapshot("b", "redis", 1_700_000_000.0 + p * 5.0, True, 0.01, (same,)))
    before = store.memory_bytes()
    wider = SeriesSample(key=same.key, kind="queue", values={**same.values, "in_flight": 1.0})
    store.ingest(BrokerSnapshot("b", "redis", 1_700_000_500.0, True, 0.01, (wider,)))
    points = store.window_values(same.key, "queue_length", 10_000)
    assert len(points) == 101 and {v for _, v in points} == {7.0}
    assert store.window_values(same.key, "in_flight", 10_000)[-2:] == (
        (1_700_000_495.0, None),
        (1_700_000_500.0, 1.0),
    )
    # two runs (the 100 equal rows, the wider one), not a row of values per poll (+3,200 B);
    # the wider rollup slot is 145 x 4 B more
    assert store.memory_bytes() < before + 145 * 4 + 200


def test_rollups_follow_the_bucket_grid_across_gaps():
    """Buckets live on the store's grid: a gap leaves no bucket, a series away for longer
    than the tier keeps only the buckets inside it, and a removed series frees its slot."""
    store = TimeSeriesStore(interval=5.0, recent=60.0, retention=600.0, rollup_buckets=10)
    key = SeriesKey("b", "q0")
    t0 = 1_700_000_000.0 - 1_700_000_000.0 % store.rollup.bucket  # buckets of 60 s, 11 kept

    def rollup_starts(pause: float) -> list[float]:
        times = [t0 + i * 5.0 for i in range(60)] + [t0 + pause + i * 5.0 for i in range(60)]
        for n, t in enumerate(times):
            store.ingest(BrokerSnapshot("b", "redis", t, True, 0.01, (_sample(0, float(n)),)))
        points = store.range(key, "queue_length", t0 - 10_000, times[-1], 1000)
        return [t - t0 for t, _ in points if t < times[-1] - 65.0]

    assert rollup_starts(420.0) == [0, 60, 120, 180, 240, 420, 480, 540, 600]
    for p in range(3):
        store.ingest(BrokerSnapshot("b", "redis", t0 + 800.0 + p, True, 0.01, ()))
    assert store.view(key) is None and store.memory_bytes() == 0
    t0 += 3600.0
    assert rollup_starts(900.0) == [900, 960, 1020, 1080]


def test_series_of_a_broker_share_its_poll_times():
    """A series listed at every poll keeps one (first id, rows) pair for its times, not 8 bytes
    a row; one missing from some polls keeps a pair per stretch and reads its own times."""
    store = TimeSeriesStore(interval=5.0, recent=900.0, retention=86400.0)
    store.remove_after = 1000  # q49 stays while it is away
    t0 = 1_700_000_000.0
    for n in range(150):
        samples = [_sample(i, 1.0) for i in range(50)]
        if n % 30 >= 10:  # q49 is listed in 10 polls out of 30
            samples.pop()
        store.ingest(BrokerSnapshot("b", "redis", t0 + 5.0 * n, True, 0.01, tuple(samples)))
    steady = store._series[SeriesKey("b", "q0")].buf
    assert steady.times is None and len(steady.segs) == 2 and steady.nrows == 150
    away = store._series[SeriesKey("b", "q49")].buf
    assert away.times is None and len(away.segs) == 2 * 5
    expected = [t0 + 5.0 * n for n in range(150) if n % 30 < 10]
    assert [t for t, _ in store.window_values(SeriesKey("b", "q49"), "queue_length", 1e9)] == (
        expected
    )
    # the times once: 8 bytes per poll for the broker, not per series
    assert store._rings["b"].nbytes() <= 8 * (2 * 150 + 64)


def test_history_restored_out_of_order_keeps_its_own_times():
    """A row at a time the broker's ring cannot hold (older than its newest, not a poll time
    of it) gives the series its own times, which read back exactly."""
    store = TimeSeriesStore(interval=5.0, recent=900.0, retention=86400.0)
    a, b = SeriesKey("b", "a"), SeriesKey("b", "z")
    for t in (100.0, 110.0, 120.0):
        store.load_row(a, "queue", None, t, {"queue_length": t})
    for t in (105.0, 110.0, 125.0):
        store.load_row(b, "queue", None, t, {"queue_length": t})
    store.ingest(BrokerSnapshot("b", "redis", 130.0, True, 0.01, ()))  # up, lists nothing
    assert store._series[b].buf.times is not None  # 105 could not be shared
    assert store._series[a].buf.times is None
    assert store.window_values(b, "queue_length", 1e9) == (
        (105.0, 105.0),
        (110.0, 110.0),
        (125.0, 125.0),
    )
    assert store.window_values(a, "queue_length", 1e9) == (
        (100.0, 100.0),
        (110.0, 110.0),
        (120.0, 120.0),
    )


def test_the_ring_of_poll_times_stays_bounded():
    """Old poll times are dropped once no series refers to them, whatever the polls count."""
    store = TimeSeriesStore(interval=1.0, recent=30.0, retention=600.0)
    for n in range(5000):
        store.ingest(
            BrokerSnapshot("b", "redis", float(n), True, 0.01, (_sample(0, float(n % 7)),))
        )
    ring = store._rings["b"]
    cap = store._series[SeriesKey("b", "q0")].buf.cap
    assert len(ring.times) <= 2 * (cap + 16) + 64
    ts = [t for t, _ in store.window_values(SeriesKey("b", "q0"), "queue_length", 1e9)]
    assert ts == [float(n) for n in range(5000 - len(ts), 5000)] and len(ts) == cap
