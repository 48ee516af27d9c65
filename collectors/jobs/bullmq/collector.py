"""BullMQ (4.x to 6.x) on Redis: job queues, active jobs, workers, failed jobs.

Keys read under ``<prefix>:<queue>:`` (``prefix`` is BullMQ's, ``bull`` by default): ``meta``
(hash; its presence names a queue, ``paused``), ``wait`` (list; LPUSH by producers, workers
take from the right), ``paused`` (older versions park waiting jobs there), ``prioritized``
(sorted set: waiting jobs with a priority), ``active`` (list: running), ``delayed``,
``completed``, ``failed``, ``waiting-children`` (sorted sets), ``metrics:completed`` /
``metrics:failed`` (hashes with a running ``count`` when the workers collect metrics) and the
job hashes ``<prefix>:<queue>:<id>`` (``timestamp`` in ms, ``name``, ``data``...). Workers are
the connections named ``<prefix>:<base64 queue>`` (``:w:<name>``) in ``CLIENT LIST``, as in
BullMQ's own ``getWorkers``.
"""

from __future__ import annotations

from typing import Any

from collectors.base import Collected, CollectorPlugin, MessageActions
from collectors.jobs.actions import JobsMoveOptions
from collectors.jobs.bullmq.options import BullMQKeys, BullMQOptions
from collectors.jobs.collector import JobCollector
from collectors.jobs.common import epoch_seconds, failed_name, integer, text
from collectors.jobs.series import JobQueueState, dead_set_sample, job_queue_sample

PRIORITIZED_SCAN = 1000  # prioritized jobs whose age is read (beyond: latency from wait only)
STATES = ("wait", "paused", "active")
SETS = ("prioritized", "delayed", "completed", "failed", "waiting-children")


def count_workers(
    clients: list[dict[str, Any]], keys: BullMQKeys, queues: list[str]
) -> dict[str, int]:
    """Workers per queue from ``CLIENT LIST`` entries, as BullMQ's ``getWorkers`` matches them."""
    names = [str(c.get("name") or "") for c in clients]
    out: dict[str, int] = {}
    for queue in queues:
        base = keys.client_name(queue)
        out[queue] = sum(1 for n in names if n == base or n.startswith(base + ":w:"))
    return out


class BullMQCollector(JobCollector[BullMQOptions]):
    """Reads BullMQ's per-queue lists, sets, metrics and worker connections."""

    def __init__(self, options: BullMQOptions) -> None:
        super().__init__(options)
        self.keys = BullMQKeys(options.prefix)

    def make_actions(self) -> MessageActions | None:
        from collectors.jobs.bullmq.actions import BullMQActions

        return BullMQActions(self.options, self.keys)

    async def _discover(self) -> list[str]:
        found: list[str] = []
        pattern = self.keys.key("*", "meta")
        async for raw in self.client.scan_iter(
            match=pattern, count=self.options.scan_count, _type="hash"
        ):
            name = self.keys.queue_of_meta(text(raw) or "")
            if name is not None:
                found.append(name)
        return sorted(found)

    async def _workers(self, queues: list[str], warnings: list[str]) -> dict[str, int] | None:
        from redis.exceptions import RedisError

        try:
            clients = await self.client.client_list()
        except RedisError as exc:  # ACL without CLIENT LIST: workers unknown, not 0
            warnings.append(f"CLIENT LIST refused ({exc}): workers are not counted")
            return None
        return count_workers(clients, self.keys, queues)

    async def read(self, now: float) -> Collected:
        k = self.keys
        queues, warnings = await self.queues_to_read(self._discover, self.options.discover_every)
        pipe = self.client.pipeline(transaction=False)
        for queue in queues:
            for state in STATES:
                pipe.llen(k.key(queue, state))
            for name in SETS:
                pipe.zcard(k.key(queue, name))
            pipe.hget(k.key(queue, "metrics:completed"), "count")
            pipe.hget(k.key(queue, "metrics:failed"), "count")
            pipe.lindex(k.key(queue, "wait"), -1)  # the oldest waiting job
            pipe.zrange(k.key(queue, "prioritized"), 0, PRIORITIZED_SCAN - 1)
            pipe.zrange(k.key(queue, "failed"), 0, 0, withscores=True)
            pipe.exists(k.key(queue, "meta"))
        width = len(STATES) + len(SETS) + 6
        replies = await pipe.execute()
        rows = [dict(zip(("wait", "paused", "active", *SETS, "m_done", "m_failed", "tail",
                          "prio_ids", "first_failed", "meta"),
                         replies[i * width : (i + 1) * width], strict=True))
                for i in range(len(queues))]  # fmt: skip

        pipe = self.client.pipeline(transaction=False)
        asked: list[tuple[int, bool]] = []  # (row, exact)
        for i, (queue, row) in enumerate(zip(queues, rows, strict=True)):
            ids = [row["tail"]] if row["tail"] is not None else []
            exact = int(row["prioritized"]) <= PRIORITIZED_SCAN
            ids += row["prio_ids"] if exact else []
            for job_id in ids:
                pipe.hget(k.job(queue, text(job_id) or ""), "timestamp")
                asked.append((i, exact))
        stamps = await pipe.execute() if asked else []
        oldest: dict[int, float] = {}
        partial: set[int] = set()
        for (i, exact), raw in zip(asked, stamps, strict=True):
            when = epoch_seconds(raw)
            if not exact:
                partial.add(i)
            if when is not None:
                oldest[i] = min(oldest.get(i, when), when)
        workers = await self._workers(queues, warnings) if queues else {}

        series = []
        for i, (queue, row) in enumerate(zip(queues, rows, strict=True)):
            if not row["meta"] and queue not in self.options.queues:
                self.forget(queue)  # obliterated
                continue
            waiting = int(row["wait"]) + int(row["paused"]) + int(row["prioritized"])
            queue_state = JobQueueState(
                queue=queue,
                waiting=waiting,
                running=int(row["active"]),
                oldest_enqueued=oldest.get(i),
                workers=None if workers is None else workers.get(queue, 0),
                processed_total=integer(row["m_done"]),
                failed_total=integer(row["m_failed"]),
                dlq=failed_name(queue),
                dead=int(row["failed"]),
                info={
                    "prioritized": int(row["prioritized"]),
                    "delayed": int(row["delayed"]),
                    "completed (kept)": int(row["completed"]),
                    "waiting-children": int(row["waiting-children"]),
                    **({"latency from": "wait list only"} if i in partial else {}),
                },
            )
            series.append(job_queue_sample(self.options.name, queue_state, now))
            first = row["first_failed"]
            series.append(
                dead_set_sample(
                    self.options.name,
                    failed_name(queue),
                    size=int(row["failed"]),
                    oldest_death=epoch_seconds(first[0][1]) if first else None,
                    now=now,
                    info={"queue": queue, "set": k.key(queue, "failed")},
                )
            )
        return Collected(series=tuple(series), warnings=tuple(warnings))


def _create(options: BullMQOptions) -> BullMQCollector:
    return BullMQCollector(options)


PLUGIN: CollectorPlugin[BullMQOptions] = CollectorPlugin(
    type="bullmq",
    options_model=BullMQOptions,
    factory=_create,
    move_options=JobsMoveOptions,
    description="BullMQ job queues and failed sets on Redis",
)

__all__ = ["PLUGIN", "BullMQCollector"]
