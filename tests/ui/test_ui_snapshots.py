"""Screenshots of every screen at 80x24, 160x45 and 240x60, from the fixed sample data and a
fixed clock.

Update after an intended visual change with ``pytest tests/ui/test_ui_snapshots.py
--snapshot-update`` and review the SVGs (``snapshot_report.html`` shows the differences).
"""

from __future__ import annotations

import time

import pytest

from mqtop.ui.app import MqtopApp
from mqtop.ui.detail import DetailScreen
from mqtop.ui.dlq import DlqScreen, MessageViewer
from mqtop.ui.modals import ConfirmModal, HelpScreen
from mqtop.ui.overview import OverviewScreen
from mqtop.ui.sample import NOW, sample_alerts, sample_engine

SIZES = {"80x24": (80, 24), "160x45": (160, 45), "240x60": (240, 60)}


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
    # the table takes the focus once its first rows are in (its cursor row is drawn in the
    # focused colour): on a loaded machine that can come a frame after the first refresh
    await _until(pilot, lambda: app.screen.table.has_focus)
    await pilot.pause()


async def _dlq(pilot) -> None:
    await _ready(pilot)
    app = pilot.app
    app.open_dlq("rabbit", "orders.dlq")
    await _until(pilot, lambda: isinstance(app.screen, DlqScreen) and app.screen.messages)
    await pilot.pause()


async def overview(pilot) -> None:
    await _ready(pilot)


async def detail(pilot) -> None:
    await _ready(pilot)
    await pilot.press("enter")  # the Kafka group: charts, partitions, consumers, an alert
    await _until(pilot, lambda: isinstance(pilot.app.screen, DetailScreen))
    await pilot.pause(0.3)


async def alerts(pilot) -> None:
    await _ready(pilot)
    await pilot.press("A")
    await pilot.pause(0.2)


async def dlq(pilot) -> None:
    await _dlq(pilot)
    await pilot.press("down", "space")


async def viewer(pilot) -> None:
    await _dlq(pilot)
    await pilot.press("enter")
    await _until(pilot, lambda: isinstance(pilot.app.screen, MessageViewer))
    await pilot.pause()


async def help_keys(pilot) -> None:
    await _ready(pilot)
    await pilot.press("question_mark")
    await _until(pilot, lambda: isinstance(pilot.app.screen, HelpScreen))
    await pilot.pause()


SCREENS = {
    "overview": overview,
    "detail": detail,
    "alerts": alerts,
    "dlq": dlq,
    "viewer": viewer,
    "help": help_keys,
}


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("screen", list(SCREENS))
def test_screen(snap_compare, tmp_path, screen, size):
    assert snap_compare(_app(tmp_path), terminal_size=SIZES[size], run_before=SCREENS[screen])


def test_overview_80x24_grouped(snap_compare, tmp_path):
    assert snap_compare(_app(tmp_path), press=["g"], terminal_size=(80, 24), run_before=_ready)


def test_dlq_grouped_by_reason(snap_compare, tmp_path):
    async def grouped(pilot) -> None:
        await _dlq(pilot)
        await pilot.press("g")

    assert snap_compare(_app(tmp_path), terminal_size=(80, 24), run_before=grouped)


def test_dlq_browser_with_confirm(snap_compare, tmp_path):
    async def confirm(pilot) -> None:
        await _dlq(pilot)
        await pilot.press("space", "space", "r")
        await _until(pilot, lambda: isinstance(pilot.app.screen, ConfirmModal))
        await pilot.pause()

    assert snap_compare(_app(tmp_path), terminal_size=(80, 24), run_before=confirm)
