"""The fleet dashboard over a real Prometheus: 10 exporters x 5,000 series (50,000 rows).

Setup: ten exporters, each serving ``mqtop serve``'s exposition (rendered by
:mod:`mqtop.exposition` from a synthetic store: 5,000 RabbitMQ-like queues with the metrics a
RabbitMQ queue has, ``mqtop_queue_info`` and ``mqtop_up``, a distinct ``cluster`` label) from
a separate process (so serving scrapes costs the measured process nothing), scraped by a
private Prometheus (Debian's 2.42, as tests/support/prometheus.py starts it: free port,
temporary data directory) until every target has been scraped twice. The dashboard
(``MqtopApp``, headless 160x45) reads it through its real Prometheus source; each poll is run
on the engine's thread as its polling loop runs it, with the dashboard's garbage-collection
settings (``mqtop.runtime.tune_gc``, as ``mqtop`` runs it).

Measured (UI = CPU time of the UI thread, ``time.thread_time``, so other processes on a busy
machine do not inflate it; wall-clock figures next to them):

* ``fleet_first_paint_ms_50k``: wall time from the source's first query to the overview
  showing every row (painted); ``fleet_first_paint_ui_ms_50k`` the UI thread's CPU during it
  (the seconds of the query included), ``fleet_first_paint_apply_ui_ms_50k`` the UI thread's
  part from the rows' arrival to the screen painted (goal <= 100 ms);
* ``fleet_refresh_ui_ms_50k``: one refresh from the source at 50,000 rows, UI thread (goal
  <= 100 ms): the new data handled, rows arranged, the visible rows rendered, full repaint;
  ``fleet_source_poll_ms_50k`` the source poll (query, parsing, store ingest) on the engine's
  thread, ``fleet_model_build_ms_50k`` the worker's row build;
  ``fleet_refresh_apply_ui_ms_50k`` the part from the built rows reaching the UI thread to
  the screen painted;
* ``fleet_chart_24h_ms``: the detail view's 24 h window for one remote series: its
  ``query_range`` (one request for the charted metrics, server-side step) and the charts drawn
  and painted (goal < 200 ms). The charted series has 24 h of history, one sample a minute
  (backfilled with ``promtool tsdb create-blocks-from openmetrics`` before Prometheus starts;
  the others only the minutes since the benchmark started), so the chart draws about 120
  points at the 24 h step (720 s): ``fleet_chart_24h_points``.

Baselines in the same run: a bare ``GET /api/v1/query`` of the source's own selector with
``json.loads`` (``fleet_bare_query_ms_50k``; ``fleet_source_poll_vs_bare``), and the chart's
``query_range`` made bare (one request for the chart's metrics) with ``json.loads``
(``fleet_chart_vs_bare``).

    python benchmarks/bench_fleet.py [--quick]        # figures as JSON (--quick: 1 x 5,000)
    MQTOP_BENCH_PROFILE=DIR python benchmarks/bench_fleet.py   # + UI-thread cProfile files
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import http.server
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support, as a script

from mqtop.exposition import ExporterConfig, Exposition
from mqtop.kernel.model import BrokerSnapshot, BrokerStatus, SeriesKey, SeriesSample
from mqtop.kernel.store import TimeSeriesStore

SERIES = 5_000  # queues per exporter (rows of the overview)
CLUSTERS = 10
# what a RabbitMQ queue exposes (docs/metrics.md); dead letters are a queue of their own
METRICS = (
    "queue_length",
    "in_flight",
    "publish_rate",
    "processing_rate",
    "latency_seconds",
    "consumers",
)
SCRAPE = 5.0  # seconds between scrapes
SIZE = (160, 45)
T0 = 1_800_000_000.0


# -- the exporters (a separate process) ------------------------------------------------


def exposition_bodies(cluster: str, series: int, variants: int = 2) -> list[bytes]:
    """``/metrics`` bodies of one cluster, gzip-compressed as ``mqtop serve`` answers
    Prometheus after a poll (one per poll: the gauges move between polls)."""
    store = TimeSeriesStore(interval=5.0)
    exposition = Exposition({"cluster": cluster}, ExporterConfig(metrics=list(METRICS)))
    status = BrokerStatus(name="rabbit", type="rabbitmq", address="x", up=True, last_duration=0.02)
    bodies = []
    for poll in range(variants):
        samples = tuple(
            SeriesSample(
                key=SeriesKey("rabbit", f"orders.{cluster}.{i:05d}"),
                kind="classic",
                values={
                    "queue_length": float((i * 7919 + poll * (i % 13)) % 5000),
                    "in_flight": float(i % 9),
                    "publish_rate": float((i + poll) % 50),
                    "processing_rate": float((i * 3 + poll) % 50),
                    "latency_seconds": float((i + poll) % 600),
                    "consumers": float(i % 4),
                },
                dlq=f"orders.{cluster}.{i:05d}.dlq" if i % 10 == 0 else None,
            )
            for i in range(series)
        )
        snapshot = BrokerSnapshot("rabbit", "rabbitmq", T0 + 5 * poll, True, 0.02, samples)
        store.ingest(snapshot, interval=5.0)
        views = store.views
        bodies.append(exposition.render([status], views, store.generation, compress=True))
    return bodies


def _handler(bodies: list[bytes]) -> type[http.server.BaseHTTPRequestHandler]:
    scrapes = [0]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = bodies[scrapes[0] % len(bodies)]
            scrapes[0] += 1
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Encoding", "gzip")  # Prometheus always accepts it
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


def serve_exporters(clusters: int, series: int) -> None:
    """Serve every cluster's exposition on its own port; print the ports (JSON) and serve
    until standard input closes."""
    servers = []
    for n in range(clusters):
        handler = _handler(exposition_bodies(f"c{n:02d}", series))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    print(json.dumps([s.server_address[1] for s in servers]), flush=True)
    sys.stdin.read()
    for server in servers:
        server.shutdown()


# -- the charted series' 24 h of history ---------------------------------------------------

CHARTED = "orders.c00.00000"  # the queue whose detail view the benchmark charts


def history_file(port: int, path: Path, now: float) -> Path:
    """24 h of history, one sample a minute, for every series of the ``CHARTED`` queue as
    exporter ``port`` exposes it (its labels plus the ``job`` and ``instance`` Prometheus
    adds), as OpenMetrics for ``promtool tsdb create-blocks-from openmetrics``: the 24 h
    chart then draws a day of points, as it would on a Prometheus that has run for a day."""
    import gzip

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as answer:
        text = gzip.decompress(answer.read()).decode()
    wanted = f'queue="{CHARTED}"'
    lines = [line for line in text.splitlines() if wanted in line and not line.startswith("#")]
    if not lines:
        raise RuntimeError(f"exporter {port} does not expose {CHARTED}")
    extra = f'job="mqtop",instance="127.0.0.1:{port}"'
    start = now - 86400.0
    stop = now - 900.0  # the last minutes come from the scrapes
    out = []
    for line in lines:
        series, _, value = line.rpartition(" ")
        name, _, labels = series.partition("{")
        labels = f"{{{extra},{labels}" if labels else f"{{{extra}}}"
        base = float(value)
        t, k = start, 0
        while t < stop:
            # a daily wave around the exposed value, so the chart has a shape to draw
            v = max(0.0, base * (1.0 + 0.5 * math.sin(k / 90.0))) if base else 0.0
            out.append(f"{name}{labels} {v:g} {t:.0f}")
            t += 60.0
            k += 1
    out.append("# EOF")
    path.write_text("\n".join(out) + "\n")
    return path


# -- the measurement ---------------------------------------------------------------------


def _say(text: str) -> None:
    """Progress on standard error (the runner keeps standard output for figures)."""
    print(f"# fleet: {text}", file=sys.stderr, flush=True)


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=120) as answer:
        return json.loads(answer.read())


def _bare_ms(base: str, path: str, params: dict[str, str]) -> tuple[float, Any]:
    started = time.perf_counter()
    doc = _get_json(f"{base}/api/v1/{path}?{urllib.parse.urlencode(params)}")
    return (time.perf_counter() - started) * 1000, doc


def _paint(app: Any) -> None:
    """Render every visible line of the screen, as a terminal refresh does."""
    app.screen._compositor.render_update(full=True)


async def _until(pilot: Any, predicate: Any, limit: float, what: str) -> Any:
    deadline = time.monotonic() + limit
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {limit:g}s waiting for {what}")
        await pilot.pause(0.005)
    return value


async def _after_refreshes(
    pilot: Any, refreshed: asyncio.Event, predicate: Any, limit: float, what: str
) -> None:
    """Wait for ``predicate``, checked after each data refresh reaches the UI thread (and once
    every half second). No polling meanwhile: the pilot's 5 ms pauses cost the UI thread
    ~150 ms of CPU per second (measured with the app idle), which is the benchmark's, not the
    app's, and was counted in the refresh figures while the worker built the rows."""
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {limit:g}s waiting for {what}")
        refreshed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(refreshed.wait(), 0.5)
        await pilot.pause()  # DataRefreshed handled by the screens


