"""The copying half of a Kafka replay: record batches in, producer batches out.

The reader of a replay hands over *runs*: slices of the fetched bytes holding whole record
batches of one source partition, with the offsets wanted from them (``lo`` <= offset < ``hi``).
Control batches and aborted transactions are left out from the batch headers alone, so the
process that talks to the brokers never decodes a record on the fast path. :func:`transform`
decodes the runs (aiokafka's C decoder, CRCs checked), picks each record's destination
partition (murmur2 of all the keys of a step at once, :func:`murmur2_many`), adds the
``x-mqtop-replay`` header and writes the records into aiokafka's C batch builder.

:class:`CopyWorkers` runs :func:`transform` in forked worker processes, so the decoding and
building of the next steps go on while the main process fetches, produces and commits. A
worker only ever turns bytes into bytes: every request to Kafka, and so every guarantee of the
replay (what is committed when), stays in the main process. Workers hold no connection and no
state; they exit when the main process closes their socket, or dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import socket
import struct
import sys
import warnings
from array import array
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

REPLAY_HEADER = "x-mqtop-replay"
MAGIC_V2 = 2
_HEADER = struct.Struct(">qiibIhiqqqhii")  # the 61-byte header of a v2 record batch
_FRAME = struct.Struct(">II")  # worker frames: length of the layout part, of the raw part
_JOB = struct.Struct(">qi")  # job layout: timestamp (ms), sticky partition, then _ITEM each
_ITEM = struct.Struct(">iqqq")  # source partition, lo, hi, bytes
_OUT = struct.Struct(">iiq")  # reply layout after a status byte: destination, records, bytes
_PRODUCER_STATE = struct.Struct(">qhi")  # producer id, epoch, base sequence at offset 43
_CRC = struct.Struct(">I")
_BASE = struct.Struct(">qi")  # base offset, length
_DELTA = struct.Struct(">i")  # last offset delta, at 23
ATTR_TRANSACTIONAL = 0x10
ATTR_CONTROL = 0x20


class CorruptBatch(Exception):
    """A record batch failed its CRC check (or is not a v2 batch)."""


# ---------------------------------------------------------------- partitioning

_WORDS: dict[int, struct.Struct] = {}


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (the Java client's key hash), reading whole 32-bit words at once."""
    length = len(data)
    h = 0x9747B28C ^ length
    n4 = length >> 2
    if n4:
        words = _WORDS.get(n4)
        if words is None:
            words = _WORDS[n4] = struct.Struct(f"<{n4}I")
        for word in words.unpack_from(data):
            k = (word * 0x5BD1E995) & 0xFFFFFFFF
            h = ((h * 0x5BD1E995) ^ ((k ^ (k >> 24)) * 0x5BD1E995)) & 0xFFFFFFFF
    rest = length & 3
    if rest:
        tail = length & ~3
        if rest == 3:
            h ^= data[tail + 2] << 16
        if rest >= 2:
            h ^= data[tail + 1] << 8
        h = ((h ^ data[tail]) * 0x5BD1E995) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0x5BD1E995) & 0xFFFFFFFF
    return h ^ (h >> 15)


def key_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for a key."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


_M = 0x5BD1E995
_LANES: dict[int, tuple[int, int]] = {}  # lane count -> (1 in every lane, 2**32-1 in every lane)
_SWAR_MIN = 16  # fewer keys than this: one by one
_SWAR_MAX_LEN = 256  # longer keys are hashed one by one (the lanes would be mostly padding)


