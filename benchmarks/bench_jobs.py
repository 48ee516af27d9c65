"""Retrying dead jobs: mqtop's ``dlq replay`` vs each job library's own bulk retry.

For Sidekiq (``DeadSet#retry_all``, Ruby), BullMQ (``Queue.retryJobs``, Node) and RQ (a
``FailedJobRegistry.requeue`` loop, Python) the same number of dead jobs is retried twice on a
private Redis in the same run: once by mqtop (in-process ``move``, as ``mqtop dlq replay``
runs it), once by the library, each on a dead set of its own. Each dead set is made of copies
(own id, own arguments) of a job the library itself failed moments before: Sidekiq through
its ``JobRetry`` path, BullMQ and RQ with their real workers. Only the retry is timed (the
interpreters and connections start outside the clock). BullMQ's two sides each take under a
second for 100,000 jobs, so they run three times, alternating, and the best of each counts.
After each retry every job must be in its queue exactly once and the dead set empty: a fast
but lossy retry cannot win.

    python benchmarks/bench_jobs.py [--quick]
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CHUNK = 5000  # commands per pipeline while filling


def _db(broker: Any, db: int) -> str:
    import redis

    url = f"redis://{broker.host}:{broker.port}/{db}"
    client = redis.Redis.from_url(url)
    try:
        if broker.managed is not None:
            client.flushdb()
        elif client.dbsize():
            raise RuntimeError(f"database {db} of {broker.host}:{broker.port} is not empty")
    finally:
        client.close()
    return url


def _pipelined(client: Any, calls: list[Callable[[Any], None]]) -> None:
    for start in range(0, len(calls), CHUNK):
        pipe = client.pipeline(transaction=False)
        for call in calls[start : start + CHUNK]:
            call(pipe)
        pipe.execute()


def _mqtop_retry(collector: Any, source: str, destination: str) -> tuple[float, int]:
    """Seconds of mqtop's retry of ``source`` (connected first, outside the clock)."""
    from collectors.base import MoveRequest

    async def go() -> tuple[float, int]:
        actions = collector.actions()
        try:
            await actions.r.ping()
            start = time.perf_counter()
            result = await actions.move(
                MoveRequest(source, destination, "replay"), lambda progress: None
            )
            elapsed = time.perf_counter() - start
            if not result.complete:
                raise RuntimeError(f"mqtop retry incomplete: {result.errors}")
            return elapsed, result.moved
        finally:
            await actions.close()

    return asyncio.run(go())


def _lost(in_queue: list[bytes], expected: set[bytes], dead_left: int) -> int:
    """Jobs not in the queue exactly once (missing, doubled, or still dead)."""
    doubled = len(in_queue) - len(set(in_queue))
    return len(expected - set(in_queue)) + doubled + dead_left


# ---------------------------------------------------------------- RQ


def _rq_fill(url: str, queue: str, n: int) -> set[bytes]:
    """``n`` copies of a job RQ's worker failed, in the queue's failed registry."""
    import redis
    from rq import Queue

    from tests.support.jobs import rq_worker

    client = redis.Redis.from_url(url)
    try:
        client.set(f"{queue}:fail", 1)
        real = Queue(queue, connection=client).enqueue("tests.support.jobs.rq_flaky", queue, 0)
        worker = rq_worker(url, [queue])
        if worker.proc.wait(120) != 0:
            raise RuntimeError(f"rq worker failed: {worker.tail()}")
        worker.stop()
        template = client.hgetall(f"rq:job:{real.id}")
        score = client.zscore(f"rq:failed:{queue}", real.id)
        client.delete(f"rq:job:{real.id}", f"rq:failed:{queue}", f"rq:results:{real.id}")
        ids = [uuid.uuid4().hex.encode() for _ in range(n)]
        calls: list[Callable[[Any], None]] = []
        for job_id in ids:
            key = b"rq:job:" + job_id
            calls.append(lambda p, k=key: p.hset(k, mapping=template))
            calls.append(lambda p, j=job_id: p.zadd(f"rq:failed:{queue}", {j: score}))
        _pipelined(client, calls)
        return set(ids)
    finally:
        client.close()


def _rq_check(url: str, queue: str, ids: set[bytes]) -> int:
    import redis

    client = redis.Redis.from_url(url)
    try:
        waiting = client.lrange(f"rq:queue:{queue}", 0, -1)
        return _lost(waiting, ids, client.zcard(f"rq:failed:{queue}"))
    finally:
        client.close()


