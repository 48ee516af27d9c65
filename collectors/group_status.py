"""Burrow-style consumer group status over a sliding window of observations.

Pure logic, no broker code: a collector feeds one observation per poll for each
(group, partition) — the group's consumed position (committed offset), its lag and any error
the broker reported — and asks for a verdict. Kafka partitions and Redis stream groups (one
"partition" per stream) use it alike.

Rules, in order, for one partition (after Burrow's consumer evaluator, adapted to what a
poller can see: polls show *where* a group's position is, not each commit it made):

1. ERROR  the broker reported an error for the group/partition, or the position is invalid
          (beyond the end of the log, or before its start: records were lost).
2. OK     the lag was zero at some observation inside the window.
3. WARN   the position moved backwards inside the window (an offset reset / rewind).
4. STOP   the position has not moved for at least the whole window while lag > 0, and the
          group has no active member (nobody is consuming: the consumer stopped).
   STALL  same, but the group has active members (consumers are alive and stuck).
5. None   the position has not moved yet and the partition has been watched for less than the
          window: too early to tell (never guessed).
6. WARN   the position moves but the lag grew between every pair of points in the window
          (the consumer is falling behind).
7. OK     otherwise.

A group (or group x topic) takes the worst verdict of its partitions; a partition that is
still undecided makes the whole verdict undecided unless another one is already worse than OK.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Hashable, Iterable
from dataclasses import dataclass


class GroupStatus(enum.IntEnum):
    """Numeric values are the ``group_status`` metric of the contract."""

    OK = 0
    WARN = 1
    STALL = 2
    STOP = 3
    ERROR = 4


@dataclass(frozen=True, slots=True)
class Observation:
    """One poll's view of one partition for one group."""

    time: float
    position: int
    lag: int


@dataclass(frozen=True, slots=True)
class Verdict:
    """The status of a partition (None: undecided) and a short reason for operators."""

    status: GroupStatus | None
    reason: str


class PartitionWindow:
    """Observations of one partition for one group, thinned to about ``slots`` points."""

    __slots__ = ("error", "first_seen", "last_change", "last_seen", "points", "spacing", "window")

    def __init__(self, window: float, slots: int = 10) -> None:
        self.window = window
        self.spacing = window / max(slots, 2)
        self.points: list[Observation] = []
        self.first_seen: float | None = None
        self.last_change: float | None = None  # when the position last moved
        self.last_seen: float = 0.0
        self.error: str | None = None

    def observe(self, time: float, position: int, lag: int, error: str | None = None) -> None:
        """Record one poll (``time`` in seconds, ascending)."""
        if self.points and time <= self.points[-1].time:
            return
        obs = Observation(time, position, max(0, lag))
        self.error = error
        self.last_seen = time
        if self.first_seen is None:
            self.first_seen = time
            self.last_change = time
        elif self.points and self.points[-1].position != position:
            self.last_change = time
        points = self.points
        # the newest point is always the latest poll; older kept points are >= spacing apart
        if len(points) >= 2 and time - points[-2].time < self.spacing:
            points[-1] = obs
        else:
            points.append(obs)
        # keep one point at or before the window start, so the window's span is known
        horizon = time - self.window
        drop = 0
        while drop + 1 < len(points) and points[drop + 1].time <= horizon:
            drop += 1
        if drop:
            del points[:drop]

    def evaluate(self, now: float, active: bool | None) -> Verdict:
        """Judge the partition; ``active`` tells whether the group has live members."""
        if self.error:
            return Verdict(GroupStatus.ERROR, self.error)
        if not self.points or self.first_seen is None or self.last_change is None:
            return Verdict(None, "not observed yet")
        horizon = now - self.window
        inside = [p for p in self.points if p.time >= horizon] or self.points[-1:]
        latest = self.points[-1]
        if any(p.lag == 0 for p in inside):
            return Verdict(GroupStatus.OK, "caught up")
        for older, newer in itertools.pairwise(inside):
            if newer.position < older.position:
                return Verdict(GroupStatus.WARN, "position moved backwards (offset reset)")
        unmoved_for = now - self.last_change
        if unmoved_for >= self.window:
            if active:
                return Verdict(
                    GroupStatus.STALL,
                    f"position stuck at {latest.position} with members present",
                )
            return Verdict(
                GroupStatus.STOP, f"no progress for {unmoved_for:.0f}s and no active member"
            )
        if self.last_change == self.first_seen and now - self.first_seen < self.window:
            return Verdict(None, "no progress seen yet; waiting for a full window")
        if len(inside) >= 3:
            lags = [p.lag for p in inside]
            growing = all(b >= a for a, b in itertools.pairwise(lags))
            if growing and lags[-1] > lags[0]:
                return Verdict(GroupStatus.WARN, f"lag growing ({lags[0]} -> {lags[-1]})")
        return Verdict(GroupStatus.OK, "consuming")


def combine(verdicts: Iterable[Verdict]) -> Verdict:
    """Worst verdict of several partitions (undecided only when nothing worse is known)."""
    worst: Verdict | None = None
    undecided: Verdict | None = None
    for verdict in verdicts:
        if verdict.status is None:
            undecided = undecided or verdict
            continue
        if worst is None or worst.status is None or verdict.status > worst.status:
            worst = verdict
    if worst is not None and worst.status is not None and worst.status > GroupStatus.OK:
        return worst
    if undecided is not None:
        return undecided
    return worst if worst is not None else Verdict(None, "no partitions")


class StatusTracker:
    """Windows for many (group, partition) keys, with forgetting of keys no longer seen."""

    def __init__(self, window: float, slots: int = 10) -> None:
        self.window = window
        self.slots = slots
        self._windows: dict[Hashable, PartitionWindow] = {}

    def __len__(self) -> int:
        return len(self._windows)

    def observe(
        self, key: Hashable, time: float, position: int, lag: int, error: str | None = None
    ) -> PartitionWindow:
        """Record one observation for ``key`` and return its window."""
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = PartitionWindow(self.window, self.slots)
        window.observe(time, position, lag, error)
        return window

    def verdict(self, key: Hashable, now: float, active: bool | None) -> Verdict:
        """Verdict for one key (undecided when never observed)."""
        window = self._windows.get(key)
        if window is None:
            return Verdict(None, "not observed yet")
        return window.evaluate(now, active)

    def forget_older_than(self, cutoff: float) -> None:
        """Drop keys not observed since ``cutoff`` (a group or partition went away)."""
        stale = [k for k, w in self._windows.items() if w.last_seen < cutoff]
        for key in stale:
            del self._windows[key]


__all__ = [
    "GroupStatus",
    "Observation",
    "PartitionWindow",
    "StatusTracker",
    "Verdict",
    "combine",
]
