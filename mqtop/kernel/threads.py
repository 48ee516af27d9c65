"""A bounded pool of daemon worker threads for blocking client libraries.

``concurrent.futures.ThreadPoolExecutor`` joins its workers when the interpreter exits (and
``asyncio.run`` joins the loop's default executor), so a call stuck on an endpoint that never
answers keeps ``mqtop metrics`` (or ``serve`` after SIGTERM) alive until the library gives up:
botocore's 20 s x 4 attempts, pika's 20 s handshake. These workers are daemon threads and are
never waited for beyond ``join_timeout``: a command ends at its own deadline, and a stuck call
ends with the process. Nothing is lost by that: collector calls only read, and a move records
what it sends in its journal before sending (see :mod:`collectors.sqs.mover`).

Used by the SQS collector for boto3, and by :func:`mqtop.runtime.run` as the event loop's
default executor (``asyncio.to_thread``).
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
_Work = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class DaemonPool(Executor):
    """At most ``max_workers`` daemon threads, started on demand, reused while idle."""

    def __init__(self, max_workers: int, name: str, join_timeout: float | None = None) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self._max = max_workers
        self._name = name
        self._work: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._workers: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False
        self._join_timeout = join_timeout

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Run ``fn(*args, **kwargs)`` in a worker thread."""
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new calls after shutdown")
            future: Future[T] = Future()
            self._work.put((future, fn, args, kwargs))
            if not self._idle.acquire(blocking=False) and len(self._workers) < self._max:
                thread = threading.Thread(
                    target=self._run, name=f"{self._name}-{len(self._workers)}", daemon=True
                )
                thread.start()
                self._workers.append(thread)
        return future

    def _run(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                self._work.put(None)  # wake the next worker too
                return
            future, fn, args, kwargs = item
            del item
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            del future, fn, args, kwargs  # no reference to a finished call while idle
            self._idle.release()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking calls; the workers end once the queued (or running) ones are done.

        ``wait`` waits for them, for at most ``join_timeout`` seconds in all when one was given
        (0: never wait; a call still running is abandoned to end with the process).
        """
        with self._lock:
            self._closed = True
            if cancel_futures:
                with contextlib.suppress(queue.Empty):
                    while True:
                        item = self._work.get_nowait()
                        if item is not None:
                            item[0].cancel()
            self._work.put(None)
            threads = list(self._workers)
        if not wait:
            return
        if self._join_timeout is None:
            for thread in threads:
                thread.join()
            return
        deadline = time.monotonic() + self._join_timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    @property
    def threads(self) -> int:
        """Worker threads started so far."""
        return len(self._workers)


class DaemonDefaultExecutor(DaemonPool, ThreadPoolExecutor):
    """A :class:`DaemonPool` that asyncio accepts as a loop's default executor.

    ``loop.set_default_executor`` takes only ``ThreadPoolExecutor`` instances; this one is one
    by type, but every method asyncio calls (``submit``, ``shutdown``) is the daemon pool's,
    whose threads the interpreter never joins at exit.
    """

    def __init__(self, max_workers: int, name: str, join_timeout: float | None = 0.0) -> None:
        DaemonPool.__init__(self, max_workers, name, join_timeout)
