"""Kafka dead-letter topic actions: peek, count, purge, and replay / move (see mover)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.protocol.admin import DeleteRecordsRequest

from collectors.base import (
    MoveRequest,
    MoveResult,
    PeekedMessage,
    ProgressCallback,
    original_of_dlq,
)
from collectors.kafka.client import (
    READ_COMMITTED,
    KafkaProtocolError,
    client_kwargs,
    quiet_client_logs,
)
from collectors.kafka.headers import death_of, header_map, shown_headers
from collectors.kafka.mover import KafkaMover, iso
from collectors.kafka.options import KafkaOptions
from collectors.kafka.reader import topic_bounds
from collectors.kafka.wire import KafkaWire
from mqtop.kernel.errors import ActionFailed


async def stop_consumer(consumer: Any) -> None:
    """Stop an aiokafka consumer. aiokafka 0.14 can raise CancelledError from ``stop()`` (its
    cancelled background task); that one is swallowed, a cancellation of this task is not."""
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise


def peeked(record: Any) -> PeekedMessage:
    """A consumed record as a peeked message: header values in their one shown form (see
    :mod:`collectors.kafka.headers`), dead-letter details from the raw headers."""
    raw = list(record.headers or ())
    headers, encodings = shown_headers(raw)
    properties: dict[str, Any] = {
        "key": record.key,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": iso(record.timestamp),
        "timestamp_type": "LogAppendTime" if record.timestamp_type == 1 else "CreateTime",
        "header_encodings": encodings,
    }
    if record.value is None:
        properties["tombstone"] = True
    return PeekedMessage(
        id=f"{record.partition}:{record.offset}",
        body=record.value or b"",
        headers=headers,
        properties=properties,
        death=death_of(header_map(raw)),
        timestamp=record.timestamp / 1000,
        extra={"partition": record.partition, "offset": record.offset, "key": record.key},
    )


class KafkaActions:
    """Peek / replay / move / purge on one Kafka cluster."""

    def __init__(self, options: KafkaOptions) -> None:
        self.options = options
        self._wire: KafkaWire | None = None

    def _timeout(self) -> float:
        return float(self.options.timeout or 30.0)

    async def _get_wire(self) -> KafkaWire:
        if self._wire is None:
            wire = KafkaWire(self.options, self._timeout())
            try:
                await wire.start()
            except BaseException:
                await wire.close()
                raise
            self._wire = wire
        return self._wire

    async def close(self) -> None:
        wire, self._wire = self._wire, None
        if wire is not None:
            await wire.close()

    async def _bounds(
        self, topic: str, isolation: int = 0
    ) -> tuple[list[int], dict[int, int], dict[int, int]]:
        return await topic_bounds(await self._get_wire(), topic, self.options.name, isolation)

    def _consumer(self, max_partition_bytes: int = 4 * 1024 * 1024) -> AIOKafkaConsumer:
        quiet_client_logs()
        return AIOKafkaConsumer(
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_partition_fetch_bytes=max_partition_bytes,
            fetch_max_bytes=64 * 1024 * 1024,
            **client_kwargs(self.options, self._timeout()),
        )

    # -- peek --------------------------------------------------------------------------

    async def peek_warning(self, queue: str) -> str | None:
        return None  # reading a topic without a group changes nothing on the broker

    async def peek(self, queue: str, count: int) -> list[PeekedMessage]:
        """The ``count`` oldest records still held by the topic (by timestamp)."""
        parts, starts, ends = await self._bounds(queue, READ_COMMITTED)
        want = {p: min(count, ends[p] - starts[p]) for p in parts if ends[p] > starts[p]}
        if not want:
            return []
        consumer = self._consumer(256 * 1024)
        await consumer.start()
        try:
            records = await self._read_heads(consumer, queue, want, starts, ends)
        finally:
            await stop_consumer(consumer)
        records.sort(key=lambda r: (r.timestamp, r.partition, r.offset))
        return [peeked(r) for r in records[:count]]

    async def _read_heads(
        self,
        consumer: AIOKafkaConsumer,
        topic: str,
        want: dict[int, int],
        starts: dict[int, int],
        ends: dict[int, int],
    ) -> list[Any]:
        """The first ``want[p]`` records of each partition from its log start (within the
        action timeout)."""
        records: list[Any] = []
        tps = {p: TopicPartition(topic, p) for p in want}
        consumer.assign(list(tps.values()))
        for p, tp in tps.items():
            consumer.seek(tp, starts[p])
        got = dict.fromkeys(want, 0)
        deadline = time.monotonic() + self._timeout()
        while any(got[p] < want[p] for p in want) and time.monotonic() < deadline:
            pending = [tps[p] for p in want if got[p] < want[p]]
            batch = await consumer.getmany(*pending, timeout_ms=500)
            for tp, recs in batch.items():
                p = tp.partition
                for record in recs:
                    if got[p] < want[p] and record.offset < ends[p]:
                        records.append(record)
                        got[p] += 1
                if got[p] >= want[p]:
                    consumer.pause(tp)
            if not batch:
                for p, wanted in list(want.items()):
                    if got[p] < wanted and await consumer.position(tps[p]) >= ends[p]:
                        want[p] = got[p]  # control records only: nothing more to show
        return records

    async def replay_target(self, dlq: str) -> str | None:
        """Original topic from the DLT's first record headers, the config, or its name."""
        for message in await self.peek(dlq, 1):
            if message.death is not None and message.death.original_queue:
                return message.death.original_queue
        for source, target in self.options.dlq.items():
            if target == dlq:
                return source
        original = original_of_dlq(dlq)
        if original is not None:
            wire = await self._get_wire()
            if original in wire.partitions:
                return original
        return None

    async def count(self, queue: str) -> int | None:
        """Records the topic holds (end minus log start, over all partitions)."""
        _, starts, ends = await self._bounds(queue)
        return sum(max(0, ends[p] - starts[p]) for p in ends)

    async def purge(self, queue: str) -> int | None:
        """Delete every record up to the current end (DeleteRecords on each leader)."""
        parts, starts, ends = await self._bounds(queue)
        wire = await self._get_wire()
        by_node: dict[int, list[tuple[int, int]]] = {}
        for p in parts:
            if ends[p] > starts[p]:
                by_node.setdefault(wire.leaders[(queue, p)], []).append((p, ends[p]))
        errors: list[str] = []

        async def one(node: int, entries: list[tuple[int, int]]) -> None:
            request = DeleteRecordsRequest([(queue, entries)], int(self._timeout() * 1000))
            response = await wire.client.send(node, request)
            for entry in response.topics:
                for partition, _low, code, *_rest in entry[1]:
                    if code:
                        errors.append(str(KafkaProtocolError(code, f"partition {partition}")))

        await asyncio.gather(*(one(n, e) for n, e in by_node.items()))
        if errors:
            raise ActionFailed(f"purge of {queue}: " + "; ".join(errors[:5]))
        return sum(max(0, ends[p] - starts[p]) for p in parts)

    # -- replay / move -------------------------------------------------------------------

    async def move(self, request: MoveRequest, progress: ProgressCallback) -> MoveResult:
        """Copy records losslessly, committing progress only after acknowledgements."""
        mover = KafkaMover(await self._get_wire(), self.options, self._timeout())
        return await mover.move(request, progress)


__all__ = ["KafkaActions", "peeked", "stop_consumer"]
