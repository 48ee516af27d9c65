"""RQ (Python RQ 1.x to 3.x) on Redis: job queues, registries, workers, failed jobs.

Keys read (``prefix`` is RQ's ``RQ_KEY_PREFIX``, ``rq`` by default): ``rq:queues`` (set of
queue keys), ``rq:queue:<q>`` (list; RPUSH by ``enqueue``, workers take from the left),
``rq:queue:<q>:intermediate`` (jobs a worker has taken but not yet registered as started),
the registries ``rq:wip:<q>`` (started), ``rq:failed:<q>``, ``rq:finished:<q>``,
``rq:scheduled:<q>``, ``rq:deferred:<q>`` (sorted sets whose score is an expiry time, so only
entries scored after now count, as after RQ's own cleanup), ``rq:workers:<q>`` (set of worker
keys; a worker's hash ``rq:worker:<name>`` expires when its heartbeats stop) and the job
hashes ``rq:job:<id>`` (``enqueued_at``, ``origin``, ``description``...).
"""

from __future__ import annotations

from typing import Any

from collectors.base import Collected, CollectorPlugin, MessageActions
from collectors.jobs.actions import JobsMoveOptions
from collectors.jobs.collector import JobCollector
from collectors.jobs.common import epoch_seconds, failed_name, text
from collectors.jobs.rq.options import RQKeys, RQOptions
from collectors.jobs.series import JobQueueState, dead_set_sample, job_queue_sample

REGISTRIES = ("wip", "failed", "finished", "scheduled", "deferred")


class RQCollector(JobCollector[RQOptions]):
    """Reads RQ's queues, registries and worker registrations."""

    def __init__(self, options: RQOptions) -> None:
        super().__init__(options)
        self.keys = RQKeys(options.prefix)

    def make_actions(self) -> MessageActions | None:
        from collectors.jobs.rq.actions import RQActions

        return RQActions(self.options, self.keys)

    async def read(self, now: float) -> Collected:
        k = self.keys
        members = await self.client.smembers(k.queues)
        names = sorted(n for n in (k.queue_name(text(m) or "") for m in members) if n is not None)
        queues, warnings = self.remember(names)
        # registry scores are expiry times; RQ's own count (cleanup, then ZCARD) drops those
        # in [0, now] and keeps the rest, -1 (failure_ttl=-1: never expires) included
        pipe = self.client.pipeline(transaction=False)
        for queue in queues:
            pipe.llen(k.queue(queue))
            pipe.llen(k.intermediate(queue))
            pipe.lindex(k.queue(queue), 0)  # the oldest waiting job id
            for kind in REGISTRIES:
                pipe.zcard(k.registry(kind, queue))
                pipe.zcount(k.registry(kind, queue), 0, now)  # expired, not yet cleaned up
            pipe.smembers(k.workers(queue))
            pipe.zrange(k.registry("failed", queue), 0, 0)
        width = 5 + 2 * len(REGISTRIES)
        replies = await pipe.execute()

        pipe = self.client.pipeline(transaction=False)
        asked: list[tuple[str, str]] = []
        for i, queue in enumerate(queues):
            row = replies[i * width : (i + 1) * width]
            head, workers, first_failed = row[2], row[-2], row[-1]
            if head is not None:
                pipe.hget(k.job(text(head) or ""), "enqueued_at")
                asked.append((queue, "enqueued"))
            for worker in sorted(text(w) or "" for w in workers):
                pipe.exists(worker)
                asked.append((queue, "worker"))
            if first_failed:
                pipe.hget(k.job(text(first_failed[0]) or ""), "ended_at")
                asked.append((queue, "failed_at"))
        details = await pipe.execute() if asked else []
        oldest: dict[str, float | None] = {}
        alive: dict[str, int] = {}
        failed_at: dict[str, float | None] = {}
        for (queue, what), value in zip(asked, details, strict=True):
            if what == "enqueued":
                oldest[queue] = epoch_seconds(value)
            elif what == "worker":
                alive[queue] = alive.get(queue, 0) + (1 if value else 0)
            else:
                failed_at[queue] = epoch_seconds(value)

        series = []
        for i, queue in enumerate(queues):
            row = replies[i * width : (i + 1) * width]
            waiting, taken = int(row[0]), int(row[1])
            pairs = row[3:-2]
            counts: dict[str, Any] = {
                kind: int(pairs[2 * n]) - int(pairs[2 * n + 1]) for n, kind in enumerate(REGISTRIES)
            }
            state = JobQueueState(
                queue=queue,
                waiting=waiting,
                running=counts["wip"] + taken,
                oldest_enqueued=oldest.get(queue),
                workers=alive.get(queue, 0),
                dlq=failed_name(queue),
                dead=counts["failed"],
                info={
                    "started": counts["wip"],
                    "scheduled": counts["scheduled"],
                    "deferred": counts["deferred"],
                    "finished (kept result_ttl)": counts["finished"],
                },
            )
            series.append(job_queue_sample(self.options.name, state, now))
            series.append(
                dead_set_sample(
                    self.options.name,
                    failed_name(queue),
                    size=counts["failed"],
                    oldest_death=failed_at.get(queue),
                    now=now,
                    info={"queue": queue, "registry": k.registry("failed", queue)},
                )
            )
        return Collected(series=tuple(series), warnings=tuple(warnings))


def _create(options: RQOptions) -> RQCollector:
    return RQCollector(options)


PLUGIN: CollectorPlugin[RQOptions] = CollectorPlugin(
    type="rq",
    options_model=RQOptions,
    factory=_create,
    move_options=JobsMoveOptions,
    description="RQ job queues and failed job registries on Redis",
)

__all__ = ["PLUGIN", "RQCollector"]
