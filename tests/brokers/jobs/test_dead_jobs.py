"""Dead jobs through ``mqtop dlq``: peek, replay with the library's retry, purge, with the real
workers failing jobs first and processing exactly the retried ones afterwards."""

from __future__ import annotations

import json

import pytest

from tests.support.jobs import rq_failed_jobs, rq_worker, running, wait_until

pytestmark = pytest.mark.broker


def _done(rc, tag: str) -> list[int]:
    return sorted(int(x) for x in rc.lrange(f"{tag}:done", 0, -1) if x.isdigit())


def test_sidekiq_dead_set_peek_filter_replay_purge(sidekiq, job_url, rc, jobs_cli, unique):
    tag = unique("skd")
    rc.set(f"{tag}:fail", 1)
    sidekiq.push(tag, "FlakyJob", [[tag, i] for i in range(8)])
    with running(sidekiq.worker([tag])):
        wait_until(lambda: rc.zcard("dead") == 8, 30, "8 dead jobs")
    peek = jobs_cli(
        "sidekiq", job_url, "dlq", "peek", "jobs", "dead", "-n", "3", "--format", "json"
    )
    assert peek.returncode == 0, peek.stderr
    shown = json.loads(peek.stdout)
    assert len(shown) == 3
    first = shown[0]
    assert first["headers"]["class"] == "FlakyJob"
    assert first["headers"]["error_class"] == "ArgumentError"
    assert first["headers"]["error_message"].startswith("flaky ")
    assert first["death"]["original_queue"] == tag
    assert json.loads(first["body"])[0] == tag
    assert rc.zcard("dead") == 8  # peeking changed nothing

    dry = jobs_cli("sidekiq", job_url, "dlq", "replay", "jobs", "dead", "--dry-run",
                   "--filter", "header.error_class=NoSuchError", "--format", "json")  # fmt: skip
    assert json.loads(dry.stdout)["moved"] == 0, dry.stderr
    rc.delete(f"{tag}:fail")
    with running(sidekiq.worker([tag])):
        replay = jobs_cli("sidekiq", job_url, "dlq", "replay", "jobs", "dead", "--yes",
                          "--filter", "header.error_class=ArgumentError", "--limit", "6",
                          "--format", "json")  # fmt: skip
        assert replay.returncode == 0, replay.stderr
        assert json.loads(replay.stdout)["moved"] == 6
        wait_until(lambda: len(_done(rc, tag)) >= 6, 30, "the worker ran the 6 retried jobs")
    done = _done(rc, tag)
    assert len(done) == len(set(done)) == 6  # exactly the retried ones, once each
    assert rc.zcard("dead") == 2 == len({*range(8)} - set(done))
    purge = jobs_cli("sidekiq", job_url, "dlq", "purge", "jobs", "dead", "--yes")
    assert purge.returncode == 0, purge.stderr
    assert rc.zcard("dead") == 0


def test_rq_failed_registry_requeue(rq_installed, job_url, rc, jobs_cli, unique):
    from rq import Queue
    from rq.registry import FailedJobRegistry

    tag = unique("rqd")
    queue = Queue(tag, connection=rc)
    rc.set(f"{tag}:fail", 1)
    for i in range(6):
        queue.enqueue("tests.support.jobs.rq_flaky", tag, i)
    worker = rq_worker(job_url, [tag])
    assert worker.proc.wait(60) == 0, worker.tail()
    worker.stop()
    failed = FailedJobRegistry(tag, connection=rc)
    assert failed.count == 6
    peek = jobs_cli("rq", job_url, "dlq", "peek", "jobs", f"{tag}:failed", "--format", "json")
    shown = json.loads(peek.stdout)
    assert len(shown) == 6, peek.stderr
    assert shown[0]["headers"]["class"] == "tests.support.jobs.rq_flaky"
    assert shown[0]["headers"]["error_class"] == "LookupError"
    assert "Traceback" in shown[0]["headers"]["backtrace"]

    rc.delete(f"{tag}:fail")
    replay = jobs_cli("rq", job_url, "dlq", "replay", "jobs", f"{tag}:failed", "--yes",
                      "--filter", "age<1h", "--format", "json")  # fmt: skip
    assert replay.returncode == 0, replay.stderr
    assert json.loads(replay.stdout)["moved"] == 6
    assert json.loads(replay.stdout)["destination"] == tag
    assert failed.count == 0 and queue.count == 6  # RQ's own view of the requeue
    worker = rq_worker(job_url, [tag])
    assert worker.proc.wait(60) == 0, worker.tail()
    worker.stop()
    assert _done(rc, tag) == list(range(6))
    assert failed.count == 0


