"""Lag in seconds: when was the record at a group's position appended?

The record is read (one Fetch per leader, within a per-poll budget, cached by offset); when it
cannot be, the time comes from the history of end offsets this collector observed,
interpolated between two observations, or a flagged lower bound before the oldest one.
"""

from __future__ import annotations

from collections.abc import Mapping

from collectors.kafka.client import TP
from collectors.kafka.wire import KafkaWire

Offset = tuple[str, int, int]  # topic, partition, offset


class OffsetHistory:
    """(time, end offset) points of one partition, for interpolated lag seconds.

    Flat stretches keep only their first and last point; the list is thinned when it grows,
    and points older than the horizon are dropped (one older point is kept).
    """

    __slots__ = ("ends", "times")
    MAX_POINTS = 240

    def __init__(self) -> None:
        self.times: list[float] = []
        self.ends: list[int] = []

    def add(self, t: float, end: int, horizon: float) -> None:
        times, ends = self.times, self.ends
        if times and t <= times[-1]:
            return
        if ends and end < ends[-1]:  # the partition was recreated: start over
            times.clear()
            ends.clear()
        if len(ends) >= 2 and ends[-1] == end and ends[-2] == end:
            times[-1] = t
        else:
            times.append(t)
            ends.append(end)
        cut = 0
        limit = t - horizon
        while cut + 1 < len(times) and times[cut + 1] <= limit:
            cut += 1
        if cut:
            del times[:cut]
            del ends[:cut]
        if len(times) > self.MAX_POINTS:
            keep = [0, *range(1, len(times) - 1, 2), len(times) - 1]
            self.times = [times[i] for i in keep]
            self.ends = [ends[i] for i in keep]

    def time_of(self, offset: int) -> tuple[float, bool] | None:
        """When the record at ``offset`` was appended, from the observed end offsets:
        (time, False) interpolated between the two observations around it, or (time, True)
        when it is older than the oldest observation: then it was appended at that time or
        before, so the time is only an upper bound (the lag a lower bound). None when the
        history does not reach the offset.

        Nothing is extrapolated: before the oldest observation the rate is unknown.
        """
        times, ends = self.times, self.ends
        if not ends or offset >= ends[-1]:
            return None
        i = next(i for i, end in enumerate(ends) if end > offset)
        if i == 0:
            return times[0], True
        e0, e1 = ends[i - 1], ends[i]
        t0, t1 = times[i - 1], times[i]
        return t0 + (offset + 1 - e0) / (e1 - e0) * (t1 - t0), False


class LagClock:
    """End-offset histories and cached record timestamps of every watched partition."""

    def __init__(self, budget: int, horizon: float) -> None:
        self.budget = budget  # partition reads per poll
        self.horizon = horizon  # seconds of end-offset history kept
        self._history: dict[TP, OffsetHistory] = {}
        self._ts_cache: dict[Offset, int] = {}
        self._used: dict[Offset, int] = {}
        self._rotation = 0

    def observe(self, ends: Mapping[TP, int], now: float) -> None:
        """Record this poll's end offsets; forget partitions no longer seen."""
        for tp, end in ends.items():
            hist = self._history.get(tp)
            if hist is None:
                hist = self._history[tp] = OffsetHistory()
            hist.add(now, end, self.horizon)
        for tp in [tp for tp in self._history if tp not in ends]:
            del self._history[tp]
        self._used = {}

    def cached(self, key: Offset) -> bool:
        """The timestamp of the record at this offset is known."""
        return key in self._ts_cache

    def appended(self, key: Offset, now: float) -> tuple[float | None, bool]:
        """(when the record at ``key`` was appended, or None; True when that time is only an
        upper bound, so the lag a lower bound)."""
        ts_ms = self._ts_cache.get(key)
        if ts_ms is not None:
            self._used[key] = ts_ms
            return ts_ms / 1000.0, False
        hist = self._history.get((key[0], key[1]))
        found = None if hist is None else hist.time_of(key[2])
        # a bound from an observation made by this very poll says nothing
        if found is None or (found[1] and found[0] >= now):
            return None, False
        return found

    def done(self) -> None:
        """Keep only the timestamps this poll used."""
        self._ts_cache = self._used
        self._used = {}

    async def lookup(self, wire: KafkaWire, wanted: list[Offset]) -> None:
        """Read records at lagging positions into the cache, within the per-poll budget of
        partition reads; one read answers every wanted offset its bytes reach."""
        budget = self.budget
        if not wanted or budget <= 0:
            return
        per_tp: dict[TP, list[int]] = {}
        for topic, partition, offset in wanted:
            per_tp.setdefault((topic, partition), []).append(offset)
        order = list(per_tp)
        if len(order) > budget:
            # rotate, so every lagging partition gets its turn over successive polls
            start = self._rotation % len(order)
            order = order[start:] + order[:start]
            self._rotation += budget
        pending = {tp: sorted(set(per_tp[tp])) for tp in order}
        sizes: dict[TP, int] = {}
        reads = 0
        for _ in range(8):
            batch: dict[TP, list[int]] = {}
            for tp, offsets in pending.items():
                if reads >= budget:
                    break
                batch[tp] = offsets
                reads += 1
            if not batch:
                break
            result = await wire.fetch_timestamps(batch, sizes)
            self._ts_cache.update(result.timestamps)
            later: dict[TP, list[int]] = {}
            for tp, offsets in batch.items():
                left = [o for o in offsets if (tp[0], tp[1], o) not in result.timestamps]
                if tp in result.retry:
                    if sizes.get(tp, 0) >= result.retry[tp]:
                        continue  # asked for that much already: give up for this poll
                    sizes[tp] = result.retry[tp]
                elif (
                    not left
                    or (tp[0], tp[1], left[0]) in result.unreadable
                    or (len(left) == len(offsets))
                ):
                    continue  # answered, unreadable, or no progress: the rest waits
                later[tp] = left
            pending = later
