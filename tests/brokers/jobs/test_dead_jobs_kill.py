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

from tests.support.jobs import ROOT, rq_failed_jobs, wait_until

pytestmark = [pytest.mark.broker, pytest.mark.slow]

N = 10_000
# RQ and BullMQ retry an unfiltered set in scripts that read their own batch (~100,000 jobs/s):
# tiny batches make the run last long enough for the kill to land in the middle
IN_PLACE_BATCH = 2


def _retry_killed_then_finished(
    cmd: list[str], env: dict[str, str], in_queue: Callable[[], list[str]],
    in_dead: Callable[[], set[str]], ids: set[str],
) -> None:  # fmt: skip
    """Start the retry, SIGKILL it once 500 jobs are back in their queue, check that every
    job is in exactly one place, then run it again to the end."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_until(lambda: len(in_queue()) >= 500 or proc.poll() is not None, 60, "the retry")
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


def _cmd(
    write_config, tmp_path, broker_type: str, url: str, dlq: str, batch: int
) -> tuple[list[str], dict]:
    config = write_config(f'brokers:\n  - {{name: jobs, type: {broker_type}, url: "{url}"}}\n')
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_STATE_HOME": str(tmp_path)}
    cmd = [sys.executable, "-m", "mqtop", "--config", str(config), "dlq", "replay", "jobs",
           dlq, "--yes", "--batch", str(batch)]  # fmt: skip
    return cmd, env


def test_rq_sigkill_mid_retry_loses_no_job(
    rq_installed, job_url, rc, write_config, tmp_path, unique
):
    tag = unique("kill")
    ids = rq_failed_jobs(rc, tag, N)
    failed, waiting = f"rq:failed:{tag}", f"rq:queue:{tag}"
    assert rc.zcard(failed) == N
    cmd, env = _cmd(write_config, tmp_path, "rq", job_url, f"{tag}:failed", IN_PLACE_BATCH)
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
    cmd, env = _cmd(write_config, tmp_path, "sidekiq", job_url, "dead", 50)
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
    cmd, env = _cmd(write_config, tmp_path, "bullmq", job_url, f"{tag}:failed", IN_PLACE_BATCH)
    _retry_killed_then_finished(
        cmd, env,
        lambda: [x.decode() for x in rc.lrange(f"bull:{tag}:wait", 0, -1)],
        lambda: {x.decode() for x in rc.zrange(f"bull:{tag}:failed", 0, -1)},
        ids,
    )  # fmt: skip
    counts = bullmq.counts(tag)
    assert counts["waiting"] == N and counts["failed"] == 0  # BullMQ's own getJobCounts