def _profiler() -> cProfile.Profile | None:
    """With MQTOP_BENCH_PROFILE=DIR: a profile of the UI thread (where the time goes)."""
    if not os.environ.get("MQTOP_BENCH_PROFILE"):
        return None
    profile = cProfile.Profile(time.thread_time)  # CPU: waits for the GIL left out
    profile.enable()
    return profile


def _dump(profile: cProfile.Profile | None, name: str) -> None:
    if profile is not None:
        profile.disable()
        folder = Path(os.environ["MQTOP_BENCH_PROFILE"])
        folder.mkdir(parents=True, exist_ok=True)
        profile.dump_stats(folder / f"fleet-{name}.prof")


async def _dashboard(url: str, rows: int, refreshes: int, tmp: Path) -> dict[str, float]:
    from mqtop.config import Config
    from mqtop.engine import Engine
    from mqtop.ui.app import MqtopApp
    from mqtop.ui.detail import CHART_METRICS, DetailScreen
    from mqtop.ui.overview import OverviewScreen

    config = Config.model_validate(
        {
            "interval": 5.0,
            # a generous deadline: how long a poll takes is what is measured
            "sources": [{"type": "prometheus", "name": "fleet", "url": url, "timeout": 60}],
        }
    )
    engine = Engine(config)
    reader = engine.sources["fleet"]
    app = MqtopApp(engine, autostart=False, prefs_path=tmp / "prefs.json")
    refreshed = asyncio.Event()
    announce = app._apply

    arrivals: list[float] = []  # UI-thread CPU clock when each refresh's rows arrived

    def announced(*args: Any) -> None:
        arrivals.append(time.thread_time())
        announce(*args)
        refreshed.set()

    app._apply = announced  # type: ignore[method-assign]
    out: dict[str, float] = {}
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: isinstance(app.screen, OverviewScreen), 30, "the overview")
        await _until(pilot, lambda: app.refresh_count >= 1, 30, "the first (empty) refresh")
        screen = app.screen
        assert isinstance(screen, OverviewScreen)
        _paint(app)
        await pilot.pause()

        # (a) first paint: the source's first query (with the rules' backfill) -> every row
        c0, t0 = time.thread_time(), time.perf_counter()
        await app.backend.run(engine.poll_source("fleet"))
        polled = time.perf_counter()
        await _after_refreshes(
            pilot, refreshed, lambda: len(screen.table.rows) == rows, 120, f"{rows} rows"
        )
        await pilot.pause()
        _paint(app)
        out["fleet_first_paint_ms_50k"] = (time.perf_counter() - t0) * 1000
        out["fleet_first_paint_ui_ms_50k"] = (time.thread_time() - c0) * 1000
        # of it: from the rows' arrival on the UI thread to the screen painted (the rest is the
        # UI loop's own work during the query: ticks, the clock, repaints of the empty table)
        out["fleet_first_paint_apply_ui_ms_50k"] = (time.thread_time() - arrivals[-1]) * 1000
        out["fleet_first_poll_ms_50k"] = (polled - t0) * 1000
        _say(f"first paint {out['fleet_first_paint_ms_50k']:.0f} ms")

        # (b) refreshes from the source: the poll (engine thread) and the refresh it causes
        ui: list[float] = []
        cycle: list[float] = []
        wall: list[float] = []
        poll: list[float] = []
        build: list[float] = []
        applied: list[float] = []
        handling: list[float] = []
        apply = app._apply

        def timed_apply(*args: Any) -> None:
            applied.append(time.thread_time())  # the built rows reach the UI thread
            apply(*args)

        app._apply = timed_apply  # type: ignore[method-assign]
        profile = _profiler()
        for n in range(2 * refreshes):
            await _after_refreshes(
                pilot, refreshed, lambda: not app._refreshing, 60, "the previous refresh"
            )
            target = app.refresh_count + 1
            c0, t0 = time.thread_time(), time.perf_counter()
            if n % 2:
                # the refresh alone: the poll's data is in the store before the clock starts
                # (as tui_refresh_ms_10k_rows measures), the refresh held until then
                app._refreshing = True
                app._refresh_started = math.inf  # no "stuck refresh" restart meanwhile
                await app.backend.run(engine.poll_source("fleet"))
                c0, t0 = time.thread_time(), time.perf_counter()
                app._refreshing = False
                app.request_refresh()
            else:
                await app.backend.run(engine.poll_source("fleet"))
                poll.append((time.perf_counter() - t0) * 1000)
            await _after_refreshes(
                pilot, refreshed, lambda t=target: app.refresh_count >= t, 60, "the refresh"
            )
            await pilot.pause()  # DataRefreshed handled, Textual repaints
            _paint(app)  # plus a forced full-screen render (conservative)
            (ui if n % 2 else cycle).append((time.thread_time() - c0) * 1000)
            if n % 2:
                handling.append((time.thread_time() - applied[-1]) * 1000)
            if not n % 2:
                wall.append((time.perf_counter() - t0) * 1000)
            build.append(app.last_build_cpu * 1000)
        _dump(profile, "refresh")
        _say(f"refreshes: UI {ui} ms (from the rows' arrival {handling}), polls {poll} ms")
        assert len(screen.table.rows) == rows
        out["fleet_refresh_ui_ms_50k"] = statistics.median(ui)
        out["fleet_poll_cycle_ui_ms_50k"] = statistics.median(cycle)
        # of the refresh: from the rows' arrival on the UI thread to the screen painted (the
        # rest is the UI loop's own work while the worker builds: ticks, pop-ups, repaints)
        out["fleet_refresh_apply_ui_ms_50k"] = statistics.median(handling)
        out["fleet_refresh_wall_ms_50k"] = statistics.median(wall)
        out["fleet_source_poll_ms_50k"] = statistics.median(poll)
        out["fleet_model_build_ms_50k"] = statistics.median(build)

        # (c) the 24 h chart of the remote series with a day of history
        key = next(row.key for row in screen.table.rows if row.queue == CHARTED)
        app.open_detail(key)
        detail = await _until(
            pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen, 30, "the detail"
        )
        await _until(pilot, lambda: detail.chart_data("queue_length")[0] == "source", 30, "5m")
        charts: list[float] = []
        charts_ui: list[float] = []
        points = 0
        profile = _profiler()
        queries = reader.history_queries
        for index in (2, 1, 2, 1, 2):  # 24h, 1h, 24h ...: every switch asks the source again
            c0, t0 = time.thread_time(), time.perf_counter()
            detail.action_window(index)
            await _until(
                pilot,
                lambda i=index: detail._remote_for is not None and detail._remote_for[0] == i,
                30,
                "the chart's points",
            )
            _paint(app)  # the charts rendered with the source's points: what the eye sees
            if index == 2:
                charts.append((time.perf_counter() - t0) * 1000)
                charts_ui.append((time.thread_time() - c0) * 1000)
                points = len(detail.chart_data("queue_length")[1])
            await pilot.pause()
        _dump(profile, "chart")
        out["fleet_chart_24h_ms"] = statistics.median(charts)
        out["fleet_chart_24h_ui_ms"] = statistics.median(charts_ui)
        out["fleet_chart_24h_points"] = float(points)
        # query_range requests per window chosen (the chart's metrics share one when they
        # reach the engine's loop together)
        out["fleet_chart_queries"] = (reader.history_queries - queries) / 5
        remote = reader.remotes[key.broker]
        await app.stop_engine()

    out.update(await asyncio.to_thread(_bare_chart, url, reader, remote, key, CHART_METRICS))
    return out


