"""Dead letters per consumer group: who failed the records that arrive in a DLT."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from collectors.kafka.client import TP
from collectors.kafka.codecs import DeadLetters
from collectors.kafka.wire import MAX_FETCH_BYTES, KafkaWire

DLT_PARTITION_BYTES = 256 * 1024  # per DLT partition and poll, to attribute dead letters


class DeadLetterCounts:
    """Dead letters per (topic, consumer group), read from the headers of new DLT records.

    A DLT record counts for the group its ``kafka_dlt-original-consumer-group`` (or
    ``x-original-consumer-group``) header names and the topic its ``kafka_dlt-original-topic``
    (or ``x-original-topic``) header names; without a topic header, for the one topic the DLT
    serves (or the one of them the named group reads). A record without a group header counts
    for the topic's consuming group when exactly one watched group reads the topic. Any other
    record cannot be attributed: the topic's counts are then unknown (null) until its dead
    letters can be attributed again, and start over from zero.

    Only records that arrive after the DLT is first seen are read: each poll reads, from where
    the last one stopped, at most ``DLT_PARTITION_BYTES`` per partition (one Fetch per leader);
    a backlog is caught up over the next polls.
    """

    def __init__(self) -> None:
        self.cursor: dict[TP, int] = {}  # next DLT offset to read
        self.sizes: dict[TP, int] = {}  # fetch size for a partition whose batch was larger
        self.counts: dict[tuple[str, str, str], int] = {}  # (dlt, topic, group) -> records
        self.blocked: set[tuple[str, str]] = set()  # (dlt, topic) with unattributable records
        self.methods: dict[tuple[str, str], set[str]] = {}  # how records were attributed
        self._consumers: Mapping[str, set[str]] = {}
        self._attributed: set[tuple[str, str]] = set()  # this poll: (dlt, topic) counted
        self._unattributed: set[tuple[str, str]] = set()  # this poll: (dlt, topic) blocked

    async def update(
        self,
        wire: KafkaWire,
        dlqs: Mapping[str, str],
        consumers_of: Mapping[str, set[str]],
        ends: Mapping[TP, int],
        starts: Mapping[TP, int],
    ) -> None:
        """Read the dead letters that arrived since the last poll and attribute them."""
        served: dict[str, list[str]] = {}
        for topic, dlt in dlqs.items():
            served.setdefault(dlt, []).append(topic)
        read = {d: ts for d, ts in served.items() if any(consumers_of.get(t) for t in ts)}
        self._consumers = consumers_of
        self._attributed = set()
        self._unattributed = set()
        wanted, live = self._plan(wire, read, ends, starts)
        if wanted:
            found = await wire.fetch_dead_letters(wanted)
            for tp, result in found.items():
                if not isinstance(result, int):  # an error code: the next poll retries
                    await self._absorb(wire, tp, result, read[tp[0]])
        self._unblock(consumers_of)
        for tp in [tp for tp in self.cursor if tp not in live]:
            del self.cursor[tp]
            self.sizes.pop(tp, None)
        kept = {(d, t) for d, ts in read.items() for t in ts}
        self.counts = {k: v for k, v in self.counts.items() if (k[0], k[1]) in kept}
        self.blocked &= kept
        self.methods = {k: v for k, v in self.methods.items() if k in kept}

    def _plan(
        self,
        wire: KafkaWire,
        read: Mapping[str, list[str]],
        ends: Mapping[TP, int],
        starts: Mapping[TP, int],
    ) -> tuple[dict[TP, tuple[int, int]], set[TP]]:
        """What to fetch ({tp: (offset, bytes)}) and which partitions are still there."""
        wanted: dict[TP, tuple[int, int]] = {}
        live: set[TP] = set()
        for dlt, topics in read.items():
            for p in wire.partitions.get(dlt, ()):
                tp = (dlt, p)
                end = ends.get(tp)
                if end is None:
                    if tp in self.cursor:
                        live.add(tp)
                    continue
                live.add(tp)
                cur = self.cursor.get(tp)
                if cur is None:  # first seen: only what arrives from now on is counted
                    self.cursor[tp] = end
                    continue
                start = starts.get(tp, 0)
                if cur > end:  # the DLT was recreated: its records are all new
                    cur = start
                if cur < start:  # deleted by retention before they were read
                    self._attribute(dlt, topics, [(None, None)] * (start - cur))
                    cur = start
                self.cursor[tp] = cur
                if cur < end:
                    wanted[tp] = (cur, self.sizes.get(tp, DLT_PARTITION_BYTES))
        return wanted, live

    async def _absorb(
        self, wire: KafkaWire, tp: TP, result: DeadLetters, topics: Sequence[str]
    ) -> None:
        """Attribute what one DLT partition's read found and move its cursor."""
        dlt = tp[0]
        self._attribute(dlt, topics, result.origins)
        self._attribute(dlt, topics, [(None, None)] * result.unread)
        cur = self.cursor[tp]
        if result.need is not None:
            if result.need <= MAX_FETCH_BYTES:
                self.sizes[tp] = result.need
                return
            # a batch too large to read: passed over, its records unattributed
            skipped = await wire.batch_end(tp, cur)
            if skipped is None:
                return
            self._attribute(dlt, topics, [(None, None)] * (skipped - cur))
            result.next_offset = skipped
        self.sizes.pop(tp, None)
        self.cursor[tp] = max(cur, result.next_offset)

    def _unblock(self, consumers_of: Mapping[str, set[str]]) -> None:
        """A topic whose dead letters can be attributed again starts over from zero."""
        for key in list(self.blocked):
            dlt, topic = key
            if key in self._unattributed:
                continue
            if key in self._attributed or len(consumers_of.get(topic, ())) == 1:
                self.blocked.discard(key)
                for ckey in [k for k in self.counts if k[0] == dlt and k[1] == topic]:
                    del self.counts[ckey]

    def _attribute(
        self, dlt: str, topics: Sequence[str], origins: Iterable[tuple[str | None, str | None]]
    ) -> None:
        consumers_of = self._consumers
        for topic_h, group_h in origins:
            if topic_h is not None:
                if topic_h not in topics:
                    continue  # a dead letter of a topic this DLT does not serve here
                candidates = [topic_h]
            else:
                candidates = list(topics)
            candidates = [t for t in candidates if consumers_of.get(t)]
            if group_h is not None:
                candidates = [t for t in candidates if group_h in consumers_of[t]]
                if len(candidates) == 1:
                    self._count(dlt, candidates[0], group_h, "group header")
                    continue
            elif len(candidates) == 1 and len(consumers_of[candidates[0]]) == 1:
                (only,) = consumers_of[candidates[0]]
                self._count(dlt, candidates[0], only, "the topic's only group")
                continue
            for topic in candidates:  # several places it may belong to: it is nobody's
                self.blocked.add((dlt, topic))
                self._unattributed.add((dlt, topic))

    def _count(self, dlt: str, topic: str, group: str, method: str) -> None:
        key = (dlt, topic, group)
        self.counts[key] = self.counts.get(key, 0) + 1
        self._attributed.add((dlt, topic))
        self.methods.setdefault((dlt, topic), set()).add(method)

    def total(self, dlt: str, topic: str, group: str) -> tuple[float | None, str]:
        """(dead letters counted for the group on the topic, or None; how they were counted)."""
        if (dlt, topic) in self.blocked:
            return None, "unattributable: records name no consumer group and several groups read"
        methods = self.methods.get((dlt, topic))
        how = " and ".join(sorted(methods)) if methods else "none arrived yet"
        return float(self.counts.get((dlt, topic, group), 0)), how
