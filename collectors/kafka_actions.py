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
import hashlib
import random
import time
from collections.abc import Mapping, Sequence
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
from collectors.kafka import (
    EARLIEST,
    LATEST,
    TP,
    KafkaOptions,
    KafkaProtocolError,
    KafkaWire,
    client_kwargs,
    quiet_client_logs,
)
from mqtop.errors import ActionFailed, UsageError

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

REPLAY_HEADER = "x-mqtop-replay"
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
SUPPORTED_EXTRA = frozenset(
    {"keep_partition", "keep_timestamp", "from_offset", "from_time", "batch"}
)


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

    def peek_warning(self, queue: str) -> str | None:
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
        unknown = set(request.extra) - SUPPORTED_EXTRA
        if unknown:
            flags = ", ".join("--" + k.replace("_", "-") for k in sorted(unknown))
            raise UsageError(f"{flags}: not supported for Kafka")
        src, dst = request.source, request.destination
        extra = request.extra
        keep_partition = bool(extra.get("keep_partition"))
        keep_timestamp = bool(extra.get("keep_timestamp"))
        batch_size = int(extra.get("batch") or self.options.replay_batch)
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
            group=group, src=src, parts=parts, starts=starts, stops=stops, extra=extra, notes=notes
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
        extra: Mapping[str, Any],
        notes: list[str],
    ) -> tuple[dict[int, int], int]:
        """Where each partition starts, and how many records may be copied a second time."""
        wire = await self._get_wire()
        begin: dict[int, int] = {}
        duplicates = 0
        if extra.get("from_offset") is not None:
            offset = int(extra["from_offset"])
            if offset < 0:
                raise UsageError("--from-offset must not be negative")
            for p in parts:
                begin[p] = max(starts[p], min(offset, stops[p]))
            notes.append(f"started at offset {offset} (--from-offset), ignoring saved progress")
            return begin, 0
        if extra.get("from_time") is not None:
            ms = int(float(extra["from_time"]) * 1000)
            found, _ = await wire.list_offsets([(src, p) for p in parts], ms, READ_COMMITTED)
            for p in parts:
                at = found.get((src, p))
                begin[p] = stops[p] if at is None else max(starts[p], min(at, stops[p]))
            notes.append(f"started at {_iso(ms)} (--from-time), ignoring saved progress")
            return begin, 0
        committed = {
            tp[1]: value for tp, value in (await wire.offset_fetch(group)).items() if tp[0] == src
        }
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


