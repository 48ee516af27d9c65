"""Driving the engine in the health tests: poll every half second until one queue's status
(as ``metrics --format json`` writes it) meets a condition, and tell what was seen."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

Until = Callable[[str | None, Any], bool]


async def watch_view(
    engine: Any, broker: str, queue: str, until: Until, limit: float
) -> tuple[list[str | None], Any]:
    """Poll every 0.5 s until ``until(status, view)``: the statuses seen and the last view.
    Fails the test with the statuses seen when ``limit`` seconds pass first."""
    from mqtop.kernel.model import SeriesKey
    from mqtop.output import series_json

    seen: list[str | None] = []
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        await engine.poll_all()
        view = engine.store.view(SeriesKey(broker, queue, None))
        status = None if view is None else series_json(view)["status"]
        seen.append(status)
        if view is not None and until(status, view):
            return seen, view
        await asyncio.sleep(0.5)
    raise AssertionError(f"{queue}: condition not met in {limit}s; statuses seen: {seen}")


async def watch(
    engine: Any, broker: str, queue: str, until: Until, limit: float
) -> list[str | None]:
    """:func:`watch_view` without the view."""
    return (await watch_view(engine, broker, queue, until, limit))[0]


def watcher(broker: str) -> Callable[[Any, str, Until, float], Awaitable[list[str | None]]]:
    """:func:`watch` for one broker name of the test's config."""

    async def watch_one(engine: Any, queue: str, until: Until, limit: float) -> list[str | None]:
        return await watch(engine, broker, queue, until, limit)

    return watch_one
