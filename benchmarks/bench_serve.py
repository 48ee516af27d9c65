"""``mqtop serve`` /metrics at 50,000 series, next to prometheus_client's own exposition.

Setup: 5,000 queues on 4 brokers, 10 metrics each (50,000 series), ingested into the store
as two polls (so rates exist), and a target label ``cluster``. Measured in the same run:

* ``serve_metrics_ms_50k``: rendering the body with mqtop's exposition (cold: the series part
  is rebuilt, as after every poll), median of several runs;
* ``prometheus_client_ms_50k``: ``prometheus_client.generate_latest`` over a collector that
  yields the same series (GaugeMetricFamily per metric, same labels) — how ``serve`` rendered
  before, and how a typical Python exporter does;
* ``serve_metrics_vs_prometheus_client``: the time ratio (goal <= 1.5), and both sizes;
* ``serve_scrape_http_ms_50k``: wall time of ``GET /metrics`` from the real daemon's HTTP
  server after a poll (cold), ``..._warm_`` for a scrape between polls, ``..._gzip_`` with
  ``Accept-Encoding: gzip``.

Under scrape load (``serve_load_*``): the real daemon polls a broker of 500 queues x 10 metrics
(5,000 series; an in-process collector, so the broker costs nothing) every second, while
scrapers in another process GET /metrics in a loop: first one client (the baseline), then 20
at once, for the same time each. Figures: p50/p99 scrape latency of each phase and their ratio
(``serve_load_p99_20_vs_1``), the longest gap between two polls (``serve_load_poll_gap_max_s``,
the interval is 1 s: a scrape that delayed polling shows here), the scrapes answered, and
``serve_load_false_alerts``: BrokerDown / SeriesStale alerts seen while the broker always
answered (goal: 0).

The queue-info series are left out of the ratio (prometheus_client renders only the same
50,000 series); the HTTP figures include them (55,000 series), as ``serve`` answers.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import http.client
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from mqtop.exposition import ExporterConfig, Exposition
from mqtop.kernel.model import (
    PUBLIC_METRICS,
    BrokerSnapshot,
    BrokerStatus,
    SeriesKey,
    SeriesSample,
)
from mqtop.kernel.store import TimeSeriesStore

BROKERS = ("rabbit", "kafka", "sqs", "redis")
METRICS = [m.name for m in PUBLIC_METRICS if m.name != "group_status"]  # 10 metrics
LABELS = {"cluster": "eu-1"}
T0 = 1_800_000_000.0


def build_store(queues: int) -> tuple[TimeSeriesStore, list[BrokerStatus]]:
    """A store holding ``queues`` series with every one of METRICS known."""
    rng = random.Random(7)
    store = TimeSeriesStore(interval=5.0)
    statuses = []
    per = queues // len(BROKERS)
    for poll in range(2):
        for broker in BROKERS:
            series = tuple(
                SeriesSample(
                    key=SeriesKey(broker, f"orders.{broker}.{i:05d}", "workers" if i % 3 else None),
                    kind="queue",
                    values={m: float(rng.randint(0, 100_000)) for m in METRICS},
                    dlq=f"orders.{broker}.{i:05d}.dlq" if i % 2 else None,
                )
                for i in range(per)
            )
            store.ingest(
                BrokerSnapshot(
                    broker=broker,
                    type="redis",
                    time=T0 + 5 * poll,
                    up=True,
                    duration=0.01,
                    series=series,
                ),
                interval=5.0,
            )
    for broker in BROKERS:
        statuses.append(
            BrokerStatus(name=broker, type="redis", address="x", up=True, last_duration=0.01)
        )
    return store, statuses


class Baseline:
    """The same series through prometheus_client (GaugeMetricFamily, same labels)."""

    def __init__(self, store: TimeSeriesStore) -> None:
        self.store = store

    def collect(self) -> Any:
        from prometheus_client.core import GaugeMetricFamily

        views = self.store.views(include_stale=False)
        names = ["broker", "queue", "group", *LABELS]
        const = list(LABELS.values())
        for metric in PUBLIC_METRICS:
            family = GaugeMetricFamily(f"mqtop_{metric.name}", metric.help, labels=names)
            for view in views:
                value = view.metrics.get(metric.name)
                if value is not None:
                    key = view.key
                    family.add_metric([key.broker, key.queue, key.group or "", *const], value)
            yield family


def _samples(body: bytes) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for family in text_string_to_metric_families(body.decode())
        if family.name not in ("mqtop_up", "mqtop_broker_up", "mqtop_broker_poll_duration_seconds")
        and not family.name.startswith("mqtop_scrape")
        for s in family.samples
    }


def _median_ms(fn: Any, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _http_ms(
    port: int, headers: dict[str, str], runs: int, before: Any = None
) -> tuple[float, int]:
    times = []
    size = 0
    for _ in range(runs):
        if before is not None:
            before()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        started = time.perf_counter()
        conn.request("GET", "/metrics", headers=headers)
        response = conn.getresponse()
        body = response.read()
        times.append((time.perf_counter() - started) * 1000)
        conn.close()
        assert response.status == 200
        size = len(body)
    return statistics.median(times), size


def _daemon_figures(
    store: TimeSeriesStore, statuses: list[BrokerStatus], runs: int
) -> dict[str, float]:
    import asyncio

    from mqtop.commands.serve import Daemon
    from mqtop.config import Config

    config = Config(labels=LABELS)
    args = argparse.Namespace(config=None, verbose=0)
    out: dict[str, float] = {}

    async def setup() -> Daemon:
        return Daemon(args, config)

    daemon = asyncio.run(setup())
    daemon.store = store
    for status in statuses:
        daemon.engine.statuses[status.name] = status
    _, port = daemon.listen("127.0.0.1", 0)
    try:
        # a new poll before each cold scrape: the store's generation moves on
        def bump() -> None:
            store.generation += 1

        out["serve_scrape_http_ms_50k"], plain = _http_ms(port, {}, runs, before=bump)
        out["serve_scrape_http_warm_ms_50k"], _ = _http_ms(port, {}, runs)
        out["serve_scrape_http_gzip_ms_50k"], packed = _http_ms(
            port, {"Accept-Encoding": "gzip"}, runs, before=bump
        )
        out["serve_scrape_bytes_50k"] = float(plain)
        out["serve_scrape_gzip_bytes_50k"] = float(packed)
        out["serve_scrape_series_50k"] = float(daemon.exposition.last_series)
    finally:
        if daemon._http is not None:
            daemon._http.shutdown()
            daemon._http.server_close()
    return out


LOAD_QUEUES = 500  # x 10 metrics = 5,000 series
LOAD_CLIENTS = 20
SCRAPER = r"""
import http.client, json, sys, threading, time
port, clients, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
times, errors = [], []
def scrape():
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.perf_counter()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
            response = conn.getresponse()
            response.read()
            conn.close()
            if response.status != 200:
                errors.append(response.status)
                continue
        except OSError as exc:
            errors.append(str(exc))
            continue
        times.append(time.perf_counter() - started)
