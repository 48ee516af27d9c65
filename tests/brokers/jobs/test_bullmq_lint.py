"""``mqtop lint`` on real BullMQ failed sets (jobs failed by a real worker): a failed set at
removeOnFail's count (BullMQ has silently deleted the oldest), one nothing trims, and one with
room or an age bound, which is not reported."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.jobs import running, wait_until

pytestmark = pytest.mark.broker


def _fail(bullmq: Any, rc: Any, queue: str, count: int, opts: dict[str, Any], kept: int) -> None:
    """Add ``count`` jobs with ``opts`` to ``queue`` and let a real worker fail them all."""
    rc.set(f"{queue}:fail", 1)
    bullmq.add(queue, [{"name": "job", "data": {"n": i}, "opts": opts} for i in range(count)])
    with running(bullmq.worker(queue, queue)):
        wait_until(lambda: bullmq.counts(queue)["waiting"] == 0, 30, "jobs taken")
        wait_until(lambda: rc.zcard(f"bull:{queue}:failed") == kept, 30, f"{kept} failed")
        wait_until(lambda: bullmq.counts(queue)["active"] == 0, 30, "jobs done")


def _lint(jobs_cli: Any, url: str) -> tuple[Any, dict[str, Any]]:
    result = jobs_cli("bullmq", url, "lint", "--format", "json")
    return result, json.loads(result.stdout)


def _found(data: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(f["rule"], f["queue"]): f for f in data["findings"] if f["rule"] != "alert-uncovered"}


def test_failed_sets_evicting_and_unbounded_are_reported(bullmq, job_url, rc, jobs_cli, unique):
    capped, forever = unique("bqcap"), unique("bqforever")
    # 6 failures under removeOnFail 4: BullMQ keeps the newest 4 and deleted 2 silently
    _fail(bullmq, rc, capped, 6, {"removeOnFail": 4}, kept=4)
    _fail(bullmq, rc, forever, 3, {}, kept=3)
    assert bullmq.counts(capped)["failed"] == 4
    result, data = _lint(jobs_cli, job_url)
    assert result.returncode == 1, result.stderr
    found = _found(data)
    assert set(found) == {
        ("bullmq-failed-evicting", f"{capped}:failed"),
        ("bullmq-failed-unbounded", f"{forever}:failed"),
    }, data
    message = found[("bullmq-failed-evicting", f"{capped}:failed")]["message"]
    assert message.startswith("4 failed jobs of removeOnFail's 4 (100%), full"), message
    unbounded = found[("bullmq-failed-unbounded", f"{forever}:failed")]
    assert unbounded["severity"] == "info" and unbounded["message"].startswith("3 failed jobs")
    assert data["brokers"] == ["jobs"] and data["errors"] == []


def test_failed_sets_with_room_or_an_age_bound_are_not(bullmq, job_url, rc, jobs_cli, unique):
    roomy, aged = unique("bqroomy"), unique("bqaged")
    _fail(bullmq, rc, roomy, 3, {"removeOnFail": {"count": 100}}, kept=3)
    _fail(bullmq, rc, aged, 3, {"removeOnFail": {"age": 86400}}, kept=3)
    result, data = _lint(jobs_cli, job_url)
    assert result.returncode == 0, result.stderr + result.stdout
    assert _found(data) == {} and data["brokers"] == ["jobs"]
