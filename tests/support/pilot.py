"""Helpers for dashboard tests driven through Textual's Pilot (sample data or real brokers)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mqtop.kernel.model import SeriesKey
from mqtop.ui.app import MqtopApp
from mqtop.ui.dlq import DlqScreen
from mqtop.ui.modals import ConfirmModal
from mqtop.ui.overview import OverviewScreen
from mqtop.ui.sample import NOW, sample_alerts, sample_engine
from mqtop.ui.vtable import SeriesTable


async def wait_until(
    pilot: Any,
    predicate: Callable[[], object],
    timeout: float = 30.0,
    what: str = "",
    message: Callable[[], object] | None = None,
) -> Any:
    """The predicate's first truthy value, polled between frames; fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            extra = f" {message()}" if message is not None else ""
            raise AssertionError(f"timed out waiting for {what or predicate}{extra}")
        await pilot.pause(0.02)


def make_app(tmp_path: Path, **kwargs: Any) -> MqtopApp:
    """The dashboard on the fixed sample engine (no broker, clock frozen at NOW)."""
    actions = kwargs.pop("actions", None)
    alerts = kwargs.pop("alerts", None) or sample_alerts()
    engine = sample_engine(actions=actions, audit_log=str(tmp_path / "audit.jsonl"), **kwargs)
    return MqtopApp(engine, alerts, clock=lambda: NOW, autostart=False)


async def ready(app: MqtopApp, pilot: Any) -> SeriesTable:
    """The overview's table once the first refresh has been drawn."""
    await wait_until(
        pilot, lambda: app.refresh_count >= 1 and isinstance(app.screen, OverviewScreen)
    )
    await pilot.pause()
    return app.screen.query_one(SeriesTable)


def queues(table: SeriesTable) -> list[str]:
    """The series labels of the table's rows, group headers left out."""
    return [r.key.label() for r in table.rows if not r.is_header]


def row(app: MqtopApp, key: SeriesKey) -> Any:
    """The overview row of a series, or None while it is not shown."""
    table = app.screen.query_one(SeriesTable)
    for candidate in table.rows:
        if candidate.key == key:
            return candidate
    return None


def state_config(tmp_path: Path) -> str:
    """Config lines keeping the audit log and silences in the test's own folder."""
    return (
        f'audit_log: "{tmp_path / "audit.jsonl"}"\n'
        f'alerting: {{silences_path: "{tmp_path / "silences.json"}"}}\n'
    )


async def open_dlq_through_ui(pilot: Any, app: MqtopApp, queue: str) -> DlqScreen:
    """Filter the overview down to the queue, then press d (no shortcut through the API)."""
    await pilot.press("slash")
    await pilot.press(*queue)
    await pilot.press("enter")
    table = app.screen.query_one(SeriesTable)
    await wait_until(
        pilot, lambda: table.cursor_row is not None and table.cursor_row.queue == queue
    )
    await pilot.press("d")
    # (a peek-warning modal may already be on top of it)
    screen: DlqScreen = await wait_until(
        pilot,
        lambda: next((s for s in app.screen_stack if isinstance(s, DlqScreen)), None),
        what="dlq",
    )
    return screen


async def confirm(pilot: Any, app: MqtopApp, *expected: str) -> None:
    """Wait for the confirmation dialog, check it says each of `expected`, answer y."""
    await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), what="confirm modal")
    body = app.screen.body.plain
    for text in expected:
        assert text in body, (text, body)
    await pilot.press("y")