def _bare_chart(
    url: str, reader: Any, remote: Any, key: SeriesKey, metrics: tuple[str, ...]
) -> dict[str, float]:
    """The chart's query_range, bare: one request for every charted metric (median of 3)."""
    from mqtop.sources.prometheus import promql_string

    matchers = [
        f"broker={promql_string(remote.broker)}",
        f"queue={promql_string(key.queue)}",
        'group=""',
        *(f"{label}={promql_string(value)}" for label, value in remote.scope),
    ]
    end = time.time()
    times = []
    for _ in range(3):
        params = {
            "query": reader.selector(sorted(metrics), matchers),
            "start": f"{end - 86400:.3f}",
            "end": f"{end:.3f}",
            "step": "720",
        }
        took, _ = _bare_ms(url, "query_range", params)
        times.append(took)
    return {"fleet_bare_chart_ms": statistics.median(times)}


def _wait_for_scrapes(prom: Any, rows: int, scrapes: int, timeout: float) -> None:
    from tests.support.prometheus import wait_until

    def number(expr: str) -> float:
        result = prom.query(expr)
        return float(result[0]["value"][1]) if result else 0.0

    wait_until(
        lambda: number("count(mqtop_queue_info)") == rows, timeout, f"{rows} queues in Prometheus"
    )
    wait_until(
        lambda: number('min(count_over_time(up{job="mqtop"}[10m]))') >= scrapes,
        timeout,
        f"{scrapes} scrapes of every target",
    )


