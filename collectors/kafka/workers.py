"""Forked worker processes that build a replay's producer batches (:func:`transform`).

The decoding and building of the next steps go on in the workers while the main process
fetches, produces and commits. A worker only ever turns bytes into bytes: every request to
Kafka, and so every guarantee of the replay (what is committed when), stays in the main
process. Workers hold no connection and no state; they exit when the main process closes their
socket, or dies.
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
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from collectors.kafka.copying import (
    CopyPlan,
    CorruptBatch,
    Decoder,
    OutBatch,
    last_batch,
    transform,
)

_HEADER_SIZE = 61  # a v2 record batch header
_BASE = struct.Struct(">qi")  # base offset, length
_FRAME = struct.Struct(">II")  # worker frames: length of the layout part, of the raw part
_JOB = struct.Struct(">qi")  # job layout: timestamp (ms), sticky partition, then _ITEM each
_ITEM = struct.Struct(">iqqq")  # source partition, lo, hi, bytes
_OUT = struct.Struct(">iiq")  # reply layout after a status byte: destination, records, bytes


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
            if len(raw) >= _HEADER_SIZE and _BASE.unpack_from(raw, 0)[0] < lo:
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
