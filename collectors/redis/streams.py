"""Stream consumer groups as series: lag, pending, stuck entries and the group status.

Per group (``XINFO STREAM`` / ``XINFO GROUPS``): ``lag`` -> queue_length and
consumer_lag_messages (Redis reports nil when it cannot know: then null), PEL size ->
in_flight, consumers, ``entries-added`` -> published_total, ``entries-read`` ->
processed_total; latency_seconds and consumer_lag_seconds from the millisecond time in the ID
of the first entry not yet delivered to the group. Pending entries idle longer than
``stuck_idle`` (``XPENDING ... IDLE``) are counted as ``info["stuck"]``: in Redis streams these
are the dead letters when no DLQ exists. ``group_status`` follows Burrow's vocabulary over
the last polls (docs/redis.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from collectors.group_status import GroupStatus, StatusTracker, Verdict
from collectors.redis.codecs import id_ms, int_or_none, text
from collectors.redis.options import RedisOptions
from mqtop.kernel.model import SeriesKey, SeriesSample

STUCK_CAP = 1000  # stuck entries counted per group and poll (more is reported as capped)
Ident = tuple[str, str]  # (stream, group)


@dataclass
class GroupDetails:
    """What the second round trip tells about each group."""

    next_ms: dict[Ident, int | None] = field(default_factory=dict)  # next undelivered entry
    stuck: dict[Ident, int | None] = field(default_factory=dict)
    min_idle: dict[Ident, float | None] = field(default_factory=dict)  # freshest consumer


def _last_delivered(group: dict[str, Any]) -> str:
    return text(group.get("last-delivered-id") or b"0-0")


async def fetch_group_details(
    client: Any,
    infos: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]],
    stuck_idle: float,
    key_of: Callable[[str], bytes | str],
) -> GroupDetails:
    """One round trip: next entry per group, stuck entries, and who is alive."""
    pipe = client.pipeline(transaction=False)
    asked: list[tuple[Ident, bool, bool]] = []
    stuck_ms = round(stuck_idle * 1000)
    for name, (_, groups) in infos.items():
        key = key_of(name)
        for group in groups:
            pipe.xrange(key, min=f"({_last_delivered(group)}", count=1)
            wants_stuck = bool(int_or_none(group.get("pending")))
            if wants_stuck:
                pipe.xpending_range(
                    key, group["name"], min="-", max="+", count=STUCK_CAP, idle=stuck_ms
                )
            # who is alive: Redis keeps consumers registered after they die
            wants_idle = bool(int_or_none(group.get("consumers"))) and (
                int_or_none(group.get("lag")) != 0
            )
            if wants_idle:
                pipe.xinfo_consumers(key, group["name"])
            asked.append(((name, text(group["name"])), wants_stuck, wants_idle))
    details = GroupDetails()
    if not asked:
        return details
    replies = iter(await pipe.execute(raise_on_error=False))
    for ident, wants_stuck, wants_idle in asked:
        entries = next(replies)
        ok = isinstance(entries, list) and entries
        details.next_ms[ident] = id_ms(entries[0][0]) if ok else None
        details.stuck[ident] = 0
        if wants_stuck:
            rows = next(replies)
            details.stuck[ident] = len(rows) if isinstance(rows, list) else None
        if wants_idle:
            members = next(replies)
            idles = [
                int_or_none(m.get("idle"))
                for m in (members if isinstance(members, list) else [])
                if isinstance(m, dict)
            ]
            known = [i for i in idles if i is not None]
            details.min_idle[ident] = min(known) / 1000 if known else None
    return details


def _verdict(
    options: RedisOptions,
    tracker: StatusTracker,
    *,
    ident: Ident,
    now: float,
    group: dict[str, Any],
    details: GroupDetails,
) -> Verdict:
    """Group status from the shared Burrow-style evaluator, plus stuck entries.

    The group's position is its last-delivered ID; a consumer counts as active when it
    talked to Redis within the status window.
    """
    window = options.group_status_window
    lag = int_or_none(group.get("lag"))
    consumers = int_or_none(group.get("consumers"))
    stuck = details.stuck.get(ident)
    if lag is None:
        verdict = Verdict(None, "Redis cannot tell the lag of this group")
    else:
        ms, _, seq = _last_delivered(group).partition("-")
        position = (int(ms) << 64) + int(seq) if ms.isdigit() and seq.isdigit() else 0
        tracked = tracker.observe(ident, now, position, lag)
        min_idle = details.min_idle.get(ident)
        active = bool(consumers) and (min_idle is None or min_idle < window)
        verdict = tracked.evaluate(now, active)
    if stuck and (verdict.status is None or verdict.status < GroupStatus.WARN):
        more = "+" if stuck >= STUCK_CAP else ""
        verdict = Verdict(
            GroupStatus.WARN,
            f"{stuck}{more} pending entries idle longer than "
            f"{options.stuck_idle:g}s (see mqtop dlq reclaim)",
        )
    return verdict


def _processed(group: dict[str, Any], added: int | None, lag: int | None) -> int | None:
    read = int_or_none(group.get("entries-read"))
    if read is None:
        # Redis leaves entries-read nil until the group reads past a creation point; it is
        # then exactly entries-added - lag (both exposed), or 0 for a group that has
        # delivered nothing yet.
        if added is not None and lag is not None:
            return added - lag
        if text(group.get("last-delivered-id") or b"") == "0-0":
            return 0
    return read


def _num(value: int | None) -> float | None:
    return None if value is None else float(value)


def stream_samples(
    *,
    options: RedisOptions,
    tracker: StatusTracker,
    now: float,
    name: str,
    info: dict[str, Any],
    groups: list[dict[str, Any]],
    details: GroupDetails,
    dlq: tuple[str | None, int | None],
) -> list[SeriesSample]:
    """The series of one stream: one per group, or one for the stream when it has none."""
    dlq_name, dlq_len = dlq
    added = int_or_none(info.get("entries-added"))
    length = int(info.get("length", 0))
    common: dict[str, float | None] = {"published_total": _num(added), "dlq_length": _num(dlq_len)}
    if not groups:
        first = info.get("first-entry")
        first_ms = id_ms(first[0]) if first else None
        age = max(0.0, now - first_ms / 1000) if first_ms is not None else 0.0
        return [
            SeriesSample(
                key=SeriesKey(options.name, name, None),
                kind="stream",
                values={**common, "queue_length": float(length), "latency_seconds": age},
                dlq=dlq_name,
                info={"length": length, "groups": 0},
            )
        ]
    out = []
    for group in groups:
        ident = (name, text(group["name"]))
        lag = int_or_none(group.get("lag"))
        next_ms = details.next_ms.get(ident)
        if next_ms is None:
            # nothing after the last delivered ID: the group is caught up
            lag_s: float | None = 0.0 if lag in (0, None) else None
        else:
            lag_s = max(0.0, now - next_ms / 1000)
        verdict = _verdict(options, tracker, ident=ident, now=now, group=group, details=details)
        n_stuck = details.stuck.get(ident)
        values = {
            **common,
            "group_status": None if verdict.status is None else float(verdict.status),
            "queue_length": _num(lag),
            "consumer_lag_messages": _num(lag),
            "in_flight": _num(int_or_none(group.get("pending"))),
            "consumers": _num(int_or_none(group.get("consumers"))),
            "processed_total": _num(_processed(group, added, lag)),
            "consumer_lag_seconds": lag_s,
            "latency_seconds": lag_s,
        }
        out.append(
            SeriesSample(
                key=SeriesKey(options.name, name, ident[1]),
                kind="stream",
                values=values,
                dlq=dlq_name,
                info={
                    "length": length,
                    "last_delivered_id": text(group.get("last-delivered-id") or b""),
                    "stuck": n_stuck,
                    "stuck_capped": n_stuck is not None and n_stuck >= STUCK_CAP,
                    "stuck_idle": options.stuck_idle,
                    "status_reason": verdict.reason,
                },
            )
        )
    return out


__all__ = ["STUCK_CAP", "GroupDetails", "fetch_group_details", "stream_samples"]
