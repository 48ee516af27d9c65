"""Screenshots of every screen, built from the fixed sample data and a fixed clock.

Update after an intended visual change with ``pytest tests/ui/test_ui_snapshots.py
--snapshot-update`` and review the SVGs (``snapshot_report.html`` shows the differences).
"""

from __future__ import annotations

import time

from mqtop.ui.app import MqtopApp
from mqtop.ui.dlq import DlqScreen
from mqtop.ui.modals import ConfirmModal
from mqtop.ui.overview import OverviewScreen
from mqtop.ui.sample import NOW, sample_alerts, sample_engine


def _app(tmp_path) -> MqtopApp:
    engine = sample_engine(audit_log=str(tmp_path / "audit.jsonl"))
    return MqtopApp(engine, sample_alerts(), clock=lambda: NOW, autostart=False)


async def _until(pilot, predicate, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await pilot.pause(0.02)


async def _ready(pilot) -> None:
    app = pilot.app
    await _until(pilot, lambda: app.refresh_count >= 1 and isinstance(app.screen, OverviewScreen))
    await pilot.pause()


def test_overview(snap_compare, tmp_path):
    assert snap_compare(_app(tmp_path), terminal_size=(130, 30), run_before=_ready)


def test_overview_80x24_grouped(snap_compare, tmp_path):
    assert snap_compare(_app(tmp_path), press=["g"], terminal_size=(80, 24), run_before=_ready)


def test_detail(snap_compare, tmp_path):
    async def open_detail(pilot) -> None:
        await _ready(pilot)
        # the Kafka group: charts, partition table, consumers, alert
        await pilot.press("enter")
        await pilot.pause(0.2)

    assert snap_compare(_app(tmp_path), terminal_size=(120, 60), run_before=open_detail)


def test_alerts(snap_compare, tmp_path):
    assert snap_compare(_app(tmp_path), press=["A"], terminal_size=(130, 30), run_before=_ready)


def test_dlq_browser_with_confirm(snap_compare, tmp_path):
    async def open_dlq(pilot) -> None:
        await _ready(pilot)
        app = pilot.app
        app.open_dlq("rabbit", "orders.dlq")
        await _until(pilot, lambda: isinstance(app.screen, DlqScreen) and app.screen.messages)
        await pilot.press("space", "space", "r")
        await _until(pilot, lambda: isinstance(app.screen, ConfirmModal))

    assert snap_compare(_app(tmp_path), terminal_size=(120, 30), run_before=open_dlq)


def test_dlq_browser(snap_compare, tmp_path):
    async def open_dlq(pilot) -> None:
        await _ready(pilot)
        app = pilot.app
        app.open_dlq("rabbit", "orders.dlq")
        await _until(pilot, lambda: isinstance(app.screen, DlqScreen) and app.screen.messages)
        await pilot.press("down", "space")

    assert snap_compare(_app(tmp_path), terminal_size=(120, 24), run_before=open_dlq)
