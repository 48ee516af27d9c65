"""Sidekiq (6.x and later) on Redis: job queues, busy workers, the dead set.

Keys read (``prefix`` is the redis-namespace, empty by default): ``queues`` (set of queue
names), ``queue:<q>`` (list, LPUSH by clients, BRPOP from the right by workers), ``processes``
(set of process identities) with each identity's hash (``info`` JSON with its queues, ``busy``,
``quiet``; it expires 60 s after the last heartbeat) and ``<identity>:workers`` (what each
thread runs), ``stat:processed`` / ``stat:failed`` (instance-wide counters, flushed by every
process at its heartbeat), ``schedule``, ``retry`` and ``dead`` (sorted sets of job JSON).
"""

from __future__ import annotations

from typing import Any

from collectors.base import Collected, CollectorPlugin, MessageActions
from collectors.jobs.actions import JobsMoveOptions
from collectors.jobs.collector import JobCollector
from collectors.jobs.common import epoch_seconds, integer, json_object, text
from collectors.jobs.series import JobQueueState, dead_set_sample, job_queue_sample
from collectors.jobs.sidekiq.options import DEAD, SidekiqKeys, SidekiqOptions, kept_dead


def _enqueued_at(entry: Any) -> float | None:
    job = json_object(entry)
    if job is None:
        return None
    return epoch_seconds(job.get("enqueued_at") or job.get("created_at"))


def _busy_by_queue(workers: list[Any]) -> dict[str, int]:
    """Running jobs per queue from every live process's ``<identity>:workers`` hash."""
    busy: dict[str, int] = {}
    for values in workers:
        if not isinstance(values, list):
            continue
        for raw in values:
            work = json_object(raw)
            queue = work.get("queue") if work else None
            if isinstance(queue, str):
                busy[queue] = busy.get(queue, 0) + 1
    return busy


class SidekiqCollector(JobCollector[SidekiqOptions]):
    """Reads Sidekiq's queues, processes, counters and sorted sets."""

    def __init__(self, options: SidekiqOptions) -> None:
        super().__init__(options)
        self.keys = SidekiqKeys(options.prefix)

    def make_actions(self) -> MessageActions | None:
        from collectors.jobs.sidekiq.actions import SidekiqActions

        return SidekiqActions(self.options, self.keys)

    async def read(self, now: float) -> Collected:
        k = self.keys
        pipe = self.client.pipeline(transaction=False)
        pipe.smembers(k.key("queues"))
        pipe.smembers(k.key("processes"))
        pipe.mget(k.key("stat:processed"), k.key("stat:failed"))
        pipe.zcard(k.key("schedule"))
        pipe.zcard(k.key("retry"))
        pipe.zcard(k.key(DEAD))
        pipe.zrange(k.key(DEAD), 0, 0, withscores=True)
        queues_raw, procs_raw, stats, scheduled, retry, dead, oldest = await pipe.execute()
        names = sorted(n for n in (text(q) for q in queues_raw) if n is not None)
        queues, warnings = self.remember(names)
        procs = sorted(p for p in (text(x) for x in procs_raw) if p is not None)

        pipe = self.client.pipeline(transaction=False)
        for queue in queues:
            pipe.llen(k.queue(queue))
            pipe.lrange(k.queue(queue), -1, -1)  # the oldest job (clients LPUSH)
        for proc in procs:
            pipe.hmget(k.key(proc), "info", "quiet")
            pipe.hvals(f"{k.key(proc)}:workers")
        replies = await pipe.execute()
        pos = 2 * len(queues)
        workers_by_queue: dict[str, int] = {}
        live_workers: list[Any] = []
        for i in range(len(procs)):
            (info_raw, quiet), works = replies[pos + 2 * i], replies[pos + 2 * i + 1]
            info = json_object(info_raw)
            if info is None:  # no heartbeat for 60 s: the process is gone (ProcessSet#cleanup)
                continue
            live_workers.append(works)
            if text(quiet) == "true":
                continue  # stopping: it fetches no more jobs
            served = info.get("queues")
            for queue in set(served) if isinstance(served, list) else ():
                if isinstance(queue, str):
                    workers_by_queue[queue] = workers_by_queue.get(queue, 0) + 1
        busy = _busy_by_queue(live_workers)

        processed, failed = (integer(v) for v in stats)
        succeeded = None if processed is None else processed - (failed or 0)
        single = len(names) == 1  # instance counters are the queue's own only then
        shared_info = {
            "scheduled (all queues)": scheduled,
            "retry (all queues)": retry,
            "processed (all queues)": processed,
            "failed (all queues)": failed,
        }
        series = []
        for i, queue in enumerate(queues):
            length, tail = replies[2 * i], replies[2 * i + 1]
            state = JobQueueState(
                queue=queue,
                waiting=int(length),
                running=busy.get(queue, 0),
                oldest_enqueued=_enqueued_at(tail[0]) if tail else None,
                workers=workers_by_queue.get(queue, 0),
                processed_total=succeeded if single and succeeded is not None else None,
                failed_total=failed if single else None,
                dlq=DEAD,
                dead=int(dead),
                info=shared_info,
            )
            series.append(job_queue_sample(self.options.name, state, now))
        cap = kept_dead(self.options.dead_max_jobs)
        series.append(
            dead_set_sample(
                self.options.name,
                DEAD,
                size=int(dead),
                oldest_death=float(oldest[0][1]) if oldest else None,
                now=now,
                info={
                    "cap (dead_max_jobs - 1)": cap,
                    "fill": round(int(dead) / cap, 4) if cap else None,
                    "dropped after": f"{self.options.dead_timeout / 86400:g} days",
                    **shared_info,
                },
            )
        )
        return Collected(series=tuple(series), warnings=tuple(warnings))


def _create(options: SidekiqOptions) -> SidekiqCollector:
    return SidekiqCollector(options)


PLUGIN: CollectorPlugin[SidekiqOptions] = CollectorPlugin(
    type="sidekiq",
    options_model=SidekiqOptions,
    factory=_create,
    move_options=JobsMoveOptions,
    description="Sidekiq job queues and dead set on Redis",
)

__all__ = ["PLUGIN", "SidekiqCollector"]