class _Copier:
    """The replay loop: read a batch, mark it in flight, produce, confirm, advance."""

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
        self.pos = dict(begin)
        self.stops = stops
        self.dst_parts = dst_parts
        self.keep_partition = keep_partition
        self.keep_timestamp = keep_timestamp
        self.batch_size = batch_size
        self.total = total
        self.progress = progress
        self.moved = 0
        self.skipped = 0
        self.failed = 0
        self.errors: list[str] = []
        self._key_cache: dict[bytes, int] = {}
        self._sticky = random.choice(dst_parts)

    def _partition_for(self, record: Any) -> int:
        if self.keep_partition:
            return int(record.partition)
        if len(self.dst_parts) == 1:
            return self.dst_parts[0]
        key = record.key
        if key is None:
            return self._sticky
        cached = self._key_cache.get(key)
        if cached is None:
            from aiokafka.partitioner import murmur2

            cached = self.dst_parts[(murmur2(key) & 0x7FFFFFFF) % len(self.dst_parts)]
            if len(self._key_cache) < 100_000:
                self._key_cache[key] = cached
        return cached

    async def run(self) -> None:
        from aiokafka import AIOKafkaProducer, TopicPartition

        src = self.request.source
        consumer = self.actions._consumer()
        producer: AIOKafkaProducer | None = None
        await consumer.start()
        try:
            if not self.request.dry_run:
                producer = AIOKafkaProducer(
                    enable_idempotence=True,
                    acks="all",
                    linger_ms=0,
                    max_batch_size=BATCH_BYTES,
                    max_request_size=4 * 1024 * 1024,
                    **client_kwargs(self.actions.options, self.actions._timeout()),
                )
                await producer.start()
            tps = {p: TopicPartition(src, p) for p in self.parts}
            consumer.assign(list(tps.values()))
            for p, tp in tps.items():
                consumer.seek(tp, self.pos[p])
            await self._loop(consumer, producer, tps)
        finally:
            if producer is not None:
                try:
                    await producer.stop()
                except Exception as exc:
                    self.errors.append(f"closing the producer: {exc}")
            await stop_consumer(consumer)

    async def _loop(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer | None,
        tps: dict[int, Any],
    ) -> None:
        remaining = {p for p in self.parts if self.pos[p] < self.stops[p]}
        limit = self.request.limit
        considered = 0  # records moved or would-be moved, for --limit
        pending_done: set[int] = set()
        quiet_since = time.monotonic()
        while remaining and (limit is None or considered < limit):
            data = await consumer.getmany(
                *(tps[p] for p in sorted(remaining)), timeout_ms=500, max_records=self.batch_size
            )
            if not data:
                for p in list(remaining):
                    if await consumer.position(tps[p]) >= self.stops[p]:
                        self.pos[p] = self.stops[p]
                        remaining.discard(p)
                        pending_done.add(p)
                if time.monotonic() - quiet_since > STALL_SECONDS and remaining:
                    left = sum(self.stops[p] - self.pos[p] for p in remaining)
                    self.failed += left
                    self.errors.append(
                        f"no records could be read from {self.request.source} for "
                        f"{STALL_SECONDS:.0f}s; stopped with {left} record(s) left"
                    )
                    break
                continue
            quiet_since = time.monotonic()
            to_send: list[Any] = []
            new_pos: dict[int, int] = {}
            sends_in: set[int] = set()
            for tp in sorted(data, key=lambda t: t.partition):
                p = tp.partition
                if p not in remaining:
                    continue
                for record in data[tp]:
                    if record.offset >= self.stops[p]:
                        new_pos[p] = self.stops[p]
                        break
                    if limit is not None and considered >= limit:
                        break
                    new_pos[p] = record.offset + 1
                    flt = self.request.filter
                    if flt is not None and not flt.matches(
                        record.value or b"", header_map(list(record.headers or ()))
                    ):
                        self.skipped += 1
                        continue
                    considered += 1
                    to_send.append(record)
                    sends_in.add(p)
            if not new_pos:
                continue
            for p, offset in new_pos.items():
                if offset >= self.stops[p]:
                    remaining.discard(p)
                    consumer.pause(tps[p])
            if producer is None:  # dry run: count only
                self.moved += len(to_send)
                self.pos.update(new_pos)
                self._report()
                continue
            marks: dict[TP, tuple[int, str]] = {}
            for p in pending_done - set(new_pos):
                marks[(self.request.source, p)] = (self.pos[p], DONE)
            for p, offset in new_pos.items():
                if p in sends_in:
                    marks[(self.request.source, p)] = (self.pos[p], f"{INFLIGHT}{offset}")
                else:  # nothing to produce from this partition: advance now
                    marks[(self.request.source, p)] = (offset, DONE)
            await self.wire.offset_commit(self.group, marks)
            ok, bad, error = await self._produce(producer, to_send)
            self.moved += ok
            if bad:
                self.failed += bad
                self.errors.append(error or "produce failed")
                self._report()
                return  # progress stays before this batch: a rerun retries it
            self.pos.update(new_pos)
            pending_done = set(new_pos)
            self._report()
        if producer is not None and pending_done:
            await self.wire.offset_commit(
                self.group,
                {(self.request.source, p): (self.pos[p], DONE) for p in pending_done},
            )

    async def _produce(
        self, producer: AIOKafkaProducer, records: list[Any]
    ) -> tuple[int, int, str]:
        """Send records in batches per destination partition; wait for every ack."""
        if not records:
            return 0, 0, ""
        dst = self.request.destination
        src = self.request.source
        keep_ts = self.keep_timestamp
        self._sticky = random.choice(self.dst_parts)
        builders: dict[int, tuple[Any, list[int]]] = {}
        sent: list[tuple[Any, int]] = []  # (future, records in it)
        for record in records:
            part = self._partition_for(record)
            headers = [
                *(record.headers or ()),
                (REPLAY_HEADER, f"{src}/{record.partition}/{record.offset}".encode()),
            ]
            entry = builders.get(part)
            if entry is None:
                entry = builders[part] = (producer.create_batch(), [0])
            builder, count = entry
            stamp = record.timestamp if keep_ts else None
            if builder.append(key=record.key, value=record.value, timestamp=stamp, headers=headers):
                count[0] += 1
                continue
            builder.close()
            sent.append((await producer.send_batch(builder, dst, partition=part), count[0]))
            builder = producer.create_batch()
            builder.append(key=record.key, value=record.value, timestamp=stamp, headers=headers)
            builders[part] = (builder, [1])
        for part, (builder, count) in builders.items():
            if count[0]:
                builder.close()
                sent.append((await producer.send_batch(builder, dst, partition=part), count[0]))
        results = await asyncio.gather(*(f for f, _ in sent), return_exceptions=True)
        ok = bad = 0
        error = ""
        for result, (_, n) in zip(results, sent, strict=True):
            if isinstance(result, BaseException):
                bad += n
                error = error or f"produce to {dst} failed: {type(result).__name__}: {result}"
            else:
                ok += n
        return ok, bad, error

    def _report(self) -> None:
        self.progress(
            MoveProgress(
                done=self.moved, total=self.total, failed=self.failed, skipped=self.skipped
            )
        )


__all__ = ["REPLAY_HEADER", "KafkaActions", "death_of", "header_map", "replay_group"]
