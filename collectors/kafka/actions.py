"""Kafka dead-letter topic actions: peek, replay/move that survive crashes, purge.

Replay (and move) copies records from a source topic to a destination topic with an idempotent
producer (acks=all), preserving key, value, headers (plus an ``x-mqtop-replay`` header naming
the source record) and, on request, partition and timestamp. Kafka cannot delete single
records, so "taking" a record from the source means advancing a mqtop-owned consumer group on
the source; it is advanced only after the produced records are acknowledged:

    per batch:  commit {partition: (position, "mqtop-replay inflight <end of batch>")}
                produce the batch, wait for every acknowledgement
                (the next commit moves the position to the end of the batch)

A crash at any point leaves every record either before the committed position (copied and
acknowledged) or after it (copied again by the rerun). The rerun reads the "inflight" marker
and reports how many records may have been copied twice (at most one batch).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import hashlib
import math
import os
import random
import struct
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from collectors.base import (
    Death,
    MessageFilter,
    MoveProgress,
    MoveRequest,
    MoveResult,
    PeekedMessage,
    ProgressCallback,
    original_of_dlq,
)
from collectors.kafka.collector import (
    EARLIEST,
    LATEST,
    LEADER_ERRORS,
    TP,
    KafkaMoveOptions,
    KafkaOptions,
    KafkaProtocolError,
    KafkaWire,
    client_kwargs,
    quiet_client_logs,
)
from collectors.kafka.copying import (
    REPLAY_HEADER,
    CopyPlan,
    CopyWorkers,
    CorruptBatch,
    Decoder,
    OutBatch,
    Run,
    WorkerGone,
    build,
    key_partition,
    murmur2,
    murmur2_many,
    scan,
    transform,
    usable_cpus,
)
from collectors.kit.options import options_as
from mqtop.kernel.errors import ActionFailed, UsageError

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

ORIGINAL_TOPIC_HEADERS = ("kafka_dlt-original-topic", "x-original-topic")
REASON_HEADERS = (
    "kafka_dlt-exception-message",
    "x-exception-message",
    "kafka_dlt-exception-fqcn",
    "x-exception-fqcn",
)
COUNT_HEADERS = ("retry_topic-attempts", "x-retry-count", "x-delivery-count")
INFLIGHT = "mqtop-replay inflight "
DONE = "mqtop-replay done"
READ_COMMITTED = 1
BATCH_BYTES = 512 * 1024
STALL_SECONDS = 30.0


def replay_group(source: str, destination: str, message_filter: MessageFilter | None) -> str:
    """The consumer group keeping the progress of one replay job (source, destination, filter)."""
    name = f"mqtop-replay.{source}>{destination}"
    if message_filter is not None:
        digest = hashlib.sha256(str(message_filter).encode()).hexdigest()[:8]
        name += f"#{digest}"
    return name


def _text(value: bytes | None) -> str | None:
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return None


def header_map(headers: Sequence[tuple[str, bytes | None]]) -> dict[str, Any]:
    """Headers as a mapping; a repeated name keeps all its values in a list."""
    out: dict[str, Any] = {}
    for name, value in headers:
        if name in out:
            prior = out[name]
            out[name] = [*prior, value] if isinstance(prior, list) else [prior, value]
        else:
            out[name] = value
    return out


def _first(headers: Mapping[str, Any], names: Sequence[str]) -> bytes | None:
    for name in names:
        value = headers.get(name)
        if isinstance(value, list):
            value = value[-1]
        if isinstance(value, bytes):
            return value
    return None


def _count(raw: bytes | None) -> int | None:
    if raw is None:
        return None
    text = _text(raw)
    if text is not None and text.strip().isdigit():
        return int(text.strip())
    if len(raw) in (4, 8):
        return int.from_bytes(raw, "big", signed=True)
    return None


def death_of(headers: Mapping[str, Any]) -> Death | None:
    """Dead-letter details from Spring Kafka (``kafka_dlt-*``) or ``x-*`` headers."""
    original = _first(headers, ORIGINAL_TOPIC_HEADERS)
    reason = _first(headers, REASON_HEADERS)
    count = _count(_first(headers, COUNT_HEADERS))
    if original is None and reason is None and count is None:
        return None
    return Death(reason=_text(reason), count=count, original_queue=_text(original))


async def stop_consumer(consumer: Any) -> None:
    """Stop an aiokafka consumer. aiokafka 0.14 can raise CancelledError from ``stop()`` (its
    cancelled background task); that one is swallowed, a cancellation of this task is not."""
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat().replace("+00:00", "Z")


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

    async def _partitions(self, topic: str) -> list[int]:
        wire = await self._get_wire()
        parts = wire.partitions.get(topic)
        if not parts:
            await wire.refresh_metadata()
            parts = wire.partitions.get(topic)
        if not parts:
            raise UsageError(f"topic {topic!r} does not exist on broker {self.options.name!r}")
        return parts

    async def _bounds(
        self, topic: str, isolation: int = 0
    ) -> tuple[list[int], dict[int, int], dict[int, int]]:
        """Partitions, log start and end offsets of a topic."""
        parts = await self._partitions(topic)
        wire = await self._get_wire()
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

    def _consumer(self, max_partition_bytes: int = 4 * 1024 * 1024) -> AIOKafkaConsumer:
        from aiokafka import AIOKafkaConsumer

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
        from aiokafka import TopicPartition

        parts, starts, ends = await self._bounds(queue, READ_COMMITTED)
        want = {p: min(count, ends[p] - starts[p]) for p in parts if ends[p] > starts[p]}
        if not want:
            return []
        consumer = self._consumer(256 * 1024)
        records: list[Any] = []
        await consumer.start()
        try:
            tps = {p: TopicPartition(queue, p) for p in want}
            consumer.assign(list(tps.values()))
            for p, tp in tps.items():
                consumer.seek(tp, starts[p])
            got = dict.fromkeys(want, 0)
            deadline = time.monotonic() + self._timeout()
            while any(got[p] < want[p] for p in want) and time.monotonic() < deadline:
                pending = [tps[p] for p in want if got[p] < want[p]]
                batch = await consumer.getmany(*pending, timeout_ms=500)
                for tp, recs in batch.items():
                    for record in recs:
                        if (
                            got[tp.partition] < want[tp.partition]
                            and record.offset < ends[tp.partition]
                        ):
                            records.append(record)
                            got[tp.partition] += 1
                    if got[tp.partition] >= want[tp.partition]:
                        consumer.pause(tp)
                if not batch:
                    for p, wanted in list(want.items()):
                        if got[p] < wanted and await consumer.position(tps[p]) >= ends[p]:
                            want[p] = got[p]  # control records only: nothing more to show
        finally:
            await stop_consumer(consumer)
        records.sort(key=lambda r: (r.timestamp, r.partition, r.offset))
        return [self._peeked(r) for r in records[:count]]

    @staticmethod
    def _peeked(record: Any) -> PeekedMessage:
        headers = header_map(list(record.headers or ()))
        properties: dict[str, Any] = {
            "key": record.key,
            "partition": record.partition,
            "offset": record.offset,
            "timestamp": _iso(record.timestamp),
            "timestamp_type": "LogAppendTime" if record.timestamp_type == 1 else "CreateTime",
        }
        if record.value is None:
            properties["tombstone"] = True
        return PeekedMessage(
            id=f"{record.partition}:{record.offset}",
            body=record.value or b"",
            headers=headers,
            properties=properties,
            death=death_of(headers),
            timestamp=record.timestamp / 1000,
            extra={"partition": record.partition, "offset": record.offset, "key": record.key},
        )

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
        from aiokafka.protocol.admin import DeleteRecordsRequest

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
        opts = options_as(request.options, KafkaMoveOptions, "kafka")
        src, dst = request.source, request.destination
        keep_partition = opts.keep_partition
        keep_timestamp = opts.keep_timestamp
        batch_size = opts.batch or self.options.replay_batch
        wire = await self._get_wire()
        parts, starts, stops = await self._bounds(src, READ_COMMITTED)
        dst_parts = await self._partitions(dst)
        if keep_partition:
            missing = sorted(set(parts) - set(dst_parts))
            if missing:
                raise UsageError(
                    f"--keep-partition: {dst!r} has no partition(s) {missing} "
                    f"({len(dst_parts)} partitions, {src!r} has {len(parts)})"
                )
        group = replay_group(src, dst, request.filter)
        notes = [f"progress is kept in consumer group {group!r}; a rerun resumes from it"]
        begin, duplicates = await self._start_positions(
            group=group, src=src, parts=parts, starts=starts, stops=stops, opts=opts, notes=notes
        )
        total = sum(stops[p] - begin[p] for p in parts)
        if request.limit is not None:
            total = min(total, request.limit)
        if total <= 0 or request.limit == 0:
            return MoveResult(
                source=src,
                destination=dst,
                moved=0,
                failed=0,
                skipped=0,
                dry_run=request.dry_run,
                duplicates_possible=duplicates,
                notes=(*notes, "nothing to replay up to the end offsets seen at start"),
            )
        copier = _Copier(
            actions=self,
            wire=wire,
            request=request,
            group=group,
            parts=[p for p in parts if begin[p] < stops[p]],
            begin=begin,
            stops=stops,
            dst_parts=dst_parts,
            keep_partition=keep_partition,
            keep_timestamp=keep_timestamp,
            batch_size=batch_size,
            total=total,
            progress=progress,
        )
        await copier.run()
        notes.extend(copier.notes)
        if copier.deleted:
            notes.append(
                f"{copier.deleted} record(s) were deleted by retention while the replay ran"
            )
        if request.dry_run:
            notes = [n for n in notes if not n.startswith("progress is kept")]
        return MoveResult(
            source=src,
            destination=dst,
            moved=copier.moved,
            failed=copier.failed,
            skipped=copier.skipped,
            dry_run=request.dry_run,
            duplicates_possible=duplicates,
            errors=tuple(copier.errors),
            notes=tuple(notes),
        )

    async def _start_positions(
        self,
        *,
        group: str,
        src: str,
        parts: list[int],
        starts: dict[int, int],
        stops: dict[int, int],
        opts: KafkaMoveOptions,
        notes: list[str],
    ) -> tuple[dict[int, int], int]:
        """Where each partition starts, and how many records may be copied a second time."""
        wire = await self._get_wire()
        begin: dict[int, int] = {}
        duplicates = 0
        if opts.from_offset is not None:
            offset = opts.from_offset
            for p in parts:
                begin[p] = max(starts[p], min(offset, stops[p]))
            notes.append(f"started at offset {offset} (--from-offset), ignoring saved progress")
            return begin, 0
        if opts.from_time is not None:
            # the first record stamped at or after the time (sub-millisecond parts round up)
            ms = math.ceil(round(opts.from_time.timestamp() * 1000, 3))
            found, _ = await wire.list_offsets([(src, p) for p in parts], ms, READ_COMMITTED)
            for p in parts:
                at = found.get((src, p))
                begin[p] = stops[p] if at is None else max(starts[p], min(at, stops[p]))
            notes.append(f"started at {_iso(ms)} (--from-time), ignoring saved progress")
            return begin, 0
        # the source partitions are named: cheaper than all of the group's offsets, and some
        # Kafka-compatible brokers (tansu) drop the connection on an OffsetFetch without them
        fetched = await wire.offset_fetch(group, {src: parts}, by_partition=True)
        committed = {tp[1]: value for tp, value in fetched.items() if tp[0] == src}
        lost = 0
        resumed = 0
        for p in parts:
            if p not in committed:
                begin[p] = starts[p]
                continue
            offset, metadata = committed[p]
            if offset < starts[p]:
                lost += starts[p] - offset
            begin[p] = max(starts[p], min(offset, stops[p]))
            resumed += begin[p] - starts[p]
            if metadata.startswith(INFLIGHT):
                try:
                    upto = int(metadata[len(INFLIGHT) :])
                except ValueError:
                    upto = stops[p]
                duplicates += max(0, min(upto, stops[p]) - begin[p])
        if committed:
            notes.append(f"resumed from saved progress ({resumed} record(s) already done)")
        if duplicates:
            notes.append(
                f"an earlier run stopped mid-batch: up to {duplicates} record(s) may be "
                "delivered twice"
            )
        if lost:
            notes.append(f"{lost} record(s) were deleted by retention before they were replayed")
        return begin, duplicates


# ---------------------------------------------------------------- reading


class _TopicReader:
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
        from aiokafka.protocol.fetch import FetchRequest

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
                raise _OutOfRange(p)
            if code in LEADER_ERRORS:
                raise _StaleLeader(p)
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


class _OutOfRange(Exception):
    def __init__(self, partition: int) -> None:
        self.partition = partition


class _StaleLeader(Exception):
    def __init__(self, partition: int) -> None:
        self.partition = partition


# ---------------------------------------------------------------- copying

WORKER_MIN_RECORDS = 20_000  # smaller replays are copied in the main process
WORKER_MIN_STEP = 250  # so are replays in small steps: a job must outweigh its round trip
# With CPUs to spare, workers build the next steps while the main process does the I/O. On
# 2 CPUs (the main process and a local broker) they only pay when the CPUs are busy anyway:
# measured, 10% slower on an idle machine, 15-30% faster when other processes keep it busy
# (more processes, more of the CPU time).
WORKER_MIN_CPUS = 4
BUSY_WORKERS = 3
MAX_WORKERS = 4


def busy(cpus: int) -> bool:
    """Whether the CPUs are already busy (1-minute load average at least their number)."""
    try:
        return os.getloadavg()[0] >= cpus
    except OSError:
        return False


@dataclass(slots=True)
class _Step:
    """Half a replay batch: where it moves the source positions, and its producer batches."""

    new_pos: dict[int, int]
    count: int
    items: list[tuple[int, memoryview, int, int]] = field(default_factory=list)
    built: asyncio.Future[Any] | None = None  # [(destination index, OutBatch, records)]
    outputs: list[tuple[int, Any, int]] = field(default_factory=list)
    futures: list[Any] = field(default_factory=list)
    sent: list[tuple[int, Any, int]] = field(default_factory=list)
    now: int = 0
    sticky: int = 0


class _Copier:
    """The replay loop: read a step, mark it in flight, produce, confirm, advance.

    A step is half of ``--batch``; at most two steps are unacknowledged at any time, so what a
    crash can duplicate stays within one batch. Each commit stores the acknowledged position
    and the end of the steps in flight ("inflight <offset>"); a step is produced only after
    that commit is stored.

    Steps are cut from runs of whole record batches by their headers alone and copied by
    :func:`collectors.kafka.copying.transform`. On a host with CPUs to spare, a large replay
    builds its next steps in worker processes (:class:`collectors.kafka.copying.CopyWorkers`)
    while this one is produced and committed; prepared steps wait in order, and nothing of a
    step is sent before its marker is stored. A filter (or a dry run) looks at every record
    here: those steps are decoded and built in this process.
    """

    def __init__(
        self,
        *,
        actions: KafkaActions,
        wire: KafkaWire,
        request: MoveRequest,
        group: str,
        parts: list[int],
        begin: dict[int, int],
        stops: dict[int, int],
        dst_parts: list[int],
        keep_partition: bool,
        keep_timestamp: bool,
        batch_size: int,
        total: int,
        progress: ProgressCallback,
    ) -> None:
        self.actions = actions
        self.wire = wire
        self.request = request
        self.group = group
        self.parts = parts
        self.pos = {p: begin[p] for p in parts}
        self.stops = stops
        self.dst_parts = dst_parts
        self.total = total
        self.progress = progress
        self.moved = 0
        self.skipped = 0
        self.failed = 0
        self.errors: list[str] = []
        self.deleted = 0
        self.step = max(1, batch_size // 2)
        self.considered = 0  # records moved or to be moved, for --limit
        self.runs: deque[Run] = deque()  # read, not yet taken into a step
        self.reader: _TopicReader
        self.notes: list[str] = []
        self.plan = CopyPlan(
            source=request.source,
            partitions=len(dst_parts),
            keep=tuple((p, dst_parts.index(p)) for p in parts) if keep_partition else None,
            keep_timestamp=keep_timestamp,
            batch_bytes=BATCH_BYTES,
        )
        self.workers: CopyWorkers | None = None
        self.decoder = Decoder()  # for the steps copied in this process
        self.by_record = request.filter is not None or request.dry_run

    async def _producer(self) -> AIOKafkaProducer:
        """A started producer with acks=all: idempotent, unless the broker refuses that."""
        from aiokafka import AIOKafkaProducer
        from aiokafka.errors import BrokerResponseError

        quiet_client_logs()

        def make(idempotent: bool) -> AIOKafkaProducer:
            return AIOKafkaProducer(
                enable_idempotence=idempotent,
                acks="all",
                linger_ms=0,
                max_batch_size=BATCH_BYTES,
                max_request_size=4 * 1024 * 1024,
                **client_kwargs(self.actions.options, self.actions._timeout()),
            )

        producer = make(True)
        try:
            await producer.start()
            return producer
        except BrokerResponseError as exc:
            # InitProducerId refused (old brokers; Kafka-compatible brokers such as tansu,
            # which only answer its later versions): acknowledged sends still protect every
            # record, a retried send may be duplicated
            await producer.stop()
            refused = f"{type(exc).__name__}"
        producer = make(False)
        await producer.start()
        self.notes.append(
            f"the broker refused an idempotent producer ({refused}): records were sent with "
            "acks=all without idempotence, so a send retried after a network error may be "
            "duplicated"
        )
        return producer

    def _worker_count(self) -> int:
        """Worker processes for this run: none for small, filtered or dry runs."""
        if (
            self.by_record
            or self.total < WORKER_MIN_RECORDS
            or self.step < WORKER_MIN_STEP
            or not CopyWorkers.available()
        ):
            return 0
        cpus = usable_cpus()
        if cpus >= WORKER_MIN_CPUS:
            return min(MAX_WORKERS, cpus - 1)
        return BUSY_WORKERS if cpus >= 2 and busy(cpus) else 0

    async def run(self) -> None:
        producer: AIOKafkaProducer | None = None
        if not self.request.dry_run:
            producer = await self._producer()
        collecting = gc.isenabled()
        gc.disable()  # millions of short-lived acyclic objects: skip cyclic GC passes
        try:
            count = self._worker_count()
            if count and producer is not None:
                workers = CopyWorkers(count, self.plan)
                try:
                    workers.start()
                except OSError:  # no fork here (limits): copy in this process
                    await workers.close()
                else:
                    self.workers = workers
            await self._loop(producer)
        finally:
            if self.workers is not None:
                await self.workers.close()
            if collecting:
                gc.enable()
            if producer is not None:
                try:
                    await producer.stop()
                except Exception as exc:
                    self.errors.append(f"closing the producer: {exc}")

    async def _read(self, reader: _TopicReader) -> tuple[_TopicReader, list[Run]]:
        """Next runs; recovers from moved leaders and records deleted under the reader."""
        for _ in range(5):
            try:
                return reader, await reader.read()
            except _StaleLeader:
                await reader.close()
                await self.wire.refresh_metadata()
            except _OutOfRange as exc:
                await reader.close()
                found, _ = await self.wire.list_offsets(
                    [(self.request.source, exc.partition)], EARLIEST, READ_COMMITTED
                )
                start = found.get((self.request.source, exc.partition))
                if start is None:
                    raise ActionFailed(
                        f"{self.request.source}[{exc.partition}]: offsets unreadable"
                    ) from None
                reader.deleted += max(0, start - reader.fetch_pos[exc.partition])
                reader.fetch_pos[exc.partition] = max(reader.fetch_pos[exc.partition], start)
            fresh = _TopicReader(self.wire, self.request.source, reader.fetch_pos, reader.stops)
            fresh.ready, fresh.deleted = reader.ready, reader.deleted
            reader = fresh
        raise ActionFailed(f"{self.request.source}: could not read (leaders keep moving)")

    async def _take(self, room: int) -> list[Run]:
        """Runs holding up to ``room`` records, partition by partition, in offset order."""
        take: list[Run] = []
        while room > 0:
            if not self.runs:
                self.reader, runs = await self._read(self.reader)
                if not runs:
                    break
                self.runs.extend(runs)
            run = self.runs[0]
            try:
                count = run.counted()
            except CorruptBatch as exc:
                raise ActionFailed(f"{self.request.source}[{run.partition}]: {exc}") from None
            if count <= room:
                take.append(self.runs.popleft())
                room -= count
            else:
                self.runs[0] = run.split(room)
                take.append(run)
                room = 0
        return take

    async def _prepare(self) -> _Step | None:
        """Read the next step and start building its producer batches (unless dry run)."""
        limit = self.request.limit
        room = self.step
        if limit is not None:
            room = min(room, limit - self.considered)
        if room <= 0:
            return None
        if self.by_record:
            return await self._prepare_records()
        take = await self._take(room)
        if not take:
            return None
        step = _Step(
            new_pos={run.partition: run.hi for run in take},
            count=sum(run.count or 0 for run in take),
            items=[(run.partition, run.raw, run.lo, run.hi) for run in take],
            now=int(time.time() * 1000),
            sticky=random.randrange(self.plan.partitions),
        )
        self.considered += step.count
        if self.workers is not None and self.workers.workers:
            step.built = self.workers.submit(step.items, step.now, step.sticky)
        return step

    async def _prepare_records(self) -> _Step | None:
        """A step whose records are each looked at here (filter, dry run)."""
        take = await self._take(self.step)
        if not take:
            return None
        limit = self.request.limit
        flt = self.request.filter
        new_pos: dict[int, int] = {}
        sends: list[tuple[int, list[Any]]] = []
        count = 0
        for run in take:
            try:
                records = self.decoder(run.partition, run.raw, run.lo, run.hi)
            except CorruptBatch as exc:
                raise ActionFailed(f"{self.request.source}[{run.partition}]: {exc}") from None
            p = run.partition
            chosen: list[Any] = []
            for record in records:
                if limit is not None and self.considered >= limit:
                    break
                new_pos[p] = record.offset + 1
                if flt is not None and not flt.matches(
                    record.value or b"", header_map(record.headers)
                ):
                    self.skipped += 1
                    continue
                self.considered += 1
                chosen.append(record)
            else:
                new_pos[p] = run.hi  # past trailing gaps too
            if chosen:
                sends.append((p, chosen))
                count += len(chosen)
        if not new_pos:
            return None
        step = _Step(new_pos=new_pos, count=count)
        if not self.request.dry_run and sends:
            now = int(time.time() * 1000)
            sticky = random.randrange(self.plan.partitions)
            step.outputs = self._wrap(build(sends, self.plan, now, sticky))
        return step

    def _wrap(self, built: list[tuple[int, Any, int]]) -> list[tuple[int, Any, int]]:
        return [(d, OutBatch(n, builder=b), n) for d, b, n in built]

    async def _outputs(self, step: _Step) -> list[tuple[int, Any, int]]:
        """The producer batches of a step [(destination partition, batch, records)]."""
        if step.outputs or not step.items:
            built = step.outputs
        else:
            built = []
            if step.built is not None:
                try:
                    built = await step.built
                except WorkerGone:
                    step.built = None  # do it here instead
                except CorruptBatch as exc:
                    raise ActionFailed(f"{self.request.source}: {exc}") from None
            if step.built is None:
                try:
                    built = self._wrap(
                        transform(step.items, self.plan, step.now, step.sticky, self.decoder)
                    )
                except CorruptBatch as exc:
                    raise ActionFailed(f"{self.request.source}: {exc}") from None
            step.items = []  # the fetched bytes can go
        return [(self.dst_parts[d], batch, n) for d, batch, n in built]

    async def _loop(self, producer: AIOKafkaProducer | None) -> None:
        src = self.request.source
        self.reader = _TopicReader(self.wire, src, self.pos, {p: self.stops[p] for p in self.parts})
        try:
            if producer is None:  # dry run: read and count only, nothing is written
                while (step := await self._prepare()) is not None:
                    self.moved += step.count
                    self.pos.update(step.new_pos)
                    self._report()
                return
            # Two steps (half a batch each) may be in flight: while one is acknowledged and
            # the next commit travels, the steps after are read and built (in the workers,
            # one step ahead per worker).
            depth = 1 + (self.workers.count if self.workers is not None else 0)
            ahead: deque[_Step] = deque()
            exhausted = False

            async def fill() -> None:
                nonlocal exhausted
                while not exhausted and len(ahead) < depth:
                    following = await self._prepare()
                    if following is None:
                        exhausted = True
                    else:
                        ahead.append(following)

            flight: list[_Step] = []
            marked: set[int] = set()
            await fill()
            while ahead:
                step = ahead.popleft()
                while len(flight) >= 2:
                    if not await self._settle(flight.pop(0)):
                        await self._abandon(flight)
                        return
                marks: dict[TP, tuple[int, str]] = {}
                active: dict[int, int] = {}
                for pending in (*flight, step):
                    for p, offset in pending.new_pos.items():
                        active[p] = max(active.get(p, 0), offset)
                for p in marked - set(active):
                    marks[(src, p)] = (self.pos[p], DONE)
                for p, upto in active.items():
                    marks[(src, p)] = (self.pos[p], f"{INFLIGHT}{upto}")
                marked = set(active)
                commit = asyncio.ensure_future(self.wire.offset_commit(self.group, marks))
                await asyncio.sleep(0)  # the commit goes out; the next steps are read meanwhile
                try:
                    await fill()
                    outputs = await self._outputs(step)
                finally:
                    await commit  # nothing of this step is sent before its marker is stored
                step.futures = [
                    await producer.send_batch(b, self.request.destination, partition=d)
                    for d, b, _ in outputs
                ]
                step.sent = outputs
                flight.append(step)
                for _ in range(3):  # let the producer's sender put the batches on the wire
                    await asyncio.sleep(0)
            while flight:
                if not await self._settle(flight.pop(0)):
                    await self._abandon(flight)
                    return
            if marked:
                await self.wire.offset_commit(
                    self.group, {(src, p): (self.pos[p], DONE) for p in marked}
                )
        finally:
            await self.reader.close()
            self.deleted += self.reader.deleted

    async def _settle(self, step: _Step) -> bool:
        """Wait for the acknowledgements of one step; False when a produce failed."""
        results = await asyncio.gather(*step.futures, return_exceptions=True)
        bad = 0
        for result, (_, _, n) in zip(results, step.sent, strict=True):
            if isinstance(result, BaseException):
                bad += n
                if not any(e.startswith("produce to") for e in self.errors):
                    self.errors.append(
                        f"produce to {self.request.destination} failed: "
                        f"{type(result).__name__}: {result}"
                    )
            else:
                self.moved += n
        if bad:
            self.failed += bad
            self._report()
            return False  # progress stays before this step: a rerun retries it
        self.pos.update(step.new_pos)
        self._report()
        return True

    async def _abandon(self, flight: list[_Step]) -> None:
        """After a failed step: count what the later steps delivered; progress stays put."""
        for step in flight:
            results = await asyncio.gather(*step.futures, return_exceptions=True)
            for result, (_, _, n) in zip(results, step.sent, strict=True):
                if isinstance(result, BaseException):
                    self.failed += n
                else:
                    self.moved += n
        flight.clear()
        self._report()

    def _report(self) -> None:
        self.progress(
            MoveProgress(
                done=self.moved, total=self.total, failed=self.failed, skipped=self.skipped
            )
        )


__all__ = [
    "REPLAY_HEADER",
    "KafkaActions",
    "death_of",
    "header_map",
    "key_partition",
    "murmur2",
    "murmur2_many",
    "replay_group",
]
