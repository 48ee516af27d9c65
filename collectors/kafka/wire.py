"""The collector's Kafka client: one long-lived aiokafka client sending batched requests.

Every request covers many partitions or groups at once: ListOffsets and Fetch go once per
partition leader, DescribeGroups once per group coordinator, OffsetFetch once per group.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import IncompatibleBrokerVersion, KafkaConnectionError
from aiokafka.protocol.admin import ListGroupsRequest
from aiokafka.protocol.commit import OffsetCommitRequest, OffsetFetchRequest
from aiokafka.protocol.coordination import FindCoordinatorRequest
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.protocol.offset import OffsetRequest
from aiokafka.structs import TopicPartition

from collectors.kafka.client import (
    COORDINATOR_ERRORS,
    GROUP_ID_NOT_FOUND,
    LATEST,
    READ_COMMITTED,
    TP,
    KafkaProtocolError,
    client_kwargs,
    diagnose,
    error_name,
    quiet_client_logs,
    quiet_close,
    short,
)
from collectors.kafka.codecs import (
    DeadLetters,
    FetchRound,
    dead_letter_origins,
    decode_assignment,
    record_timestamps,
)
from collectors.kafka.options import KafkaOptions
from collectors.kafka.protocol import ConsumerGroupDescribe, DescribeGroupsV2

FIRST_FETCH_BYTES = 16 * 1024  # per partition: enough for the batch holding most records
MAX_FETCH_BYTES = 8 * 1024 * 1024  # cap of a retry for one large batch
# Fetch waits at most this long for min_bytes=1. Only records that exist are asked for, so
# Kafka answers at once; a zero wait is not used because tansu (and possibly other
# Kafka-compatible brokers) then answer with no data at all.
FETCH_WAIT_MS = 100
DLT_REQUEST_BYTES = 4 * 1024 * 1024  # per Fetch of dead letters (one per leader)
COORDINATOR_WAIT = 20.0  # seconds to wait for a group coordinator that is still starting


@dataclass(slots=True)
class GroupInfo:
    """DescribeGroups result for one group."""

    state: str | None
    protocol_type: str | None
    members: int | None
    assigned: dict[str, set[int]] = field(default_factory=dict)
    error: str | None = None


class KafkaWire:
    """One long-lived aiokafka client sending batched protocol requests."""

    def __init__(self, options: KafkaOptions, request_timeout: float = 10.0) -> None:
        self.options = options
        self.request_timeout = request_timeout
        self._client: AIOKafkaClient | None = None
        self._coordinators: dict[str, int] = {}
        self.leaders: dict[TP, int] = {}
        self.partitions: dict[str, list[int]] = {}
        self.internal: set[str] = set()
        self.metadata_time = -1e18
        self.explicit_offsets = False  # OffsetFetch names partitions (see offset_fetch)
        # the brokers lack ConsumerGroupDescribe (so there are no KIP-848 groups to ask about)
        self.no_consumer_group_describe = False

    @property
    def client(self) -> AIOKafkaClient:
        if self._client is None:
            raise RuntimeError("not connected")
        return self._client

    async def start(self) -> None:
        """Connect and read cluster metadata."""
        if self._client is None:
            quiet_client_logs()
            self._client = AIOKafkaClient(
                metadata_max_age_ms=3_600_000, **client_kwargs(self.options, self.request_timeout)
            )
            try:
                await self._client.bootstrap()
            except BaseException as exc:
                client, self._client = self._client, None
                await quiet_close(client)
                if isinstance(exc, KafkaConnectionError):
                    reason = await diagnose(self.options, self.request_timeout)
                    raise ConnectionError(
                        f"cannot connect to any of {self.options.address()}: {reason}"
                    ) from None
                raise
        await self.refresh_metadata()

    async def close(self) -> None:
        """Close every connection; never raises."""
        client, self._client = self._client, None
        if client is not None:
            await quiet_close(client)

    async def refresh_metadata(self) -> None:
        """Re-read topics, partitions and leaders (one Metadata request)."""

        client = self.client
        ok = await client.force_metadata_update()
        if not ok:
            raise ConnectionError("could not read cluster metadata from any broker")
        cluster = client.cluster
        leaders: dict[TP, int] = {}
        partitions: dict[str, list[int]] = {}
        every = cluster.topics(exclude_internal_topics=False)
        public = cluster.topics(exclude_internal_topics=True)
        for topic in every:
            parts = sorted(cluster.partitions_for_topic(topic) or ())
            partitions[topic] = parts
            for p in parts:
                leader = cluster.leader_for_partition(TopicPartition(topic, p))
                if leader is not None and leader >= 0:
                    leaders[(topic, p)] = leader
        self.leaders = leaders
        self.partitions = partitions
        self.internal = set(every) - set(public)
        self.metadata_time = time.monotonic()

    async def send(self, node: int, request: Any) -> Any:
        """Send one request to a broker, with the request timeout."""
        return await asyncio.wait_for(self.client.send(node, request), self.request_timeout)

    def any_node(self) -> int:
        """A broker to send cluster-wide requests to."""
        node = self.client.get_random_node()
        if node is None:
            raise ConnectionError("no broker known")
        return int(node)

    def brokers(self) -> list[int]:
        """Every known broker id."""
        return [int(b.nodeId) for b in self.client.cluster.brokers()]

    # -- offsets -----------------------------------------------------------------------

    async def list_offsets(
        self, tps: Iterable[TP], which: int = LATEST, isolation: int = 0
    ) -> tuple[dict[TP, int], set[TP]]:
        """Offsets by partition (latest, earliest or by timestamp): one request per leader.

        Returns (offsets, failed): partitions with a per-partition error or no leader are in
        ``failed`` (a refresh of metadata is due) instead of failing the whole call.
        """

        by_node: dict[int, dict[str, list[tuple[int, int]]]] = {}
        failed: set[TP] = set()
        for tp in tps:
            leader = self.leaders.get(tp)
            if leader is None:
                failed.add(tp)
                continue
            by_node.setdefault(leader, {}).setdefault(tp[0], []).append((tp[1], which))
        out: dict[TP, int] = {}

        async def one(node: int, topics: dict[str, list[tuple[int, int]]]) -> None:
            response = await self.send(node, OffsetRequest(-1, isolation, list(topics.items())))
            for topic, parts in response.topics:
                for part in parts:
                    partition, code = part[0], part[1]
                    if code:
                        failed.add((topic, partition))
                        continue
                    value = part[-1]
                    if isinstance(value, list):  # v0: a list of offsets
                        value = value[0] if value else -1
                    if value is not None and value >= 0:
                        out[(topic, partition)] = int(value)
                    else:
                        failed.add((topic, partition))

        await asyncio.gather(*(one(n, t) for n, t in by_node.items()))
        return out, failed

    # -- groups ------------------------------------------------------------------------

    async def coordinator(self, group: str) -> int:
        """The coordinator broker of a group (cached)."""
        cached = self._coordinators.get(group)
        if cached is not None:
            return cached

        # A fresh cluster creates __consumer_offsets on first use: the coordinator is
        # "loading" or "not available" for a few seconds. Those errors are retriable.
        delay = 0.1
        deadline = asyncio.get_running_loop().time() + COORDINATOR_WAIT
        while True:
            response = await self.send(self.any_node(), FindCoordinatorRequest(group, 0))
            code = response.error_code
            if not code:
                break
            if code not in COORDINATOR_ERRORS or asyncio.get_running_loop().time() >= deadline:
                raise KafkaProtocolError(code, f"group {group!r} coordinator")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
        node = int(response.coordinator_id)
        self._coordinators[group] = node
        return node

    def forget_coordinator(self, group: str) -> None:
        """Look the coordinator up again next time (it moved or was not ready)."""
        self._coordinators.pop(group, None)

    async def list_groups(self) -> list[tuple[str, str]]:
        """(group, protocol type) of every group on every broker."""

        async def one(node: int) -> list[tuple[str, str]]:
            response = await self.send(node, ListGroupsRequest())
            if response.error_code:
                raise KafkaProtocolError(response.error_code, "ListGroups")
            return [(str(g[0]), str(g[1])) for g in response.groups]

        found: dict[str, str] = {}
        for groups in await asyncio.gather(*(one(n) for n in self.brokers())):
            found.update(groups)
        return sorted(found.items())

    async def describe_groups(self, groups: Sequence[str]) -> dict[str, GroupInfo]:
        """State and members of groups: one DescribeGroups request per coordinator."""
        out: dict[str, GroupInfo] = {}
        by_node: dict[int, list[str]] = {}
        coordinators = await asyncio.gather(
            *(self.coordinator(g) for g in groups), return_exceptions=True
        )
        for group, node in zip(groups, coordinators, strict=True):
            if isinstance(node, BaseException):
                out[group] = GroupInfo(None, None, None, error=short(node))
            else:
                by_node.setdefault(node, []).append(group)

        await asyncio.gather(*(self._describe_on(n, names, out) for n, names in by_node.items()))
        return out

    async def _describe_on(self, node: int, names: list[str], out: dict[str, GroupInfo]) -> None:
        """DescribeGroups on one coordinator; groups it calls Dead asked again (KIP-848)."""
        try:
            response = await self.send(node, DescribeGroupsV2(names))
        except (TimeoutError, OSError, ConnectionError) as exc:
            for name in names:
                out[name] = GroupInfo(None, None, None, error=short(exc))
            return
        dead: list[str] = []
        for entry in response.groups:
            name, info = self._classic_group(entry)
            out[name] = info
            if info.state == "Dead" and not info.members:
                dead.append(name)
        if dead and not self.no_consumer_group_describe:
            # a KIP-848 group looks dead to DescribeGroups: ask the new protocol
            try:
                out.update(await self._describe_consumer_groups(node, dead))
            except (TimeoutError, OSError, ConnectionError) as exc:
                for name in dead:
                    out[name] = GroupInfo(None, None, None, error=short(exc))

    def _classic_group(self, entry: Any) -> tuple[str, GroupInfo]:
        """One group of a DescribeGroups answer."""
        code, name, state, protocol_type, _protocol, members = entry[:6]
        if code:
            if code in COORDINATOR_ERRORS:
                self.forget_coordinator(name)
            return name, GroupInfo(None, None, None, error=error_name(code))
        info = GroupInfo(str(state), str(protocol_type), len(members))
        if protocol_type == "consumer":
            for member in members:
                for topic, parts in decode_assignment(bytes(member[4] or b"")).items():
                    info.assigned.setdefault(topic, set()).update(parts)
        return name, info

    async def _describe_consumer_groups(self, node: int, names: list[str]) -> dict[str, GroupInfo]:
        """ConsumerGroupDescribe: state, members and assignment of KIP-848 groups. Groups it
        does not know (really dead ones) and brokers without the API are left out."""

        try:
            response = await self.send(node, ConsumerGroupDescribe(names))
        except IncompatibleBrokerVersion:
            self.no_consumer_group_describe = True
            return {}
        out: dict[str, GroupInfo] = {}
        for entry in response.groups:
            code, _message, name, state, *_epochs, members = entry[:8]
            if code == GROUP_ID_NOT_FOUND:
                continue
            if code:
                if code in COORDINATOR_ERRORS:
                    self.forget_coordinator(name)
                out[name] = GroupInfo(None, None, None, error=error_name(code))
                continue
            info = GroupInfo(str(state), "consumer", len(members))
            for member in members:
                for _topic_id, topic, parts, _tags in member[8][0] or ():
                    info.assigned.setdefault(str(topic), set()).update(parts or ())
            out[name] = info
        return out

    async def offset_fetch(
        self,
        group: str,
        partitions: Mapping[str, Sequence[int]] | None = None,
        *,
        by_partition: bool = False,
    ) -> dict[TP, tuple[int, str]]:
        """Committed offsets of a group, in one OffsetFetch: {tp: (offset, metadata)}.

        All of the group's offsets are asked for at once, unless ``by_partition`` (then only
        ``partitions`` are named). A broker that cannot answer "all offsets" (Kafka before
        0.10.2 answers with an error; some Kafka-compatible brokers drop the connection) is
        asked for ``partitions`` explicitly from then on.
        """

        node = await self.coordinator(group)
        explicit = (self.explicit_offsets or by_partition) and partitions is not None
        wanted = [(t, list(ps)) for t, ps in (partitions or {}).items()] if explicit else None
        try:
            response = await self.send(node, OffsetFetchRequest(group, wanted))
        except (KafkaConnectionError, IncompatibleBrokerVersion, ValueError):
            if not explicit and partitions is not None:
                self.explicit_offsets = True
            raise
        code = getattr(response, "error_code", 0)
        if code:
            if code in COORDINATOR_ERRORS:
                self.forget_coordinator(group)
            raise KafkaProtocolError(code, f"offsets of group {group!r}")
        out: dict[TP, tuple[int, str]] = {}
        for topic, parts in response.topics:
            for partition, offset, metadata, perr in parts:
                if perr:
                    if perr in COORDINATOR_ERRORS:
                        self.forget_coordinator(group)
                    raise KafkaProtocolError(perr, f"offsets of group {group!r}")
                if offset is not None and offset >= 0:
                    out[(topic, partition)] = (int(offset), metadata or "")
        return out

    async def offset_commit(self, group: str, offsets: Mapping[TP, tuple[int, str]]) -> None:
        """Commit offsets (with metadata) for a group nobody joins (generation -1)."""

        if not offsets:
            return
        topics: dict[str, list[tuple[int, int, str]]] = {}
        for (topic, partition), (offset, metadata) in offsets.items():
            topics.setdefault(topic, []).append((partition, offset, metadata))
        for attempt in range(3):
            node = await self.coordinator(group)
            response = await self.send(
                node, OffsetCommitRequest(group, -1, "", -1, list(topics.items()))
            )
            codes = {code for _, parts in response.topics for _, code in parts if code}
            if not codes:
                return
            if codes & COORDINATOR_ERRORS and attempt < 2:
                self.forget_coordinator(group)
                await asyncio.sleep(0.2 * (attempt + 1))
                continue
            raise KafkaProtocolError(min(codes), f"commit of group {group!r}")

    # -- records -----------------------------------------------------------------------

    async def fetch_timestamps(
        self, wanted: Mapping[TP, Sequence[int]], sizes: Mapping[TP, int] | None = None
    ) -> FetchRound:
        """Read records at ascending offsets of each partition: one Fetch per leader, from the
        first offset of each partition; later offsets are answered when the bytes reach them."""

        result = FetchRound()
        by_node: dict[int, dict[str, list[tuple[int, int, int]]]] = {}
        for tp, offsets in wanted.items():
            leader = self.leaders.get(tp)
            if leader is None:
                result.unreadable.update((tp[0], tp[1], o) for o in offsets)
                continue
            size = (sizes or {}).get(tp, FIRST_FETCH_BYTES)
            entry = (tp[1], offsets[0], size)
            by_node.setdefault(leader, {}).setdefault(tp[0], []).append(entry)

        async def one(node: int, topics: dict[str, list[tuple[int, int, int]]]) -> None:
            total = sum(size for parts in topics.values() for _, _, size in parts)
            request = FetchRequest(
                FETCH_WAIT_MS, 1, min(total, 64 * 1024 * 1024), 0, list(topics.items())
            )
            response = await self.send(node, request)
            for topic, parts in response.topics:
                for part in parts:
                    partition, code, raw = part[0], part[1], part[-1]
                    offsets = wanted.get((topic, partition))
                    if not offsets:
                        continue
                    if code or not raw:
                        # an error, or the response budget ran out before this partition
                        if code:
                            result.unreadable.add((topic, partition, offsets[0]))
                        continue
                    found, need = record_timestamps(raw, offsets)
                    for offset, ts in found.items():
                        result.timestamps[(topic, partition, offset)] = ts
                    if not found:
                        if need is not None and need <= MAX_FETCH_BYTES:
                            result.retry[(topic, partition)] = need
                        else:
                            result.unreadable.add((topic, partition, offsets[0]))

        await asyncio.gather(*(one(n, t) for n, t in by_node.items()))
        return result

    async def fetch_dead_letters(
        self, wanted: Mapping[TP, tuple[int, int]]
    ) -> dict[TP, DeadLetters | int]:
        """Read DLT partitions from {tp: (offset, bytes)} (read_committed), one Fetch per
        leader: {tp: what was found, or the Kafka error code}."""

        by_node: dict[int, dict[str, list[tuple[int, int, int]]]] = {}
        for tp, (offset, size) in wanted.items():
            leader = self.leaders.get(tp)
            if leader is not None:
                entry = (tp[1], offset, size)
                by_node.setdefault(leader, {}).setdefault(tp[0], []).append(entry)
        out: dict[TP, DeadLetters | int] = {}

        async def one(node: int, topics: dict[str, list[tuple[int, int, int]]]) -> None:
            request = FetchRequest(
                FETCH_WAIT_MS, 1, DLT_REQUEST_BYTES, READ_COMMITTED, list(topics.items())
            )
            response = await self.send(node, request)
            for topic, parts in response.topics:
                for part in parts:
                    tp = (topic, part[0])
                    if tp not in wanted:
                        continue
                    code, raw = part[1], part[-1]
                    if code:
                        out[tp] = int(code)
                        continue
                    aborted = part[-2] if len(part) <= 7 else part[5]
                    out[tp] = dead_letter_origins(raw or b"", wanted[tp][0], aborted)

        await asyncio.gather(*(one(n, t) for n, t in by_node.items()))
        return out

    async def batch_end(self, tp: TP, offset: int) -> int | None:
        """The offset after the batch holding ``offset`` (from its header alone)."""
        leader = self.leaders.get(tp)
        if leader is None:
            return None
        request = FetchRequest(
            FETCH_WAIT_MS, 1, 64, READ_COMMITTED, [(tp[0], [(tp[1], offset, 64)])]
        )
        response = await self.send(leader, request)
        for _topic, parts in response.topics:
            for part in parts:
                raw = part[-1]
                if part[0] == tp[1] and not part[1] and raw and len(raw) >= 27:
                    base, _length = struct.unpack_from(">qi", raw, 0)
                    (delta,) = struct.unpack_from(">i", raw, 23)
                    return max(offset + 1, int(base) + int(delta) + 1)
        return None