threads = [threading.Thread(target=scrape) for _ in range(clients)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({"times": times, "errors": len(errors)}))
"""


class LoadCollector:
    """An in-process broker of ``LOAD_QUEUES`` queues whose values change at every poll."""

    def __init__(self) -> None:
        self.polls = 0

    async def connect(self) -> None:
        return None

    async def collect(self) -> Any:
        from collectors.base import Collected

        self.polls += 1
        rng = random.Random(self.polls)
        return Collected(
            series=tuple(
                SeriesSample(
                    key=SeriesKey("bench", f"orders.{i:04d}", None),
                    kind="queue",
                    values={m: float(rng.randint(0, 100_000)) for m in METRICS},
                )
                for i in range(LOAD_QUEUES)
            )
        )

    async def close(self) -> None:
        return None

    def actions(self) -> None:
        return None


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


def _load_figures(seconds: float) -> dict[str, float]:
    """The real daemon under 1, then 20 concurrent scrapers (see the module doc)."""
    import asyncio
    import subprocess
    import sys
    import threading

    from alerts.evaluator import BROKER_DOWN, SERIES_STALE
    from mqtop.commands.serve import Daemon
    from mqtop.config import load_config_file

    path = os.path.join(tempfile.mkdtemp(prefix="mqtop-bench-load-"), "mqtop.yaml")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(
            'interval: 1s\nbrokers:\n  - {name: bench, type: redis, url: "redis://127.0.0.1:1/0"}\n'
        )
    config = load_config_file(Path(path))
    args = argparse.Namespace(config=path, verbose=0)
    loop = asyncio.new_event_loop()
    polls: list[float] = []
    false_alerts: set[tuple[str, str | None]] = set()
    holder: dict[str, Any] = {}

    async def main() -> None:
        daemon = Daemon(args, config)
        daemon.engine._collectors["bench"] = LoadCollector()
        daemon.store.subscribe(lambda _s: polls.append(time.monotonic()))
        holder["daemon"] = daemon
        holder["task"] = asyncio.current_task()
        with contextlib.suppress(asyncio.CancelledError):
            await daemon.run("127.0.0.1", 0)

    thread = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    thread.start()
    while "daemon" not in holder or holder["daemon"]._http is None or len(polls) < 3:
        time.sleep(0.05)
    daemon = holder["daemon"]
    port = daemon._http.server_address[1]
    watching = True

    def watch() -> None:
        while watching:
            for alert in daemon.evaluator.alerts():
                if alert.rule in (BROKER_DOWN, SERIES_STALE):
                    false_alerts.add((alert.rule, alert.queue))
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out: dict[str, float] = {}
    try:
        for clients in (1, LOAD_CLIENTS):
            first = len(polls)
            run = subprocess.run(
                [sys.executable, "-c", SCRAPER, str(port), str(clients), str(seconds)],
                capture_output=True,
                text=True,
                check=True,
            )
            doc = json.loads(run.stdout)
            times = doc["times"]
            gaps = [b - a for a, b in zip(polls[first:], polls[first + 1 :], strict=False)]
            out[f"serve_load_p50_ms_{clients}"] = _percentile(times, 0.50)
            out[f"serve_load_p99_ms_{clients}"] = _percentile(times, 0.99)
            out[f"serve_load_scrapes_{clients}"] = float(len(times))
            out[f"serve_load_errors_{clients}"] = float(doc["errors"])
            out[f"serve_load_poll_gap_max_s_{clients}"] = max(gaps, default=0.0)
    finally:
        watching = False
        watcher.join()
        loop.call_soon_threadsafe(holder["task"].cancel)
        thread.join(10)
    out["serve_load_p99_20_vs_1"] = out[f"serve_load_p99_ms_{LOAD_CLIENTS}"] / max(
        out["serve_load_p99_ms_1"], 1e-9
    )
    out["serve_load_poll_gap_max_s"] = max(
        out["serve_load_poll_gap_max_s_1"], out[f"serve_load_poll_gap_max_s_{LOAD_CLIENTS}"]
    )
    out["serve_load_false_alerts"] = float(len(false_alerts))
    return out


def run(quick: bool = False) -> dict[str, float]:
    from prometheus_client import CollectorRegistry, generate_latest

    queues = 5_000
    runs = 3 if quick else 7
    os.environ.setdefault("XDG_STATE_HOME", tempfile.mkdtemp(prefix="mqtop-bench-serve-"))
    store, statuses = build_store(queues)
    views = store.views(include_stale=False)
    series = sum(1 for v in views for m in METRICS if v.metrics.get(m) is not None)
    assert series == queues * len(METRICS), series

    exposition = Exposition(LABELS, ExporterConfig(queue_info=False))
    generation = iter(range(10**9))

    def ours() -> bytes:
        return exposition.render(statuses, lambda: views, next(generation))

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Baseline(store))

    def theirs() -> bytes:
        return generate_latest(registry)

    body_ours = ours()
    body_theirs = theirs()
    # the same samples, parsed back with prometheus_client's parser
    assert _samples(body_ours) == _samples(body_theirs)
    ours_ms = _median_ms(ours, runs)
    theirs_ms = _median_ms(theirs, runs)
    gzip_ms = _median_ms(lambda: gzip.compress(body_ours, 5), runs)
    out = {
        "serve_metrics_ms_50k": ours_ms,
        "prometheus_client_ms_50k": theirs_ms,
        "serve_metrics_vs_prometheus_client": ours_ms / theirs_ms,
        "serve_metrics_bytes_50k": float(len(body_ours)),
        "prometheus_client_bytes_50k": float(len(body_theirs)),
        "serve_metrics_gzip_ms_50k": gzip_ms,
    }
    out.update(_daemon_figures(store, statuses, runs))
    out.update(_load_figures(8.0 if quick else 20.0))
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--load-only", action="store_true", help="only the serve_load figures")
    options = parser.parse_args()
    if options.load_only:
        print(json.dumps(_load_figures(8.0 if options.quick else 20.0), indent=2))
    else:
        print(json.dumps(run(options.quick), indent=2))
