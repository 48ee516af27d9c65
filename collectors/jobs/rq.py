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

from typing import Any, Literal

from collectors.base import Collected, CollectorPlugin, MessageActions
from collectors.jobs.collector import JobCollector
from collectors.jobs.common import JobsOptions, epoch_seconds, text
from collectors.jobs.series import JobQueueState, dead_set_sample, job_queue_sample

FAILED_SUFFIX = ":failed"  # ``<queue>:failed`` names a queue's failed registry in mqtop
REGISTRIES = ("wip", "failed", "finished", "scheduled", "deferred")


class RQOptions(JobsOptions):
    """RQ on one Redis server."""

    type: Literal["rq"] = "rq"


class RQKeys:
    """RQ's key layout under its prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix or "rq"

    @property
    def queues(self) -> str:
        """The set of every queue's key."""
        return f"{self.prefix}:queues"

    def queue(self, queue: str) -> str:
        """The list of a queue's waiting job ids."""
        return f"{self.prefix}:queue:{queue}"

    def intermediate(self, queue: str) -> str:
        """Jobs taken from the queue and not yet in the started registry."""
        return f"{self.queue(queue)}:intermediate"

    def registry(self, kind: str, queue: str) -> str:
        """A registry (``wip``, ``failed``, ``finished``, ``scheduled``, ``deferred``)."""
        return f"{self.prefix}:{kind}:{queue}"

    def workers(self, queue: str) -> str:
        """The set of workers registered for a queue."""
        return f"{self.prefix}:workers:{queue}"

    def job(self, job_id: str) -> str:
        """A job's hash."""
        return f"{self.prefix}:job:{job_id}"

    def results(self, job_id: str) -> str:
        """A job's results stream (RQ 1.12+)."""
        return f"{self.prefix}:results:{job_id}"

    def queue_name(self, key: str) -> str | None:
        """The queue name in a member of ``rq:queues``."""
        head = f"{self.prefix}:queue:"
        return key[len(head) :] if key.startswith(head) and len(key) > len(head) else None


def failed_name(queue: str) -> str:
    """mqtop's name of a queue's failed registry."""
    return queue + FAILED_SUFFIX


def queue_of_failed(name: str) -> str | None:
    """The queue a failed-registry name belongs to."""
    if name.endswith(FAILED_SUFFIX) and len(name) > len(FAILED_SUFFIX):
        return name[: -len(FAILED_SUFFIX)]
    return None


class RQCollector(JobCollector[RQOptions]):
    """Reads RQ's queues, registries and worker registrations."""

    def __init__(self, options: RQOptions) -> None:
        super().__init__(options)
        self.keys = RQKeys(options.prefix)

    def make_actions(self) -> MessageActions | None:
        from collectors.jobs.rq_actions import RQActions

        return RQActions(self.options, self.keys)

    async def read(self, now: float) -> Collected:
        k = self.keys
        members = await self.client.smembers(k.queues)
        names = sorted(n for n in (k.queue_name(text(m) or "") for m in members) if n is not None)
        queues, warnings = self.remember(names)
        live = f"({now}"  # registry scores are expiry times: later than now = still counted
        pipe = self.client.pipeline(transaction=False)
        for queue in queues:
            pipe.llen(k.queue(queue))
            pipe.llen(k.intermediate(queue))
            pipe.lindex(k.queue(queue), 0)  # the oldest waiting job id
            for kind in REGISTRIES:
                pipe.zcount(k.registry(kind, queue), live, "+inf")
            pipe.smembers(k.workers(queue))
            pipe.zrange(k.registry("failed", queue), 0, 0)
        width = 5 + len(REGISTRIES)
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
            counts: dict[str, Any] = dict(zip(REGISTRIES, (int(v) for v in row[3:-2]), strict=True))
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
    description="RQ job queues and failed job registries on Redis",
)

__all__ = ["PLUGIN", "RQCollector", "RQKeys", "RQOptions", "failed_name", "queue_of_failed"]
