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

NOT_OBSERVED = Verdict(None, "not observed yet")
LENGTH_UNKNOWN = Verdict(None, "queue length unknown")
NO_PROGRESS_YET = Verdict(None, "no progress seen yet; waiting for a full window")
# verdicts whose reason does not tell a duration: they hold while the inputs do not change and
# no window boundary is crossed (STALL / STOP and "consumers attached ...s ago" tell seconds)
_UNTIMED_NONE = (NOT_OBSERVED, LENGTH_UNKNOWN, NO_PROGRESS_YET)
_TREND_REASONS = frozenset({"draining", "consuming"})
# a cached verdict is recomputed this long before a boundary (float rounding of now - window)
_MARGIN = 1e-3
_NEVER = float("inf")
_NOW = float("-inf")


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
        "output",
        "output_source",
        "output_verdict",
        "parked",
        "points",
        "source",
        "spacing",
        "valid_until",
        "verdict",
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
        # the incremental path (feed / judge): the last sample fed, the last verdict and the
        # time before which it holds while the inputs stay the same; the last annotated sample
        self.source: SeriesSample | None = None
        self.verdict: Verdict = NOT_OBSERVED
        self.parked = False
        self.valid_until = _NOW
        self.output: SeriesSample | None = None
        self.output_source: SeriesSample | None = None
        self.output_verdict: Verdict | None = None

    def feed(self, sample: SeriesSample, now: float) -> None:
        """:meth:`observe` one poll's sample; a sample with the inputs of the last poll (the
        same object, or equal inputs) keeps the cached verdict valid (see :meth:`judge`)."""
        last = self.last
        if last is None or now <= last.time:
            self.valid_until = _NOW
            self.observe(point_of(sample, now))
            if last is None:
                self.source = sample
            return
        if sample is self.source:
            point = QueuePoint._make((now, *last[1:]))
        else:
            self.source = sample
            point = point_of(sample, now)
            if point[1:] != last[1:]:
                self.valid_until = _NOW
                self.observe(point)
                return
        # the inputs of the last poll again: what observe() does then (progress only from a
        # reported rate, attached_since as it was)
        rate = point.processing_rate
        if rate is not None and rate > 0:
            self.last_progress = now
        backlog = point.backlog
        if backlog is not None and backlog + (point.in_flight or 0.0) <= 0:
            self.last_empty = now
        self.last = point
        self._keep(point)

    def judge(self, now: float, dead_letter_queue: bool = False) -> Verdict:
        """:meth:`evaluate`, reusing the last verdict while it holds (the inputs did not change
        since it was computed and no window boundary was crossed)."""
        if now < self.valid_until and dead_letter_queue is self.parked:
            return self.verdict
        verdict = self.evaluate(now, dead_letter_queue)
        self.verdict = verdict
        self.parked = dead_letter_queue
        self.valid_until = self._holds_until(now, verdict)
        return verdict

    def _holds_until(self, now: float, verdict: Verdict) -> float:
        """Until when ``verdict`` stays what :meth:`evaluate` says while every later poll
        repeats the last one's inputs: each rule compares a time of the state plus the window
        with ``now`` (it flips at most once as ``now`` grows); repeated inputs only move
        ``last_progress`` (a reported rate > 0) or ``last_empty`` (work 0) to ``now`` and add
        trend points of the same work."""
        status = verdict.status
        if status is GroupStatus.STALL or status is GroupStatus.STOP:
            return _NOW  # the reason tells seconds
        if status is None and verdict not in _UNTIMED_NONE:
            return _NOW
        last = self.last
        if last is None or last.work is None:
            return _NEVER if verdict is LENGTH_UNKNOWN else _NOW
        rate = last.processing_rate
        if rate is not None and rate > 0 and self.last_progress != last.time:
            return _NOW  # progress will be seen at the next poll
        window = self.window
        until = _NEVER
        for mark in (self.last_empty, self.last_progress, self.first_seen, self.attached_since):
            if mark is not None and now <= mark + window < until:
                until = mark + window
        if status is GroupStatus.WARN or verdict.reason in _TREND_REASONS:
            horizon = now - window
            first: float | None = None
            count = 0
            for p in self.points:
                if p.time >= horizon:
                    if first is None:
                        first = p.time
                    if p.backlog is not None:
                        count += 1
            if first is None or count < 3:
                return _NOW  # a few more points of the same work can make it WARN
            until = min(until, first + window)
        return until - _MARGIN

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
            return NOT_OBSERVED
        work = last.work
        if work is None:
            return LENGTH_UNKNOWN
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
            return NO_PROGRESS_YET
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
        """Feed one poll and return its samples with the health metrics added.

        Incremental: a queue whose inputs did not change keeps its verdict until a window
        boundary (:meth:`QueueWindow.judge`), and the same sample with the same verdict gets
        the annotated sample of the last poll back, so an unchanged queue costs a few lookups.
        """
        samples = series if type(series) is tuple else tuple(series)
        dead_letter_queues = {s.dlq for s in samples if s.dlq}
        known = self._windows
        windows: dict[SeriesKey, QueueWindow] = {}
        fed: list[QueueWindow] = []
        span = self.window
        for sample in samples:
            key = sample.key
            window = known.get(key)
            if window is None:
                window = known[key] = QueueWindow(span)
            window.feed(sample, now)
            windows[key] = window
            fed.append(window)
        self._windows = windows  # the queues gone away are dropped
        out: list[SeriesSample] = []
        append = out.append
        inflows: dict[str, float | None] = {}  # per DLQ: a shared DLQ is measured once
        by_queue: dict[str, SeriesSample] | None = None
        for sample, window in zip(samples, fed, strict=True):
            values = sample.values
            dlq = sample.dlq
            inflow = bool(dlq) and "dlq_inflow_rate" not in values
            verdict: Verdict | None = None
            if "group_status" not in values and sample.kind not in NOT_JUDGED_KINDS:
                parked = (
                    bool(dead_letter_queues) and sample.key.queue in dead_letter_queues
                ) or is_dead_set(sample.info)
                verdict = window.judge(now, parked)
                if (
                    not inflow
                    and sample is window.output_source
                    and verdict is window.output_verdict
                ):
                    append(window.output)  # type: ignore[arg-type]
                    continue
            elif not inflow:
                append(sample)
                continue
            added: dict[str, float | None] = {}
            info: dict[str, Any] = {}
            if verdict is not None:
                status = verdict.status
                added["group_status"] = None if status is None else float(status)
                info["status_reason"] = verdict.reason
            if inflow:
                assert dlq
                if dlq not in inflows:
                    if by_queue is None:
                        by_queue = {s.key.queue: s for s in samples if s.key.group is None}
                    inflows[dlq] = self._dlq_inflow(by_queue.get(dlq), windows, now)
                added["dlq_inflow_rate"] = inflows[dlq]
            annotated = sample.with_values(added, info)
            if verdict is not None and not inflow:
                window.output, window.output_source = annotated, sample
                window.output_verdict = verdict
            append(annotated)
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
    "LENGTH_UNKNOWN",
    "NOT_JUDGED_KINDS",
    "NOT_OBSERVED",
    "NO_PROGRESS_YET",
    "QueueHealth",
    "QueuePoint",
    "QueueWindow",
    "is_dead_set",
    "judged",
    "point_of",
    "progressed",
]
