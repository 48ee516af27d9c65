"""SIGKILL in the middle of retrying 10,000 failed RQ jobs loses none and duplicates none."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.support.jobs import ROOT, wait_until

pytestmark = [pytest.mark.broker, pytest.mark.slow]

N = 10_000


def _fail_jobs(rc, queue_name: str) -> set[str]:
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


def test_sigkill_mid_retry_loses_no_job(rq_installed, job_url, rc, write_config, tmp_path, unique):
    tag = unique("kill")
    ids = _fail_jobs(rc, tag)
    failed, waiting = f"rq:failed:{tag}", f"rq:queue:{tag}"
    assert rc.zcard(failed) == N
    config = write_config(f'brokers:\n  - {{name: jobs, type: rq, url: "{job_url}"}}\n')
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_STATE_HOME": str(tmp_path)}
    cmd = [sys.executable, "-m", "mqtop", "--config", str(config), "dlq", "replay", "jobs",
           f"{tag}:failed", "--yes", "--batch", "100"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_until(lambda: rc.llen(waiting) >= 1000 or proc.poll() is not None, 60, "the retry")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    in_queue = [x.decode() for x in rc.lrange(waiting, 0, -1)]
    in_failed = {x.decode() for x in rc.zrange(failed, 0, -1)}
    assert 0 < len(in_queue) < N, "the kill must land mid-retry"
    assert len(in_queue) == len(set(in_queue))  # no duplicate
    assert set(in_queue).isdisjoint(in_failed)  # never both
    assert set(in_queue) | in_failed == ids  # never neither
    # a second run finishes the rest, every job once
    again = subprocess.run([*cmd, "--format", "json"], env=env, capture_output=True, text=True,
                           timeout=120, check=False)  # fmt: skip
    assert again.returncode == 0, again.stderr
    final = [x.decode() for x in rc.lrange(waiting, 0, -1)]
    assert len(final) == len(set(final)) == N and set(final) == ids
    assert rc.zcard(failed) == 0
    statuses = {rc.hget(f"rq:job:{i}", "status") for i in list(ids)[:50]}
    assert statuses == {b"queued"}