def run(quick: bool = False) -> dict[str, float]:
    """First paint, refresh and a 24 h chart of the fleet dashboard over a real Prometheus."""
    from mqtop.sources.config import PrometheusSource
    from mqtop.sources.prometheus import FAMILIES, SourceReader
    from tests.support.prometheus import start_prometheus

    clusters = 1 if quick else CLUSTERS
    rows = clusters * SERIES
    exporters = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bench_fleet", "--exporters", str(clusters)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parent.parent,
    )
    prom = None
    try:
        assert exporters.stdout is not None
        ports = json.loads(exporters.stdout.readline())
        history = history_file(ports[0], Path(tempfile.mkdtemp()) / "history.om", time.time())
        prom = start_prometheus(
            [
                {
                    "job_name": "mqtop",
                    "scrape_interval": f"{SCRAPE:g}s",
                    "static_configs": [{"targets": [f"127.0.0.1:{p}" for p in ports]}],
                }
            ],
            interval=f"{SCRAPE:g}s",
            backfill=history,
        )
        _say(f"Prometheus on {prom.url}, waiting for 2 scrapes of {len(ports)} targets")
        _wait_for_scrapes(prom, rows, 2, 300)
        _say("scraped")
        selector = SourceReader(
            PrometheusSource(type="prometheus", url=prom.url)  # type: ignore[arg-type]
        ).selector(FAMILIES)
        bare = [_bare_ms(prom.url, "query", {"query": selector}) for _ in range(2)]
        samples = len(bare[-1][1]["data"]["result"])
        _say(f"bare query: {samples} samples in {min(ms for ms, _ in bare):.0f} ms")
        import gc

        from mqtop.runtime import tune_gc

        thresholds = gc.get_threshold()
        tune_gc()  # the dashboard's GC settings (`mqtop` calls this before it starts)
        try:
            with tempfile.TemporaryDirectory(prefix="mqtop-bench-fleet-") as tmp:
                out = asyncio.run(_dashboard(prom.url, rows, 2, Path(tmp)))
        finally:
            gc.unfreeze()
            gc.set_threshold(*thresholds)
        out["fleet_bare_query_ms_50k"] = min(ms for ms, _ in bare)
        out["fleet_query_samples"] = float(samples)
        out["fleet_rows"] = float(rows)
        out["fleet_source_poll_vs_bare"] = (
            out["fleet_source_poll_ms_50k"] / out["fleet_bare_query_ms_50k"]
        )
        out["fleet_chart_vs_bare"] = out["fleet_chart_24h_ms"] / out["fleet_bare_chart_ms"]
        return out
    finally:
        if prom is not None:
            prom.stop()
        if exporters.stdin is not None:
            exporters.stdin.close()
        exporters.wait(30)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--exporters", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.exporters:
        serve_exporters(args.exporters, SERIES)
    else:
        print(json.dumps(run(args.quick), indent=2))
