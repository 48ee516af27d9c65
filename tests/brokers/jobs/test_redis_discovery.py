"""The plain Redis collector with ``lists: ["*"]`` / ``streams: ["*"]`` never shows a job
library's bookkeeping as queues (real RQ and BullMQ workers write it)."""

from __future__ import annotations

import pytest

from tests.support.jobs import rq_worker, series_by_queue, wait_until

pytestmark = pytest.mark.broker


def test_redis_wildcards_skip_rq_and_bullmq_internals(
    rq_installed, bullmq, job_url, rc, jobs_cli, unique
):
    from rq import Queue

    tag = unique("disc")
    queue = Queue(tag, connection=rc)
    for i in range(3):
        queue.enqueue("tests.support.jobs.rq_flaky", tag, i)
    worker = rq_worker(job_url, [tag])
    assert worker.proc.wait(60) == 0, worker.tail()
    worker.stop()
    assert len(rc.keys("rq:results:*")) == 3
    bull = tag + "b"
    bullmq.add(bull, [{"name": "job", "data": {"n": i}} for i in range(3)])
    wait_until(lambda: rc.exists(f"bull:{bull}:events"), 10, "BullMQ's events stream")
    rc.lpush("orders", "o1")  # a hand-made list queue stays listed

    wildcards = ', lists: ["*"], streams: ["*"]'
    series = series_by_queue(
        jobs_cli("redis", job_url, "metrics", "--format", "json", extra=wildcards)
    )
    assert "orders" in series
    assert f"bull:{bull}:wait" in series
    assert not [q for q in series if q.startswith("rq:results:") or q.endswith(":events")]