def _rq(broker: Any, n: int) -> dict[str, float]:
    from collectors.jobs.rq.collector import RQCollector
    from collectors.jobs.rq.options import RQOptions

    queue = "bench"
    url = _db(broker, 1)
    ids = _rq_fill(url, queue, n)
    mqtop_s, moved = _mqtop_retry(
        RQCollector(RQOptions(name="bench", url=url)), f"{queue}:failed", queue
    )
    mqtop_lost = _rq_check(url, queue, ids) + (n - moved)

    url = _db(broker, 2)
    ids = _rq_fill(url, queue, n)
    import redis
    from rq.registry import FailedJobRegistry

    client = redis.Redis.from_url(url)
    try:
        registry = FailedJobRegistry(queue, connection=client)
        start = time.perf_counter()
        for job_id in registry.get_job_ids():
            registry.requeue(job_id)
        rq_s = time.perf_counter() - start
    finally:
        client.close()
    rq_lost = _rq_check(url, queue, ids)
    return {
        "rq_retry_vs_requeue_loop": rq_s / mqtop_s,
        "rq_retry_jobs_per_s": n / mqtop_s,
        "rq_requeue_loop_jobs_per_s": n / rq_s,
        "rq_retry_lost_jobs": float(mqtop_lost),
        "rq_requeue_loop_lost_jobs": float(rq_lost),
    }


# ---------------------------------------------------------------- BullMQ

BULLMQ_RETRY_ALL = """
const { Queue } = require('bullmq');
const IORedis = require('ioredis');
const [url, name] = process.argv.slice(2);
(async () => {
  const q = new Queue(name, { connection: new IORedis(url, { maxRetriesPerRequest: null }) });
  await q.waitUntilReady();
  const start = process.hrtime.bigint();
  await q.retryJobs({ state: 'failed' });
  console.log(JSON.stringify({ seconds: Number(process.hrtime.bigint() - start) / 1e9 }));
  await q.close();
  process.exit(0);
})().catch((e) => { console.error(e); process.exit(1); });
"""


def _bullmq_fill(lib: Any, url: str, queue: str, n: int) -> set[bytes]:
    """``n`` copies of a job BullMQ's worker failed, in the queue's failed set."""
    import redis

    from tests.support.jobs import running, wait_until

    client = redis.Redis.from_url(url)
    try:
        client.set(f"{queue}:fail", 1)
        lib.add(queue, [{"name": "job", "data": {"n": 0}}])
        with running(lib.worker(queue, queue, concurrency=1)):
            wait_until(lambda: client.zcard(f"bull:{queue}:failed") == 1, 60, "a failed job")
        ((real, score),) = client.zrange(f"bull:{queue}:failed", 0, 0, withscores=True)
        template = client.hgetall(f"bull:{queue}:{real.decode()}")
        client.delete(f"bull:{queue}:failed", f"bull:{queue}:{real.decode()}")
        ids = [str(i).encode() for i in range(2, n + 2)]
        calls: list[Callable[[Any], None]] = []
        for i, job_id in enumerate(ids):
            fields = {**template, b"data": json.dumps({"n": i}).encode()}
            calls.append(
                lambda p, j=job_id, f=fields: p.hset(f"bull:{queue}:{j.decode()}", mapping=f)
            )
            calls.append(
                lambda p, j=job_id, i=i: p.zadd(f"bull:{queue}:failed", {j: score - n + i})
            )
        _pipelined(client, calls)
        client.set(f"bull:{queue}:id", n + 1)
        client.delete(f"bull:{queue}:events")  # the real failure's events: not the retry's
        return set(ids)
    finally:
        client.close()


def _bullmq_check(url: str, queue: str, ids: set[bytes]) -> int:
    import redis

    client = redis.Redis.from_url(url)
    try:
        waiting = client.lrange(f"bull:{queue}:wait", 0, -1)
        return _lost(waiting, ids, client.zcard(f"bull:{queue}:failed"))
    finally:
        client.close()


def _bullmq(broker: Any, n: int, rounds: int = 3) -> dict[str, float]:
    """Best of ``rounds`` for each side, alternating (both retry ~100k jobs/s per Lua
    script: a run of under a second, which a busy machine easily disturbs)."""
    import subprocess

    from collectors.jobs.bullmq.collector import BullMQCollector
    from collectors.jobs.bullmq.options import BullMQOptions
    from tests.support.jobs import BullMQ

    queue = "bench"
    mqtop_runs: list[float] = []
    bull_runs: list[float] = []
    mqtop_lost = bull_lost = 0
    for _ in range(rounds):
        url = _db(broker, 3)
        lib = BullMQ(url)
        ids = _bullmq_fill(lib, url, queue, n)
        collector = BullMQCollector(BullMQOptions(name="bench", url=url))
        seconds, moved = _mqtop_retry(collector, f"{queue}:failed", queue)
        mqtop_runs.append(seconds)
        mqtop_lost += _bullmq_check(url, queue, ids) + (n - moved)

        url = _db(broker, 4)
        lib = BullMQ(url)
        ids = _bullmq_fill(lib, url, queue, n)
        script = lib.dir / "mqtop-retry-all.js"
        script.write_text(BULLMQ_RETRY_ALL)
        done = subprocess.run(
            ["node", str(script), url, queue],
            cwd=lib.dir, capture_output=True, text=True, timeout=3600, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"retryJobs failed: {done.stderr[-500:]}")
        bull_runs.append(float(json.loads(done.stdout.strip().splitlines()[-1])["seconds"]))
        bull_lost += _bullmq_check(url, queue, ids)
    mqtop_s, bull_s = min(mqtop_runs), min(bull_runs)
    return {
        "bullmq_retry_vs_retryjobs": bull_s / mqtop_s,
        "bullmq_retry_jobs_per_s": n / mqtop_s,
        "bullmq_retryjobs_jobs_per_s": n / bull_s,
        "bullmq_retry_lost_jobs": float(mqtop_lost),
        "bullmq_retryjobs_lost_jobs": float(bull_lost),
    }


