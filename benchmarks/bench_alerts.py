"""Alert evaluation cost: 50 rules over 10,000 series, per cycle, in steady state.

Setup: 10,000 series over 4 brokers, polled every 5 s (gauges plus counters, so rates and error
ratios are derived). Rules: 32 plain thresholds over every series (9 metrics), 13 with label
globs, 5 windowed functions (rate / increase / avg / max over 1 m) on a glob that selects 1% of
the series; plus the 3 built-ins. About 1-2% of series breach each rule, so alerts exist and
move through pending/firing/resolved as values change between polls.

Each cycle ingests a new poll of every series (not timed), lets the store rebuild its views once
(the views are shared with the dashboard and the exporter; their rebuild is reported separately
as ``store_views_rebuild_ms_10k``), then times ``AlertEvaluator.evaluate``. Figures are CPU time
of the evaluating thread (median over steady-state cycles), so other processes on a shared
machine do not inflate them; the wall-clock median is reported next to it.

Garbage collection: ``mqtop serve`` and the dashboard freeze the start-up objects and raise
the collector's thresholds (``mqtop.runtime.tune_gc``); the figures are taken the same way.
``alert_eval_ms_50r_10k_default_gc`` is the same measurement with Python's default settings,
for transparency (a full collection over the store's objects then lands in some cycles).

Baseline in the same run: a straightforward evaluator (per rule, per series: glob test, value
lookup, comparison, dict state) — ``alert_eval_speedup_vs_naive`` is its time over ours.
"""

from __future__ import annotations

import fnmatch
import json
import operator
import random
import statistics
import time
from typing import Any

from alerts.config import AlertingSettings, AlertRule
from alerts.evaluator import AlertEvaluator
from mqtop.kernel.model import BrokerSnapshot, BrokerStatus, SeriesKey, SeriesSample
from mqtop.kernel.store import TimeSeriesStore

BROKERS = ("rabbit", "kafka", "sqs", "redis")
INTERVAL = 5.0
T0 = 1_800_000_000.0


