"""Celery on Redis (kombu's Redis transport): task queues and tasks being worked on.

Keys read (``prefix`` is kombu's ``global_keyprefix``, empty by default): the bindings
``_kombu.binding.<exchange>`` (sets of ``routing key␆␖pattern␆␖queue``; the remote-control and
event exchanges ``*.pidbox`` / ``celeryev`` are not task queues), each queue's lists: the queue
name itself for priority 0 and ``<queue>␆␖<step>`` for the other ``priority_steps`` (kombu
keeps one list per step and its own ``queue size`` sums them, as mqtop does), and ``unacked``
(hash of tasks delivered but not acknowledged: the task, its exchange and routing key).

Celery keeps no dead set on Redis (a failed task's result lives in the result backend, not in
a queue), no enqueue time in its messages and no worker registry in Redis: ``dlq_length``,
``latency_seconds`` and ``consumers`` are null, never made up.
"""

from __future__ import annotations

import json
from typing import Any

from collectors.base import Collected
from collectors.jobs.celery.options import CeleryOptions
from collectors.jobs.collector import JobCollector
from collectors.jobs.common import text
from collectors.jobs.series import JobQueueState, job_queue_sample

SEP = "\x06\x16"  # kombu's separator in binding members and priority queue names
BINDING = "_kombu.binding."
NOT_TASK_EXCHANGES = ("celeryev",)
UNACKED_READ_MAX = 10_000  # unacked entries parsed per poll (beyond: in_flight unknown)


class CeleryKeys:
    """kombu's Redis key layout under its global key prefix."""

    def __init__(self, prefix: str, steps: list[int]) -> None:
        self.prefix = prefix
        self.steps = sorted(set(steps)) or [0]

    def lists(self, queue: str) -> list[str]:
        """Every list of a queue, highest priority first (the order kombu reads them)."""
        return [
            self.prefix + (queue if step == self.steps[0] else f"{queue}{SEP}{step}")
            for step in self.steps
        ]

    @property
    def unacked(self) -> str:
        """The hash of delivered, unacknowledged tasks."""
        return self.prefix + "unacked"

    def binding(self, exchange: str) -> str:
        """The binding set of an exchange."""
        return f"{self.prefix}{BINDING}{exchange}"


def is_task_exchange(exchange: str) -> bool:
    """False for Celery's remote-control and event exchanges."""
    return not exchange.endswith(".pidbox") and exchange not in NOT_TASK_EXCHANGES


def queue_of_binding(member: str) -> str | None:
    """The queue of a binding member (``routing key␆␖pattern␆␖queue``)."""
    parts = member.split(SEP)
    return parts[2] if len(parts) == 3 and parts[2] else None


def unacked_by_queue(values: list[Any], queues: list[str]) -> dict[str, int]:
    """Unacknowledged tasks per queue: kombu stores ``[message, exchange, routing key]``; a
    task routed with its queue's name as routing key (Celery's default) counts there."""
    known = set(queues)
    out = dict.fromkeys(queues, 0)
    for raw in values:
        try:
            entry = json.loads(raw)
        except (ValueError, TypeError, UnicodeDecodeError):
            continue
        if isinstance(entry, list) and len(entry) == 3 and entry[2] in known:
            out[entry[2]] += 1
    return out


class CeleryCollector(JobCollector[CeleryOptions]):
    """Reads kombu's bindings, priority lists and unacked hash."""

    def __init__(self, options: CeleryOptions) -> None:
        super().__init__(options)
        self.keys = CeleryKeys(options.prefix, options.priority_steps)

    async def _discover(self) -> list[str]:
        exchanges: list[str] = []
        head = self.keys.prefix + BINDING
        async for raw in self.client.scan_iter(match=head + "*", count=1000, _type="set"):
            exchange = (text(raw) or "")[len(head) :]
            if exchange and is_task_exchange(exchange):
                exchanges.append(exchange)
        found: list[str] = []
        for exchange in sorted(exchanges):
            for member in await self.client.smembers(self.keys.binding(exchange)):
                queue = queue_of_binding(text(member) or "")
                if queue is not None:
                    found.append(queue)
        return sorted(set(found))

    async def read(self, now: float) -> Collected:
        queues, warnings = await self.queues_to_read(self._discover, self.options.discover_every)
        pipe = self.client.pipeline(transaction=False)
        for queue in queues:
            for key in self.keys.lists(queue):
                pipe.llen(key)
        pipe.hlen(self.keys.unacked)
        replies = await pipe.execute()
        steps = len(self.keys.steps)
        unacked_total = int(replies[-1])
        running: dict[str, int] | None = None
        if unacked_total <= UNACKED_READ_MAX:
            running = unacked_by_queue(await self.client.hvals(self.keys.unacked), queues)
        else:
            warnings.append(f"{unacked_total} unacked tasks: in_flight not counted")
        series = []
        for i, queue in enumerate(queues):
            lengths = [int(v) for v in replies[i * steps : (i + 1) * steps]]
            state = JobQueueState(
                queue=queue,
                waiting=sum(lengths),
                running=None if running is None else running.get(queue, 0),
                info={
                    **{f"priority {s}": n for s, n in zip(self.keys.steps, lengths, strict=True)},
                    "unacked (all queues)": unacked_total,
                },
            )
            sample = job_queue_sample(self.options.name, state, now)
            series.append(sample)
        return Collected(series=tuple(series), warnings=tuple(warnings))


__all__ = ["CeleryCollector", "CeleryKeys"]
