# ruff: noqa
# Frozen copy of collectors/queue_status.py before the incremental health: the baseline of
# bench_health.py.
"""Burrow-style health of plain queues (and the dead-letter inflow), from what each poll shows.

Pure logic, no broker code. The engine hands every poll's samples to a :class:`QueueHealth`
(one per broker); it keeps a small sliding window per queue and adds ``group_status`` (and
``dlq_inflow_rate``) to the samples that do not carry them yet. Kafka groups and Redis stream
groups are judged by their collectors (:mod:`collectors.group_status`) and are left alone.

Inputs per poll, each may be unknown: the backlog (``queue_length``), ``in_flight``, the
consumed counter (``processed_total``) or a ``processing_rate`` the broker reports, the
published counter, ``consumers``, the oldest message's age (``latency_seconds``) and a
fingerprint of the message at the head (``info["head_id"]``, Redis lists).

*Work* is backlog + in_flight (backlog alone when in_flight is unknown). *Progress* between
two polls is: the consumed counter grew, or a reported processing rate was above 0; when the
broker gives neither, the work shrank, the head message changed, or the oldest age fell.

Rules, in order (W = the window, ``group_status_window``):

1. None   the backlog is unknown at the last poll (never guessed).
2. OK     the work was 0 at some poll inside W (idle, or caught up).
3. dead-letter queues: STALL when consumers were attached for all of W and nothing was
   consumed for W; otherwise OK (dead letters parked, nobody is expected to consume).
4. when nothing was consumed for at least W while work waited:
   STALL  consumers attached during all of W (consumers alive and stuck);
   STOP   no consumer attached now, or the broker cannot tell consumers (nobody consumes);
   None   consumers attached less than W ago: a restart catching up, not judged yet.
5. None   watched for less than W and no progress seen yet: too early to tell.
6. WARN   progress, but the work grew at every step inside W (falling behind).
7. OK     otherwise (consuming, or draining).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from collectors.group_status import GroupStatus, Verdict
from mqtop.kernel.model import SeriesKey, SeriesSample

# series kinds judged elsewhere (Kafka / stream groups) or without a backlog (pub/sub)
NOT_JUDGED_KINDS = frozenset({"topic", "stream", "channel"})


class QueuePoint(NamedTuple):
    """One poll's view of one queue (None: the broker cannot tell)."""

    time: float
    backlog: float | None
    in_flight: float | None = None
    processed: float | None = None
    processing_rate: float | None = None
    published: float | None = None
    consumers: float | None = None
    age: float | None = None
    head: str | None = None

    @property
    def work(self) -> float | None:
        if self.backlog is None:
            return None
        return self.backlog + (self.in_flight or 0.0)


def point_of(sample: SeriesSample, time: float) -> QueuePoint:
    """The inputs of one sample."""
    values = sample.values
    head = sample.info.get("head_id")
    return QueuePoint(
        time=time,
        backlog=values.get("queue_length"),
        in_flight=values.get("in_flight"),
        processed=values.get("processed_total"),
        processing_rate=values.get("processing_rate"),
        published=values.get("published_total"),
        consumers=values.get("consumers"),
        age=values.get("latency_seconds"),
        head=head if isinstance(head, str) else None,
    )


def progressed(before: QueuePoint, after: QueuePoint) -> bool:
    """Whether something was consumed between two polls (see the module's rules)."""
    if after.processing_rate is not None and after.processing_rate > 0:
        return True
    if before.processed is not None and after.processed is not None:
        if after.processed > before.processed:
            return True
        if after.processed == before.processed:
            return False
        # the counter went backwards (a broker restart): judge from the other inputs
    # the work (not the backlog alone: a delivery moves a message to in-flight, unconsumed)
    before_work, after_work = before.work, after.work
    if before_work is not None and after_work is not None and after_work < before_work:
        return True
    if before.head is not None and after.head is not None and before.head != after.head:
        return True
    return before.age is not None and after.age is not None and after.age < before.age - 0.5


