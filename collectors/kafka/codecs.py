"""Decoding Kafka's binary structures: member assignments and fetched record batches.

Only what a poll needs is decoded: the timestamp of the first record at an offset (lag in
seconds), and the origin headers of dead letters (attribution), skipping control batches and
aborted transactions as a read_committed consumer does.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka.record.control_record import ABORT_MARKER, ControlRecord
from aiokafka.record.default_records import DefaultRecordBatch

from collectors.kafka.client import TP

GROUP_HEADERS = ("kafka_dlt-original-consumer-group", "x-original-consumer-group")
TOPIC_HEADERS = ("kafka_dlt-original-topic", "x-original-topic")


def decode_assignment(raw: bytes) -> dict[str, list[int]]:
    """Topics/partitions of a consumer-protocol member assignment (empty if unreadable)."""
    out: dict[str, list[int]] = {}
    try:
        pos = 2  # version
        (count,) = struct.unpack_from(">i", raw, pos)
        pos += 4
        for _ in range(max(count, 0)):
            (length,) = struct.unpack_from(">h", raw, pos)
            pos += 2
            topic = raw[pos : pos + length].decode("utf-8")
            pos += length
            (n,) = struct.unpack_from(">i", raw, pos)
            pos += 4
            parts = list(struct.unpack_from(f">{max(n, 0)}i", raw, pos))
            pos += 4 * max(n, 0)
            out[topic] = parts
    except (struct.error, UnicodeDecodeError):
        return {}
    return out


@dataclass(slots=True)
class FetchRound:
    """What one Fetch round found: timestamps, sizes to retry with, unreadable offsets."""

    timestamps: dict[tuple[str, int, int], int] = field(default_factory=dict)
    retry: dict[TP, int] = field(default_factory=dict)
    unreadable: set[tuple[str, int, int]] = field(default_factory=set)


def record_timestamps(
    raw: bytes | memoryview, targets: Sequence[int]
) -> tuple[dict[int, int], int | None]:
    """Timestamps (ms) of the first data record at or after each target offset.

    ``targets`` are ascending; the fetch started at the batch holding the first one. Returns
    ({target: timestamp} for the targets the bytes answer, bytes needed or None): the second
    value is set when the batch holding the first unanswered target was cut short by the
    fetch size.
    """
    found: dict[int, int] = {}
    buf = memoryview(raw)
    size = len(buf)
    pos = 0
    i = 0  # next target to answer
    n = len(targets)
    while i < n and pos + 17 <= size:
        (length,) = struct.unpack_from(">i", buf, pos + 8)
        end = pos + 12 + length
        if end > size:
            return found, end
        if buf[pos + 16] < 2:  # pre-0.11 message sets: not produced by any supported broker
            return found, None
        batch = DefaultRecordBatch(buf[pos:end])
        pos = end
        if batch.is_control_batch or batch.next_offset <= targets[i]:
            continue
        for record in batch:
            offset = record.offset
            while i < n and targets[i] <= offset:
                found[targets[i]] = int(record.timestamp)
                i += 1
            if i == n:
                break
    if i < n and not found and size > pos:
        return found, pos + 4096  # even a batch header was cut: ask for a little more
    return found, None


@dataclass(slots=True)
class DeadLetters:
    """What one read of a DLT partition found."""

    origins: list[tuple[str | None, str | None]] = field(default_factory=list)  # (topic, group)
    next_offset: int = 0  # where the next read starts
    unread: int = 0  # records passed over without their headers (a batch too large to read)
    need: int | None = None  # bytes the first batch needs, when it was cut short


def _header_text(headers: Sequence[tuple[str, bytes | None]], names: Sequence[str]) -> str | None:
    for name in names:
        for key, value in reversed(headers):
            if key == name and value:
                try:
                    return bytes(value).decode("utf-8")
                except UnicodeDecodeError:
                    return None
    return None


def dead_letter_origins(raw: bytes | memoryview, start: int, aborted: Any) -> DeadLetters:
    """Original topic and consumer group (from Spring Kafka's ``kafka_dlt-original-*`` or the
    ``x-original-*`` headers; None when absent) of the committed records from ``start``.

    ``raw`` is a read_committed Fetch answer: control batches and the batches of aborted
    transactions (``aborted``: (producer id, first offset) pairs) are skipped.
    """
    out = DeadLetters(next_offset=start)
    buf = memoryview(raw)
    size = len(buf)
    txns = sorted(aborted or (), key=lambda x: x[1])
    aborted_pids: set[int] = set()
    pos = 0
    while pos + 61 <= size:
        base, length = struct.unpack_from(">qi", buf, pos)
        end = pos + 12 + length
        (delta,) = struct.unpack_from(">i", buf, pos + 23)
        if end > size:
            if pos == 0:
                out.need = 12 + length
            break
        batch_next = base + delta + 1
        if buf[pos + 16] < 2:  # pre-0.11 message set: no headers to read
            out.unread += max(0, batch_next - max(out.next_offset, base))
            out.next_offset = max(out.next_offset, batch_next)
            pos = end
            continue
        batch = DefaultRecordBatch(buf[pos:end])
        pos = end
        if batch_next <= out.next_offset:
            continue
        skip = False
        pid = batch.producer_id
        if pid is not None and pid >= 0:
            while txns and txns[0][1] <= base:
                aborted_pids.add(txns.pop(0)[0])
            if batch.is_control_batch:
                marker = next(iter(batch), None)
                if marker is not None and ControlRecord.parse(marker.key) == ABORT_MARKER:
                    aborted_pids.discard(pid)
                skip = True
            elif batch.is_transactional and pid in aborted_pids:
                skip = True
        if not skip and not batch.is_control_batch:
            for record in batch:
                if record.offset >= out.next_offset:
                    headers = record.headers
                    out.origins.append(
                        (_header_text(headers, TOPIC_HEADERS), _header_text(headers, GROUP_HEADERS))
                    )
        out.next_offset = batch_next
    return out
