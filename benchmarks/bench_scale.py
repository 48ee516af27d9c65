"""Scale: 10,000 and 100,000 series on one machine, through the real engine.

A synthetic collector plugin (``benchmarks/synthetic.py``, registered through the
``mqtop.collectors`` entry-point group like any third-party plugin) reports the series of four
brokers; at each poll a share of them (``--changing``, default 10 %) changes, the rest report
what they reported before. Each size runs in its own process:

1. fill: the store is brought to steady state with the default history (15 min at poll
   resolution, 24 h of rollups): 24 h of rollup buckets restored as mqtop's start restores
   them from its history database (``store.load_bucket``), then 15 minutes of polls every
   5 s (``store.ingest``, the last six through ``Engine.poll_all``). The engine's
   clock is the benchmark's (``Clock``): polls are stamped 5 s apart however long each takes,
   as a 5 s polling loop stamps them;
2. measure: polls through ``Engine.poll_all`` (collect + ingest), then the store's views, then
   the dashboard's model (``mqtop.ui.data.compute_data``: the 50 alert rules of
   ``bench_alerts`` plus the built-ins, the views, the rows). CPU ms of the thread, median of
   the cycles after the first (the first evaluation is reported apart). ``rss_mb`` is the
   process's resident memory at the end, the 24 h of rollups included.

Baseline in the same run: the same steps at 10,000 series with the store as it was before
compact storage (``benchmarks/baseline_store.py``, a frozen copy). Ratios are per series:
``scale_<step>_per_series_vs_baseline`` = (ms at 100k / 100k) / (baseline ms at 10k / 10k).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BROKERS = ("rabbit", "kafka", "sqs", "redis")
INTERVAL = 5.0
RECENT = 900.0
RETENTION = 86400.0
LIVE_FILL = 6  # last polls of the fill made by the engine (its health annotation is slow)


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Clock:
    """The engine's clock in this benchmark: it stands still during a poll and moves
    ``INTERVAL`` between polls, so the polls are stamped 5 s apart as a 5 s polling loop
    stamps them, however long the machine takes for each (24 h pass in minutes)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    @staticmethod
    def monotonic() -> float:
        return time.monotonic()


def _aggregate(values: Mapping[str, float | None], metrics: tuple[str, ...]) -> list[float]:
    """A persisted bucket of rows equal to ``values`` (min, max, avg or increase, last)."""
    from mqtop.kernel.model import COUNTER_NAMES

    nan = float("nan")
    agg: list[float] = []
    for m in metrics:
        v = values.get(m)
        v = nan if v is None else v
        agg += [v % 600.0, v, nan, v] if m in COUNTER_NAMES else [v, v, v, v]
    return agg


def _restore_rollups(store: Any, collectors: list[Any], first: float) -> None:
    """24 h of rollup buckets for every series, through ``store.load_bucket`` as mqtop's
    start restores them from the history database. The metrics are those the engine's live
    polls report (the collector's, plus its health annotation), so the layout is final; the
    values do not change the rollups' size (a fixed float32 per metric and bucket), so each
    series' buckets repeat one aggregate."""
    from collectors.queue_status import QueueHealth

    bucket = store.rollup.bucket
    load = store.load_bucket
    todo = []
    for coll in collectors:
        probe = QueueHealth(window=300.0, inflow_span=15.0).annotate(coll.samples, first)
        for sample in probe:
            metrics = tuple(sorted(sample.values))
            todo.append((sample.key, sample.kind, metrics, _aggregate(sample.values, metrics)))
    for k in range(store.rollup.buckets - 1):
        start = first + k * bucket
        for key, kind, metrics, agg in todo:
            load(key, kind, metrics, start, agg)


async def _fill(engine: Any, collectors: list[Any], clock: Clock) -> None:
    """Steady state with the default history: 24 h of rollups, then 15 min of polls every
    5 s (the collectors' samples into ``store.ingest``, the last ``LIVE_FILL`` polls through
    ``Engine.poll_all`` with its queue health annotation, on the benchmark's clock)."""
    from mqtop.kernel.model import BrokerSnapshot

    store = engine.store
    bucket = store.rollup.bucket
    fine = int(RECENT / INTERVAL) + 2
    fine_start = clock.now - fine * INTERVAL
    first = fine_start - (fine_start % bucket) - (store.rollup.buckets - 1) * bucket
    _restore_rollups(store, collectors, first)
    clock.now = fine_start
    for n in range(fine):
        clock.now += INTERVAL
        if n >= fine - LIVE_FILL:
            await engine.poll_all()
            continue
        for coll in collectors:
            coll.advance()
            snapshot = BrokerSnapshot(
                coll.options.name, "synthetic", clock.now, True, 0.0, tuple(coll.samples)
            )
            store.ingest(snapshot, interval=INTERVAL)


