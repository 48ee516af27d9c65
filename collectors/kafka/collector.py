"""Kafka collector: consumer lag in messages and seconds, group status, DLT inflow and backlog.

One long-lived client (:class:`collectors.kafka.wire.KafkaWire`) sends batched protocol
requests (see docs/kafka.md); each poll:

* reads end and log-start offsets of every watched partition and DLT, the groups, their state
  and committed offsets (fetch);
* works out which topics each group consumes and its lag per partition (map);
* times lagging positions (:mod:`collectors.kafka.lagtime`), attributes new dead letters to
  groups (:mod:`collectors.kafka.deadletters`) and reads how far each DLT's handlers got
  (:mod:`collectors.kafka.backlog`);
* builds one series per group x topic, one per topic nobody consumes, and one per DLT.

``published_total`` = sum of end offsets and ``processed_total`` = sum of consumed positions
(committed offset, or the log start where the group has none): the store derives the rates.
``error_rate`` is the collector's own (:mod:`collectors.kafka.errorrate`); ``dlq_length`` is
the DLT's dead letters not yet handled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from collectors.base import Collected, MessageActions, dlq_candidates
from collectors.group_status import StatusTracker, Verdict, combine
from collectors.kafka.actions import KafkaActions
from collectors.kafka.backlog import Backlog, DltBacklog
from collectors.kafka.client import EARLIEST, LATEST, TP, KafkaProtocolError, short
from collectors.kafka.deadletters import DeadLetterCounts
from collectors.kafka.errorrate import ErrorWindow
from collectors.kafka.lagtime import LagClock, Offset
from collectors.kafka.options import KafkaOptions
from collectors.kafka.wire import GroupInfo, KafkaWire
from mqtop.kernel.model import SeriesKey, SeriesSample

# group states with members at work: classic (DescribeGroups) and KIP-848 (ConsumerGroupDescribe)
ACTIVE_STATES = frozenset(
    {"Stable", "PreparingRebalance", "CompletingRebalance", "Assigning", "Reconciling"}
)


@dataclass(slots=True)
class _GroupData:
    name: str
    committed: dict[TP, tuple[int, str]] | None
    info: GroupInfo | None
    error: str | None = None


@dataclass(slots=True)
class _Poll:
    """What one poll read from the brokers."""

    now: float
    ends: dict[TP, int]
    starts: dict[TP, int]
    groups: list[_GroupData]
    listed: list[str]  # every group the brokers know
    warnings: list[str]
    backlogs: dict[str, Backlog | None] = field(default_factory=dict)  # by DLT


@dataclass(slots=True)
class _Lag:
    """The lag figures of one group on one topic, summed over its partitions."""

    total: int = 0
    published: int = 0
    processed: int = 0
    seconds: float | None = None  # the max over lagging partitions that could be timed
    missing: bool = False  # a lagging partition could not be timed at all
    bound: bool = False  # a lagging partition's time is only a lower bound
    verdicts: list[Verdict] = field(default_factory=list)


class KafkaCollector:
    """Reads offsets, groups and record timestamps of one Kafka cluster."""

    def __init__(self, options: KafkaOptions) -> None:
        self.options = options
        self._wire: KafkaWire | None = None
        self._actions: MessageActions | None = None
        self._status = StatusTracker(options.group_status_window)
        self._clock = LagClock(options.lag_seconds_budget, options.lag_history)
        self._group_topics: dict[str, set[str]] = {}
        self._refresh_due = True
        self._explicit_offsets = False  # learnt from the broker; survives reconnections
        self._offsets_probed = False
        self._dead = DeadLetterCounts()
        self._errors = ErrorWindow(options.error_window, options.failures_committed)
        self._backlog = DltBacklog(options)

    @property
    def wire(self) -> KafkaWire:
        if self._wire is None:
            raise RuntimeError("not connected")
        return self._wire

    async def connect(self) -> None:
        if self._wire is None:
            self._wire = KafkaWire(self.options, self._request_timeout())
            self._wire.explicit_offsets = self._explicit_offsets
        try:
            await self._wire.start()
        except BaseException:
            wire, self._wire = self._wire, None
            await wire.close()
            raise
        self._refresh_due = False

    def _request_timeout(self) -> float:
        return float(self.options.timeout or 10.0)

    async def close(self) -> None:
        wire, self._wire = self._wire, None
        if wire is not None:
            await wire.close()

    def actions(self) -> MessageActions | None:
        if self._actions is None:
            self._actions = KafkaActions(self.options)
        return self._actions

    # -- fetch -------------------------------------------------------------------------

    def _watched_topics(self) -> list[str]:
        wire = self.wire
        out = []
        for topic in wire.partitions:
            if topic in wire.internal and not self.options.internal_topics:
                continue
            if self.options.wants_topic(topic):
                out.append(topic)
        return sorted(out)

    def _dlq_of(self, topic: str) -> str | None:
        explicit = self.options.dlq.get(topic)
        if explicit:
            return explicit
        for candidate in dlq_candidates(topic):
            if candidate in self.wire.partitions:
                return candidate
        return None

    async def _listed_groups(self, warnings: list[str]) -> list[tuple[str, str]]:
        try:
            return await self.wire.list_groups()
        except KafkaProtocolError as exc:  # e.g. coordinator still loading: topics still count
            warnings.append(f"consumer groups unavailable: {exc}")
            return []

    async def _read(self, topics: list[str], dlqs: Mapping[str, str]) -> _Poll:
        """Offsets of the watched partitions and DLTs, the watched groups and their offsets."""
        wire = self.wire
        now = time.time()
        warnings: list[str] = []
        measured = sorted(set(topics) | {d for d in dlqs.values() if d in wire.partitions})
        tps = [(t, p) for t in measured for p in wire.partitions.get(t, ())]
        watched_parts = {t: wire.partitions.get(t, []) for t in topics}
        listed = await self._listed_groups(warnings)
        groups = [
            g for g, ptype in listed if ptype in ("consumer", "") and self.options.wants_group(g)
        ]
        if groups and not self._offsets_probed:
            # learn, alone, whether the broker answers "every offset of a group": a broker that
            # drops the connection instead would take the other requests of the poll with it
            try:
                await wire.offset_fetch(groups[0], watched_parts)
            except Exception:  # noqa: S110 - the real poll below reports what still fails
                pass
            self._offsets_probed = True
        try:
            (ends, end_failed), (starts, _), described, fetched = await asyncio.gather(
                wire.list_offsets(tps, LATEST),
                wire.list_offsets(tps, EARLIEST),
                wire.describe_groups(groups),
                asyncio.gather(
                    *(wire.offset_fetch(g, watched_parts) for g in groups),
                    return_exceptions=True,
                ),
            )
        finally:
            self._explicit_offsets = wire.explicit_offsets
        if end_failed:
            self._refresh_due = True
        data: list[_GroupData] = []
        for group, result in zip(groups, fetched, strict=True):
            info = described.get(group)
            if isinstance(result, asyncio.CancelledError):
                raise result
            if isinstance(result, BaseException):
                data.append(_GroupData(group, None, info, short(result)))
                warnings.append(f"group {group}: {short(result)}")
            else:
                data.append(_GroupData(group, result, info))
        return _Poll(now, ends, starts, data, [g for g, _ in listed], warnings)

    # -- map ---------------------------------------------------------------------------

    def _pairs(self, poll: _Poll, watched: set[str]) -> list[tuple[_GroupData, str]]:
        """(group, topic) for every topic a group consumes: committed offsets, assignments."""
        pairs: list[tuple[_GroupData, str]] = []
        for gd in poll.groups:
            if gd.committed is None:
                names = self._group_topics.get(gd.name, set())
            else:
                names = {t for t, _ in gd.committed}
                if gd.info is not None:
                    names |= set(gd.info.assigned)
                names &= watched
                unknown = {t for t, _ in gd.committed} - set(self.wire.partitions)
                if unknown and any(self.options.wants_topic(t) for t in unknown):
                    self._refresh_due = True
                self._group_topics[gd.name] = names
            pairs.extend((gd, topic) for topic in sorted(names))
        return pairs

    def _partition_rows(
        self, gd: _GroupData, topic: str, poll: _Poll, wanted: dict[Offset, None]
    ) -> list[dict[str, Any]]:
        """The partition table of one group on one topic; lagging positions go to ``wanted``."""
        committed_of = gd.committed or {}
        table = []
        for p in self.wire.partitions.get(topic, ()):
            last = poll.ends.get((topic, p))
            if last is None:
                continue
            start = poll.starts.get((topic, p), 0)
            c = committed_of.get((topic, p))
            committed = None if c is None else c[0]
            position = committed if committed is not None else start
            lag = max(0, last - position)
            error = None
            if committed is not None and committed > last:
                error = f"partition {p}: committed offset {committed} beyond the end {last}"
            elif committed is not None and committed < start:
                error = (
                    f"partition {p}: committed offset {committed} is before the log start "
                    f"{start} (records were deleted unconsumed)"
                )
            table.append(
                {
                    "partition": p,
                    "end_offset": last,
                    "log_start": start,
                    "committed": committed,
                    "lag": lag,
                    "lag_seconds": 0.0 if lag == 0 else None,
                    "_error": error,
                }
            )
            key = (topic, p, max(position, start))
            if lag > 0 and not self._clock.cached(key):
                wanted[key] = None
        return table

    # -- series ------------------------------------------------------------------------

    def _lag(self, gd: _GroupData, topic: str, rows: list[dict[str, Any]], now: float) -> _Lag:
        """Sum one group's partitions on a topic; time and judge each lagging partition."""
        active = self._active(gd.info)
        lag = _Lag()
        uncommitted: list[Verdict] = []
        for row in rows:
            p, behind = row["partition"], row["lag"]
            position = row["committed"] if row["committed"] is not None else row["log_start"]
            lag.total += behind
            lag.published += row["end_offset"]
            lag.processed += position
            if behind > 0:
                self._time_row(row, (topic, p, max(position, row["log_start"])), now, lag)
            error = row.pop("_error")
            if row["committed"] is None and behind > 0:
                # no commit on this partition yet (a group that assigns partitions itself
                # commits only where it consumed): its position is unknown, not stopped
                row["status"] = None
                uncommitted.append(Verdict(None, f"partition {p}: no committed offset yet"))
                continue
            window = self._status.observe((gd.name, topic, p), now, position, behind, error)
            verdict = window.evaluate(now, active)
            row["status"] = None if verdict.status is None else verdict.status.name
            lag.verdicts.append(verdict)
        if not lag.verdicts:
            lag.verdicts.extend(uncommitted)  # judged only when no partition has a commit
        if lag.total == 0:
            lag.seconds = 0.0
        return lag

    def _time_row(self, row: dict[str, Any], key: Offset, now: float, lag: _Lag) -> None:
        appended, bound = self._clock.appended(key, now)
        if appended is None:
            lag.missing = True
            return
        seconds = max(0.0, now - appended)
        row["lag_seconds"] = round(seconds, 3)
        if bound:
            row["lag_seconds_lower_bound"] = True
            lag.bound = True
        lag.seconds = seconds if lag.seconds is None else max(lag.seconds, seconds)

    @staticmethod
    def _active(info: GroupInfo | None) -> bool | None:
        """Whether the group has members at work (None when unknown)."""
        if info is None or info.error or info.members is None:
            return None
        return info.members > 0 and info.state in ACTIVE_STATES

    def _dead_letters(
        self, gd: _GroupData, topic: str, dlq: str | None, poll: _Poll, processed: float | None
    ) -> tuple[dict[str, float | None], dict[str, Any]]:
        """dlq_length, error_rate and the group's attributed dead letters of one series."""
        if dlq is None:
            return {}, {}
        backlog = poll.backlogs.get(dlq)
        info: dict[str, Any] = {}
        dead: float | None = None
        if backlog is not None:
            info["dlq_retained"] = backlog.retained
            dead, info["dead_letters"] = self._dead.total(dlq, topic, gd.name)
            info["dead_letters_counted"] = dead
        values: dict[str, float | None] = {
            "dlq_length": _pending(backlog),
            "error_rate": self._errors.ratio((topic, gd.name), poll.now, processed, dead),
        }
        return values, info

    def _group_sample(
        self,
        gd: _GroupData,
        topic: str,
        rows: list[dict[str, Any]] | None,
        dlq: str | None,
        poll: _Poll,
    ) -> SeriesSample:
        """The series of one group on one topic."""
        members = None if gd.info is None or gd.info.error else gd.info.members
        key = SeriesKey(self.options.name, topic, gd.name)
        if gd.committed is None or rows is None:
            dl_values, dl_info = self._dead_letters(gd, topic, dlq, poll, None)
            return SeriesSample(
                key=key,
                kind="topic",
                values={"group_status": 4.0, "consumers": _num(members), **dl_values},
                dlq=dlq,
                info={"error": gd.error or "offsets unavailable", "partitions": [], **dl_info},
            )
        lag = self._lag(gd, topic, rows, poll.now)
        overall = combine(lag.verdicts)
        dl_values, dl_info = self._dead_letters(gd, topic, dlq, poll, float(lag.processed))
        values: dict[str, float | None] = {
            "queue_length": float(lag.total),
            "consumer_lag_messages": float(lag.total),
            "consumer_lag_seconds": lag.seconds,
            "latency_seconds": lag.seconds,
            "consumers": _num(members),
            "published_total": float(lag.published),
            "processed_total": float(lag.processed),
            "group_status": None if overall.status is None else float(overall.status),
            **dl_values,
        }
        info: dict[str, Any] = {
            "partitions": rows,
            "state": None if gd.info is None else gd.info.state,
            "status_reason": overall.reason,
            **dl_info,
        }
        if lag.seconds is not None and (lag.missing or lag.bound):
            # the figure is the max of what is known: the true lag may be larger
            info["lag_seconds_lower_bound"] = True
            if lag.missing:
                info["lag_seconds_partial"] = True
        return SeriesSample(key=key, kind="topic", values=values, dlq=dlq, info=info)

    def _topic_sample(
        self, topic: str, dlq: str | None, poll: _Poll, is_dlt: bool
    ) -> SeriesSample | None:
        """The series of a topic nobody consumes, or of a DLT (its dead letters not handled)."""
        known = [
            (p, poll.ends[(topic, p)])
            for p in self.wire.partitions.get(topic, ())
            if (topic, p) in poll.ends
        ]
        if not known:
            return None
        backlog = poll.backlogs.get(topic) if is_dlt else None
        rows = []
        for p, end in known:
            start = poll.starts.get((topic, p))
            handled = None if backlog is None else backlog.handled.get(p)
            row: dict[str, Any] = {
                "partition": p,
                "end_offset": end,
                "log_start": start,
                "committed": handled,
                "lag": None,
                "lag_seconds": None,
            }
            if backlog is not None and backlog.pending is not None:
                done = max(start or 0, min(end, handled if handled is not None else 0))
                row["lag"] = max(0, end - done)
            rows.append(row)
        values: dict[str, float | None] = {
            "published_total": float(sum(end for _, end in known)),
            "queue_length": _pending(backlog) if is_dlt else None,
        }
        if dlq is not None:
            values["dlq_length"] = _pending(poll.backlogs.get(dlq))
        info: dict[str, Any] = {"partitions": rows}
        if backlog is not None:
            info["dead_letters_pending"] = backlog.pending
            info["dead_letters_retained"] = backlog.retained
            info["handled_by"] = ", ".join(backlog.handlers) or "nobody yet"
        return SeriesSample(
            key=SeriesKey(self.options.name, topic, None),
            kind="topic",
            values=values,
            dlq=dlq,
            info=info,
        )

    # -- collection --------------------------------------------------------------------

    async def collect(self) -> Collected:
        wire = self.wire
        age = time.monotonic() - wire.metadata_time
        if self._refresh_due or age >= self.options.discover_every:
            await wire.refresh_metadata()
            self._refresh_due = False
        topics = self._watched_topics()
        dlqs = {t: d for t in topics if (d := self._dlq_of(t)) is not None}
        poll = await self._read(topics, dlqs)
        self._clock.observe(poll.ends, poll.now)
        pairs = self._pairs(poll, set(topics))
        wanted: dict[Offset, None] = {}
        rows = {
            (gd.name, topic): self._partition_rows(gd, topic, poll, wanted)
            for gd, topic in pairs
            if gd.committed is not None
        }
        consumers_of: dict[str, set[str]] = {}
        for gd, topic in pairs:
            consumers_of.setdefault(topic, set()).add(gd.name)
        dlts = {d for d in dlqs.values() if d in wire.partitions}
        # a group's offsets read by partition name cover the watched topics only
        known = {} if wire.explicit_offsets else {g.name: g.committed for g in poll.groups}
        _, _, warnings = await asyncio.gather(
            self._clock.lookup(wire, list(wanted)),
            self._dead.update(wire, dlqs, consumers_of, poll.ends, poll.starts),
            self._backlog.update(
                wire, dlts, poll.listed, {g: c for g, c in known.items() if c is not None}
            ),
        )
        poll.warnings.extend(warnings)
        poll.backlogs = {
            d: self._backlog.of(d, wire.partitions.get(d, ()), poll.ends, poll.starts) for d in dlts
        }
        series = [
            self._group_sample(gd, topic, rows.get((gd.name, topic)), dlqs.get(topic), poll)
            for gd, topic in pairs
        ]
        consumed = set(consumers_of)
        for topic in topics:
            if topic not in consumed or topic in dlts:
                sample = self._topic_sample(topic, dlqs.get(topic), poll, topic in dlts)
                if sample is not None:
                    series.append(sample)
        self._clock.done()
        self._errors.keep((topic, gd.name) for gd, topic in pairs)
        self._status.forget_older_than(poll.now - 2 * self.options.group_status_window)
        return Collected(series=tuple(series), warnings=tuple(poll.warnings))


def _pending(backlog: Backlog | None) -> float | None:
    return None if backlog is None or backlog.pending is None else float(backlog.pending)


def _num(value: int | None) -> float | None:
    return None if value is None else float(value)


__all__ = ["KafkaCollector"]
