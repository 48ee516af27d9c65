"""Window functions of function rules: ``avg``/``max``/``increase``/``rate`` over the known
points of a metric in a window (derived rates and the error rate computed from counters)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from mqtop.kernel.model import SeriesView
from mqtop.kernel.store import DERIVED_RATES, TimeSeriesStore


def window_points(
    store: TimeSeriesStore, view: SeriesView, metric: str, window: float
) -> list[tuple[float, float]]:
    """Known (non-null) points of ``metric`` over the window ending at the last update."""
    key = view.key
    points: Sequence[tuple[float, float | None]] = store.window_values(key, metric, window)
    if not points and metric in DERIVED_RATES:
        points = store.range(key, metric, view.updated - window, view.updated, points=1_000_000)
    elif not points and metric == "error_rate":
        dead = store.window_values(key, "dead_lettered_total", window)
        done = store.window_values(key, "processed_total", window)
        points = _ratio_points(dead, done)
    return [(t, v) for t, v in points if v is not None and v == v]


def _ratio_points(
    dead: Sequence[tuple[float, float | None]], done: Sequence[tuple[float, float | None]]
) -> list[tuple[float, float | None]]:
    """Per-interval dead / (dead + done) from two counters sampled at the same times."""
    out: list[tuple[float, float | None]] = []
    by_time = dict(done)
    prev: tuple[float, float, float] | None = None
    for t, d in dead:
        p = by_time.get(t)
        if d is None or p is None:
            prev = None
            continue
        if prev is not None:
            dd = d - prev[1] if d >= prev[1] else d
            dp = p - prev[2] if p >= prev[2] else p
            out.append((t, dd / (dd + dp) if dd + dp > 0 else None))
        prev = (t, d, p)
    return out


def apply_function(function: str, points: Sequence[tuple[float, float]]) -> float | None:
    """``avg``/``max`` of the values; ``increase`` = last - first; ``rate`` = increase/s."""
    if not points:
        return None
    if function == "avg":
        return math.fsum(v for _, v in points) / len(points)
    if function == "max":
        return max(v for _, v in points)
    if len(points) < 2:
        return None
    delta = points[-1][1] - points[0][1]
    if function == "increase":
        return delta
    span = points[-1][0] - points[0][0]
    return delta / span if span > 0 else None
