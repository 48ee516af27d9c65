"""BullMQ topology for ``mqtop lint``: each queue's failed set, its size and how it is bounded.

``removeOnFail`` is a per-job option stored with each job (the ``opts`` JSON of its hash), not
a queue setting, so the bound is read from the newest failed job: absent or false, failed jobs
are kept forever; true, they are deleted at once; a number N (or ``{count: N}``), the set is
trimmed to the newest N; ``{age: S}`` only, to the last S seconds. No failed job: unknown.
"""

from __future__ import annotations

import json
from typing import Any

from collectors.jobs.bullmq.collector import BullMQCollector
from collectors.jobs.bullmq.options import BullMQOptions
from collectors.jobs.common import failed_name, text
from collectors.jobs.topology import JobTopologyReader
from collectors.topology import QueueTopology, Topology


def failed_set(queue: str, size: int, opts_raw: Any) -> QueueTopology:
    """A queue's failed set as a :class:`QueueTopology`: ``max_length`` the count it is
    trimmed to (0: nothing kept), ``unbounded_retention`` when nothing removes failed jobs,
    ``retention_seconds`` an age bound; all unknown without a readable newest failed job."""
    name = failed_name(queue)
    try:
        opts = json.loads(text(opts_raw) or "")
    except ValueError:
        opts = None
    if not isinstance(opts, dict):
        return QueueTopology(name, "failed-set", messages=size)
    keep = opts.get("removeOnFail")
    count: Any = None
    age: Any = None
    if isinstance(keep, dict):
        count, age = keep.get("count"), keep.get("age")
    elif keep is True:
        count = 0
    elif type(keep) is int:
        count = keep
    unbounded = keep is None or keep is False
    return QueueTopology(
        name,
        "failed-set",
        messages=size,
        max_length=count if type(count) is int else None,
        retention_seconds=float(age) if type(age) in (int, float) else None,
        unbounded_retention=unbounded,
    )


class BullMQTopologyReader(JobTopologyReader[BullMQCollector]):
    """Finds the queues as the collector does, then reads each failed set's size and newest
    job's options (two pipelines)."""

    def __init__(self, options: BullMQOptions) -> None:
        super().__init__(BullMQCollector(options))
        self.options = options

    async def _read(self) -> Topology:
        client, keys = self.collector.client, self.collector.keys
        found = await self.collector._discover()  # the collector's own SCAN for queues
        names = sorted({*found, *self.options.queues})
        names = [n for n in names if self.options.wants(n) or self.options.wants(failed_name(n))]
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.zcard(keys.key(name, "failed"))
            pipe.zrevrange(keys.key(name, "failed"), 0, 0)
        replies = await pipe.execute()
        sizes = [int(s) for s in replies[0::2]]
        newest = [text(ids[0]) if ids else None for ids in replies[1::2]]
        pipe = client.pipeline(transaction=False)
        for name, job in zip(names, newest, strict=True):
            pipe.hget(keys.job(name, job or ""), "opts")
        opts = await pipe.execute()
        queues = tuple(
            failed_set(name, size, raw if job else None)
            for name, size, job, raw in zip(names, sizes, newest, opts, strict=True)
        )
        return Topology(self.options.name, "bullmq", queues)


def create_reader(options: BullMQOptions) -> BullMQTopologyReader:
    """The plugin's ``topology`` factory."""
    return BullMQTopologyReader(options)
