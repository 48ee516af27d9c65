"""Celery (kombu's Redis transport) with its real worker: mqtop's numbers equal kombu's."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from collectors.jobs.celery.collector import CeleryCollector
from collectors.jobs.celery.options import CeleryOptions
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


def _names(run) -> set[str]:
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert doc["brokers"][0]["up"], doc["brokers"]
    return {s["queue"] for s in doc["series"]}


def test_celery_on_rabbitmq_hides_transient_queues_and_names_tasks(
    celery_installed, rabbitmq_broker, write_config, run_cli, unique
):
    from celery import Celery

    tag = unique("cyr")
    amqp = rabbitmq_broker.amqp_url
    node = f"{tag}@localhost"
    app = Celery(tag, broker=amqp, backend="rpc://")
    config = write_config(
        f"""
        brokers:
          - {{name: tasks, type: celery, url: "{amqp}",
              management_url: "{rabbitmq_broker.management_url}"}}
          - {{name: all, type: celery, url: "{amqp}", show_internal: true,
              management_url: "{rabbitmq_broker.management_url}"}}
        """
    )
    try:
        # Celery's own transient queues, alive while this block runs: the worker's
        # remote-control queue, an event receiver's queue, the rpc:// backend's reply queue
        with running(celery_worker(amqp, [tag + "-w"], name=node)), app.connection() as conn:
            receiver = app.events.Receiver(conn, handlers={})
            with receiver.consumer_context():
                for i in range(3):
                    app.send_task("mqtop.flaky", args=[tag, i], queue=tag)
                transient = {f"{node}.celery.pidbox", receiver.queue.name, app.backend.oid}
                assert receiver.queue.name.startswith("celeryev.")

                def listed(broker: str) -> set[str]:
                    run = run_cli("--config", str(config), "metrics", "--broker", broker,
                                  "--format", "json")  # fmt: skip
                    return _names(run)

                wait_until(lambda: transient <= listed("all"), 30, "the transient queues")
                shown = listed("tasks")
                assert tag in shown
                assert not transient & shown
                assert not [q for q in shown if q.endswith(".pidbox") or "celeryev." in q]

        peek = run_cli("--config", str(config), "dlq", "peek", "tasks", tag, "-n", "3",
                       "--format", "json")  # fmt: skip
        assert peek.returncode == 0, peek.stderr
        shown_tasks = json.loads(peek.stdout)
        assert len(shown_tasks) == 3
        assert {m["headers"]["class"] for m in shown_tasks} == {"mqtop.flaky"}
        assert {m["headers"]["task"] for m in shown_tasks} == {"mqtop.flaky"}
        filtered = run_cli("--config", str(config), "dlq", "replay", "tasks", tag, "--to",
                           tag + "-w", "--dry-run", "--filter", "header.class=mqtop.flaky",
                           "--format", "json")  # fmt: skip
        assert filtered.returncode == 0, filtered.stderr
        assert json.loads(filtered.stdout)["moved"] == 3
    finally:
        with app.connection() as conn:
            channel = conn.channel()
            for queue in (tag, tag + "-w"):
                channel.queue_delete(queue)
        app.close()
