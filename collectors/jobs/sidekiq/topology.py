"""Sidekiq topology for ``mqtop lint``: the job queues (their lengths) and the dead set, with
the cap it is trimmed to (``dead_max_jobs - 1``, from the broker's config: Sidekiq keeps its
``dead_max_jobs`` in the worker process, not in Redis)."""

from __future__ import annotations

from collectors.jobs.common import text
from collectors.jobs.sidekiq.collector import SidekiqCollector
from collectors.jobs.sidekiq.options import DEAD, SidekiqOptions, kept_dead
from collectors.jobs.topology import JobTopologyReader
from collectors.topology import QueueTopology, Topology

MAX_QUEUES = 10_000


class SidekiqTopologyReader(JobTopologyReader[SidekiqCollector]):
    """Reads the queue set, each queue's length and the dead set's size (two pipelines)."""

    def __init__(self, options: SidekiqOptions) -> None:
        super().__init__(SidekiqCollector(options))
        self.options = options

    async def _read(self) -> Topology:
        client, keys = self.collector.client, self.collector.keys
        pipe = client.pipeline(transaction=False)
        pipe.smembers(keys.key("queues"))
        pipe.zcard(keys.key(DEAD))
        queues_raw, dead = await pipe.execute()
        names = sorted(n for n in (text(q) for q in queues_raw) if n is not None)
        names = [n for n in names if self.options.wants(n)][:MAX_QUEUES]
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.llen(keys.queue(name))
        lengths = await pipe.execute()
        queues = [
            QueueTopology(name, "queue", messages=int(length))
            for name, length in zip(names, lengths, strict=True)
        ]
        if self.options.wants(DEAD):
            cap = kept_dead(self.options.dead_max_jobs)
            queues.append(QueueTopology(DEAD, "dead-set", messages=int(dead), max_length=cap))
        return Topology(self.options.name, "sidekiq", tuple(queues))


def create_reader(options: SidekiqOptions) -> SidekiqTopologyReader:
    """The plugin's ``topology`` factory."""
    return SidekiqTopologyReader(options)
