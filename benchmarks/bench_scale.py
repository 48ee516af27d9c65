"""Scale: 10,000 and 100,000 series on one machine, through the real engine.

A synthetic collector plugin (``benchmarks/synthetic.py``, registered through the
``mqtop.collectors`` entry-point group like any third-party plugin) reports the series of four
brokers; at each poll a share of them (``--changing``, default 10 %) changes, the rest report
what they reported before. Each size runs in its own process:

1. fill: the store is brought to steady state with the default history (15 min at poll
   resolution, 24 h of rollups): one poll per rollup bucket for the 24 h (half the series
   changing between them), then one every 5 s for the last 15 min (``store.ingest``, times
   in the past);
2. measure: polls through ``Engine.poll_all`` (collect + ingest), then the store's views, then
   the dashboard's model (``mqtop.ui.data.compute_data``: the 50 alert rules of
   ``bench_alerts`` plus the built-ins, the views, the rows). CPU ms of the thread, median of
   the cycles after the first (the first evaluation is reported apart).

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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BROKERS = ("rabbit", "kafka", "sqs", "redis")
INTERVAL = 5.0
RECENT = 900.0
RETENTION = 86400.0


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _fill(engine: Any, collectors: list[Any], rollups: bool = True) -> None:
    """Steady state: 24 h of rollups (one row per bucket), then 15 min at poll resolution
    (without ``rollups``, the 15 min only: the per-poll figures are the same, and the memory
    of full rollups is a fixed 8 + 4 x metrics bytes per bucket, see ``store_bytes_...``)."""
    from mqtop.kernel.model import BrokerSnapshot

    store = engine.store
    bucket = store.rollup.bucket
    end = time.time() - 1.0
    fine = int(RECENT / INTERVAL) + 2
    fine_start = end - (fine - 1) * INTERVAL
    coarse_start = fine_start - (store.rollup.buckets - 1) * bucket
    coarse = store.rollup.buckets - 1 if rollups else 0
    times = [coarse_start + k * bucket for k in range(coarse)]
    times += [fine_start + k * INTERVAL for k in range(fine)]
    for n, t in enumerate(times):
        for coll in collectors:
            coll.advance(0.5 if n < coarse else None)
            store.ingest(
                BrokerSnapshot(coll.options.name, "synthetic", t, True, 0.0, tuple(coll.samples)),
                interval=INTERVAL,
            )


async def _measure(
    impl: str, series: int, changing: float, cycles: int, rollups: bool = True
) -> dict[str, float]:
    from alerts.config import AlertingSettings
    from alerts.evaluator import AlertEvaluator
    from benchmarks import synthetic
    from benchmarks.bench_alerts import _rules
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
    t0 = time.perf_counter()
    _fill(engine, collectors, rollups)
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
        c0 = time.thread_time()
        await engine.poll_all()
        rows["poll"].append((time.thread_time() - c0) * 1000)
        rows["ingest"].append(ingest_ms[0])
        c0 = time.thread_time()
        store.views()
        rows["views"].append((time.thread_time() - c0) * 1000)
        c0 = time.thread_time()
        data, _ = compute_data(engine, evaluator, dict(engine.statuses), time.time())
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
