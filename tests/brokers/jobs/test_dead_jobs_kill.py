"""SIGKILL in the middle of retrying 10,000 dead jobs (RQ, Sidekiq, BullMQ) loses none and
duplicates none; a second run retries the rest, every job once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable

import pytest

from tests.support.jobs import ROOT, wait_until

pytestmark = [pytest.mark.broker, pytest.mark.slow]

N = 10_000


def _retry_killed_then_finished(
    cmd: list[str], env: dict[str, str], in_queue: Callable[[], list[str]],
    in_dead: Callable[[], set[str]], ids: set[str],
) -> None:  # fmt: skip
    """Start the retry, SIGKILL it once 1,000 jobs are back in their queue, check that every
    job is in exactly one place, then run it again to the end."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_until(lambda: len(in_queue()) >= 1000 or proc.poll() is not None, 60, "the retry")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    queued, dead = in_queue(), in_dead()
    assert 0 < len(queued) < N, "the kill must land mid-retry"
    assert len(queued) == len(set(queued))  # no duplicate
    assert set(queued).isdisjoint(dead)  # never both
    assert set(queued) | dead == ids  # never neither
    again = subprocess.run([*cmd, "--format", "json"], env=env, capture_output=True, text=True,
                           timeout=120, check=False)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["moved"] == N - len(queued)
    final = in_queue()
    assert len(final) == len(set(final)) == N and set(final) == ids
    assert not in_dead()


def _cmd(write_config, tmp_path, broker_type: str, url: str, dlq: str) -> tuple[list[str], dict]:
    config = write_config(f'brokers:\n  - {{name: jobs, type: {broker_type}, url: "{url}"}}\n')
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_STATE_HOME": str(tmp_path)}
    cmd = [sys.executable, "-m", "mqtop", "--config", str(config), "dlq", "replay", "jobs",
           dlq, "--yes", "--batch", "50"]  # fmt: skip
    return cmd, env


def _fail_rq_jobs(rc, queue_name: str) -> set[str]:
    """10,000 jobs put in the failed registry by RQ's own API (as a worker's failure does)."""
    from rq import Queue
    from rq.job import Job, JobStatus
    from rq.registry import FailedJobRegistry

    queue = Queue(queue_name, connection=rc)
    registry = FailedJobRegistry(queue_name, connection=rc)
    ids: set[str] = set()
    for start in range(0, N, 1000):
        with rc.pipeline() as pipe:
            for i in range(start, start + 1000):
                job = Job.create("tests.support.jobs.rq_flaky", args=(queue_name, i),
                                 connection=rc, origin=queue.name)  # fmt: skip
                job.set_status(JobStatus.FAILED, pipeline=pipe)
                job.save(pipeline=pipe)
                registry.add(job, exc_string="LookupError: flaky", pipeline=pipe)
                ids.add(job.id)
            pipe.execute()
    rc.sadd("rq:queues", queue.key)
    return ids


def test_rq_sigkill_mid_retry_loses_no_job(
    rq_installed, job_url, rc, write_config, tmp_path, unique
):
    tag = unique("kill")
    ids = _fail_rq_jobs(rc, tag)
    failed, waiting = f"rq:failed:{tag}", f"rq:queue:{tag}"
    assert rc.zcard(failed) == N
    cmd, env = _cmd(write_config, tmp_path, "rq", job_url, f"{tag}:failed")
    _retry_killed_then_finished(
        cmd, env,
        lambda: [x.decode() for x in rc.lrange(waiting, 0, -1)],
        lambda: {x.decode() for x in rc.zrange(failed, 0, -1)},
        ids,
    )  # fmt: skip
    statuses = {rc.hget(f"rq:job:{i}", "status") for i in list(ids)[:50]}
    assert statuses == {b"queued"}


def test_sidekiq_sigkill_mid_retry_loses_no_job(
    sidekiq, job_url, rc, write_config, tmp_path, unique
):
    tag = unique("skkill")
    # Sidekiq's dead set keeps dead_max_jobs - 1: raised so that it holds all 10,000
    sidekiq.fail_into_dead(tag, tag, N, dead_max_jobs=N + 1)

    def jids(raw: list[bytes]) -> list[str]:
        return [json.loads(x)["jid"] for x in raw]

    ids = set(jids(rc.zrange("dead", 0, -1)))
    assert len(ids) == N
    cmd, env = _cmd(write_config, tmp_path, "sidekiq", job_url, "dead")
    _retry_killed_then_finished(
        cmd, env,
        lambda: jids(rc.lrange(f"queue:{tag}", 0, -1)),
        lambda: set(jids(rc.zrange("dead", 0, -1))),
        ids,
    )  # fmt: skip
    assert sidekiq.stats([tag])["queues"][tag] == N  # Sidekiq's own Queue#size


def test_bullmq_sigkill_mid_retry_loses_no_job(bullmq, job_url, rc, write_config, tmp_path, unique):
    from tests.support.jobs import running

    tag = unique("bqkill")
    rc.set(f"{tag}:fail", 1)
    bullmq.add(tag, [{"name": "job", "data": {"n": i}} for i in range(N)])
    with running(bullmq.worker(tag, tag, concurrency=200)):
        wait_until(lambda: rc.zcard(f"bull:{tag}:failed") == N, 120, "10,000 failed jobs")
    ids = {x.decode() for x in rc.zrange(f"bull:{tag}:failed", 0, -1)}
    cmd, env = _cmd(write_config, tmp_path, "bullmq", job_url, f"{tag}:failed")
    _retry_killed_then_finished(
        cmd, env,
        lambda: [x.decode() for x in rc.lrange(f"bull:{tag}:wait", 0, -1)],
        lambda: {x.decode() for x in rc.zrange(f"bull:{tag}:failed", 0, -1)},
        ids,
    )  # fmt: skip
    counts = bullmq.counts(tag)
    assert counts["waiting"] == N and counts["failed"] == 0  # BullMQ's own getJobCounts
