"""RQ topology for ``mqtop lint``: each queue's failed registry, its size and whether some of
its jobs never expire. The registry's scores are expiry times (now + the job's
``failure_ttl``, one year by default); a job failed with ``failure_ttl=-1`` gets the score -1
(``+inf`` in older RQ), which the registry's cleanup never removes."""

from __future__ import annotations

from collectors.jobs.common import failed_name, text
from collectors.jobs.rq.collector import RQCollector
from collectors.jobs.rq.options import RQOptions
from collectors.jobs.topology import JobTopologyReader
from collectors.topology import QueueTopology, Topology


class RQTopologyReader(JobTopologyReader[RQCollector]):
    """Reads the queue set, then each failed registry's size and never-expiring entries."""

    def __init__(self, options: RQOptions) -> None:
        super().__init__(RQCollector(options))
        self.options = options

    async def _read(self) -> Topology:
        client, keys = self.collector.client, self.collector.keys
        members = await client.smembers(keys.queues)
        found = (keys.queue_name(text(m) or "") for m in members)
        names = sorted({n for n in found if n is not None} | set(self.options.queues))
        names = [n for n in names if self.options.wants(n) or self.options.wants(failed_name(n))]
        pipe = client.pipeline(transaction=False)
        for name in names:
            key = keys.registry("failed", name)
            pipe.zcard(key)
            pipe.zcount(key, "-inf", 0)  # failure_ttl -1 (RQ 2 and later)
            pipe.zcount(key, "+inf", "+inf")  # failure_ttl -1 (older RQ)
        replies = await pipe.execute()
        queues = tuple(
            QueueTopology(
                failed_name(name),
                "failed-registry",
                messages=int(replies[3 * i]),
                unbounded_retention=int(replies[3 * i + 1]) + int(replies[3 * i + 2]) > 0,
            )
            for i, name in enumerate(names)
        )
        return Topology(self.options.name, "rq", queues)


def create_reader(options: RQOptions) -> RQTopologyReader:
    """The plugin's ``topology`` factory."""
    return RQTopologyReader(options)
