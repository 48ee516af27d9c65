"""Dropping large objects off the UI thread.

Replacing the dashboard's data frees the previous picture: at 50,000 rows that is hundreds of
thousands of objects, ~40 ms of deallocation each time the last reference goes, on the thread
that drops it. :func:`release` hands such an object to a daemon thread, which drops it there.
"""

from __future__ import annotations

import queue
import threading

_PENDING: queue.SimpleQueue[object] = queue.SimpleQueue()
_LOCK = threading.Lock()
_STARTED: list[threading.Thread] = []


def _drop_forever() -> None:
    while True:
        item = _PENDING.get()
        del item  # the last reference, when the caller kept none: freed on this thread


def release(item: object) -> None:
    """Let ``item`` be freed on a background thread (the caller keeps no reference)."""
    with _LOCK:
        if not _STARTED:
            thread = threading.Thread(target=_drop_forever, name="mqtop-release", daemon=True)
            thread.start()
            _STARTED.append(thread)
    _PENDING.put(item)
