"""The dashboard on a live demo (real demo servers and workload), driven through Textual's Pilot."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import pytest

from mqtop.demo.runner import DemoSession
from mqtop.engine import Engine
from mqtop.kernel.model import SeriesKey
from mqtop.ui.app import MqtopApp
from mqtop.ui.detail import DetailScreen
from mqtop.ui.dlq import DlqScreen
from mqtop.ui.overview import OverviewScreen

pytestmark = pytest.mark.slow


async def wait_until(pilot, predicate: Callable[[], object], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {predicate}")
        await pilot.pause(0.1)


def _row(app: MqtopApp, broker: str, queue: str, group: str | None = None):
    key = SeriesKey(broker, queue, group)
    return next((r for r in app.data.rows if not r.is_header and r.key == key), None)


async def test_live_demo_fills_every_screen(tmp_path, monkeypatch):
    import redis.asyncio as aioredis

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    with DemoSession(tmp_path / "demo.yaml", local=False) as session:
        config = await asyncio.to_thread(session.start)
        assert session.info is not None
        app = MqtopApp(Engine(config))
        async with app.run_test(size=(160, 45)) as pilot:
            # overview: the burst on the invoice list, the SQS queue and the stream group
            def ready() -> bool:
                invoices = _row(app, "demo-redis", "jobs:invoices")
                stream = _row(app, "demo-redis", "events:orders", "fulfillment")
                emails = _row(app, "demo-sqs", "email-notifications")
                return bool(
                    invoices
                    and (invoices.backlog or 0) > 1000
                    and stream
                    and stream.rate_in
                    and emails
                    and emails.backlog is not None
                )

            await wait_until(pilot, ready, 30)
            assert isinstance(app.screen, OverviewScreen)

            # the alert fires on the burst and is shown on its row
            def backlog_alerts() -> list:
                return [a for a in app.data.firing() if a.rule == "QueueBacklog"]

            await wait_until(pilot, backlog_alerts, 30)
            firing = backlog_alerts()
            assert firing[0].queue == "jobs:invoices"
            assert firing[0].broker == "demo-redis"
            text = app.screen_text()
            assert "jobs:invoices" in text and "email-notifications" in text

            # detail: a chart of the invoice backlog
            app.open_detail(SeriesKey("demo-redis", "jobs:invoices"))
            await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen), 10)
            await pilot.pause(0.5)
            assert "jobs:invoices" in app.screen_text()
            await pilot.press("escape")
            await wait_until(pilot, lambda: isinstance(app.screen, OverviewScreen), 10)

            # DLQ browser: dead invoices to replay, as the Redis server holds them
            app.open_dlq("demo-redis", "jobs:invoices:dead")
            await wait_until(
                pilot, lambda: isinstance(app.screen, DlqScreen) and app.screen.messages, 20
            )
            screen = app.screen
            assert isinstance(screen, DlqScreen)
            assert screen.replay_target == "jobs:invoices"
            client = aioredis.Redis.from_url(session.info.endpoints["redis"] or "")
            try:
                held = await client.lrange("jobs:invoices:dead", 0, -1)
            finally:
                await client.aclose()
            shown = {json.loads(m.body)["order_id"] for m in screen.messages}
            assert shown <= {json.loads(raw)["order_id"] for raw in held}
            assert all(json.loads(m.body)["vat_id"] == "XX-INVALID" for m in screen.messages)
            await app.stop_engine()
