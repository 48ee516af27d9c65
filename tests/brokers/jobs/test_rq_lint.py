"""``mqtop lint`` on real RQ failed registries (jobs failed by a real ``rq worker``): jobs failed
with ``failure_ttl=-1`` never expire and are reported; the default one-year TTL is not."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.jobs import rq_worker

pytestmark = pytest.mark.broker


def _fail(rc: Any, url: str, name: str, count: int, **enqueue: Any) -> None:
    from rq import Queue

    queue = Queue(name, connection=rc)
    rc.set(f"{name}:fail", 1)
    for i in range(count):
        queue.enqueue("tests.support.jobs.rq_flaky", name, i, **enqueue)
    worker = rq_worker(url, [name])
    assert worker.proc.wait(60) == 0, worker.tail()
    worker.stop()


def _found(data: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(f["rule"], f["queue"]): f for f in data["findings"] if f["rule"] != "alert-uncovered"}


def test_failed_jobs_that_never_expire_are_reported(rq_installed, job_url, rc, jobs_cli, unique):
    from rq.registry import FailedJobRegistry

    forever, yearly = unique("rqforever"), unique("rqyearly")
    _fail(rc, job_url, forever, 2, failure_ttl=-1)
    _fail(rc, job_url, yearly, 2)
    # what the rule reads: RQ scores a never-expiring failed job -1, and its cleanup keeps it
    scores = [s for _, s in rc.zrange(f"rq:failed:{forever}", 0, -1, withscores=True)]
    assert scores == [-1.0, -1.0]
    FailedJobRegistry(forever, connection=rc).cleanup()
    assert rc.zcard(f"rq:failed:{forever}") == 2
    assert rc.zcard(f"rq:failed:{yearly}") == 2

    result = jobs_cli("rq", job_url, "lint", "--format", "json")
    data = json.loads(result.stdout)
    assert result.returncode == 0, result.stderr  # info: below the default --fail-on
    found = _found(data)
    assert set(found) == {("rq-failed-no-ttl", f"{forever}:failed")}, data
    finding = found[("rq-failed-no-ttl", f"{forever}:failed")]
    assert finding["severity"] == "info" and finding["message"].startswith("2 failed jobs")
    assert data["brokers"] == ["jobs"] and data["errors"] == []