def test_bullmq_failed_retry_and_purge(bullmq, job_url, rc, jobs_cli, unique):
    tag = unique("bqd")
    rc.set(f"{tag}:fail", 1)
    bullmq.add(tag, [{"name": "job", "data": {"n": i}} for i in range(5)]
               + [{"name": "job", "data": {"n": 10}, "opts": {"priority": 4}}])  # fmt: skip
    with running(bullmq.worker(tag, tag)):
        wait_until(lambda: bullmq.counts(tag)["failed"] == 6, 30, "6 failed jobs")
        peek = jobs_cli(
            "bullmq", job_url, "dlq", "peek", "jobs", f"{tag}:failed", "--format", "json"
        )
        shown = json.loads(peek.stdout)
        assert shown[0]["headers"]["error_class"] == "TypeError"
        assert shown[0]["headers"]["class"] == "job"
        rc.delete(f"{tag}:fail")
        replay = jobs_cli("bullmq", job_url, "dlq", "replay", "jobs", f"{tag}:failed", "--yes",
                          "--format", "json")  # fmt: skip
        assert replay.returncode == 0, replay.stderr
        assert json.loads(replay.stdout)["moved"] == 6
        wait_until(lambda: len(_done(rc, tag)) == 6, 30, "the worker ran the retried jobs")
        counts = bullmq.counts(tag)
    assert _done(rc, tag) == [0, 1, 2, 3, 4, 10]
    assert counts["failed"] == 0 and counts["completed"] == 6
    rc.set(f"{tag}:fail", 1)
    bullmq.add(tag, [{"name": "job", "data": {"n": 20}}])
    with running(bullmq.worker(tag, tag)):
        wait_until(lambda: bullmq.counts(tag)["failed"] == 1, 30, "1 failed job")
    purge = jobs_cli("bullmq", job_url, "dlq", "purge", "jobs", f"{tag}:failed", "--yes")
    assert purge.returncode == 0, purge.stderr
    assert bullmq.counts(tag)["failed"] == 0


def test_retry_refusals_in_the_move_kit_words(job_url, rc, jobs_cli, unique):
    tag = unique("ref")
    rc.zadd(f"rq:failed:{tag}", {"job-1": 1})  # refused before any job is read
    to = jobs_cli("rq", job_url, "dlq", "replay", "jobs", f"{tag}:failed", "--to", "other", "--yes")
    assert to.returncode == 2, to.stderr
    assert to.stderr.strip().endswith(
        "--to: not supported by rq brokers "
        f"(RQ requeues a failed job into the queue it came from, {tag!r})"
    )
    bull = jobs_cli("bullmq", job_url, "dlq", "move", "jobs", f"{tag}:failed", "other", "--yes")
    assert bull.returncode == 2
    assert "dlq move to another queue: not supported by bullmq brokers" in bull.stderr
    rate = jobs_cli("sidekiq", job_url, "dlq", "replay", "jobs", "dead", "--rate", "5", "--yes")
    assert rate.returncode == 2
    assert "--rate: not supported by sidekiq brokers (its move options: --batch)" in rate.stderr
    big = jobs_cli("sidekiq", job_url, "dlq", "replay", "jobs", "dead", "--batch", "20000")
    assert big.returncode == 2 and "--batch: " in big.stderr
    assert rc.zcard(f"rq:failed:{tag}") == 1


@pytest.mark.parametrize("filtered", [False, True], ids=["in-place", "read-and-filter"])
def test_jobs_left_to_rq_stay_dead_with_a_note(
    filtered, rq_installed, job_url, rc, jobs_cli, unique
):
    tag = unique("left")
    ids = sorted(rq_failed_jobs(rc, tag, 5))
    expired, limited, foreign = ids[:3]
    rc.delete(f"rq:job:{expired}")  # its hash expired: RQ's own requeue fails on it too
    rc.hset(f"rq:job:{limited}", "rate_limit_key", "rl:mail")
    rc.hset(f"rq:job:{foreign}", "origin", "elsewhere")
    extra = ["--filter", "header.class=tests.support.jobs.rq_flaky"] if filtered else []
    replay = jobs_cli("rq", job_url, "dlq", "replay", "jobs", f"{tag}:failed", "--yes",
                      "--format", "json", *extra)  # fmt: skip
    assert replay.returncode == 0, replay.stderr
    result = json.loads(replay.stdout)
    assert (result["moved"], result["skipped"]) == (2, 3)
    notes = replay.stderr
    if not filtered:  # (filtered: the expired job has no class, so the filter skips it)
        assert "note: 1 job(s) have no job data any more (expired)" in notes
    assert "note: 1 job(s) left in the dead set: rate-limited jobs must be requeued by RQ" in notes
    assert "note: 1 job(s) left in the dead set: " in notes and "origin" in notes
    left = {x.decode() for x in rc.zrange(f"rq:failed:{tag}", 0, -1)}
    assert left == {expired, limited, foreign}
    assert sorted(x.decode() for x in rc.lrange(f"rq:queue:{tag}", 0, -1)) == ids[3:]