# ---------------------------------------------------------------- Sidekiq

SIDEKIQ_RETRY_ALL = """
require "sidekiq/api"
start = Process.clock_gettime(Process::CLOCK_MONOTONIC)
Sidekiq::DeadSet.new.retry_all
puts({seconds: Process.clock_gettime(Process::CLOCK_MONOTONIC) - start}.to_json)
"""


def _sidekiq_fill(lib: Any, url: str, queue: str, n: int) -> set[bytes]:
    """``n`` copies of a job Sidekiq's JobRetry killed, in the dead set (each its own jid)."""
    import redis

    lib.fail_into_dead(queue, queue, 1, dead_max_jobs=10_000)
    client = redis.Redis.from_url(url)
    try:
        ((real, score),) = client.zrange("dead", 0, 0, withscores=True)
        template = json.loads(real)
        client.delete("dead")
        jids: list[bytes] = []
        calls: list[Callable[[Any], None]] = []
        for i in range(n):
            jid = uuid.uuid4().hex[:24]
            at = score + i / 1000
            job = {**template, "jid": jid, "args": [queue, i], "failed_at": at}
            jids.append(jid.encode())
            member = json.dumps(job, separators=(",", ":"))
            calls.append(lambda p, m=member, s=at: p.zadd("dead", {m: s}))
        _pipelined(client, calls)
        return set(jids)
    finally:
        client.close()


def _sidekiq_check(url: str, queue: str, jids: set[bytes]) -> int:
    import redis

    client = redis.Redis.from_url(url)
    try:
        waiting = [json.loads(x)["jid"].encode() for x in client.lrange(f"queue:{queue}", 0, -1)]
        return _lost(waiting, jids, client.zcard("dead"))
    finally:
        client.close()


def _sidekiq(broker: Any, n: int) -> dict[str, float]:
    from collectors.jobs.sidekiq.actions import OWN_QUEUE
    from collectors.jobs.sidekiq.collector import SidekiqCollector
    from collectors.jobs.sidekiq.options import SidekiqOptions
    from tests.support.jobs import Sidekiq

    queue = "bench"
    url = _db(broker, 5)
    lib = Sidekiq(url)
    try:
        jids = _sidekiq_fill(lib, url, queue, n)
        collector = SidekiqCollector(SidekiqOptions(name="bench", url=url))
        mqtop_s, moved = _mqtop_retry(collector, "dead", OWN_QUEUE)
        mqtop_lost = _sidekiq_check(url, queue, jids) + (n - moved)
    finally:
        lib.close()

    url = _db(broker, 6)
    lib = Sidekiq(url)
    try:
        jids = _sidekiq_fill(lib, url, queue, n)
        out = lib.ruby(SIDEKIQ_RETRY_ALL)
        sidekiq_s = float(json.loads(out.strip().splitlines()[-1])["seconds"])
        sidekiq_lost = _sidekiq_check(url, queue, jids)
    finally:
        lib.close()
    return {
        "sidekiq_retry_vs_retry_all": sidekiq_s / mqtop_s,
        "sidekiq_retry_jobs_per_s": n / mqtop_s,
        "sidekiq_retry_all_jobs_per_s": n / sidekiq_s,
        "sidekiq_retry_lost_jobs": float(mqtop_lost),
        "sidekiq_retry_all_lost_jobs": float(sidekiq_lost),
    }


def run(quick: bool = False) -> dict[str, float]:
    from tests.support.jobs import find_jobs_redis

    n = 20_000 if quick else 100_000
    broker = find_jobs_redis()
    figures: dict[str, float] = {"jobs_retry_dead_jobs": float(n)}
    try:
        for library in (_rq, _bullmq, _sidekiq):
            figures.update(library(broker, n))
            print(json.dumps(figures), file=sys.stderr, flush=True)
    finally:
        broker.stop()
    figures["jobs_retry_lost_jobs"] = sum(
        figures[k]
        for k in ("rq_retry_lost_jobs", "bullmq_retry_lost_jobs", "sidekiq_retry_lost_jobs")
    )
    return figures


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
