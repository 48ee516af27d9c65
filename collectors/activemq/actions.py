"""ActiveMQ message actions: peek (browse), count, purge, the replay target, and replay /
move (mover.py). Broker mechanics are in ops.py; whole bodies in bodies.py.

* peek: the queue's browse operation (no delivery, no delivery count, nothing changes); a
  body Jolokia shows cut is read whole through ``browse_url`` when set (bodies.py).
* replay / move: the broker's own transactional move operations (mover.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from collectors.activemq.bodies import complete
from collectors.activemq.broker import Broker
from collectors.activemq.jolokia import JolokiaError
from collectors.activemq.mover import ORIGINAL, Mover
from collectors.activemq.ops import ArtemisOps, ClassicOps, FlavorOps
from collectors.activemq.options import ActiveMQMoveOptions
from collectors.base import (
    MoveRequest,
    MoveResult,
    PeekedMessage,
    ProgressCallback,
    original_of_dlq,
)
from collectors.kit.options import options_as
from mqtop.kernel.errors import ActionFailed, MqtopError


class ActiveMQActions:
    """Peek / replay / move / purge on one ActiveMQ broker."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.options = broker.options
        self._ops: FlavorOps | None = None

    @contextlib.asynccontextmanager
    async def _ops_of_flavor(self) -> AsyncIterator[FlavorOps]:
        """The flavor's operations; Jolokia failures become one-line ActionFailed errors."""
        try:
            if self._ops is None:
                flavor = await self.broker.detect()
                kind = ArtemisOps if flavor == "artemis" else ClassicOps
                self._ops = kind(self.broker)
            yield self._ops
        except MqtopError:
            raise
        except JolokiaError as exc:
            raise ActionFailed(f"{self.broker.where()}: {exc}") from None

    async def close(self) -> None:
        await self.broker.jolokia.close()

    async def peek_warning(self, queue: str) -> str | None:
        async with self._ops_of_flavor() as ops:
            await ops.resolve(queue)  # an unknown queue fails here, before any notice
        return None  # browsing has no side effect on either flavor

    async def peek(self, queue: str, count: int) -> list[PeekedMessage]:
        async with self._ops_of_flavor() as ops:
            ref = await ops.resolve(queue)
            messages = await ops.messages(ref, count)
            return await complete(self.options, ops.flavor, ref, messages)

    async def count(self, queue: str) -> int | None:
        async with self._ops_of_flavor() as ops:
            return await ops.count(await ops.resolve(queue))

    async def purge(self, queue: str) -> int | None:
        async with self._ops_of_flavor() as ops:
            return await ops.purge(await ops.resolve(queue))

    async def replay_target(self, dlq: str) -> str | None:
        """The single original queue of the DLQ's messages, ORIGINAL when there are several."""
        async with self._ops_of_flavor() as ops:
            ref = await ops.resolve(dlq)
            origins = {o for o in await ops.origins(ref, set()) if o not in (ref.queue, "null")}
            if len(origins) == 1:
                return origins.pop()
            if origins:
                return ORIGINAL
            candidate = ref.queue[4:] if ref.queue.startswith("DLQ.") else None
            for name in (candidate, original_of_dlq(ref.queue)):
                if name and await ops.find(name) is not None:
                    return name
            return None

    async def move(self, request: MoveRequest, progress: ProgressCallback) -> MoveResult:
        async with self._ops_of_flavor() as ops:
            opts = options_as(request.options, ActiveMQMoveOptions, "activemq")
            mover = Mover(ops, request, opts.batch or self.options.move_batch, progress)
            return await mover.run()
