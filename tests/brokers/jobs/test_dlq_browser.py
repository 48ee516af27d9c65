"""The dashboard's DLQ browser on job libraries' dead sets (Textual Pilot, real libraries):
the job queue's row leads to its dead set, the viewer shows the job, and a replay of the
selected jobs is the library's retry, checked with the library's own API."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mqtop.config import load_config
from mqtop.engine import Engine
from mqtop.kernel.model import SeriesKey
from mqtop.ui.app import MqtopApp
from mqtop.ui.dlq import DlqScreen, MessageViewer
from mqtop.ui.modals import ConfirmModal
from mqtop.ui.overview import OverviewScreen
from mqtop.ui.vtable import SeriesTable
from tests.support.jobs import rq_worker

pytestmark = pytest.mark.broker


async def wait_until(pilot, predicate: Callable[[], object], what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)
    return value


def _row(app: MqtopApp, key: SeriesKey):
    table = app.screen.query_one(SeriesTable)
    return next((row for row in table.rows if row.key == key), None)


def _app(write_config, tmp_path: Path, broker_type: str, url: str) -> MqtopApp:
    path = write_config(
        "interval: 1s\n"
        f'brokers:\n  - {{name: jobs, type: {broker_type}, url: "{url}"}}\n'
        f'audit_log: "{tmp_path / "audit.jsonl"}"\n'
        f'alerting: {{silences_path: "{tmp_path / "silences.json"}"}}\n'
    )
    return MqtopApp(Engine(load_config(str(path))))


async def _open_from_queue_row(pilot, app: MqtopApp, queue: str) -> DlqScreen:
    """Filter the overview to the job queue, put the cursor on it and press d."""
    await pilot.press("slash", *queue, "enter")
    table = app.screen.query_one(SeriesTable)
    for _ in range(len(table.rows)):
        if table.cursor_row is not None and table.cursor_row.queue == queue:
            break
        await pilot.press("down")
    assert table.cursor_row is not None and table.cursor_row.queue == queue
    await pilot.press("d")
    return await wait_until(
        pilot, lambda: isinstance(app.screen, DlqScreen) and app.screen, "the DLQ browser"
    )


async def _replay_selected(pilot, app: MqtopApp, screen: DlqScreen, *expected: str) -> None:
    await pilot.press("space", "space")
    await pilot.press("r")
    await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the confirmation")
    body = app.screen.body.plain
    for text in expected:
        assert text in body, (text, body)
    await pilot.press("y")
    await wait_until(pilot, lambda: screen.last_result is not None, "the replay")


async def test_rq_failed_registry_in_the_dlq_browser(
    rq_installed, job_url, rc, write_config, tmp_path, unique
):
    from rq import Queue
    from rq.registry import FailedJobRegistry

    tag = unique("uirq")
    queue = Queue(tag, connection=rc)
    rc.set(f"{tag}:fail", 1)
    for i in range(5):
        queue.enqueue("tests.support.jobs.rq_flaky", tag, i)
    worker = rq_worker(job_url, [tag])
    assert worker.proc.wait(60) == 0, worker.tail()
    worker.stop()
    failed = FailedJobRegistry(tag, connection=rc)
    assert failed.count == 5

    app = _app(write_config, tmp_path, "rq", job_url)
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_until(
            pilot,
            lambda: (
                isinstance(app.screen, OverviewScreen)
                and _row(app, SeriesKey("jobs", tag)) is not None
            ),
            "the job queue in the overview",
        )
        assert _row(app, SeriesKey("jobs", tag)).dlq == f"{tag}:failed"
        screen = await _open_from_queue_row(pilot, app, tag)
        assert screen.queue == f"{tag}:failed"
        await wait_until(pilot, lambda: len(screen.messages) == 5, "the peek")
        assert screen.total == 5 and screen.replay_target == tag
        await pilot.pause(0.2)
        text = app.screen_text()
        # reason and body columns (the body's cell is cut to the width left by the whole ids)
        assert "LookupErr" in text and f"rq_flaky('{tag[:20]}" in text
        await pilot.press("enter")
        viewer = await wait_until(
            pilot, lambda: isinstance(app.screen, MessageViewer) and app.screen, "the viewer"
        )
        shown = app.screen_text()
        assert "tests.support.jobs.rq_flaky" in shown and "LookupError: flaky" in shown
        assert "Traceback" in shown
        viewer.dismiss(None)
        await wait_until(pilot, lambda: app.screen is screen, "back to the list")

        chosen = [m.id for m in screen.messages[:2]]
        rc.delete(f"{tag}:fail")
        await _replay_selected(pilot, app, screen, "2 selected message(s)", f"{tag}:failed", tag)
        assert (screen.last_result.moved, screen.last_result.failed) == (2, 0)
        # RQ's own view: exactly the two selected jobs requeued
        assert failed.count == 3 and sorted(queue.job_ids) == sorted(chosen)
        await app.stop_engine()
    (record,) = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert (record["action"], record["count"], record["result"]) == ("replay", 2, "ok")


async def test_sidekiq_dead_set_in_the_dlq_browser(
    sidekiq, job_url, rc, write_config, tmp_path, unique
):
    tag = unique("uisk")
    sidekiq.fail_into_dead(tag, tag, 4, dead_max_jobs=10_000)
    app = _app(write_config, tmp_path, "sidekiq", job_url)
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_until(
            pilot,
            lambda: (
                isinstance(app.screen, OverviewScreen)
                and _row(app, SeriesKey("jobs", "dead")) is not None
            ),
            "the dead set in the overview",
        )
        screen = await _open_from_queue_row(pilot, app, "dead")
        await wait_until(pilot, lambda: len(screen.messages) == 4, "the peek")
        await pilot.pause(0.2)
        assert "ArgumentEr" in app.screen_text() and f'["{tag}",' in app.screen_text()
        chosen = {json.loads(m.body)[1] for m in screen.messages[:2]}
        # the default target is each job's own queue ("*"), shown as such
        await _replay_selected(pilot, app, screen, "2 selected message(s)", "dead", "*")
        assert (screen.last_result.moved, screen.last_result.failed) == (2, 0)
        await app.stop_engine()
    own = sidekiq.stats([tag])
    assert own["dead"] == 2 and own["queues"][tag] == 2  # Sidekiq's DeadSet and Queue sizes
    assert {json.loads(x)["args"][1] for x in rc.lrange(f"queue:{tag}", 0, -1)} == chosen
