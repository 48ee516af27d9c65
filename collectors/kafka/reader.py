"""Reading a topic without a group: its partitions and bounds, and the replay's raw reader."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Mapping
from typing import Any

from aiokafka.protocol.fetch import FetchRequest

from collectors.kafka.client import (
    EARLIEST,
    LATEST,
    LEADER_ERRORS,
    READ_COMMITTED,
    KafkaProtocolError,
)
from collectors.kafka.copying import CorruptBatch, Run, scan
from collectors.kafka.wire import KafkaWire
from mqtop.kernel.errors import ActionFailed, UsageError


async def topic_partitions(wire: KafkaWire, topic: str, broker: str) -> list[int]:
    """The partitions of a topic (metadata read again once when unknown); UsageError if none."""
    parts = wire.partitions.get(topic)
    if not parts:
        await wire.refresh_metadata()
        parts = wire.partitions.get(topic)
    if not parts:
        raise UsageError(f"topic {topic!r} does not exist on broker {broker!r}")
    return parts


async def topic_bounds(
    wire: KafkaWire, topic: str, broker: str, isolation: int = 0
) -> tuple[list[int], dict[int, int], dict[int, int]]:
    """Partitions, log start and end offsets of a topic."""
    parts = await topic_partitions(wire, topic, broker)
    tps = [(topic, p) for p in parts]
    (starts, sfail), (ends, efail) = await asyncio.gather(
        wire.list_offsets(tps, EARLIEST, isolation), wire.list_offsets(tps, LATEST, isolation)
    )
    if sfail or efail:
        await wire.refresh_metadata()
        (starts, sfail), (ends, efail) = await asyncio.gather(
            wire.list_offsets(tps, EARLIEST, isolation),
            wire.list_offsets(tps, LATEST, isolation),
        )
        if sfail or efail:
            bad = sorted(p for _, p in sfail | efail)
            raise ActionFailed(f"{topic}: offsets of partitions {bad} could not be read")
    return (
        parts,
        {p: starts[(topic, p)] for p in parts},
        {p: ends[(topic, p)] for p in parts},
    )


class TopicReader:
    """Reads one topic from given positions up to stop offsets, without a group.

    Raw Fetch requests (read_committed), one in flight per partition leader: while a response
    is scanned the next fetch is already on its way. Nothing is decoded here: the response's
    record batches become runs (see :func:`collectors.kafka.copying.scan`), control batches and
    aborted transactions left out from their headers like the Java consumer does; records are
    decoded (CRCs checked) where they are copied.
    """

    def __init__(
        self,
        wire: KafkaWire,
        topic: str,
        positions: Mapping[int, int],
        stops: Mapping[int, int],
        partition_bytes: int = 1024 * 1024,
    ) -> None:
        self.wire = wire
        self.topic = topic
        self.fetch_pos = dict(positions)  # next offset to ask for
        self.stops = dict(stops)
        self.part_bytes = dict.fromkeys(positions, partition_bytes)
        self.ready: list[Run] = []  # in order per partition
        self._inflight: dict[int, asyncio.Task[Any]] = {}
        self.deleted = 0  # records removed by retention before they could be read

    def _open(self) -> list[int]:
        return [p for p, pos in self.fetch_pos.items() if pos < self.stops[p]]

    def _launch(self) -> None:
        by_node: dict[int, list[tuple[int, int, int]]] = {}
        for p in self._open():
            leader = self.wire.leaders.get((self.topic, p))
            if leader is None:
                raise ActionFailed(f"{self.topic}[{p}] has no leader")
            if leader not in self._inflight:
                by_node.setdefault(leader, []).append((p, self.fetch_pos[p], self.part_bytes[p]))
        for node, parts in by_node.items():
            request = FetchRequest(200, 1, 32 * 1024 * 1024, READ_COMMITTED, [(self.topic, parts)])
            asked = {p: pos for p, pos, _ in parts}
            self._inflight[node] = asyncio.ensure_future(self._fetch(node, request, asked))

    async def _fetch(self, node: int, request: Any, asked: dict[int, int]) -> Any:
        return await self.wire.send(node, request), asked

    async def close(self) -> None:
        """Cancel fetches still in flight."""
        for task in self._inflight.values():
            task.cancel()
        for task in self._inflight.values():
            try:
                await task
            except BaseException:  # noqa: S110 - cancelled or failed: nothing to keep
                pass
        self._inflight.clear()

    async def read(self) -> list[Run]:
        """The next runs of records (in offset order per partition); [] only when finished."""
        while not self.ready:
            self._launch()
            if not self._inflight:
                return []
            done, _ = await asyncio.wait(
                self._inflight.values(), return_when=asyncio.FIRST_COMPLETED
            )
            for node in [n for n, t in self._inflight.items() if t in done]:
                task = self._inflight.pop(node)
                response, asked = task.result()
                pending = self._positions(response, asked)
                self._launch()  # the next fetch travels while this one is scanned
                for p, raw, aborted, start in pending:
                    try:
                        self.ready.extend(scan(p, raw, start, self.stops[p], aborted))
                    except CorruptBatch as exc:
                        raise ActionFailed(f"{self.topic}[{p}]: {exc}") from None
        runs, self.ready = self.ready, []
        return runs

    def _positions(
        self, response: Any, asked: dict[int, int]
    ) -> list[tuple[int, memoryview, Any, int]]:
        """Advance fetch positions from batch headers alone; return what to scan."""
        out = []
        current = [
            part
            for _topic, parts in response.topics
            for part in parts
            if asked.get(part[0]) is not None and self.fetch_pos.get(part[0]) == asked[part[0]]
        ]
        for part in current:  # errors first: nothing advances when one partition failed
            p, code = part[0], part[1]
            if code == 1:  # OFFSET_OUT_OF_RANGE: retention removed the records
                raise OutOfRange(p)
            if code in LEADER_ERRORS:
                raise StaleLeader(p)
            if code:
                raise ActionFailed(str(KafkaProtocolError(code, f"fetch {self.topic}[{p}]")))
        for part in current:
            p, raw = part[0], part[-1]
            aborted = part[-2] if len(part) <= 7 else part[5]
            start = asked[p]
            if not raw:
                continue
            buf = memoryview(raw)
            pos = 0
            nxt = start
            while pos + 61 <= len(buf):
                base, length = struct.unpack_from(">qi", buf, pos)
                end = pos + 12 + length
                if end > len(buf):
                    break
                (delta,) = struct.unpack_from(">i", buf, pos + 23)
                nxt = max(nxt, base + delta + 1)
                pos = end
            if pos == 0:  # the first batch is larger than we asked for
                if len(buf) >= 12:
                    (length,) = struct.unpack_from(">i", buf, 8)
                    self.part_bytes[p] = max(self.part_bytes[p], 12 + length)
                continue
            self.fetch_pos[p] = nxt
            out.append((p, buf[:pos], aborted, start))
        return out


class OutOfRange(Exception):
    def __init__(self, partition: int) -> None:
        self.partition = partition


class StaleLeader(Exception):
    def __init__(self, partition: int) -> None:
        self.partition = partition
