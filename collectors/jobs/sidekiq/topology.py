"""Sidekiq topology for ``mqtop lint``: the job queues (their lengths) and the dead set, with
the cap it is trimmed to (``dead_max_jobs - 1``, from the broker's config: Sidekiq keeps its
``dead_max_jobs`` in the worker process, not in Redis)."""

from __future__ import annotations

from collectors.jobs.common import text
from collectors.jobs.sidekiq.collector import SidekiqCollector
from collectors.jobs.sidekiq.options import DEAD, SidekiqOptions, kept_dead
from collectors.topology import QueueTopology, Topology
from mqtop.kernel.errors import BrokerUnreachable, MqtopError

MAX_QUEUES = 10_000


class SidekiqTopologyReader:
    """Reads the queue set, each queue's length and the dead set's size (two pipelines)."""

    def __init__(self, options: SidekiqOptions) -> None:
        self.options = options
        self.collector = SidekiqCollector(options)

    async def _read(self) -> Topology:
        await self.collector.connect()
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

    async def read(self) -> Topology:
        try:
            return await self._read()
        except MqtopError:
            raise
        except Exception as exc:  # redis-py connection and protocol errors
            raise BrokerUnreachable(
                f"Redis of {self.options.name!r}: {type(exc).__name__}: {exc}"
            ) from None

    async def close(self) -> None:
        await self.collector.close()


def create_reader(options: SidekiqOptions) -> SidekiqTopologyReader:
    """The plugin's ``topology`` factory."""
    return SidekiqTopologyReader(options)
