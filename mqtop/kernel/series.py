"""Compact storage of one series (internal to the store; never handed to readers).

Raw rows at poll resolution, run-length encoded: one timestamp per row (``array('d')``), and
one row of values per run of equal rows (``array('d')``, row-major) with the run's length
(``array('I')``). A quiet queue reports the same values poll after poll: its poll costs one
timestamp and one increment, so memory and work follow what changes. The ring keeps the newest
``cap`` rows; the oldest are dropped ``TRIM_ROWS`` at a time (hidden until then).

Rollup buckets: one float32 per metric, the slot the readers use (a gauge's average, a
counter's reset-aware increase), ``rcap`` buckets per series on the store's bucket grid, in
blocks shared by the series of one layout (``RollupTier``). (A closing bucket's full
aggregate, min, max, avg or increase, last, goes to persistence.)

Nothing is allocated before it is written: a series seen once holds one row and no rollup slot.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left
from collections.abc import Sequence
from functools import cache

from mqtop.kernel.model import COUNTER_NAMES, METRICS, PUBLIC_METRIC_NAMES

NAN = math.nan
# Slots per metric of a closing bucket's aggregate (float32: charts need no more precision):
# gauges: min, max, avg, last; counters: increase within the bucket (reset-aware), max, -, last.
ROLL = 4
MIN, MAX, AVG, LAST = range(ROLL)
INC = MIN
TRIM_ROWS = 16  # rows past the ring's capacity before the oldest are dropped together
BLOCK = 256  # series per block of a rollup tier

# public rate metric -> counter it is derived from
DERIVED_RATES: dict[str, str] = {m.name: m.derived_from for m in METRICS.values() if m.derived_from}


class Layout:
    """What every series with the same metrics shares: slot numbers and the view recipe."""

    __slots__ = ("counters", "gauges", "index", "metrics", "rates", "rollup_slot", "width")

    def __init__(self, metrics: tuple[str, ...]) -> None:
        self.metrics = metrics
        self.width = len(metrics)
        self.index = {m: i for i, m in enumerate(metrics)}
        # precomputed for views: (slot, name) of public gauges, (public rate, counter slot)
        self.gauges = tuple(
            (i, m) for i, m in enumerate(metrics) if m not in COUNTER_NAMES and m in METRICS
        )
        self.rates = tuple(
            (rate, self.index[counter])
            for rate, counter in DERIVED_RATES.items()
            if counter in self.index and rate not in self.index
        )
        self.counters = tuple(m in COUNTER_NAMES for m in metrics)
        # which slot of a closing bucket's aggregate the rollup keeps, per metric
        self.rollup_slot = tuple(
            i * ROLL + (INC if counter else AVG) for i, counter in enumerate(self.counters)
        )


@cache
def layout_of(metrics: tuple[str, ...]) -> Layout:
    """The shared layout of a metric tuple (metric names are a fixed vocabulary)."""
    return Layout(metrics)


EMPTY_VIEW_METRICS = dict.fromkeys(PUBLIC_METRIC_NAMES)


class RollupTier:
    """Rollup buckets of every series of one layout, in shared float32 blocks.

    A series owns one slot: ``rcap`` buckets x ``width`` float32 in a block of ``BLOCK``
    slots, and ``rcap`` presence bits. Bucket number ``k`` (its start over the bucket size)
    lives at position ``k % rcap``, so no bucket start is stored: every series of a store
    shares the bucket grid. One array per block instead of two per series: no per-object
    header, no growth slack, and a bucket write is one slice assignment.
    """

    __slots__ = ("blocks", "bucket", "free", "pbytes", "present", "rcap", "size", "stride", "width")

    def __init__(self, width: int, rcap: int, bucket: float) -> None:
        self.width = width
        self.rcap = rcap
        self.bucket = bucket
        self.stride = rcap * width
        self.pbytes = (rcap + 7) // 8
        self.blocks: list[array[float]] = []
        self.present: list[bytearray] = []
        self.free: list[int] = []
        self.size = 0  # slots handed out so far (freed ones are reused first)

    def alloc(self) -> int:
        if self.free:
            return self.free.pop()
        slot = self.size
        self.size += 1
        if slot // BLOCK >= len(self.blocks):
            self.blocks.append(array("f", [NAN]) * (BLOCK * self.stride))
            self.present.append(bytearray(BLOCK * self.pbytes))
        return slot

    def release(self, slot: int) -> None:
        b, r = divmod(slot, BLOCK)
        p = r * self.pbytes
        self.present[b][p : p + self.pbytes] = bytes(self.pbytes)
        self.free.append(slot)


def bucket_number(start: float, bucket: float) -> int:
    """Number of the bucket starting at ``start`` on the grid of ``bucket`` seconds."""
    return math.floor(start / bucket + 1e-6)


class TimeRing:
    """The poll times of one broker, each distinct time once, oldest first.

    Every series of a broker is written at the broker's poll times, so a series keeps the ids
    of its rows' times here (as runs of consecutive ids: one run while it is listed at every
    poll) instead of 8 bytes per row. Ids only grow; the oldest times are dropped once no
    series refers to them (:meth:`trim`).
    """

    __slots__ = ("base", "check_at", "times")

    def __init__(self) -> None:
        self.times = array("d")
        self.base = 0  # id of times[0]
        self.check_at = 0  # length at which the store next looks for times to drop

    def id_of(self, t: float) -> int:
        """The id of time ``t`` (added when newer than every time here); -1 when ``t`` is
        older than the newest time and not one of them (it cannot be shared)."""
        times = self.times
        n = len(times)
        if n:
            last = times[-1]
            if t == last:
                return self.base + n - 1
            if t < last:
                i = bisect_left(times, t)
                return self.base + i if times[i] == t else -1
        times.append(t)
        return self.base + n

    @property
    def next_id(self) -> int:
        return self.base + len(self.times)

    def trim(self, keep_from: int) -> None:
        """Forget the times of ids below ``keep_from``."""
        drop = min(keep_from, self.next_id) - self.base
        if drop > 0:
            del self.times[:drop]
            self.base += drop

    def nbytes(self) -> int:
        return self.times.buffer_info()[1] * self.times.itemsize


class SeriesBuffer:
    """Raw rows of one series, and its slot in the rollup tier of its layout.

    Row times are ids in the broker's :class:`TimeRing` (``segs``: pairs of first id and
    count), or, for a series written at a time its broker's ring cannot hold (history
    restored out of order), its own ``times`` array.
    """

    __slots__ = (
        "cap",
        "count",
        "layout",
        "nrows",
        "ring",
        "rnew",
        "rslot",
        "runs",
        "segs",
        "tier",
        "times",
        "vals",
    )

    def __init__(
        self, layout: Layout, cap: int, tier: RollupTier, ring: TimeRing | None = None
    ) -> None:
        self.layout = layout
        self.cap = cap
        self.ring = ring or TimeRing()
        self.segs = array("I")  # (first id, rows) per run of consecutive ids, oldest first
        self.times: array[float] | None = None  # own times, when the ring cannot hold them
        self.nrows = 0  # rows held (a few hidden ones may lead)
        self.runs = array("I")  # rows per run of equal rows, oldest first
        self.vals = array("d")  # one row-major row of values per run
        self.count = 0  # visible raw rows (at most cap)
        self.tier = tier
        self.rslot = -1  # slot in the tier, once a bucket closed
        self.rnew = -1  # number of the newest bucket

    # -- row times ------------------------------------------------------------------

    def _stamp(self, t: float, tid: int) -> None:
        """Record the time of a new row (``tid``: its id in the ring, or -1)."""
        self.nrows += 1
        if self.times is None:
            if tid < 0:
                tid = self.ring.id_of(t)
            if tid >= 0:
                segs = self.segs
                if segs and segs[-2] + segs[-1] == tid:
                    segs[-1] += 1
                else:
                    segs.append(tid)
                    segs.append(1)
                return
            self.times = self._times_from(0, self.nrows - 1)
            self.segs = array("I")
        self.times.append(t)

    def time_at(self, i: int) -> float:
        """Time of row ``i`` (0: the oldest held)."""
        if self.times is not None:
            return self.times[i]
        segs, ring = self.segs, self.ring
        for k in range(0, len(segs), 2):
            n = segs[k + 1]
            if i < n:
                return ring.times[segs[k] + i - ring.base]
            i -= n
        raise IndexError(i)

    def _times_from(self, start: int, stop: int | None = None) -> array[float]:
        """Times of rows ``start`` up to ``stop`` (default: the newest), oldest first."""
        stop = self.nrows if stop is None else stop
        if self.times is not None:
            return self.times[start:stop]
        segs, ring = self.segs, self.ring
        rt, base = ring.times, ring.base
        if len(segs) == 2:  # listed at every poll since its oldest row: one stretch
            a = segs[0] - base
            return rt[a + start : a + stop]
        out = array("d")
        pos = 0
        for k in range(0, len(segs), 2):
            n = segs[k + 1]
            if pos + n > start and pos < stop:
                a = segs[k] - base
                out += rt[a + max(0, start - pos) : a + min(n, stop - pos)]
            pos += n
        return out

    def _bisect(self, t: float, lo: int) -> int:
        """Index of the first row from ``lo`` on with a time >= ``t`` (``nrows``: none)."""
        if self.times is not None:
            return bisect_left(self.times, t, lo)
        segs, ring = self.segs, self.ring
        rt, base = ring.times, ring.base
        if len(segs) == 2:  # one stretch
            a = segs[0] - base
            return bisect_left(rt, t, a + lo, a + segs[1]) - a
        pos = 0
        for k in range(0, len(segs), 2):
            n = segs[k + 1]
            if pos + n > lo:
                a = segs[k] - base
                j = bisect_left(rt, t, a + max(0, lo - pos), a + n)
                if j < a + n:
                    return pos + j - a
            pos += n
        return pos

    def _drop_times(self, rows: int) -> None:
        self.nrows -= rows
        if self.times is not None:
            del self.times[:rows]
            return
        segs = self.segs
        while rows:
            n = segs[1]
            if n <= rows:
                rows -= n
                del segs[:2]
            else:
                segs[0] += rows
                segs[1] = n - rows
                rows = 0

    def first_id(self) -> int:
        """The oldest ring id this series refers to (-1: none)."""
        return self.segs[0] if self.times is None and self.segs else -1

    # -- raw rows -------------------------------------------------------------------

    def push(self, t: float, row: Sequence[float], tid: int = -1) -> None:
        """Append one row (``width`` values, NaN for unknown) at time ``t`` (``tid``: the
        id of ``t`` in the ring, when the caller has it)."""
        self._stamp(t, tid)
        self.runs.append(1)
        self.vals.extend(row)
        self._grown()

    def repeat(self, t: float, tid: int = -1) -> None:
        """Append a row equal to the newest one: only its time is stored."""
        self._stamp(t, tid)
        self.runs[-1] += 1
        self._grown()

    def _grown(self) -> None:
        if self.count < self.cap:
            self.count += 1
        elif self.nrows >= self.cap + TRIM_ROWS:
            self._trim(self.nrows - self.cap)

    def _trim(self, rows: int) -> None:
        """Forget the ``rows`` oldest rows (a few at a time: moving arrays costs)."""
        self._drop_times(rows)
        runs, w = self.runs, self.layout.width
        drop = 0
        while rows and runs[drop] <= rows:
            rows -= runs[drop]
            drop += 1
        if drop:
            del runs[:drop]
            del self.vals[: drop * w]
        if rows:
            runs[0] -= rows

    def rows(self, since: float = -math.inf) -> tuple[array[float], array[float], int]:
        """Visible rows from the newest one older than ``since`` on, oldest first:
        (times, row-major values, index of the first row with t >= since)."""
        n = self.nrows
        if not self.count:
            return array("d"), array("d"), 0
        first = self._bisect(since, n - self.count)
        start = max(n - self.count, first - 1)
        return self._times_from(start), self._expand(n - start), first - start

    def runs_since(self, since: float) -> list[tuple[float, float, int, int]]:
        """The visible rows with t >= since as runs, oldest first: (time of the run's first
        row there, time of its last row, rows, run number). Nothing is expanded."""
        runs = self.runs
        n = self.nrows
        lo = self._bisect(since, n - self.count)
        out: list[tuple[float, float, int, int]] = []
        if lo >= n:
            return out
        times = self._times_from(lo)
        end = n
        r = len(runs) - 1
        while end > lo:
            start = end - runs[r]
            first = start if start > lo else lo
            out.append((times[first - lo], times[end - 1 - lo], end - first, r))
            end = start
            r -= 1
        out.reverse()
        return out

    def _expand(self, need: int) -> array[float]:
        """The newest ``need`` rows, row-major."""
        runs, vals, w = self.runs, self.vals, self.layout.width
        n = len(runs)
        if need <= n and sum(runs[n - need :]) == need:  # one row per run: contiguous
            return vals[len(vals) - need * w :]
        parts: list[array[float]] = []
        r = len(runs) - 1
        while need > 0:
            take = min(runs[r], need)
            parts.append(vals[r * w : (r + 1) * w] * take)
            need -= take
            r -= 1
        if len(parts) == 1:
            return parts[0]
        out = array("d")
        for part in reversed(parts):
            out.extend(part)
        return out

    def newest(self) -> array[float]:
        """The newest row (the series must have one)."""
        w = self.layout.width
        return self.vals[-w:]

    def oldest_time(self) -> float:
        """Time of the oldest visible row (NaN when there is none)."""
        if not self.count:
            return NAN
        return self.time_at(self.nrows - self.count)

    # -- rollups --------------------------------------------------------------------

    def newest_bucket(self) -> float:
        return self.rnew * self.tier.bucket if self.rnew >= 0 else NAN

    def add_bucket(self, start: float, slots: array[float]) -> None:
        """Keep one closed bucket newer than the newest: its value slot per metric
        (``width`` float32). Buckets skipped since the newest are marked absent."""
        tier = self.tier
        k = bucket_number(start, tier.bucket)
        if k <= self.rnew:
            return
        if self.rslot < 0:
            self.rslot = tier.alloc()
        rcap, w = tier.rcap, tier.width
        b, r = divmod(self.rslot, BLOCK)
        present = tier.present[b]
        base = r * tier.pbytes
        if self.rnew >= 0:
            for gap in range(max(self.rnew + 1, k - rcap + 1), k):
                i = gap % rcap
                present[base + (i >> 3)] &= ~(1 << (i & 7)) & 0xFF
        i = k % rcap
        present[base + (i >> 3)] |= 1 << (i & 7)
        off = r * tier.stride + i * w
        tier.blocks[b][off : off + w] = slots
        self.rnew = k

    def buckets(self) -> tuple[array[float], array[float]]:
        """Buckets, oldest first: (starts, value slot per metric, ``width`` each)."""
        starts, vals = array("d"), array("f")
        if self.rslot < 0:
            return starts, vals
        tier = self.tier
        rcap, w, size = tier.rcap, tier.width, tier.bucket
        b, r = divmod(self.rslot, BLOCK)
        present, block = tier.present[b], tier.blocks[b]
        base, row = r * tier.pbytes, r * tier.stride
        for k in range(max(0, self.rnew - rcap + 1), self.rnew + 1):
            i = k % rcap
            if present[base + (i >> 3)] & (1 << (i & 7)):
                starts.append(k * size)
                vals.extend(block[row + i * w : row + (i + 1) * w])
        return starts, vals

    def release(self) -> None:
        """Give the rollup slot back (the series is gone)."""
        if self.rslot >= 0:
            self.tier.release(self.rslot)
            self.rslot = self.rnew = -1

    # -- accounting -----------------------------------------------------------------

    def nbytes(self) -> int:
        """Bytes of sample data held (the arrays' buffers)."""
        total = 0
        for arr in (self.times, self.segs, self.runs, self.vals):
            if arr is not None:
                total += arr.buffer_info()[1] * arr.itemsize
        if self.rslot >= 0:
            total += self.tier.stride * 4 + self.tier.pbytes
        return total