def murmur2_many(keys: Sequence[bytes]) -> list[int]:
    """``murmur2(key) & 0x7FFFFFFF`` of many keys at once.

    Every key gets a 64-bit lane of one big integer and each step of the hash runs on all the
    lanes in one integer operation (the lanes hold 32-bit values, so a product by a 32-bit
    constant never reaches the next lane; bits shifted in from a neighbour are masked off).
    Keys of different lengths share the pass: lane masks pick, word by word, the lanes that
    take a full word, the lanes that take their tail, and the lanes that are already done.
    """
    n = len(keys)
    if n < _SWAR_MIN:
        return [murmur2(k) & 0x7FFFFFFF for k in keys]
    lens = array("Q", map(len, keys))
    lo, hi = min(lens), max(lens)
    if hi > _SWAR_MAX_LEN:
        short = [i for i, size in enumerate(lens) if size <= _SWAR_MAX_LEN]
        out = [0] * n
        for i, h in zip(short, murmur2_many([keys[i] for i in short]), strict=True):
            out[i] = h
        for i, size in enumerate(lens):
            if size > _SWAR_MAX_LEN:
                out[i] = murmur2(keys[i]) & 0x7FFFFFFF
        return out
    lanes = _LANES.get(n)
    if lanes is None:
        ones = int.from_bytes(b"\x01\x00\x00\x00\x00\x00\x00\x00" * n, "little")
        lanes = _LANES[n] = (ones, ones * 0xFFFFFFFF)
        if len(_LANES) > 64:
            _LANES.pop(next(iter(_LANES)))
    ones, m32 = lanes
    words = (hi + 3) >> 2
    width = words * 4
    size_lanes = int.from_bytes(lens, "little")
    h = size_lanes ^ (ones * 0x9747B28C)
    matrix = b"".join(keys) if lo == width else b"".join([k.ljust(width, b"\0") for k in keys])
    lane = bytearray(8 * n)
    if lo != hi:
        n4 = (size_lanes >> 2) & m32
        has_tail = (((size_lanes & (ones * 3)) + m32) >> 32) & ones
    for j in range(words):
        base = 4 * j
        for b in range(4):
            lane[b::8] = matrix[base + b :: width]
        w = int.from_bytes(lane, "little")
        if lo == hi:  # every lane takes the same step
            if base + 4 <= lo:
                k = (w * _M) & m32
                k = (((k ^ (k >> 24)) & m32) * _M) & m32
                h = ((h * _M) & m32) ^ k
            else:
                h = ((h ^ w) * _M) & m32
            continue
        full = ((n4 + ones * (0xFFFFFFFF - j)) >> 32) & ones  # n4 > j: a whole word
        tail = ((((n4 + ones * (0x100000000 - j)) >> 32) & ones) ^ full) & has_tail  # n4 == j
        k = (w * _M) & m32
        k = (((k ^ (k >> 24)) & m32) * _M) & m32
        full_mask = full * 0xFFFFFFFF
        tail_mask = tail * 0xFFFFFFFF
        h = (
            ((((h * _M) & m32) ^ k) & full_mask)
            | ((((h ^ w) * _M) & m32) & tail_mask)
            | (h & (m32 ^ full_mask ^ tail_mask))
        )
    h = (h ^ (h >> 13)) & m32
    h = (h * _M) & m32
    h = (h ^ (h >> 15)) & (ones * 0x7FFFFFFF)
    return array("Q", h.to_bytes(8 * n, "little")).tolist()


# ---------------------------------------------------------------- runs


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
    from aiokafka.record.control_record import ABORT_MARKER, ControlRecord
    from aiokafka.record.default_records import DefaultRecordBatch

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
        from aiokafka.record.default_records import DefaultRecordBatch

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
    from aiokafka.record.default_records import DefaultRecordBatchBuilder

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
        from aiokafka.record._crecords.cutil import crc32c_cython

        buf = self._buffer
        _PRODUCER_STATE.pack_into(buf, 43, producer_id, producer_epoch, base_sequence)
        _CRC.pack_into(buf, 17, crc32c_cython(buf[21:]))

    def _build(self) -> Any:
        if self._buffer is None:
            self._buffer = self._builder.build()
            self._builder = None
        return self._buffer


# ---------------------------------------------------------------- worker processes


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class WorkerGone(Exception):
    """A worker process stopped answering: the step is done in the main process instead."""