class QueueWindow:
    """The sliding window of one queue: events at full resolution, thinned trend points."""

    __slots__ = (
        "attached_since",
        "first_seen",
        "last",
        "last_empty",
        "last_progress",
        "points",
        "spacing",
        "window",
    )

    def __init__(self, window: float, slots: int = 12) -> None:
        self.window = window
        self.spacing = window / max(slots, 2)
        self.points: list[QueuePoint] = []
        self.last: QueuePoint | None = None
        self.first_seen: float | None = None
        self.last_progress: float | None = None
        self.last_empty: float | None = None
        self.attached_since: float | None = None  # consumers > 0 continuously since

    def observe(self, point: QueuePoint) -> None:
        """Record one poll (times ascending; an older or equal time is ignored)."""
        last = self.last
        t = point.time
        if last is not None and t <= last.time:
            return
        if last is None:
            self.first_seen = t
        elif progressed(last, point):
            self.last_progress = t
        work = point.work
        if work is not None and work <= 0:
            self.last_empty = t
        if point.consumers is not None and point.consumers > 0:
            if self.attached_since is None:
                self.attached_since = t
        else:
            self.attached_since = None
        self.last = point
        self._keep(point)

    def _keep(self, point: QueuePoint) -> None:
        points = self.points
        if len(points) >= 2 and point.time - points[-2].time < self.spacing:
            points[-1] = point
            return
        points.append(point)
        horizon = point.time - self.window
        drop = 0
        while drop + 1 < len(points) and points[drop + 1].time <= horizon:
            drop += 1
        if drop:
            del points[:drop]

    def evaluate(self, now: float, dead_letter_queue: bool = False) -> Verdict:
        """Judge the queue at ``now`` (the time of the last poll)."""
        last = self.last
        if last is None or self.first_seen is None:
            return Verdict(None, "not observed yet")
        work = last.work
        if work is None:
            return Verdict(None, "queue length unknown")
        window = self.window
        horizon = now - window
        if self.last_empty is not None and self.last_empty >= horizon:
            moving = self.last_progress is not None and self.last_progress >= horizon
            return Verdict(GroupStatus.OK, "empty" if work <= 0 and not moving else "caught up")
        since = self.last_progress if self.last_progress is not None else self.first_seen
        still_for = now - since
        attached = self.attached_since is not None and self.attached_since <= horizon
        if dead_letter_queue:
            if attached and still_for >= window:
                return self._stall(last, still_for)
            return Verdict(GroupStatus.OK, "dead letters parked")
        if still_for >= window:
            if attached:
                return self._stall(last, still_for)
            if self.attached_since is not None:
                return Verdict(
                    None,
                    f"consumers attached {now - self.attached_since:.0f}s ago; no progress yet",
                )
            if last.consumers is None:
                return Verdict(
                    GroupStatus.STOP,
                    f"nothing consumed for {still_for:.0f}s, {work:.0f} waiting "
                    "(the broker does not tell consumers)",
                )
            return Verdict(
                GroupStatus.STOP,
                f"no consumer, nothing consumed for {still_for:.0f}s, {work:.0f} waiting",
            )
        if self.last_progress is None:
            return Verdict(None, "no progress seen yet; waiting for a full window")
        inside = [w for w in (p.work for p in self.points if p.time >= horizon) if w is not None]
        growing = len(inside) >= 3 and inside[-1] > inside[0]
        if growing and all(b >= a for a, b in itertools.pairwise(inside)):
            return Verdict(
                GroupStatus.WARN, f"falling behind ({inside[0]:.0f} -> {inside[-1]:.0f})"
            )
        if inside and inside[-1] < inside[0]:
            return Verdict(GroupStatus.OK, "draining")
        return Verdict(GroupStatus.OK, "consuming")

    @staticmethod
    def _stall(last: QueuePoint, still_for: float) -> Verdict:
        consumers = last.consumers or 0
        return Verdict(
            GroupStatus.STALL,
            f"{consumers:.0f} consumer(s) attached, nothing consumed for {still_for:.0f}s",
        )

    def inflow(self, now: float, span: float) -> float | None:
        """Messages/s that entered this queue over about ``span`` seconds (None: unknown).

        From its published counter; else from (work + consumed counter), whose increase is
        what arrived whether or not a consumer keeps the queue empty.
        """
        points = [p for p in self.points if p.time >= now - span - 1e-9]
        if self.last is not None and (not points or points[-1] is not self.last):
            points.append(self.last)
        older = [p for p in self.points if p.time < now - span - 1e-9]
        if older:
            points.insert(0, older[-1])  # the point just before the span, so it is covered
        if len(points) < 2:
            return None
        first, last = points[0], points[-1]
        elapsed = last.time - first.time
        if elapsed <= 0:
            return None
        if first.published is not None and last.published is not None:
            level = _increase([p.published for p in points])
        else:
            level = _increase([_arrived(p) for p in points])
        return None if level is None else level / elapsed


