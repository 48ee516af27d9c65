"""The copying half of a Kafka replay: record batches in, producer batches out.

The reader of a replay hands over *runs*: slices of the fetched bytes holding whole record
batches of one source partition, with the offsets wanted from them (``lo`` <= offset < ``hi``).
Control batches and aborted transactions are left out from the batch headers alone, so the
process that talks to the brokers never decodes a record on the fast path. :func:`transform`
decodes the runs (aiokafka's C decoder, CRCs checked), picks each record's destination
partition (murmur2 of all the keys of a step at once,
:func:`collectors.kafka.partitioner.murmur2_many`), adds the ``x-mqtop-replay`` header and
writes the records into aiokafka's C batch builder. :mod:`collectors.kafka.workers` runs
:func:`transform` in forked processes.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

from aiokafka.record.control_record import ABORT_MARKER, ControlRecord
from aiokafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from aiokafka.record.util import calc_crc32c

from collectors.kafka.partitioner import murmur2_many

REPLAY_HEADER = "x-mqtop-replay"
MAGIC_V2 = 2
_HEADER = struct.Struct(">qiibIhiqqqhii")  # the 61-byte header of a v2 record batch
_PRODUCER_STATE = struct.Struct(">qhi")  # producer id, epoch, base sequence at offset 43
_CRC = struct.Struct(">I")
_BASE = struct.Struct(">qi")  # base offset, length
_DELTA = struct.Struct(">i")  # last offset delta, at 23
ATTR_TRANSACTIONAL = 0x10
ATTR_CONTROL = 0x20


class CorruptBatch(Exception):
    """A record batch failed its CRC check (or is not a v2 batch)."""


class Run:
    """Whole record batches of one partition (adjacent in the fetched bytes, offsets without
    gaps between them) and the offsets wanted from them. ``count`` is the number of records
    in [lo, hi), None until known (a batch with gaps from compaction must be decoded)."""

    __slots__ = ("count", "hi", "lo", "offsets", "partition", "raw")

    def __init__(
        self, partition: int, raw: memoryview, lo: int, hi: int, count: int | None
    ) -> None:
        self.partition = partition
        self.raw = raw
        self.lo = lo
        self.hi = hi
        self.count = count
        self.offsets: list[int] | None = None  # record offsets in [lo, hi), once decoded

    def counted(self) -> int:
        """The record count, decoding the batches when their offsets have gaps."""
        if self.count is None:
            self.offsets = [r.offset for r in decode(self.raw, self.lo, self.hi)]
            self.count = len(self.offsets)
        return self.count

    def split(self, n: int) -> Run:
        """Keep the first ``n`` records (0 < n < count); return a run of the others. Each
        side keeps only the batches that hold its offsets."""
        self.counted()
        if self.offsets is None:  # no gaps: offsets are consecutive
            cut = self.lo + n
            rest = Run(self.partition, self.raw, cut, self.hi, self.counted() - n)
        else:
            cut = self.offsets[n]
            rest = Run(self.partition, self.raw, cut, self.hi, len(self.offsets) - n)
            rest.offsets, self.offsets = self.offsets[n:], self.offsets[:n]
        self.hi, self.count = cut, n
        self.raw, rest.raw = _trim(self.raw, self.lo, cut), _trim(self.raw, cut, rest.hi)
        return rest


def _trim(raw: memoryview, lo: int, hi: int) -> memoryview:
    """The batches of ``raw`` that hold offsets in [lo, hi)."""
    first = last = -1
    pos = 0
    size = len(raw)
    while pos < size:
        base, length = _BASE.unpack_from(raw, pos)
        (delta,) = _DELTA.unpack_from(raw, pos + 23)
        end = pos + 12 + length
        if base + delta >= lo and base < hi:
            if first < 0:
                first = pos
            last = end
        elif base >= hi:
            break
        pos = end
    return raw[first:last] if first >= 0 else raw[:0]


def scan(
    partition: int, raw: memoryview, start: int, stop: int, aborted: Sequence[Any] | None
) -> list[Run]:
    """Runs of the data records in [start, stop) of one partition's fetched bytes (whole
    batches only), from the batch headers: control batches and batches of aborted
    transactions are left out, as the Java consumer does with read_committed."""
    txns = sorted(aborted or (), key=lambda x: x[1])
    aborted_pids: set[int] = set()
    runs: list[Run] = []
    last: Run | None = None
    last_end = -1
    pos = 0
    size = len(raw)
    unpack = _HEADER.unpack_from
    while pos < size:
        (base, length, _epoch, magic, _crc, attrs, delta, _t0, _t1, pid, _pe, _seq, count) = unpack(
            raw, pos
        )
        end = pos + 12 + length
        if magic != MAGIC_V2:
            raise CorruptBatch(f"record batch of format v{magic} at offset {base}: not supported")
        if pid >= 0:
            while txns and txns[0][1] <= base:
                aborted_pids.add(txns.pop(0)[0])
            if attrs & ATTR_CONTROL:
                if _is_abort_marker(raw[pos:end]):
                    aborted_pids.discard(pid)
                pos = end
                continue
            if attrs & ATTR_TRANSACTIONAL and pid in aborted_pids:
                pos = end
                continue
        if attrs & ATTR_CONTROL:
            pos = end
            continue
        lo, hi = max(start, base), min(stop, base + delta + 1)
        if hi > lo:
            known = hi - lo if count == delta + 1 else None  # no gaps: offsets are consecutive
            if (
                last is not None
                and last_end == pos
                and last.hi == lo
                and last.count is not None
                and known is not None
            ):
                last.raw = raw[pos - len(last.raw) : end]  # merge with the adjacent batch
                last.hi = hi
                last.count += known
            else:
                last = Run(partition, raw[pos:end], lo, hi, known)
                runs.append(last)
            last_end = end
        pos = end
    return runs


def _is_abort_marker(raw: memoryview) -> bool:

    batch = DefaultRecordBatch(raw)
    if not batch.validate_crc():
        raise CorruptBatch("corrupt control batch (CRC mismatch)")
    marker = next(iter(batch), None)
    return marker is not None and ControlRecord.parse(marker.key) == ABORT_MARKER


def decode(raw: memoryview, lo: int, hi: int) -> list[Any]:
    """The records with lo <= offset < hi of whole batches, CRCs checked."""
    return Decoder()(0, raw, lo, hi)


class Decoder:
    """Decodes runs (CRCs checked). The last batch of a partition that a step cut in two is
    kept decoded, so that the step after, which starts in it, does not decode it again."""

    def __init__(self) -> None:
        self._cut: dict[int, tuple[tuple[int, int, int], list[Any]]] = {}

    def __call__(self, partition: int, raw: memoryview, lo: int, hi: int) -> list[Any]:

        out: list[Any] = []
        pos = 0
        size = len(raw)
        while pos < size:
            base, length = _BASE.unpack_from(raw, pos)
            (crc,) = _CRC.unpack_from(raw, pos + 17)
            (delta,) = _DELTA.unpack_from(raw, pos + 23)
            end = pos + 12 + length
            nxt = base + delta + 1
            key = (base, length, crc)
            cached = self._cut.get(partition)
            if cached is not None and cached[0] == key:
                records = cached[1]
            else:
                batch = DefaultRecordBatch(raw[pos:end])
                if not batch.validate_crc():
                    raise CorruptBatch(f"corrupt record batch at offset {base} (CRC mismatch)")
                if base >= lo and nxt <= hi:
                    out.extend(batch)  # the whole batch is wanted: no per-record test
                    pos = end
                    continue
                records = list(batch)
            if len(records) == delta + 1:  # no gaps: slice by offset
                out.extend(records[max(0, lo - base) : max(0, hi - base)])
            else:
                out.extend(r for r in records if lo <= r.offset < hi)
            if nxt > hi:
                self._cut[partition] = (key, records)  # the rest is for a later step
            else:
                self._cut.pop(partition, None)
            pos = end
        return out


def last_batch(raw: memoryview) -> tuple[int, int]:
    """(base offset, next offset) of the last batch of ``raw``."""
    pos = 0
    size = len(raw)
    base = nxt = 0
    while pos < size:
        base, length = _BASE.unpack_from(raw, pos)
        (delta,) = _DELTA.unpack_from(raw, pos + 23)
        nxt = base + delta + 1
        pos += 12 + length
    return base, nxt


# ---------------------------------------------------------------- building


@dataclass(frozen=True, slots=True)
class CopyPlan:
    """What a replay does to each record: the same for every step of a run."""

    source: str
    partitions: int  # destination partitions (indexes 0 .. partitions-1)
    keep: tuple[tuple[int, int], ...] | None  # source partition -> destination index
    keep_timestamp: bool
    batch_bytes: int


def build(
    sends: Sequence[tuple[int, list[Any]]], plan: CopyPlan, now: int, sticky: int
) -> list[tuple[int, Any, int]]:
    """Record batch builders [(destination index, builder, records)] for decoded records.

    Keyed records go where Kafka's default partitioner puts them, keyless ones to ``sticky``;
    each copy gets the ``x-mqtop-replay: <source>/<partition>/<offset>`` header.
    """

    n_parts = plan.partitions
    batch_bytes = plan.batch_bytes
    keep_ts = plan.keep_timestamp
    keep = dict(plan.keep) if plan.keep is not None else None
    out: list[tuple[int, Any, int]] = []
    builders: list[Any] = [None] * n_parts
    counts = [0] * n_parts
    for p, records in sends:
        if keep is not None:
            where: Any = repeat(keep[p])
        elif n_parts == 1:
            where = repeat(0)
        else:
            keys = [r.key for r in records]
            if None in keys:
                keyed = [k if k is not None else b"" for k in keys]
                where = [
                    h % n_parts if k is not None else sticky
                    for k, h in zip(keys, murmur2_many(keyed), strict=True)
                ]
            else:
                where = [h % n_parts for h in murmur2_many(keys)]
        fmt = f"{plan.source}/{p}/".encode().replace(b"%", b"%%") + b"%d"
        for record, d in zip(records, where, strict=False):  # where may be endless
            headers = record.headers  # a fresh list per decoded record: ours to extend
            headers.append((REPLAY_HEADER, fmt % record.offset))
            stamp = record.timestamp if keep_ts else now
            builder = builders[d]
            if builder is None:
                builder = builders[d] = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, 0, batch_bytes)
            if builder.append(counts[d], stamp, record.key, record.value, headers) is None:
                out.append((d, builder, counts[d]))  # full: the record starts the next batch
                builder = builders[d] = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, 0, batch_bytes)
                builder.append(0, stamp, record.key, record.value, headers)
                counts[d] = 0
            counts[d] += 1
    out.extend((d, builder, counts[d]) for d, builder in enumerate(builders) if builder)
    return out


def transform(
    items: Sequence[tuple[int, memoryview, int, int]],
    plan: CopyPlan,
    now: int,
    sticky: int,
    decoder: Decoder | None = None,
) -> list[tuple[int, Any, int]]:
    """Decode runs [(partition, raw, lo, hi)] and build their copies (see :func:`build`)."""
    dec = decoder or Decoder()
    return build([(p, dec(p, raw, lo, hi)) for p, raw, lo, hi in items], plan, now, sticky)


class OutBatch:
    """A finished record batch for ``AIOKafkaProducer.send_batch``: what aiokafka's sender
    asks of a batch builder (record count, producer state for idempotence, the bytes).

    Either a C builder (built when the sender takes it) or bytes built elsewhere without
    producer state; an idempotent producer's id, epoch and sequence are then written into the
    header and the CRC computed again."""

    __slots__ = ("_buffer", "_builder", "_count")

    def __init__(self, count: int, builder: Any = None, buffer: Any = None) -> None:
        self._count = count
        self._builder = builder
        self._buffer = buffer

    def record_count(self) -> int:
        return self._count

    def closed(self) -> bool:
        return True

    def close(self) -> None:
        return None

    def size(self) -> int:
        return len(self._buffer) if self._buffer is not None else int(self._builder.size())

    def _set_producer_state(
        self, producer_id: int, producer_epoch: int, base_sequence: int
    ) -> None:
        if self._builder is not None:
            self._builder.set_producer_state(producer_id, producer_epoch, base_sequence)
            return

        buf = self._buffer
        _PRODUCER_STATE.pack_into(buf, 43, producer_id, producer_epoch, base_sequence)
        _CRC.pack_into(buf, 17, calc_crc32c(buf[21:]))

    def _build(self) -> Any:
        if self._buffer is None:
            self._buffer = self._builder.build()
            self._builder = None
        return self._buffer
