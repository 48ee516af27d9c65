"""The dashboard's detail shows the `mqtop lint` findings of its queue, read from the real
RabbitMQ off the UI loop; a queue without findings shows no lint section."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from textual.widgets import Static

from mqtop.config import load_config
from mqtop.engine import Engine
from mqtop.kernel.model import SeriesKey
from mqtop.ui.app import MqtopApp
from mqtop.ui.detail import DetailScreen
from mqtop.ui.overview import OverviewScreen
from tests.support.rabbit import Rabbit, broker_config, rabbit_session

pytestmark = pytest.mark.broker


@pytest.fixture
def rabbit(rabbitmq_broker, unique):
    yield from rabbit_session(rabbitmq_broker, unique)


async def wait_until(pilot, predicate: Callable[[], object], timeout: float = 30.0, what=""):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await pilot.pause(0.05)


async def test_detail_shows_the_queues_lint_findings(rabbit: Rabbit, write_config, tmp_path):
    p = rabbit.unique("ui-lint")
    plain = rabbit.queue(p + ".plain")
    dlx = rabbit.exchange(p + ".dlx", "fanout")
    safe = rabbit.queue(p + ".safe", arguments={"x-dead-letter-exchange": dlx})
    parking = rabbit.queue(p + ".parking", arguments={"x-max-length": 10})
    rabbit.bind(dlx, parking)
    extra = f'audit_log: "{tmp_path / "audit.jsonl"}"\n'
    path = write_config(broker_config(rabbit.broker, [p + "*"], extra=extra))
    app = MqtopApp(Engine(load_config(str(path))), lint=True)
    async with app.run_test(size=(160, 60)) as pilot:
        await wait_until(
            pilot,
            lambda: (
                app.refresh_count >= 1
                and isinstance(app.screen, OverviewScreen)
                and app.engine.store.view(SeriesKey("rabbit", plain))
            ),
            what="first poll in the overview",
        )
        await pilot.pause()
        app.open_detail(SeriesKey("rabbit", plain))
        await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen), what="detail")
        await pilot.pause(0.3)
        widget = app.screen.query_one("#detail-lint", Static)
        await wait_until(pilot, lambda: widget.display, what="lint findings shown")
        text = app.screen_text()
        assert "rabbitmq-no-dlx" in text and "fix: set a policy with dead-letter-exchange" in text

        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, OverviewScreen), what="back")
        app.open_detail(SeriesKey("rabbit", safe))
        await wait_until(
            pilot,
            lambda: isinstance(app.screen, DetailScreen) and app.screen.key.queue == safe,
            what="detail of the safe queue",
        )
        screen = app.screen
        await wait_until(pilot, lambda: screen.lint_checked, what="lint looked up")
        assert screen.query_one("#detail-lint", Static).display is False
        assert "rabbitmq-" not in app.screen_text()
        await app.stop_engine()
