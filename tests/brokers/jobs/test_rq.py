"""RQ with its real worker: mqtop's numbers equal RQ's own registries and counts."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from collectors.jobs.rq.collector import RQCollector
from collectors.jobs.rq.options import RQOptions
from tests.support.jobs import rq_worker, running, series_by_queue, wait_until

pytestmark = pytest.mark.broker


def _collect(url: str) -> dict:
    async def go() -> dict:
        collector = RQCollector(RQOptions(name="rq", url=url))
        await collector.connect()
        try:
            got = await collector.collect()
        finally:
            await collector.close()
        return {s.key.queue: s for s in got.series}

    return asyncio.run(go())


def test_queue_registries_and_workers_match_rq(rq_installed, job_url, rc, jobs_cli, unique):
    from rq import Queue, Worker
    from rq.registry import FailedJobRegistry, StartedJobRegistry

    tag = unique("rq")
    queue = Queue(tag, connection=rc)
    rc.set(f"{tag}:fail", 1)
    for i in range(4):
        queue.enqueue("tests.support.jobs.rq_flaky", tag, i)
    worker = rq_worker(job_url, [tag])
    assert worker.proc.wait(60) == 0, worker.tail()
    worker.stop()
    failed = FailedJobRegistry(tag, connection=rc)
    assert failed.count == 4
    waiting = [queue.enqueue("tests.support.jobs.rq_flaky", tag, 10 + i) for i in range(3)]

    series = series_by_queue(jobs_cli("rq", job_url, "metrics", "--format", "json"))
    got = series[tag]
    assert got["kind"] == "jobs"
    assert got["dlq"] == f"{tag}:failed"
    assert got["metrics"]["queue_length"] == queue.count == 3
    assert got["metrics"]["dlq_length"] == failed.count == 4
    assert got["metrics"]["consumers"] == Worker.count(queue=queue) == 0
    oldest = waiting[0].enqueued_at.replace(tzinfo=dt.UTC).timestamp()
    age = dt.datetime.now(tz=dt.UTC).timestamp() - oldest
    assert got["metrics"]["latency_seconds"] == pytest.approx(age, abs=3)
    assert got["metrics"]["processing_rate"] is None  # RQ keeps no per-queue counter
    assert series[f"{tag}:failed"]["metrics"]["queue_length"] == 4
    # RQ's per-job result streams are bookkeeping, never queues
    assert not [q for q in series if q.startswith("rq:")]

    # a running job: started registry and a live worker
    rc.delete(f"{tag}:fail")
    queue.empty()
    queue.enqueue("tests.support.jobs.rq_slow", tag, 4)
    started = StartedJobRegistry(tag, connection=rc)
    with running(rq_worker(job_url, [tag], burst=False)):
        wait_until(lambda: started.count == 1, 30, "the slow job started")
        got = _collect(job_url)[tag]
        assert got.values["in_flight"] == started.count == 1
        assert got.values["consumers"] == Worker.count(queue=queue) == 1
        assert got.values["queue_length"] == 0


def test_failed_jobs_that_never_expire_are_counted_as_rq_counts_them(
    rq_installed, job_url, rc, jobs_cli, unique
):
    """``failure_ttl=-1`` scores a failed job -1 (never expires): RQ's count keeps it."""
    from rq import Queue
    from rq.registry import FailedJobRegistry

    tag = unique("rqttl")
    queue = Queue(tag, connection=rc)
    rc.set(f"{tag}:fail", 1)
    for i in range(2):
        queue.enqueue("tests.support.jobs.rq_flaky", tag, i, failure_ttl=-1)
    queue.enqueue("tests.support.jobs.rq_flaky", tag, 2)  # the default TTL (a year)
    worker = rq_worker(job_url, [tag])
    assert worker.proc.wait(60) == 0, worker.tail()
    worker.stop()
    failed = FailedJobRegistry(tag, connection=rc)
    scores = sorted(s for _, s in rc.zrange(f"rq:failed:{tag}", 0, -1, withscores=True))
    assert scores[:2] == [-1.0, -1.0] and scores[2] > 0
    series = series_by_queue(jobs_cli("rq", job_url, "metrics", "--format", "json"))
    assert series[tag]["metrics"]["dlq_length"] == failed.count == 3
    assert series[f"{tag}:failed"]["metrics"]["queue_length"] == 3
