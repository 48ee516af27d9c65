"""Celery (kombu's Redis transport) with its real worker: mqtop's numbers equal kombu's."""

from __future__ import annotations

import asyncio
import os

import pytest

from collectors.jobs.celery import CeleryCollector, CeleryOptions
from tests.support.jobs import celery_worker, running, series_by_queue, wait_until

pytestmark = pytest.mark.broker


def _collect(url: str) -> dict:
    async def go() -> dict:
        collector = CeleryCollector(CeleryOptions(name="cy", url=url))
        await collector.connect()
        try:
            got = await collector.collect()
        finally:
            await collector.close()
        return {s.key.queue: s for s in got.series}

    return asyncio.run(go())


@pytest.fixture
def app(celery_installed, job_url, monkeypatch):
    monkeypatch.setenv("MQTOP_CELERY_BROKER", job_url)
    import importlib

    import tests.support.celery as module

    module = importlib.reload(module)  # the broker URL is read at import
    yield module.app
    module.app.pool.force_close_all()


def _size(app, queue: str) -> int:
    with app.connection_for_read() as conn:
        return int(conn.default_channel._size(queue))  # kombu's own sum of the priority lists


def test_priority_queues_summed_and_unacked_tasks(app, job_url, rc, jobs_cli, unique):
    tag = unique("cy")
    for i in range(4):
        app.send_task("mqtop.flaky", args=[tag, i], queue=tag, priority=i * 3)
    assert _size(app, tag) == 4
    series = series_by_queue(jobs_cli("celery", job_url, "metrics", "--format", "json"))
    got = series[tag]
    assert got["kind"] == "jobs"
    # four priority lists, one queue: kombu's own size sums them
    assert got["metrics"]["queue_length"] == _size(app, tag) == 4
    assert got["metrics"]["latency_seconds"] is None  # kombu messages carry no enqueue time
    assert got["dlq"] is None and got["metrics"]["dlq_length"] is None
    assert not [q for q in series if "pidbox" in q or q.startswith("celeryev")]

    rc.delete(*rc.keys(f"{tag}*"))
    app.send_task("mqtop.flaky", args=[tag, 99, 3.0], queue=tag)
    with running(celery_worker(job_url, [tag])):
        wait_until(lambda: rc.hlen("unacked") == 1, 30, "the task delivered, not acked")
        got = _collect(job_url)[tag]
        assert got.values["in_flight"] == 1
        assert got.values["queue_length"] == _size(app, tag) == 0
    assert os.environ["MQTOP_CELERY_BROKER"] == job_url
