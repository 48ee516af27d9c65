"""error_rate of a group on a topic: its dead letters against the records it handled.

A Kafka consumer that dead-letters a record almost always commits past it afterwards (Spring
Kafka's error handlers with ``DeadLetterPublishingRecoverer``, its retry topics, Kafka
Connect's ``errors.deadletterqueue``, Kafka Streams' "continue" handlers, hand-written loops):
the committed position then counts the failed records too. With ``failures_committed`` (the
default) the ratio is Δdead letters ÷ Δconsumed; dividing by consumed + dead letters instead
would show f / (1 + f) for a failing fraction f (17 % for 20 %, 50 % for 100 %). Without it
(dead letters written in place of records that never reach the topic) it is Δdead ÷
(Δconsumed + Δdead).

The ratio is taken over the collector's own window (``error_window``), from the points of the
polls in it, like RabbitMQ's derivation; the store does not derive it again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable

from mqtop.kernel.store import increase


class ErrorWindow:
    """(time, consumed, dead letters) per series over a trailing window."""

    def __init__(self, window: float, failures_committed: bool) -> None:
        self.window = window
        self.failures_committed = failures_committed
        self._points: dict[Hashable, deque[tuple[float, float, float]]] = {}

    def ratio(
        self, key: Hashable, now: float, consumed: float | None, dead: float | None
    ) -> float | None:
        """Add this poll's counts and return the ratio over the window (None when unknown)."""
        points = self._points.setdefault(key, deque())
        if dead is None:
            points.clear()  # the dead-letter count starts over once it is known again
            return None
        if consumed is None:
            return None
        points.append((now, consumed, dead))
        # keep one point at or before the start of the window, so the window is covered
        while len(points) > 2 and points[1][0] <= now - self.window:
            points.popleft()
        handled = increase([c for _, c, _ in points])
        failed = increase([d for _, _, d in points])
        if handled is None or failed is None:
            return None
        if not self.failures_committed:
            return failed / (handled + failed) if handled + failed > 0 else None
        if handled <= 0:
            # dead letters counted before the commit that passes them: all of them failed
            return 1.0 if failed > 0 else None
        return min(1.0, failed / handled)

    def keep(self, keys: Iterable[Hashable]) -> None:
        """Forget the series not reported any more."""
        alive = set(keys)
        for key in [k for k in self._points if k not in alive]:
            del self._points[key]
