"""The fleet dashboard (Pilot) over a real Prometheus scraping two real ``mqtop serve``: both
clusters' series in the overview, a remote series' charts read from Prometheus (query_range),
a remote broker is read-only and says why, and a DLQ replay of the local cluster moves the
messages on the real Redis."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import redis

from mqtop.config import load_config
from mqtop.engine import Engine
from mqtop.kernel.model import SeriesKey
from mqtop.ui.app import MqtopApp
from mqtop.ui.detail import DetailScreen
from mqtop.ui.dlq import DlqScreen
from mqtop.ui.modals import ConfirmModal
from mqtop.ui.overview import OverviewScreen
from mqtop.ui.vtable import SeriesTable
from tests.fleet.conftest import BACKLOG, Fleet

pytestmark = pytest.mark.broker


async def wait_until(pilot, predicate: Callable[[], object], timeout: float = 30.0, what=""):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await pilot.pause(0.05)


def row(app: MqtopApp, key: SeriesKey):
    if not isinstance(app.screen, OverviewScreen):
        return None
    return next((r for r in app.screen.query_one(SeriesTable).rows if r.key == key), None)


async def select(pilot, app: MqtopApp, queue: str) -> None:
    """Filter the overview down to one queue and put the cursor on it."""
    await pilot.press("slash", *queue, "enter")
    table = app.screen.query_one(SeriesTable)
    await wait_until(
        pilot, lambda: table.cursor_row is not None and table.cursor_row.queue == queue
    )


async def test_fleet_dashboard(fleet: Fleet, write_config, tmp_path):
    client = redis.Redis(host=fleet.redis.host, port=fleet.redis.port)
    jobs, dead = f"{fleet.eu}:jobs", f"{fleet.eu}:jobs:dead"
    client.rpush(dead, *[f"dead-{i}" for i in range(4)])
    path = write_config(
        f"""
        interval: 1s
        labels: {{cluster: eu-1}}
        audit_log: "{tmp_path / "audit.jsonl"}"
        alerting: {{silences_path: "{tmp_path / "silences.json"}"}}
        brokers:
          - {{name: cache, type: redis, url: "{fleet.redis.url}", lists: ["{fleet.eu}*"],
              streams: []}}
        sources:
          - {{type: prometheus, name: fleet, url: "{fleet.prometheus.url}"}}
        """
    )
    app = MqtopApp(Engine(load_config(str(path))))
    try:
        async with app.run_test(size=(160, 45)) as pilot:
            local, remote = SeriesKey("cache", fleet.eu), SeriesKey("us-1/cache", fleet.us)
            await wait_until(
                pilot,
                lambda: row(app, local) and row(app, remote),
                what="both clusters in the overview",
            )
            assert row(app, local).backlog == BACKLOG and row(app, remote).backlog == 7
            text = app.screen_text()
            assert "fleet up" in text and "us-1/ca" in text  # the broker column is narrow

            # a remote series: charts from Prometheus, 7d and 30d windows
            await select(pilot, app, fleet.us)
            await pilot.press("enter")
            detail = await wait_until(
                pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen
            )
            assert [label for label, _ in detail.windows][-2:] == ["7d", "30d"]
            await pilot.press("5")  # 30 days: far more than the console ever polled
            _, points = await wait_until(
                pilot,
                lambda: (d := detail.chart_data("queue_length"))[0] == "source" and d,
                what="points from Prometheus",
            )
            assert points and {v for _, v in points if v is not None} == {7.0}
            assert points[0][0] <= fleet.backlog_since + 60  # history older than this console
            # the remote broker's queue in the DLQ browser: read-only, and it says why
            app.open_dlq(remote.broker, fleet.us)
            screen = await wait_until(
                pilot, lambda: next((s for s in app.screen_stack if isinstance(s, DlqScreen)), 0)
            )
            await wait_until(pilot, lambda: "read-only" in app.screen_text(), what="the reason")
            assert screen.check_action("replay", ()) is None  # writes disabled
            await pilot.press("escape")
            await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen))
            await pilot.press("escape")
            await wait_until(pilot, lambda: isinstance(app.screen, OverviewScreen))
            await pilot.press("escape")

            # the local cluster: replay its dead letters on the real broker
            await wait_until(pilot, lambda: row(app, SeriesKey("cache", dead)), what="dlq row")
            await select(pilot, app, dead)
            await pilot.press("d")
            screen = await wait_until(
                pilot, lambda: next((s for s in app.screen_stack if isinstance(s, DlqScreen)), 0)
            )
            await wait_until(pilot, lambda: len(screen.messages) == 4, what="peek")
            await pilot.press("r")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), what="confirm")
            await pilot.press("y")
            await wait_until(pilot, lambda: screen.last_result is not None, what="replay")
            assert screen.last_result.moved == 4 and screen.last_result.failed == 0
            assert client.llen(dead) == 0
            assert client.lrange(jobs, 0, -1) == [f"dead-{i}".encode() for i in range(4)]
            await app.stop_engine()
    finally:
        client.delete(jobs, dead)
        client.close()
