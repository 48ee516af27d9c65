"""Dead letters not yet handled: a DLT's records after the furthest position of its handlers.

Kafka cannot delete single records, so a replayed DLT keeps every record until retention (or a
purge) removes it. What counts for an operator is what nobody has dealt with yet. A DLT's
handlers are:

* mqtop's own unfiltered replay / move jobs from it (their progress groups, see
  :mod:`collectors.kafka.progress`): every record before their position was copied;
* the consumer groups named by ``dlq_groups`` (a service that re-drives or archives dead
  letters): every record before their committed offset was consumed.

Per partition the furthest of those positions wins; ``pending`` = Σ end - max(log start,
that position), ``retained`` = Σ end - log start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from collectors.base import matches_globs
from collectors.kafka.client import TP, short
from collectors.kafka.options import KafkaOptions
from collectors.kafka.progress import replayed_source
from collectors.kafka.wire import KafkaWire


@dataclass(frozen=True, slots=True)
class Backlog:
    """One DLT's dead letters: not yet handled, held, and by whom."""

    pending: int | None  # None when a handler's position could not be read
    retained: int
    handled: Mapping[int, int]  # partition -> furthest handled position
    handlers: tuple[str, ...]


@dataclass(slots=True)
class DltBacklog:
    """Reads the positions of every DLT's handlers, once per poll."""

    options: KafkaOptions
    handled: dict[TP, int] = field(default_factory=dict)
    handlers: dict[str, list[str]] = field(default_factory=dict)  # DLT -> handler groups
    failed: dict[str, str] = field(default_factory=dict)  # DLT -> why a position is unknown

    def _handles(self, group: str, dlts: Iterable[str]) -> list[str]:
        source = replayed_source(group)
        if source is not None:
            return [source] if source in dlts else []
        if self.options.dlq_groups and matches_globs(group, self.options.dlq_groups, ()):
            return list(dlts)
        return []

    async def update(
        self,
        wire: KafkaWire,
        dlts: set[str],
        groups: Iterable[str],
        known: Mapping[str, Mapping[TP, tuple[int, str]]],
    ) -> list[str]:
        """Read the handlers' positions on the DLTs; return warnings.

        ``known`` holds the committed offsets this poll already read (the watched groups);
        the other handlers are asked for the DLT partitions only, one OffsetFetch each.
        """
        self.handled, self.handlers, self.failed = {}, {}, {}
        wanted: dict[str, list[str]] = {}
        for group in sorted(set(groups)):
            handled = self._handles(group, dlts)
            if handled:
                wanted[group] = handled
                for dlt in handled:
                    self.handlers.setdefault(dlt, []).append(group)
        fetched = await asyncio.gather(
            *(self._offsets(wire, g, dlts, known) for g, dlts in wanted.items()),
            return_exceptions=True,
        )
        warnings: list[str] = []
        for (group, handled), result in zip(wanted.items(), fetched, strict=True):
            if isinstance(result, asyncio.CancelledError):
                raise result
            if isinstance(result, BaseException):
                for dlt in handled:
                    self.failed[dlt] = f"group {group}: {short(result)}"
                warnings.append(f"dead letters handled by group {group}: {short(result)}")
                continue
            for tp, (offset, _meta) in result.items():
                if tp[0] in handled:
                    self.handled[tp] = max(offset, self.handled.get(tp, offset))
        return warnings

    @staticmethod
    async def _offsets(
        wire: KafkaWire,
        group: str,
        dlts: list[str],
        known: Mapping[str, Mapping[TP, tuple[int, str]]],
    ) -> Mapping[TP, tuple[int, str]]:
        if group in known:
            return known[group]
        parts = {dlt: wire.partitions.get(dlt, []) for dlt in dlts}
        return await wire.offset_fetch(group, parts, by_partition=True)

    def of(
        self,
        dlt: str,
        partitions: Iterable[int],
        ends: Mapping[TP, int],
        starts: Mapping[TP, int],
    ) -> Backlog | None:
        """The backlog of one DLT, or None when its end offsets are not all known."""
        tps = [(dlt, p) for p in partitions]
        if not tps or any(tp not in ends for tp in tps):
            return None
        retained = pending = 0
        handled: dict[int, int] = {}
        for tp in tps:
            end, start = ends[tp], starts.get(tp, 0)
            retained += max(0, end - start)
            position = self.handled.get(tp)
            if position is not None:
                handled[tp[1]] = position
            done = start if position is None else min(end, max(start, position))
            pending += max(0, end - done)
        return Backlog(
            pending=None if dlt in self.failed else pending,
            retained=retained,
            handled=handled,
            handlers=tuple(self.handlers.get(dlt, ())),
        )
