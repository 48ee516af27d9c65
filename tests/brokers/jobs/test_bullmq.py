"""BullMQ with its real Node worker: mqtop's numbers equal BullMQ's ``getJobCounts``."""

from __future__ import annotations

import asyncio
import time

import pytest

from collectors.jobs.bullmq.collector import BullMQCollector
from collectors.jobs.bullmq.options import BullMQOptions
from tests.support.jobs import running, series_by_queue, wait_until

pytestmark = pytest.mark.broker


def _collect(url: str) -> dict:
    async def go() -> dict:
        collector = BullMQCollector(BullMQOptions(name="bq", url=url))
        await collector.connect()
        try:
            got = await collector.collect()
        finally:
            await collector.close()
        return {s.key.queue: s for s in got.series}

    return asyncio.run(go())


def test_counts_workers_and_failed_set_match_bullmq(bullmq, job_url, rc, jobs_cli, unique):
    tag = unique("bq")
    rc.set(f"{tag}:fail", 1)
    bullmq.add(tag, [{"name": "job", "data": {"n": i}} for i in range(5)])
    with running(bullmq.worker(tag, tag)):
        wait_until(lambda: rc.zcard(f"bull:{tag}:failed") == 5, 30, "5 failed jobs")
        rc.delete(f"{tag}:fail")
        bullmq.add(tag, [{"name": "job", "data": {"n": 10 + i}} for i in range(2)])
        wait_until(lambda: rc.llen(f"{tag}:done") == 2, 30, "2 completed jobs")
        bullmq.add(tag, [{"name": "slow", "data": {"n": 20, "ms": 6000}}])
        wait_until(lambda: bullmq.counts(tag)["active"] == 1, 30, "a running job")
        own = bullmq.counts(tag)
        got = _collect(job_url)[tag]
        assert got.values["in_flight"] == own["active"] == 1
        assert got.values["consumers"] == own["workers"] == 1
        assert got.values["processed_total"] == own["completed"] == 2  # the worker's metrics
        assert got.values["dead_lettered_total"] == own["failed"] == 5
    start = time.time()
    bullmq.add(
        tag,
        [{"name": "job", "data": {"n": 30 + i}} for i in range(3)]
        + [{"name": "job", "data": {"n": 40 + i}, "opts": {"priority": 2}} for i in range(2)]
        + [{"name": "job", "data": {"n": 50}, "opts": {"delay": 600_000}}],
    )
    own = bullmq.counts(tag)
    series = series_by_queue(jobs_cli("bullmq", job_url, "metrics", "--format", "json"))
    got = series[tag]
    assert got["kind"] == "jobs"
    assert got["dlq"] == f"{tag}:failed"
    # waiting = BullMQ's waiting + prioritized (both wait for a worker)
    assert got["metrics"]["queue_length"] == own["waiting"] + own["prioritized"] == 5
    assert got["metrics"]["dlq_length"] == own["failed"] == 5
    assert got["metrics"]["consumers"] == own["workers"] == 0
    assert 0 <= got["metrics"]["latency_seconds"] <= time.time() - start + 3
    assert series[f"{tag}:failed"]["metrics"]["queue_length"] == 5
    # BullMQ's bookkeeping is not a queue
    assert not [q for q in series if q.startswith("bull:")]