def _arrived(p: QueuePoint) -> float | None:
    work = p.work
    if work is None or p.processed is None:
        return None
    return work + p.processed


def _increase(levels: Iterable[float | None]) -> float | None:
    """Reset-aware increase of a level (a drop starts a new run); None when a level is unknown."""
    total = 0.0
    prev: float | None = None
    for value in levels:
        if value is None:
            return None
        if prev is not None and value >= prev:
            total += value - prev
        prev = value
    return total


@dataclass
class QueueHealth:
    """The windows of one broker's queues; adds ``group_status`` and ``dlq_inflow_rate``."""

    window: float = 300.0
    inflow_span: float = 60.0

    def __post_init__(self) -> None:
        self._windows: dict[SeriesKey, QueueWindow] = {}

    def __len__(self) -> int:
        return len(self._windows)

    def annotate(self, series: Iterable[SeriesSample], now: float) -> tuple[SeriesSample, ...]:
        """Feed one poll and return its samples with the health metrics added."""
        samples = tuple(series)
        by_queue: dict[str, SeriesSample] = {}
        dead_letter_queues: set[str] = set()
        for sample in samples:
            if sample.key.group is None:
                by_queue[sample.key.queue] = sample
            if sample.dlq:
                dead_letter_queues.add(sample.dlq)
        windows: dict[SeriesKey, QueueWindow] = {}
        for sample in samples:
            window = self._windows.get(sample.key)
            if window is None:
                window = self._windows[sample.key] = QueueWindow(self.window)
            window.observe(point_of(sample, now))
            windows[sample.key] = window
        for key in [k for k in self._windows if k not in windows]:
            del self._windows[key]  # the queue went away
        out: list[SeriesSample] = []
        inflows: dict[str, float | None] = {}  # per DLQ: a shared DLQ is measured once
        for sample in samples:
            added: dict[str, float | None] = {}
            info: dict[str, Any] = {}
            if judged(sample):
                parked = sample.key.queue in dead_letter_queues or is_dead_set(sample.info)
                verdict = windows[sample.key].evaluate(now, parked)
                added["group_status"] = None if verdict.status is None else float(verdict.status)
                info["status_reason"] = verdict.reason
            dlq = sample.dlq
            if dlq and "dlq_inflow_rate" not in sample.values:
                if dlq not in inflows:
                    inflows[dlq] = self._dlq_inflow(by_queue.get(dlq), windows, now)
                added["dlq_inflow_rate"] = inflows[dlq]
            out.append(sample.with_values(added, info) if added else sample)
        return tuple(out)

    def _dlq_inflow(
        self,
        target: SeriesSample | None,
        windows: Mapping[SeriesKey, QueueWindow],
        now: float,
    ) -> float | None:
        if target is None:
            return None
        reported = target.values.get("publish_rate")
        if reported is not None and target.info.get("dead_letter_sources"):
            # the collector measured this DLQ's inflow itself (RabbitMQ: dead-lettering is no
            # publish); elsewhere a reported publish rate may miss dead letters (SQS redrive)
            return reported
        return windows[target.key].inflow(now, self.inflow_span)


def judged(sample: SeriesSample) -> bool:
    """Whether the queue rules apply: not a group judged by its collector, not pub/sub."""
    return "group_status" not in sample.values and sample.kind not in NOT_JUDGED_KINDS


def is_dead_set(info: Mapping[str, Any]) -> bool:
    """A job library's dead / failed set, or a queue other queues dead-letter into."""
    return info.get("role") == "dead set" or bool(info.get("dead_letter_sources"))


__all__ = [
    "NOT_JUDGED_KINDS",
    "QueueHealth",
    "QueuePoint",
    "QueueWindow",
    "is_dead_set",
    "judged",
    "point_of",
    "progressed",
]