async def _measure(impl: str, series: int, changing: float, cycles: int) -> dict[str, float]:
    from alerts.config import AlertingSettings
    from alerts.evaluator import AlertEvaluator
    from benchmarks import synthetic
    from benchmarks.bench_alerts import _rules
    from mqtop import engine as engine_module
    from mqtop.config import Config
    from mqtop.engine import Engine
    from mqtop.registry import get_plugin
    from mqtop.runtime import tune_gc
    from mqtop.ui.data import compute_data

    if impl == "baseline":
        from benchmarks.baseline_store import TimeSeriesStore as Store
    else:
        from mqtop.kernel.store import TimeSeriesStore as Store  # type: ignore[assignment]

    synthetic.install()
    rss_start = _rss_mb()
    model = get_plugin(synthetic.TYPE).options_model
    per = series // len(BROKERS)
    brokers = [
        model(name=b, type=synthetic.TYPE, series=per, offset=i * per, changing=changing)
        for i, b in enumerate(BROKERS)
    ]
    config = Config(interval=INTERVAL, brokers=brokers)
    store = Store(interval=INTERVAL, recent=RECENT, retention=RETENTION)
    engine = Engine(config, store=store)  # type: ignore[arg-type]
    collectors = [engine.collector(b) for b in BROKERS]
    clock = Clock(time.time())
    engine_module.time = clock  # type: ignore[assignment]
    t0 = time.perf_counter()
    await _fill(engine, collectors, clock)
    fill_s = time.perf_counter() - t0
    tune_gc()  # as `mqtop serve` and the dashboard run

    ingest_ms = [0.0]
    real_ingest = store.ingest

    def timed_ingest(*args: Any, **kwargs: Any) -> None:
        c0 = time.thread_time()
        real_ingest(*args, **kwargs)
        ingest_ms[0] += (time.thread_time() - c0) * 1000

    store.ingest = timed_ingest  # type: ignore[method-assign]
    evaluator = AlertEvaluator(_rules(), AlertingSettings())
    eval_ms = [0.0]
    real_evaluate = evaluator.evaluate

    def timed_evaluate(*args: Any, **kwargs: Any) -> Any:
        c0 = time.thread_time()
        out = real_evaluate(*args, **kwargs)
        eval_ms[0] += (time.thread_time() - c0) * 1000
        return out

    evaluator.evaluate = timed_evaluate  # type: ignore[method-assign]
    rows: dict[str, list[float]] = {k: [] for k in ("ingest", "poll", "views", "eval", "model")}
    for _ in range(cycles):
        ingest_ms[0] = eval_ms[0] = 0.0
        clock.now += INTERVAL
        c0 = time.thread_time()
        await engine.poll_all()
        rows["poll"].append((time.thread_time() - c0) * 1000)
        rows["ingest"].append(ingest_ms[0])
        c0 = time.thread_time()
        store.views()
        rows["views"].append((time.thread_time() - c0) * 1000)
        c0 = time.thread_time()
        data, _ = compute_data(engine, evaluator, dict(engine.statuses), clock.now)
        rows["model"].append((time.thread_time() - c0) * 1000)
        rows["eval"].append(eval_ms[0])
        assert len(data.rows) == per * len(BROKERS)
    rss = _rss_mb()
    out = {f"{k}_ms": statistics.median(v[1:]) for k, v in rows.items()}
    out["eval_first_ms"] = rows["eval"][0]
    out["rss_mb"] = rss
    out["rss_growth_bytes_per_series"] = (rss - rss_start) * 1024 * 1024 / series
    out["store_bytes_per_series"] = store.memory_bytes() / series
    out["fill_s"] = fill_s
    await engine.close()
    return out


def _child(impl: str, series: int, changing: float, cycles: int) -> dict[str, float]:
    code = (
        "import asyncio, json\n"
        "from benchmarks.bench_scale import _measure\n"
        f"print(json.dumps(asyncio.run(_measure({impl!r}, {series}, {changing}, {cycles}))))\n"
    )
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"{impl} at {series}: {result.stderr[-1500:]}")
    figures: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def run(quick: bool = False, changing: float = 0.1) -> dict[str, float]:
    big = 40_000 if quick else 100_000
    cycles = 4 if quick else 6
    sizes = [("baseline", 10_000), ("current", 10_000), ("current", big)]
    results = {(impl, n): _child(impl, n, changing, cycles) for impl, n in sizes}
    out: dict[str, float] = {}
    label = {10_000: "10k", big: f"{big // 1000}k"}
    for (impl, n), figures in results.items():
        prefix = f"scale_{'baseline_' if impl == 'baseline' else ''}{label[n]}"
        for key, value in figures.items():
            out[f"{prefix}_{key}"] = value
    base = results[("baseline", 10_000)]
    mine = results[("current", big)]
    for step in ("ingest", "views", "eval", "model"):
        ratio = (mine[f"{step}_ms"] / big) / (base[f"{step}_ms"] / 10_000)
        out[f"scale_{step}_per_series_vs_baseline"] = ratio
    out["scale_store_bytes_per_series_vs_baseline"] = (
        mine["store_bytes_per_series"] / base["store_bytes_per_series"]
    )
    out["scale_changing_share"] = changing
    return out


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="mqtop at 10,000 and 100,000 series")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--changing", type=float, default=0.1, help="share changing per poll")
    args = parser.parse_args()
    print(json.dumps(run(quick=args.quick, changing=args.changing), indent=2))
