"""From the management API's queue objects to mqtop's series: numbers, windowed
derivations (error_rate, a DLQ's inflow), page counts and the choice of a DLQ."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from collectors.base import dlq_candidates
from collectors.rabbitmq.management import ManagementUnavailable

MAX_QUEUES = 1_000_000  # a page_count claiming more queues than this is refused


def num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


@dataclass(slots=True)
class Point:
    t: float
    processed: float
    dead_level: float | None
    method: str | None
    inflow_level: float | None


@dataclass(slots=True)
class History:
    points: deque[Point] = field(default_factory=deque)

    def add(self, point: Point, window: float) -> Point | None:
        """Append ``point``; return the baseline: the oldest point inside the window."""
        pts = self.points
        if pts:
            last = pts[-1]
            if point.processed < last.processed or point.method != last.method:
                pts.clear()  # counters restarted (node restart) or the formula changed
        # keep at most one point at or before the window start: it is the baseline
        horizon = point.t - window
        while len(pts) > 1 and pts[1].t <= horizon:
            pts.popleft()
        base = pts[0] if pts else None
        pts.append(point)
        return base


def error_ratio(base: Point | None, now: Point) -> float | None:
    if base is None or base.dead_level is None or now.dead_level is None:
        return None
    dead = max(0.0, now.dead_level - base.dead_level)
    processed = now.processed - base.processed
    if processed < 0 or dead + processed <= 0:
        return None
    return dead / (dead + processed)


def inflow_rate(base: Point | None, now: Point) -> float | None:
    if base is None or base.inflow_level is None or now.inflow_level is None:
        return None
    span = now.t - base.t
    if span <= 0:
        return None
    return max(0.0, now.inflow_level - base.inflow_level) / span


def page_count(path: str, first: Mapping[str, Any], size: int) -> int:
    """How many pages to read: ``page_count``, checked against ``filtered_count``."""
    raw = first.get("page_count", 1)
    if raw is None:
        return 1
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise ManagementUnavailable(f"/api/{path}: page_count {raw!r} is not a page count")
    pages = max(raw, 1)
    counted = first.get("filtered_count")
    if isinstance(counted, int) and not isinstance(counted, bool) and counted >= 0:
        bound = -(-counted // size)  # ceil
        if pages > bound + 1:
            raise ManagementUnavailable(
                f"/api/{path}: page_count {raw} does not fit filtered_count {counted} at "
                f"page_size {size} (at most {bound} pages): refusing to read it"
            )
    elif pages * size > MAX_QUEUES:
        raise ManagementUnavailable(
            f"/api/{path}: page_count {raw} at page_size {size} claims more than "
            f"{MAX_QUEUES:,} queues without a filtered_count: refusing to read it"
        )
    return pages


def prefer_conventional(queue: str, dlqs: list[str]) -> str:
    """Of several receiving queues, prefer one named like a DLQ of ``queue``."""
    candidates = dlq_candidates(queue)
    for c in candidates:
        if c in dlqs:
            return c
    lowered = [d for d in dlqs if any(fnmatchcase(d.lower(), p) for p in ("*dlq*", "*dead*"))]
    return (lowered or dlqs)[0]


def counter(stats: Mapping[str, Any], key: str) -> float:
    """A ``message_stats`` counter: the management plugin omits counters that never moved."""
    return num(stats.get(key)) or 0.0


def stats_of(item: Mapping[str, Any]) -> Mapping[str, Any]:
    raw = item.get("message_stats")
    return raw if isinstance(raw, Mapping) else {}


def queue_levels(item: Mapping[str, Any], kind: str, now: float) -> dict[str, float | None]:
    """Length, in-flight, lag, latency and consumers of one queue."""
    ready = num(item.get("messages_ready"))
    values: dict[str, float | None] = {}
    latency: float | None = None
    if kind == "stream":
        # a stream keeps its log: "messages" is retained, not waiting
        values["queue_length"] = None
        values["in_flight"] = None
        values["consumer_lag_messages"] = None
    else:
        values["queue_length"] = ready
        values["in_flight"] = num(item.get("messages_unacknowledged"))
        values["consumer_lag_messages"] = ready
        head = num(item.get("head_message_timestamp"))
        if ready == 0:
            latency = 0.0
        elif head is not None and ready is not None:
            latency = max(0.0, now - head)
    values["latency_seconds"] = latency
    values["consumer_lag_seconds"] = latency
    values["consumers"] = num(item.get("consumers"))
    return values


def dead_level(
    qname: str,
    *,
    kind: str,
    dlq: str | None,
    dlq_item: Mapping[str, Any] | None,
    dlx_sources: list[str] | None,
    explicit_sources: list[str],
    processed: float,
    unacked: float | None,
    stats: Mapping[str, Any],
) -> tuple[str | None, float | None]:
    """A level whose increase over a window is the number of messages dead-lettered.

    * the DLQ receives from this queue only: DLQ messages + DLQ acks (and no-ack gets);
      when the DLQ is fed by a dead-letter exchange its publishes are not dead letters
      (someone moved messages in), so they are subtracted;
    * otherwise: deliveries that left without an ack and were not requeued
      (deliver_get - redeliver - acks - no-ack deliveries - unacked).
    """
    if dlq is not None and dlq != qname and dlq_item is not None:
        dedicated = (dlx_sources == [qname] or dlx_sources is None) and (
            not explicit_sources or explicit_sources == [qname]
        )
        dmessages = num(dlq_item.get("messages"))
        if dedicated and dmessages is not None:
            dstats = stats_of(dlq_item)
            level = (
                dmessages
                + counter(dstats, "ack")
                + counter(dstats, "deliver_no_ack")
                + counter(dstats, "get_no_ack")
            )
            if dlx_sources is not None:
                return "dlx-inflow", level - counter(dstats, "publish")
            return "dlq-inflow", level
    if kind != "stream" and unacked is not None:
        level = counter(stats, "deliver_get") - counter(stats, "redeliver") - processed - unacked
        return "deliveries", level
    return None, None


def queue_info(
    item: Mapping[str, Any], kind: str, target: Any, dlqs: list[str], sources: list[str] | None
) -> dict[str, Any]:
    """The descriptive part of a queue's sample (shown in the detail view and JSON)."""
    info: dict[str, Any] = {
        "vhost": item.get("vhost"),
        "name": item.get("name"),
        "type": kind,
        "state": item.get("state"),
        "policy": item.get("policy"),
        "messages": num(item.get("messages")),
    }
    if target is not None:
        info["dead_letter_exchange"] = target.exchange
        info["dead_letter_routing_key"] = target.routing_key
    if dlqs:
        info["dlqs"] = list(dlqs)
    if sources is not None:
        info["dead_letter_sources"] = list(sources)
    return info