@dataclass(slots=True)
class _Worker:
    pid: int
    sock: socket.socket
    pending: deque[asyncio.Future[Any]]
    outbox: asyncio.Queue[list[Any] | None]
    tasks: list[asyncio.Task[Any]]


class CopyWorkers:
    """Forked processes that run :func:`transform`; results come back in submission order.

    A job's bytes go over a socket pair; the worker builds the batches (without producer
    state) and sends their bytes back. A worker holds nothing but its end of the socket (it
    closes every other descriptor it inherited), ignores Ctrl-C (the main process stops it),
    and exits on end-of-file, so it never outlives the main process, even one that is
    SIGKILLed (on Linux the kernel also kills it when its parent dies).
    """

    def __init__(self, count: int, plan: CopyPlan) -> None:
        self.count = count
        self.plan = plan
        self.workers: list[_Worker] = []
        self._all: list[_Worker] = []  # every worker started, to close and reap
        self._holders: dict[tuple[int, int], int] = {}  # (partition, batch) -> worker pid

    @staticmethod
    def available() -> bool:
        return hasattr(os, "fork") and sys.platform != "win32"

    def start(self) -> None:
        """Fork the workers (call from the event loop's thread)."""
        loop = asyncio.get_running_loop()
        libc = _libc()
        parent = os.getpid()
        for _ in range(self.count):
            mine, theirs = socket.socketpair()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)  # "multi-threaded fork"
                    pid = os.fork()
            except OSError:
                mine.close()
                theirs.close()
                raise
            if pid == 0:  # the worker: never returns
                code = 1
                try:
                    _child_setup(theirs.fileno(), parent, libc)
                    _serve(theirs, self.plan)
                    code = 0
                finally:
                    os._exit(code)
            theirs.close()
            mine.setblocking(False)
            worker = _Worker(pid, mine, deque(), asyncio.Queue(), [])
            worker.tasks = [
                loop.create_task(self._writer(worker)),
                loop.create_task(self._reader(worker)),
            ]
            self.workers.append(worker)
            self._all.append(worker)

    def submit(
        self, items: Sequence[tuple[int, memoryview, int, int]], now: int, sticky: int
    ) -> asyncio.Future[Any]:
        """Queue a job; the future gives [(destination index, OutBatch, records)].

        The least busy worker takes it; among equals, the one that holds (decoded) the batch
        the job starts in, when an earlier job cut it."""
        holders = set()
        for p, raw, lo, _hi in items:
            if len(raw) >= _HEADER.size and _BASE.unpack_from(raw, 0)[0] < lo:
                holder = self._holders.get((p, _BASE.unpack_from(raw, 0)[0]))
                if holder is not None:
                    holders.add(holder)
        worker = min(self.workers, key=lambda w: (len(w.pending), w.pid not in holders))
        for p, raw, _lo, hi in items:
            base, nxt = last_batch(raw)
            if nxt > hi:
                self._holders[(p, base)] = worker.pid
                if len(self._holders) > 256:
                    self._holders.pop(next(iter(self._holders)))
        meta = _JOB.pack(now, sticky) + b"".join(
            _ITEM.pack(p, lo, hi, len(raw)) for p, raw, lo, hi in items
        )
        frame: list[Any] = [
            _FRAME.pack(len(meta), sum(len(r) for _, r, _, _ in items)),
            meta,
            *(raw for _, raw, _, _ in items),
        ]
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        worker.pending.append(future)
        worker.outbox.put_nowait(frame)
        return future

    async def _writer(self, worker: _Worker) -> None:
        loop = asyncio.get_running_loop()
        try:
            while (frame := await worker.outbox.get()) is not None:
                for part in frame:
                    await loop.sock_sendall(worker.sock, part)
        except OSError:
            self._fail(worker)

    async def _reader(self, worker: _Worker) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                head = await _recv(loop, worker.sock, _FRAME.size)
                meta_len, data_len = _FRAME.unpack(head)
                meta = await _recv(loop, worker.sock, meta_len)
                data = await _recv(loop, worker.sock, data_len)
                future = worker.pending.popleft()
                if future.done():
                    continue
                if meta[:1] == b"E":
                    future.set_exception(CorruptBatch(meta[1:].decode("utf-8", "replace")))
                    continue
                view = memoryview(data)
                out = []
                at = 0
                for d, count, size in _OUT.iter_unpack(meta[1:]):
                    out.append((d, OutBatch(count, buffer=view[at : at + size]), count))
                    at += size
                future.set_result(out)
        except (OSError, EOFError, IndexError, struct.error):
            self._fail(worker)

    def _fail(self, worker: _Worker) -> None:
        """A worker stopped: its jobs are done in the main process; no new job goes to it.
        Its socket is closed (and it is reaped) by :meth:`close`, once nothing waits on it."""
        while worker.pending:
            future = worker.pending.popleft()
            if not future.done():
                future.set_exception(WorkerGone(f"copy worker {worker.pid} stopped"))
        with contextlib.suppress(ValueError):
            self.workers.remove(worker)
        for task in worker.tasks:
            if task is not asyncio.current_task():
                task.cancel()

    async def close(self) -> None:
        """Stop every worker (end-of-file on its socket) and reap it."""
        workers, self._all = self._all, []
        self.workers.clear()
        for worker in workers:
            for task in worker.tasks:
                task.cancel()
            for task in worker.tasks:
                with contextlib.suppress(BaseException):
                    await task
            worker.sock.close()  # nothing is registered on it any more
            for future in worker.pending:
                if not future.done():
                    future.cancel()
        for worker in workers:
            await _reap(worker.pid)