def _rules() -> list[AlertRule]:
    plain = [
        ("queue_length", ">", 9_800),
        ("queue_length", ">=", 9_900),
        ("in_flight", ">", 980),
        ("consumers", "<", 1),
        ("consumers", "==", 0),
        ("latency_seconds", ">", 590),
        ("consumer_lag_seconds", ">", 590),
        ("consumer_lag_messages", ">", 9_800),
        ("dlq_length", ">", 98),
        ("error_rate", ">", 0.05),
        ("publish_rate", ">", 97),
        ("processing_rate", "<", 0.5),
    ]
    rules: list[dict[str, Any]] = []
    for i in range(32):
        metric, op, threshold = plain[i % len(plain)]
        rules.append(
            {
                "name": f"Plain{i:02d}",
                "metric": metric,
                "op": op,
                "threshold": threshold * (1 + (i // len(plain)) * 0.001),
                "severity": ("info", "warning", "critical")[i % 3],
                "for": "1m" if i % 4 == 0 else 0,
            }
        )
    globs = ["orders*", "*-dlq", "payments.*", "*[0-4]", "q0*", "*.eu", "events*"]
    for i in range(13):
        metric, op, threshold = plain[i % len(plain)]
        match = {"queue": globs[i % len(globs)]}
        if i % 3 == 0:
            match["broker"] = BROKERS[i % len(BROKERS)]
        rules.append(
            {
                "name": f"Matched{i:02d}",
                "metric": metric,
                "op": op,
                "threshold": threshold,
                "match": match,
                "summary": "{broker}/{queue} {value} > {threshold}",
            }
        )
    for i, function in enumerate(["rate", "increase", "avg", "max", "avg"]):
        rules.append(
            {
                "name": f"Window{i}",
                "metric": "queue_length",
                "op": ">",
                "threshold": 5_000 if function in ("avg", "max") else 10,
                "function": function,
                "window": "1m",
                "match": {"queue": "orders-00*"},  # 100 of 10,000 series
            }
        )
    return [AlertRule.model_validate(r) for r in rules]


def _queue_names(n: int) -> list[str]:
    prefixes = ["orders", "payments.", "events", "q0", "jobs", "mail"]
    names = []
    for i in range(n):
        prefix = prefixes[i % len(prefixes)]
        if prefix == "orders" and i < 600:
            names.append(f"orders-{i // 6:04d}")  # orders-0000..orders-0099
        else:
            names.append(
                f"{prefix}{i:05d}{'.eu' if i % 10 == 0 else ''}{'-dlq' if i % 17 == 0 else ''}"
            )
    return names


class World:
    def __init__(self, series: int, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        names = _queue_names(series)
        self.keys = [SeriesKey(BROKERS[i % len(BROKERS)], names[i]) for i in range(series)]
        self.store = TimeSeriesStore(interval=INTERVAL)
        self.totals = [[0.0, 0.0, 0.0] for _ in self.keys]
        self.hot = [self.rng.random() < 0.02 for _ in self.keys]
        self.poll_no = 0
        self.statuses = {
            b: BrokerStatus(b, "redis", f"{b}:1", True, interval=INTERVAL) for b in BROKERS
        }

    def poll(self) -> float:
        t = T0 + self.poll_no * INTERVAL
        rng = self.rng
        by_broker: dict[str, list[SeriesSample]] = {b: [] for b in BROKERS}
        for i, key in enumerate(self.keys):
            # ~2% of series are in trouble at any time; a few change state every poll
            if rng.random() < 0.002:
                self.hot[i] = not self.hot[i] if self.hot[i] else rng.random() < 0.1
            hot = self.hot[i]
            totals = self.totals[i]
            totals[0] += rng.uniform(500, 510) if hot else rng.uniform(0, 60)
            totals[1] += rng.uniform(0, 60) if not hot else 0.0
            totals[2] += rng.uniform(10, 20) if hot else 0.0
            high = rng.uniform(0.99, 1.0) if hot else rng.uniform(0.0, 0.9)
            by_broker[key.broker].append(
                SeriesSample(
                    key=key,
                    kind="queue",
                    values={
                        "queue_length": 10_000 * high,
                        "in_flight": 1_000 * high,
                        "consumers": 0.0 if hot else 3.0,
                        "latency_seconds": 600 * high,
                        "consumer_lag_seconds": 600 * high,
                        "consumer_lag_messages": 10_000 * high,
                        "dlq_length": round(100 * high),
                        "published_total": totals[0],
                        "processed_total": totals[1],
                        "dead_lettered_total": totals[2],
                    },
                )
            )
        for broker, samples in by_broker.items():
            self.store.ingest(
                BrokerSnapshot(broker, "redis", t, True, 0.01, tuple(samples)), interval=INTERVAL
            )
            self.statuses[broker] = BrokerStatus(
                broker, "redis", f"{broker}:1", True, last_poll=t, last_success=t, interval=INTERVAL
            )
        self.poll_no += 1
        return t


class NaiveEvaluator:
    """The straightforward way: every rule x every series in Python, fnmatch per label."""

    OPS = {
        ">": operator.gt,
        ">=": operator.ge,
        "<": operator.lt,
        "<=": operator.le,
        "==": operator.eq,
        "!=": operator.ne,
    }

    def __init__(self, rules: list[AlertRule]) -> None:
        self.rules = rules
        self.state: dict[tuple[str, SeriesKey], tuple[str, float]] = {}

    def evaluate(self, store: TimeSeriesStore, now: float) -> int:
        events = 0
        views = store.views()
        for rule in self.rules:
            op = self.OPS[rule.op]
            for view in views:
                if not all(
                    fnmatch.fnmatchcase(getattr(view.key, label, None) or "", pattern)
                    for label, pattern in rule.match.items()
                ):
                    continue
                if rule.function is not None:
                    points = [
                        v
                        for _, v in store.window_values(view.key, rule.metric, rule.window or 60)
                        if v is not None
                    ]
                    value = (sum(points) / len(points)) if points else None
                else:
                    value = view.metrics.get(rule.metric)
                key = (rule.name, view.key)
                if value is not None and op(value, rule.threshold):
                    old = self.state.get(key)
                    if old is None:
                        self.state[key] = ("pending", now)
                    elif old[0] == "pending" and now - old[1] >= rule.for_:
                        self.state[key] = ("firing", old[1])
                        events += 1
                elif key in self.state:
                    del self.state[key]
                    events += 1
        return events


def run(quick: bool = False) -> dict[str, float]:
    import gc

    from mqtop.runtime import tune_gc

    thresholds = gc.get_threshold()
    default_gc = _measure(quick)  # Python's defaults first, for transparency
    tune_gc()  # then as `mqtop serve` runs
    try:
        out = _measure(quick)
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    out["alert_eval_ms_50r_10k_default_gc"] = default_gc["alert_eval_ms_50r_10k"]
    return out


def _measure(quick: bool) -> dict[str, float]:
    series = 10_000
    cycles = 6 if quick else 15
    warm = 14  # 70 s of history so windows and `for: 1m` are covered
    rules = _rules()
    assert len(rules) == 50
    world = World(series)
    for _ in range(warm):
        world.poll()
    evaluator = AlertEvaluator(rules, AlertingSettings())
    naive = NaiveEvaluator(rules)
    ours_cpu: list[float] = []
    ours_wall: list[float] = []
    views_ms: list[float] = []
    naive_cpu: list[float] = []
    events = 0
    for cycle in range(cycles):
        now = world.poll() + 0.5
        started = time.thread_time()
        world.store.views()
        views_ms.append((time.thread_time() - started) * 1000)
        wall, cpu = time.perf_counter(), time.thread_time()
        events += len(evaluator.evaluate(world.store, world.statuses, now))
        ours_cpu.append((time.thread_time() - cpu) * 1000)
        ours_wall.append((time.perf_counter() - wall) * 1000)
        if cycle < (2 if quick else 4):
            cpu = time.thread_time()
            naive.evaluate(world.store, now)
            naive_cpu.append((time.thread_time() - cpu) * 1000)
    # the first cycle creates every state (and backfills `for:` from history): shown apart
    ours_ms = statistics.median(ours_cpu[1:])
    baseline_ms = statistics.median(naive_cpu[1:])
    return {
        "alert_eval_ms_50r_10k": round(ours_ms, 2),
        "alert_eval_wall_ms_50r_10k": round(statistics.median(ours_wall[1:]), 2),
        "alert_eval_ms_50r_10k_first_cycle": round(ours_cpu[0], 2),
        "alert_eval_ms_naive_50r_10k": round(baseline_ms, 2),
        "alert_eval_speedup_vs_naive": round(baseline_ms / ours_ms, 2),
        "store_views_rebuild_ms_10k": round(statistics.median(views_ms), 2),
        "alert_eval_active_alerts": float(len(evaluator.alerts())),
        "alert_eval_events_per_cycle": round(events / cycles, 1),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
