"""Store ingest rate and memory per sample at 10,000 series (steady state).

Baseline in the same run: appending the same values to plain Python lists (the cheapest
possible unbounded store), so the figure is comparable across machines.
"""

from __future__ import annotations

import json
import time

from mqtop.kernel.model import BrokerSnapshot, SeriesKey, SeriesSample
from mqtop.kernel.store import TimeSeriesStore

METRICS = (
    "queue_length",
    "in_flight",
    "consumers",
    "consumer_lag_messages",
    "consumer_lag_seconds",
    "latency_seconds",
    "published_total",
    "processed_total",
)


def _snapshots(series: int, polls: int, interval: float) -> list[BrokerSnapshot]:
    keys = [SeriesKey("bench", f"queue-{i:05d}", "g") for i in range(series)]
    out = []
    for p in range(polls):
        t = 1_700_000_000.0 + p * interval
        samples = tuple(
            SeriesSample(
                key=k,
                kind="stream",
                values={m: float(p * 10 + i % 7 + j) for j, m in enumerate(METRICS)},
            )
            for i, k in enumerate(keys)
        )
        out.append(BrokerSnapshot("bench", "redis", t, True, 0.01, samples))
    return out


def run(quick: bool = False) -> dict[str, float]:
    series = 10_000
    interval = 5.0
    recent = 900.0
    template_polls = 4 if quick else 8
    store = TimeSeriesStore(interval=interval, recent=recent, retention=86400.0)
    snaps = _snapshots(series, template_polls, interval)
    cap = int(recent / interval) + 2
    # fill beyond the ring capacity and across rollup bucket boundaries: steady state
    total_polls = cap + (20 if quick else 200)
    samples = 0
    start = time.perf_counter()
    for p in range(total_polls):
        template = snaps[p % template_polls]
        t = 1_700_000_000.0 + p * interval
        store.ingest(BrokerSnapshot("bench", "redis", t, True, 0.01, template.series))
        samples += series * len(METRICS)
    elapsed = time.perf_counter() - start

    # baseline: append the same numbers to lists (no bounds, no rollups)
    lists: dict[SeriesKey, list[float]] = {s.key: [] for s in snaps[0].series}
    base_polls = 20
    b_start = time.perf_counter()
    for p in range(base_polls):
        for sample in snaps[p % template_polls].series:
            row = lists[sample.key]
            row.append(float(p))
            row.extend(sample.values[m] or 0.0 for m in METRICS)
    b_elapsed = time.perf_counter() - b_start
    b_rate = base_polls * series * len(METRICS) / b_elapsed

    raw_samples = store.raw_samples()
    memory = store.memory_bytes()
    # buffers are preallocated at their bounded size, so this is the steady-state footprint;
    # a rollup bucket of one metric counts as one (aggregated) retained sample
    steady_buckets = series * len(METRICS) * store.rollup.buckets
    return {
        "store_ingest_samples_per_s": samples / elapsed,
        "store_ingest_vs_list_append": (samples / elapsed) / b_rate,
        "store_bytes_per_sample": memory / (raw_samples + steady_buckets),
        "store_bytes_per_raw_sample_ring_only": (memory - _rollup_bytes(store)) / raw_samples,
        "store_memory_mb_10k_series": memory / 1e6,
    }


def _rollup_bytes(store: TimeSeriesStore) -> int:
    # rollup arrays: times (float64) + values (one float32 per metric per bucket: the slot the
    # readers use; the whole aggregate goes to persistence when a bucket closes)
    buckets = store.rollup.buckets
    per_series = buckets * 8 + buckets * len(METRICS) * 4
    return per_series * len(store)


if __name__ == "__main__":
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
