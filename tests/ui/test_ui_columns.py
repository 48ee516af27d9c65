"""Columns like htop: chosen, hidden and reordered (kept in a state file), and totals."""

from __future__ import annotations

import json
import os
from pathlib import Path

from mqtop.ui.columns import ColumnsScreen
from mqtop.ui.overview import OverviewScreen
from mqtop.ui.rows import DEFAULT_ORDER, Row
from mqtop.ui.totals import totals
from mqtop.ui.vtable import SeriesTable
from tests.support.pilot import make_app, ready, wait_until


def _state() -> Path:
    return Path(os.environ["XDG_STATE_HOME"]) / "mqtop" / "dashboard.json"


async def test_columns_are_chosen_reordered_and_remembered(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(160, 40)) as pilot:
        table = await ready(app, pilot)
        assert [c.key for c in table.columns][:2] == ["broker", "queue"]
        await pilot.press("c")
        await wait_until(pilot, lambda: isinstance(app.screen, ColumnsScreen))
        # hide Broker (first row), move Queue to the top, hide Kind
        await pilot.press("space", "down", "K")
        await pilot.press("down", "down", "down", "space")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, OverviewScreen))
        shown = [c.key for c in table.columns]
        assert shown[0] == "queue" and "broker" not in shown and "kind" not in shown
        saved = json.loads(_state().read_text())
        assert saved["columns"][0] == "queue" and "broker" not in saved["columns"]
        await app.stop_engine()
    # a new dashboard starts with the same columns
    again = make_app(tmp_path)
    async with again.run_test(size=(160, 40)) as pilot:
        table = await ready(again, pilot)
        assert table.columns[0].key == "queue"
        assert "broker" not in [c.key for c in table.columns]
        # d restores every column; Esc would have kept them
        await pilot.press("c")
        await wait_until(pilot, lambda: isinstance(again.screen, ColumnsScreen))
        await pilot.press("d", "enter")
        await wait_until(pilot, lambda: isinstance(again.screen, OverviewScreen))
        assert json.loads(_state().read_text())["columns"] == list(DEFAULT_ORDER)
        await again.stop_engine()


async def test_a_damaged_settings_file_is_said_and_ignored(tmp_path):
    _state().parent.mkdir(parents=True)
    _state().write_text("{not json")
    app = make_app(tmp_path)
    async with app.run_test(size=(160, 40), notifications=True) as pilot:
        table = await ready(app, pilot)
        assert [c.key for c in table.columns][:2] == ["broker", "queue"]
        await wait_until(pilot, lambda: "defaults used" in app.screen_text())
        await app.stop_engine()


async def test_totals_per_broker_and_overall(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(200, 50)) as pilot:
        table: SeriesTable = await ready(app, pilot)
        rows: list[Row] = list(table.rows)
        overall = totals(rows)
        assert overall.series == 13
        assert overall.backlog == sum(r.backlog for r in rows if r.backlog is not None)
        # the DLQs: orders.dlq, payments.dlq, signup-dlq, jobs:dead, orders.DLT
        dead = {"orders.dlq", "payments.dlq", "signup-dlq", "jobs:dead", "orders.DLT"}
        assert overall.dlq == sum(r.backlog or 0 for r in rows if r.queue in dead)
        # clicks is read by two groups: its publish rate counts once
        clicks = [r.rate_in for r in rows if r.queue == "clicks"]
        assert len(clicks) == 2
        others = sum(r.rate_in for r in rows if r.queue != "clicks" and r.rate_in is not None)
        assert abs(overall.rate_in - (others + clicks[0])) < 1e-6
        text = app.screen_text()
        assert "Σ  13 shown: backlog" in text
        await pilot.press("g")
        headers = [r.header for r in table.rows if r.is_header]
        rabbit = totals([r for r in rows if r.broker == "rabbit"])
        assert any(h.startswith("▾ rabbit") and f"DLQ {rabbit.dlq:.0f}" in h for h in headers)
        # a broker with no rates known says "-", never 0
        assert any(h.startswith("▾ cache") and "in -/s" in h for h in headers)
        await pilot.press("t")
        assert "Σ " not in app.screen_text()
        await app.stop_engine()
