"""What the job libraries' topology readers (``mqtop lint``) share: the library's own
collector for the Redis connection and key names, and one wording for a Redis that fails."""

from __future__ import annotations

from typing import Generic, TypeVar

from collectors.jobs.collector import JobCollector
from collectors.topology import Topology
from mqtop.kernel.errors import BrokerUnreachable, MqtopError

CollectorT = TypeVar("CollectorT", bound=JobCollector)  # type: ignore[type-arg]


class JobTopologyReader(Generic[CollectorT]):
    """Base of a library's topology reader: subclasses read with ``self.collector``'s client
    and keys in :meth:`_read`; :meth:`read` turns a Redis failure into ``BrokerUnreachable``."""

    def __init__(self, collector: CollectorT) -> None:
        self.collector = collector
        self.options = collector.options

    async def _read(self) -> Topology:
        raise NotImplementedError

    async def read(self) -> Topology:
        try:
            await self.collector.connect()
            return await self._read()
        except MqtopError:
            raise
        except Exception as exc:  # redis-py connection and protocol errors
            raise BrokerUnreachable(
                f"Redis of {self.options.name!r}: {type(exc).__name__}: {exc}"
            ) from None

    async def close(self) -> None:
        await self.collector.close()
