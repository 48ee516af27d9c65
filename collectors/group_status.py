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
   STALL  same, but the group has had active members for the whole window (consumers are
          alive and stuck).
   None   same, but the members joined less than a window ago (a restart catching up: its
          first commit can take a while; judged once they were there for a whole window).
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
from typing import NamedTuple


class GroupStatus(enum.IntEnum):
    """Numeric values are the ``group_status`` metric of the contract."""

    OK = 0
    WARN = 1
    STALL = 2
    STOP = 3
    ERROR = 4


class Observation(NamedTuple):
    """One poll's view of one partition for one group."""

    time: float
    position: int
    lag: int


class Verdict(NamedTuple):
    """The status of a partition (None: undecided) and a short reason for operators."""

    status: GroupStatus | None
    reason: str


CAUGHT_UP = Verdict(GroupStatus.OK, "caught up")
CONSUMING = Verdict(GroupStatus.OK, "consuming")
REWOUND = Verdict(GroupStatus.WARN, "position moved backwards (offset reset)")
TOO_EARLY = Verdict(None, "no progress seen yet; waiting for a full window")
UNSEEN = Verdict(None, "not observed yet")


class PartitionWindow:
    """Observations of one partition for one group, thinned to about ``slots`` points.

    Events that decide a verdict on their own (lag zero, position moving backwards, position
    moving at all) are tracked at full resolution; the thinned points serve the trend test.
    """

    __slots__ = (
        "active_since",
        "error",
        "first_seen",
        "last_change",
        "last_rewind",
        "last_seen",
        "last_zero",
        "points",
        "spacing",
        "window",
    )

    def __init__(self, window: float, slots: int = 10) -> None:
        self.window = window
        self.spacing = window / max(slots, 2)
        self.points: list[Observation] = []
        self.first_seen: float | None = None
        self.last_change: float = 0.0  # when the position last moved
        self.last_zero: float | None = None  # when the lag was last zero
        self.last_rewind: float | None = None  # when the position last went backwards
        self.last_seen: float = 0.0
        self.error: str | None = None
        self.active_since: float | None = None  # members active at every evaluation since

    def observe(self, time: float, position: int, lag: int, error: str | None = None) -> None:
        """Record one poll (``time`` in seconds, ascending)."""
        points = self.points
        if points:
            last = points[-1]
            if time <= last.time:
                return
            if position != last.position:
                self.last_change = time
                if position < last.position:
                    self.last_rewind = time
        else:
            self.first_seen = self.last_change = time
        if lag <= 0:
            lag = 0
            self.last_zero = time
        self.error = error
        self.last_seen = time
        obs = Observation(time, position, lag)
        # the newest point is always the latest poll; older kept points are >= spacing apart
        if len(points) >= 2 and time - points[-2].time < self.spacing:
            points[-1] = obs
        else:
            points.append(obs)
            # keep one point at or before the window start, so the window's span is known
            horizon = time - self.window
            if len(points) > 2 and points[1].time <= horizon:
                drop = 1
                while drop + 1 < len(points) and points[drop + 1].time <= horizon:
                    drop += 1
                del points[:drop]

    def evaluate(self, now: float, active: bool | None) -> Verdict:
        """Judge the partition; ``active`` tells whether the group has live members.

        Collectors call this at every poll: members count as present for the whole window
        only when every evaluation inside it saw them.
        """
        if active:
            if self.active_since is None:
                self.active_since = now
        else:
            self.active_since = None
        if self.error:
            return Verdict(GroupStatus.ERROR, self.error)
        first_seen = self.first_seen
        if first_seen is None:
            return UNSEEN
        window = self.window
        horizon = now - window
        if self.last_zero is not None and self.last_zero >= horizon:
            return CAUGHT_UP
        if self.last_rewind is not None and self.last_rewind >= horizon:
            return REWOUND
        unmoved_for = now - self.last_change
        if unmoved_for >= window:
            if active and self.active_since is not None:
                present_for = now - self.active_since
                if present_for < window:
                    return Verdict(None, f"members joined {present_for:.0f}s ago; no progress yet")
                position = self.points[-1].position
                return Verdict(
                    GroupStatus.STALL, f"position stuck at {position} with members present"
                )
            return Verdict(
                GroupStatus.STOP, f"no progress for {unmoved_for:.0f}s and no active member"
            )
        if self.last_change == first_seen:
            return TOO_EARLY
        inside = [p.lag for p in self.points if p.time >= horizon]
        growing = len(inside) >= 3 and inside[-1] > inside[0]
        if growing and all(b >= a for a, b in itertools.pairwise(inside)):
            return Verdict(GroupStatus.WARN, f"lag growing ({inside[0]} -> {inside[-1]})")
        return CONSUMING


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
