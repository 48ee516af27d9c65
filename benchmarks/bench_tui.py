"""Dashboard refresh cost with 10,000 series, headless (160x45).

mqtop: each poll, the row model (store views, alert evaluation, rows) is built in a worker
thread; the UI thread then arranges the rows (filter/sort), hands them to the virtual table
and repaints, formatting only the visible rows. "UI time" is that event-loop work: rebuild +
a full repaint of the screen, measured as CPU time of the UI thread (``time.thread_time``), so
other processes on a busy machine do not inflate it; wall-clock figures are printed too.

Baseline in the same run: Textual's built-in DataTable holding the same 10,000 rows x 13
columns, updated in place (``update_cell`` for every value that changed) and repainted.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from typing import Any

from mqtop.config import Config
from mqtop.engine import Engine
from mqtop.kernel.model import BrokerSnapshot, SeriesKey, SeriesSample

SIZE = (160, 45)
NOW = 1_767_225_600.0
INTERVAL = 5.0


def _snapshot(series: int, poll: int) -> BrokerSnapshot:
    samples = tuple(
        SeriesSample(
            SeriesKey("bench", f"queue-{i:05d}"),
            "classic",
            {
                "queue_length": float((i * 7919 + poll * (i % 13)) % 5000),
                "in_flight": float(i % 9),
                "consumers": float(i % 4),
                "latency_seconds": float((i + poll) % 600),
                "published_total": float(1000 + poll * (i % 17) * INTERVAL),
                "processed_total": float(900 + poll * (i % 11) * INTERVAL),
                "dead_lettered_total": float(poll * (i % 3)),
            },
        )
        for i in range(series)
    )
    return BrokerSnapshot("bench", "rabbitmq", NOW + poll * INTERVAL, True, 0.01, samples)


def _engine(series: int, polls: int) -> Engine:
    from collectors.base import BrokerOptions

    config = Config(interval=INTERVAL, brokers=[BrokerOptions(name="bench", type="rabbitmq")])
    engine = Engine(config)
    for poll in range(polls):
        engine.store.ingest(_snapshot(series, poll), interval=INTERVAL)
    return engine


def _paint(app: Any) -> None:
    """Render every visible line of the screen, as a terminal refresh does."""
    app.screen._compositor.render_update(full=True)


async def _mqtop(series: int, polls: int, updates: int) -> dict[str, float]:
    from mqtop.kernel.model import BrokerStatus
    from mqtop.ui.app import MqtopApp
    from mqtop.ui.overview import OverviewScreen

    engine = _engine(series, polls)
    engine.statuses["bench"] = BrokerStatus(
        name="bench",
        type="rabbitmq",
        address="bench",
        up=True,
        last_poll=NOW,
        last_success=NOW,
        interval=INTERVAL,
    )
    clock = {"now": NOW + polls * INTERVAL}
    app = MqtopApp(engine, clock=lambda: clock["now"], autostart=False)
    out: dict[str, float] = {}
    async with app.run_test(size=SIZE) as pilot:
        started = time.perf_counter()
        while app.refresh_count < 1 or not isinstance(app.screen, OverviewScreen):
            await pilot.pause(0.01)
        out["tui_startup_to_data_ms_10k_rows"] = (time.perf_counter() - started) * 1000
        screen = app.screen
        screen.table.set_rows([])
        _paint(app)
        await pilot.pause()
        c0 = time.thread_time()
        screen.rebuild()
        await pilot.pause()
        _paint(app)
        out["tui_first_paint_ms_10k_rows"] = (time.thread_time() - c0) * 1000
        build: list[float] = []
        ui: list[float] = []
        ui_wall: list[float] = []
        for u in range(updates):
            poll = polls + u
            clock["now"] = NOW + poll * INTERVAL
            target = app.refresh_count + 1
            # the engine's ingest (store work, not UI) happens before the clock starts
            engine.store.ingest(_snapshot(series, poll), interval=INTERVAL)
            c0 = time.thread_time()
            t0 = time.perf_counter()
            # the real pipeline: store callback -> worker builds the data -> UI applies it
            while app.refresh_count < target:
                await pilot.pause(0.02)
            await pilot.pause()  # DataRefreshed handled, Textual repaints
            _paint(app)  # plus a forced full-screen render (conservative)
            # main-thread CPU only: the worker thread's model build is measured apart
            ui.append((time.thread_time() - c0) * 1000)
            ui_wall.append((time.perf_counter() - t0) * 1000)
            build.append(app.last_build_cpu * 1000)
        c0 = time.thread_time()
        screen.sort_by("rate_in")
        await pilot.pause()
        _paint(app)
        out["tui_sort_ms_10k_rows"] = (time.thread_time() - c0) * 1000
        assert len(screen.table.rows) == series
        out["tui_refresh_ms_10k_rows"] = statistics.median(ui)
        out["tui_refresh_wall_ms_10k_rows"] = statistics.median(ui_wall)
        out["tui_model_build_ms_10k_rows"] = statistics.median(build)
        await app.stop_engine()
    return out


async def _datatable(series: int, polls: int, updates: int) -> dict[str, float]:
    from textual.app import App, ComposeResult
    from textual.widgets import DataTable

    from mqtop.ui.rows import COLUMNS, build_rows, cell_text

    engine = _engine(series, polls)
    keys = [c.key for c in COLUMNS]

    class Baseline(App[None]):
        def compose(self) -> ComposeResult:
            yield DataTable()

    app = Baseline()
    out: dict[str, float] = {}
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(DataTable)
        rows = build_rows(engine.store.views(), {}, [], NOW)
        c0 = time.thread_time()
        table.add_columns(*[c.title for c in COLUMNS])
        column_keys = list(table.columns)
        current: dict[str, list[str]] = {}
        for row in rows:
            cells = [cell_text(row, k) for k in keys]
            current[row.key.queue] = cells
            table.add_row(*cells, key=row.key.queue)
        await pilot.pause()
        _paint(app)
        out["datatable_first_paint_ms_10k_rows"] = (time.thread_time() - c0) * 1000
        times: list[float] = []
        times_wall: list[float] = []
        for u in range(updates):
            poll = polls + u
            engine.store.ingest(_snapshot(series, poll), interval=INTERVAL)
            new_rows = build_rows(engine.store.views(), {}, [], NOW + poll * INTERVAL)
            formatted = [(r.key.queue, [cell_text(r, k) for k in keys]) for r in new_rows]
            c0 = time.thread_time()
            t0 = time.perf_counter()
            for name, cells in formatted:
                old = current[name]
                for j, value in enumerate(cells):
                    if value != old[j]:
                        table.update_cell(name, column_keys[j], value)
                current[name] = cells
            await pilot.pause()
            _paint(app)
            times.append((time.thread_time() - c0) * 1000)
            times_wall.append((time.perf_counter() - t0) * 1000)
        out["datatable_refresh_ms_10k_rows"] = statistics.median(times)
        out["datatable_refresh_wall_ms_10k_rows"] = statistics.median(times_wall)
    return out


def run(quick: bool = False) -> dict[str, float]:
    """Refresh cost of the overview vs the built-in DataTable, 10,000 series."""
    import gc

    from mqtop.runtime import tune_gc

    series = 10_000
    polls = 4 if quick else 8
    updates = 3 if quick else 7
    thresholds = gc.get_threshold()
    # first with Python's default garbage-collector settings, for transparency
    default_gc = asyncio.run(_mqtop(series, polls, updates))
    # then as `mqtop` runs the dashboard (tune_gc), the baseline under the same settings
    tune_gc()
    try:
        mine = asyncio.run(_mqtop(series, polls, updates))
        base = asyncio.run(_datatable(series, polls, updates))
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    out = {**mine, **base}
    out["tui_refresh_ms_10k_rows_default_gc"] = default_gc["tui_refresh_ms_10k_rows"]
    out["tui_refresh_speedup_vs_datatable"] = (
        base["datatable_refresh_ms_10k_rows"] / mine["tui_refresh_ms_10k_rows"]
    )
    out["tui_first_paint_speedup_vs_datatable"] = (
        base["datatable_first_paint_ms_10k_rows"] / mine["tui_first_paint_ms_10k_rows"]
    )
    return out


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