async def _recv(loop: asyncio.AbstractEventLoop, sock: socket.socket, size: int) -> bytearray:
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = await loop.sock_recv_into(sock, view[got:])
        if not n:
            raise EOFError
        got += n
    return buf


async def _reap(pid: int) -> None:
    for attempt in range(100):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)  # noqa: ASYNC222 - never blocks
        except ChildProcessError:
            return
        if done:
            return
        if attempt == 50:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.01)


def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None)
    except OSError:
        return None


def _child_setup(keep_fd: int, parent: int, libc: Any) -> None:
    """In a fresh worker: die with the parent, hold no descriptor but our socket."""
    gc.disable()
    with contextlib.suppress(ValueError, OSError):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if libc is not None:
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(0)
    os.closerange(3, keep_fd)
    os.closerange(keep_fd + 1, 1 << 20)


def _serve(sock: socket.socket, plan: CopyPlan) -> None:
    """The worker's loop: one job at a time until end-of-file."""
    sock.setblocking(True)
    decoder = Decoder()
    while True:
        head = _recv_blocking(sock, _FRAME.size)
        if head is None:
            return
        meta_len, data_len = _FRAME.unpack(head)
        meta = _recv_blocking(sock, meta_len)
        data = _recv_blocking(sock, data_len)
        if meta is None or data is None:
            return
        now, sticky = _JOB.unpack_from(meta)
        view = memoryview(data)
        items = []
        at = 0
        for p, lo, hi, size in _ITEM.iter_unpack(memoryview(meta)[_JOB.size :]):
            items.append((p, view[at : at + size], lo, hi))
            at += size
        try:
            built = transform(items, plan, now, sticky, decoder)
        except CorruptBatch as exc:
            reply = b"E" + str(exc).encode()
            sock.sendall(_FRAME.pack(len(reply), 0) + reply)
            continue
        bufs = [builder.build() for _, builder, _ in built]
        reply = b"K" + b"".join(
            _OUT.pack(d, n, len(b)) for (d, _, n), b in zip(built, bufs, strict=True)
        )
        sock.sendall(_FRAME.pack(len(reply), sum(len(b) for b in bufs)) + reply)
        for b in bufs:
            sock.sendall(b)


def _recv_blocking(sock: socket.socket, size: int) -> bytearray | None:
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:])
        if not n:
            return None
        got += n
    return buf
