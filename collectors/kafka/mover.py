"""A Kafka replay / move: a lossless copy whose progress is a consumer group on the source.

Replay (and move) copies records from a source topic to a destination topic with an idempotent
producer (acks=all), preserving key, value, headers (plus an ``x-mqtop-replay`` header naming
the source record) and, on request, partition and timestamp. Kafka cannot delete single
records, so "taking" a record from the source means advancing a mqtop-owned consumer group on
the source (:mod:`collectors.kafka.progress`); it is advanced only after the produced records
are acknowledged:

    per batch:  commit {partition: (position, "mqtop-replay inflight <end of batch>")}
                produce the batch, wait for every acknowledgement
                (the next commit moves the position to the end of the batch)

A crash at any point leaves every record either before the committed position (copied and
acknowledged) or after it (copied again by the rerun). The rerun reads the "inflight" marker
and reports how many records may have been copied twice (at most one batch). The group is the
run's journal: no file is needed.
"""

from __future__ import annotations

import datetime as dt
import math

from collectors.base import MoveRequest, MoveResult, ProgressCallback
from collectors.kafka.client import READ_COMMITTED
from collectors.kafka.copier import Copier
from collectors.kafka.options import KafkaMoveOptions, KafkaOptions
from collectors.kafka.progress import INFLIGHT, replay_group
from collectors.kafka.reader import topic_bounds, topic_partitions
from collectors.kafka.wire import KafkaWire
from collectors.kit.options import options_as
from collectors.kit.tally import Tally
from mqtop.kernel.errors import UsageError


def iso(ms: int) -> str:
    """Epoch milliseconds as ISO 8601 UTC."""
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat().replace("+00:00", "Z")


class KafkaMover:
    """Runs replays and moves on one cluster (one client, shared with peek and purge)."""

    def __init__(self, wire: KafkaWire, options: KafkaOptions, timeout: float) -> None:
        self.wire = wire
        self.options = options
        self.timeout = timeout

    async def move(self, request: MoveRequest, progress: ProgressCallback) -> MoveResult:
        """Copy records losslessly, committing progress only after acknowledgements."""
        opts = options_as(request.options, KafkaMoveOptions, "kafka")
        src, dst = request.source, request.destination
        broker = self.options.name
        parts, starts, stops = await topic_bounds(self.wire, src, broker, READ_COMMITTED)
        dst_parts = await topic_partitions(self.wire, dst, broker)
        if opts.keep_partition:
            missing = sorted(set(parts) - set(dst_parts))
            if missing:
                raise UsageError(
                    f"--keep-partition: {dst!r} has no partition(s) {missing} "
                    f"({len(dst_parts)} partitions, {src!r} has {len(parts)})"
                )
        group = replay_group(src, dst, request.filter)
        notes = [f"progress is kept in consumer group {group!r}; a rerun resumes from it"]
        begin, duplicates = await self._start_positions(
            group=group, src=src, parts=parts, starts=starts, stops=stops, opts=opts
        )
        notes.extend(begin.notes)
        positions = begin.positions
        total = sum(stops[p] - positions[p] for p in parts)
        if request.limit is not None:
            total = min(total, request.limit)
        if total <= 0 or request.limit == 0:
            tally = Tally(total=0, duplicates=duplicates, notes=notes)
            tally.note("nothing to replay up to the end offsets seen at start")
            return tally.result(src, dst, request.dry_run)
        copier = Copier(
            options=self.options,
            timeout=self.timeout,
            wire=self.wire,
            request=request,
            group=group,
            parts=[p for p in parts if positions[p] < stops[p]],
            begin=positions,
            stops=stops,
            dst_parts=dst_parts,
            keep_partition=opts.keep_partition,
            keep_timestamp=opts.keep_timestamp,
            batch_size=opts.batch or self.options.replay_batch,
            total=total,
            progress=progress,
        )
        await copier.run()
        tally = copier.tally
        notes.extend(tally.notes)
        if copier.deleted:
            notes.append(
                f"{copier.deleted} record(s) were deleted by retention while the replay ran"
            )
        if request.dry_run:
            notes = [n for n in notes if not n.startswith("progress is kept")]
        tally.notes = notes
        tally.duplicates = duplicates
        return tally.result(src, dst, request.dry_run)

    async def _start_positions(
        self,
        *,
        group: str,
        src: str,
        parts: list[int],
        starts: dict[int, int],
        stops: dict[int, int],
        opts: KafkaMoveOptions,
    ) -> tuple[_Start, int]:
        """Where each partition starts, and how many records may be copied a second time."""
        if opts.from_offset is not None:
            offset = opts.from_offset
            begin = _Start({p: max(starts[p], min(offset, stops[p])) for p in parts})
            begin.notes.append(
                f"started at offset {offset} (--from-offset), ignoring saved progress"
            )
            return begin, 0
        if opts.from_time is not None:
            # the first record stamped at or after the time (sub-millisecond parts round up)
            ms = math.ceil(round(opts.from_time.timestamp() * 1000, 3))
            found, _ = await self.wire.list_offsets([(src, p) for p in parts], ms, READ_COMMITTED)
            begin = _Start({})
            for p in parts:
                at = found.get((src, p))
                begin.positions[p] = stops[p] if at is None else max(starts[p], min(at, stops[p]))
            begin.notes.append(f"started at {iso(ms)} (--from-time), ignoring saved progress")
            return begin, 0
        return await self._saved_positions(
            group=group, src=src, parts=parts, starts=starts, stops=stops
        )

    async def _saved_positions(
        self,
        *,
        group: str,
        src: str,
        parts: list[int],
        starts: dict[int, int],
        stops: dict[int, int],
    ) -> tuple[_Start, int]:
        """Resume from the job's group: its positions, and the records an earlier run may
        have copied without committing (its "inflight" marker)."""
        # the source partitions are named: cheaper than all of the group's offsets, and some
        # Kafka-compatible brokers (tansu) drop the connection on an OffsetFetch without them
        fetched = await self.wire.offset_fetch(group, {src: parts}, by_partition=True)
        committed = {tp[1]: value for tp, value in fetched.items() if tp[0] == src}
        begin = _Start({})
        lost = resumed = duplicates = 0
        for p in parts:
            if p not in committed:
                begin.positions[p] = starts[p]
                continue
            offset, metadata = committed[p]
            if offset < starts[p]:
                lost += starts[p] - offset
            begin.positions[p] = max(starts[p], min(offset, stops[p]))
            resumed += begin.positions[p] - starts[p]
            if metadata.startswith(INFLIGHT):
                try:
                    upto = int(metadata[len(INFLIGHT) :])
                except ValueError:
                    upto = stops[p]
                duplicates += max(0, min(upto, stops[p]) - begin.positions[p])
        if committed:
            begin.notes.append(f"resumed from saved progress ({resumed} record(s) already done)")
        if duplicates:
            begin.notes.append(
                f"an earlier run stopped mid-batch: up to {duplicates} record(s) may be "
                "delivered twice"
            )
        if lost:
            begin.notes.append(
                f"{lost} record(s) were deleted by retention before they were replayed"
            )
        return begin, duplicates


class _Start:
    """Start positions by partition, and what the operator should know about them."""

    def __init__(self, positions: dict[int, int]) -> None:
        self.positions = positions
        self.notes: list[str] = []
