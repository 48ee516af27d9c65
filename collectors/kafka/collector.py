"""Kafka collector: consumer lag in messages and seconds, group status, DLT inflow.

One long-lived aiokafka client per broker sends batched protocol requests (see docs/kafka.md):

* Metadata (topics, partitions, leaders) on start and every ``discover_every``;
* ListOffsets, latest and earliest, for every watched partition: one request per partition
  leader per poll, never one per partition;
* ListGroups (one per broker), DescribeGroups (one per group coordinator; groups it calls
  Dead are asked again with ConsumerGroupDescribe, as KIP-848 groups look dead to it),
  OffsetFetch (one per group, all of its committed offsets at once);
* Fetch of the single record at each lagging group's position, for consumer_lag_seconds, within
  a per-poll budget and cached by offset; beyond the budget (or when the record cannot be read)
  the time is interpolated from the history of end offsets, as kafka-lag-exporter does, or,
  for a record older than that history, reported as a flagged lower bound (never extrapolated);
* Fetch of the dead letters that arrived since the last poll (headers only matter), within a
  per-poll byte budget, to attribute DLT inflow to consumer groups.

Series: one per group x topic (label ``group`` = consumer group) and one with group null for a
topic no watched group consumes. ``published_total`` = sum of end offsets, ``processed_total`` =
sum of consumed positions (committed offset, or the log start where the group has none), so the
store derives publish_rate and processing_rate; ``dead_lettered_total`` of a group x topic counts
the DLT records attributed to that group (group header, or the topic's only group; null when
they cannot be attributed), which makes error_rate = the group's dead letters / (its processing
+ its dead letters).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import struct
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from collectors.base import (
    BrokerOptions,
    Collected,
    CollectorPlugin,
    MessageActions,
    MoveOptions,
    dlq_candidates,
    matches_globs,
)
from collectors.group_status import StatusTracker, Verdict, combine
from mqtop.kernel.durations import Duration
from mqtop.kernel.model import SeriesKey, SeriesSample
from mqtop.kernel.secrets import Password

if TYPE_CHECKING:
    import ssl

    from aiokafka.client import AIOKafkaClient

TP = tuple[str, int]
LATEST = -1
EARLIEST = -2
FIRST_FETCH_BYTES = 16 * 1024  # per partition: enough for the batch holding most records
MAX_FETCH_BYTES = 8 * 1024 * 1024  # cap of a retry for one large batch
# Fetch waits at most this long for min_bytes=1. Only records that exist are asked for, so
# Kafka answers at once; a zero wait is not used because tansu (and possibly other
# Kafka-compatible brokers) then answer with no data at all.
FETCH_WAIT_MS = 100
DLT_PARTITION_BYTES = 256 * 1024  # per DLT partition and poll, to attribute dead letters
DLT_REQUEST_BYTES = 4 * 1024 * 1024  # per Fetch of dead letters (one per leader)
GROUP_HEADERS = ("kafka_dlt-original-consumer-group", "x-original-consumer-group")
TOPIC_HEADERS = ("kafka_dlt-original-topic", "x-original-topic")
READ_COMMITTED = 1
# group states with members at work: classic (DescribeGroups) and KIP-848 (ConsumerGroupDescribe)
ACTIVE_STATES = frozenset(
    {"Stable", "PreparingRebalance", "CompletingRebalance", "Assigning", "Reconciling"}
)
GROUP_ID_NOT_FOUND = 69


class KafkaOptions(BrokerOptions):
    """An Apache Kafka (or Kafka-protocol) cluster."""

    type: Literal["kafka"] = "kafka"
    bootstrap_servers: list[str] = Field(
        default_factory=lambda: ["localhost:9092"],
        description="host:port of one or more brokers (a list, or one comma-separated string).",
    )
    groups: list[str] = Field(
        default_factory=lambda: ["*"], description="Glob patterns of consumer groups to watch."
    )
    exclude_groups: list[str] = Field(
        default_factory=lambda: ["mqtop-replay*"],
        description="Glob patterns of consumer groups to ignore (mqtop's replay progress "
        "groups by default).",
    )
    topics: list[str] = Field(
        default_factory=lambda: ["*"],
        description="Glob patterns of topics to watch; include/exclude apply on top.",
    )
    internal_topics: bool = Field(
        False, description="Also watch internal topics (__consumer_offsets, ...)."
    )
    client_id: str = Field("mqtop", description="Client id sent to the brokers.")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Transport: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism (with a SASL_* security_protocol)."
    )
    sasl_username: str | None = Field(None, description="SASL user name.")
    sasl_password: Password | None = Field(None, description="SASL password (masked).")
    ssl_cafile: str | None = Field(None, description="CA bundle that signed the brokers' certs.")
    ssl_certfile: str | None = Field(None, description="Client certificate (mutual TLS).")
    ssl_keyfile: str | None = Field(None, description="Client private key (mutual TLS).")
    ssl_keyfile_password: Password | None = Field(
        None, description="Password of the client private key (masked)."
    )
    tls_verify: bool = Field(
        True, description="Verify broker certificates and host names (SSL, SASL_SSL)."
    )
    lag_seconds_budget: int = Field(
        1000,
        ge=0,
        le=1_000_000,
        description="Records read per poll to time lagging partitions; the rest are "
        "timed from the end-offset history (interpolated, or a flagged lower bound).",
    )
    lag_history: Duration = Field(
        3600.0, description="How much end-offset history is kept to time lag without reading."
    )
    group_status_window: Duration = Field(
        300.0, description="Sliding window of the group status evaluator."
    )
    discover_every: Duration = Field(
        30.0, description="How often topics and partition leaders are re-read."
    )
    replay_batch: int = Field(
        5000,
        ge=1,
        le=1_000_000,
        description="Records per replay batch: the bound on duplicates after a crash.",
    )

    @field_validator("bootstrap_servers", mode="before")
    @classmethod
    def _split_servers(cls, value: object) -> object:
        if isinstance(value, str):
            value = [s.strip() for s in value.split(",") if s.strip()]
        return value

    @field_validator("bootstrap_servers")
    @classmethod
    def _check_servers(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one host:port is needed")
        for server in value:
            host, sep, port = server.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"{server!r}: expected host:port")
        return value

    @model_validator(mode="after")
    def _check_security(self) -> KafkaOptions:
        sasl = self.security_protocol.startswith("SASL_")
        if sasl:
            if self.sasl_mechanism is None:
                raise ValueError(f"security_protocol {self.security_protocol} needs sasl_mechanism")
            if not self.sasl_username or self.sasl_password is None:
                raise ValueError("SASL needs sasl_username and sasl_password")
        elif self.sasl_mechanism is not None:
            raise ValueError("sasl_mechanism needs security_protocol SASL_PLAINTEXT or SASL_SSL")
        if not self.security_protocol.endswith("SSL"):
            for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
                if getattr(self, key):
                    raise ValueError(f"{key} needs security_protocol SSL or SASL_SSL")
        return self

    def address(self) -> str:
        return ",".join(self.bootstrap_servers)

    def wants_group(self, group: str) -> bool:
        """Apply the group globs."""
        return matches_globs(group, self.groups, self.exclude_groups)

    def wants_topic(self, topic: str) -> bool:
        """Apply the topic globs and include/exclude."""
        return matches_globs(topic, self.topics, ()) and self.wants(topic)


# ---------------------------------------------------------------- client and wire


def ssl_context(options: KafkaOptions) -> ssl.SSLContext | None:
    """TLS context for SSL / SASL_SSL (verification on unless tls_verify is false)."""
    if not options.security_protocol.endswith("SSL"):
        return None
    import ssl as ssl_module

    from aiokafka.helpers import create_ssl_context

    password = (
        options.ssl_keyfile_password.get_secret_value() if options.ssl_keyfile_password else None
    )
    context: ssl.SSLContext = create_ssl_context(
        cafile=options.ssl_cafile,
        certfile=options.ssl_certfile,
        keyfile=options.ssl_keyfile,
        password=password,
    )
    if not options.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl_module.CERT_NONE
    return context


def client_kwargs(options: KafkaOptions, request_timeout: float = 10.0) -> dict[str, Any]:
    """Keyword arguments shared by aiokafka clients, consumers and producers."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": list(options.bootstrap_servers),
        "client_id": options.client_id,
        "request_timeout_ms": int(request_timeout * 1000),
        "security_protocol": options.security_protocol,
    }
    context = ssl_context(options)
    if context is not None:
        kwargs["ssl_context"] = context
    if options.sasl_mechanism is not None:
        kwargs["sasl_mechanism"] = options.sasl_mechanism
        kwargs["sasl_plain_username"] = options.sasl_username
        kwargs["sasl_plain_password"] = (
            options.sasl_password.get_secret_value() if options.sasl_password else None
        )
    return kwargs


def quiet_client_logs() -> None:
    """aiokafka logs every failed connection at ERROR; mqtop reports them itself (broker status,
    one-line errors), so its logger is silenced unless mqtop runs at debug level."""
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


class KafkaProtocolError(Exception):
    """A Kafka error code in a response (message names the error, never a secret)."""

    def __init__(self, code: int, what: str) -> None:
        self.code = code
        super().__init__(f"{what}: {error_name(code)}")


def error_name(code: int) -> str:
    """Readable name of a Kafka error code."""
    from aiokafka.errors import for_code

    try:
        return str(for_code(code).__name__)
    except Exception:
        return f"error {code}"


COORDINATOR_ERRORS = frozenset({14, 15, 16})  # load in progress, not available, not coordinator
COORDINATOR_WAIT = 20.0  # seconds to wait for a group coordinator that is still starting
LEADER_ERRORS = frozenset({3, 5, 6})  # unknown topic/partition, leader not available, not leader


@functools.cache
def _consumer_group_describe_class() -> Any:
    """ConsumerGroupDescribe (API 69, v0, flexible): groups of the KIP-848 protocol, which
    the classic DescribeGroups reports as ``Dead`` with no members. aiokafka 0.14 has no
    such request; the schema is Kafka's ConsumerGroupDescribe{Request,Response}.json."""
    from io import BytesIO

    from aiokafka.protocol.abstract import AbstractType
    from aiokafka.protocol.api import Request, RequestStruct, Response
    from aiokafka.protocol.types import (
        Boolean,
        CompactArray,
        CompactString,
        Int16,
        Int32,
        Schema,
        TaggedFields,
    )

    class Uuid(AbstractType[bytes]):  # type: ignore[misc]
        @classmethod
        def encode(cls, value: bytes) -> bytes:
            return value

        @classmethod
        def decode(cls, data: BytesIO) -> bytes:
            return data.read(16)

    text = CompactString("utf-8")
    assignment = Schema(
        (
            "topic_partitions",
            CompactArray(
                ("topic_id", Uuid),
                ("topic_name", text),
                ("partitions", CompactArray(Int32)),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )

    class ConsumerGroupDescribeResponse_v0(Response):  # type: ignore[misc]
        API_KEY = 69
        API_VERSION = 0
        SCHEMA = Schema(
            ("throttle_time_ms", Int32),
            (
                "groups",
                CompactArray(
                    ("error_code", Int16),
                    ("error_message", text),
                    ("group_id", text),
                    ("group_state", text),
                    ("group_epoch", Int32),
                    ("assignment_epoch", Int32),
                    ("assignor_name", text),
                    (
                        "members",
                        CompactArray(
                            ("member_id", text),
                            ("instance_id", text),
                            ("rack_id", text),
                            ("member_epoch", Int32),
                            ("client_id", text),
                            ("client_host", text),
                            ("subscribed_topic_names", CompactArray(text)),
                            ("subscribed_topic_regex", text),
                            ("assignment", assignment),
                            ("target_assignment", assignment),
                            ("tags", TaggedFields),
                        ),
                    ),
                    ("authorized_operations", Int32),
                    ("tags", TaggedFields),
                ),
            ),
            ("tags", TaggedFields),
        )

    class ConsumerGroupDescribeRequest_v0(RequestStruct):  # type: ignore[misc]
        FLEXIBLE_VERSION = True
        API_KEY = 69
        API_VERSION = 0
        RESPONSE_TYPE = ConsumerGroupDescribeResponse_v0
        SCHEMA = Schema(
            ("group_ids", CompactArray(text)),
            ("include_authorized_operations", Boolean),
            ("tags", TaggedFields),
        )

    class ConsumerGroupDescribe(Request[ConsumerGroupDescribeRequest_v0]):  # type: ignore[misc]
        API_KEY = 69

        def __init__(self, names: list[str]) -> None:
            self._names = names

        def build(self, request_struct_class: type[ConsumerGroupDescribeRequest_v0]) -> Any:
            return request_struct_class(self._names, False, {})

    return ConsumerGroupDescribe


@dataclass(slots=True)
class GroupInfo:
    """DescribeGroups result for one group."""

    state: str | None
    protocol_type: str | None
    members: int | None
    assigned: dict[str, set[int]] = field(default_factory=dict)
    error: str | None = None


def decode_assignment(raw: bytes) -> dict[str, list[int]]:
    """Topics/partitions of a consumer-protocol member assignment (empty if unreadable)."""
    out: dict[str, list[int]] = {}
    try:
        pos = 2  # version
        (count,) = struct.unpack_from(">i", raw, pos)
        pos += 4
        for _ in range(max(count, 0)):
            (length,) = struct.unpack_from(">h", raw, pos)
            pos += 2
            topic = raw[pos : pos + length].decode("utf-8")
            pos += length
            (n,) = struct.unpack_from(">i", raw, pos)
            pos += 4
            parts = list(struct.unpack_from(f">{max(n, 0)}i", raw, pos))
            pos += 4 * max(n, 0)
            out[topic] = parts
    except (struct.error, UnicodeDecodeError):
        return {}
    return out


def _describe_groups_request(groups: list[str]) -> Any:
    """DescribeGroups pinned to v2: aiokafka 0.14 decodes v3 answers with the v2 schema, which
    breaks as soon as a request names two groups."""
    from aiokafka.protocol.admin import DescribeGroupsRequest_v2
    from aiokafka.protocol.api import Request

    class _DescribeGroupsV2(Request[DescribeGroupsRequest_v2]):  # type: ignore[misc]
        API_KEY = 15

        def __init__(self, names: list[str]) -> None:
            self._names = names

        def build(self, request_struct_class: type[DescribeGroupsRequest_v2]) -> Any:
            return request_struct_class(self._names)

    return _DescribeGroupsV2(groups)


@dataclass(slots=True)
class FetchRound:
    """What one Fetch round found: timestamps, sizes to retry with, unreadable offsets."""

    timestamps: dict[tuple[str, int, int], int] = field(default_factory=dict)
    retry: dict[TP, int] = field(default_factory=dict)
    unreadable: set[tuple[str, int, int]] = field(default_factory=set)


def record_timestamps(
    raw: bytes | memoryview, targets: Sequence[int]
) -> tuple[dict[int, int], int | None]:
    """Timestamps (ms) of the first data record at or after each target offset.

    ``targets`` are ascending; the fetch started at the batch holding the first one. Returns
    ({target: timestamp} for the targets the bytes answer, bytes needed or None): the second
    value is set when the batch holding the first unanswered target was cut short by the
    fetch size.
    """
    from aiokafka.record.default_records import DefaultRecordBatch

    found: dict[int, int] = {}
    buf = memoryview(raw)
    size = len(buf)
    pos = 0
    i = 0  # next target to answer
    n = len(targets)
    while i < n and pos + 17 <= size:
        (length,) = struct.unpack_from(">i", buf, pos + 8)
        end = pos + 12 + length
        if end > size:
            return found, end
        if buf[pos + 16] < 2:  # pre-0.11 message sets: not produced by any supported broker
            return found, None
        batch = DefaultRecordBatch(buf[pos:end])
        pos = end
        if batch.is_control_batch or batch.next_offset <= targets[i]:
            continue
        for record in batch:
            offset = record.offset
            while i < n and targets[i] <= offset:
                found[targets[i]] = int(record.timestamp)
                i += 1
            if i == n:
                break
    if i < n and not found and size > pos:
        return found, pos + 4096  # even a batch header was cut: ask for a little more
    return found, None


@dataclass(slots=True)
class DeadLetters:
    """What one read of a DLT partition found."""

    origins: list[tuple[str | None, str | None]] = field(default_factory=list)  # (topic, group)
    next_offset: int = 0  # where the next read starts
    unread: int = 0  # records passed over without their headers (a batch too large to read)
    need: int | None = None  # bytes the first batch needs, when it was cut short


def _header_text(headers: Sequence[tuple[str, bytes | None]], names: Sequence[str]) -> str | None:
    for name in names:
        for key, value in reversed(headers):
            if key == name and value:
                try:
                    return bytes(value).decode("utf-8")
                except UnicodeDecodeError:
                    return None
    return None


def dead_letter_origins(raw: bytes | memoryview, start: int, aborted: Any) -> DeadLetters:
    """Original topic and consumer group (from Spring Kafka's ``kafka_dlt-original-*`` or the
    ``x-original-*`` headers; None when absent) of the committed records from ``start``.

    ``raw`` is a read_committed Fetch answer: control batches and the batches of aborted
    transactions (``aborted``: (producer id, first offset) pairs) are skipped.
    """
    from aiokafka.record.control_record import ABORT_MARKER, ControlRecord
    from aiokafka.record.default_records import DefaultRecordBatch

    out = DeadLetters(next_offset=start)
    buf = memoryview(raw)
    size = len(buf)
    txns = sorted(aborted or (), key=lambda x: x[1])
    aborted_pids: set[int] = set()
    pos = 0
    while pos + 61 <= size:
        base, length = struct.unpack_from(">qi", buf, pos)
        end = pos + 12 + length
        (delta,) = struct.unpack_from(">i", buf, pos + 23)
        if end > size:
            if pos == 0:
                out.need = 12 + length
            break
        batch_next = base + delta + 1
        if buf[pos + 16] < 2:  # pre-0.11 message set: no headers to read
            out.unread += max(0, batch_next - max(out.next_offset, base))
            out.next_offset = max(out.next_offset, batch_next)
            pos = end
            continue
        batch = DefaultRecordBatch(buf[pos:end])
        pos = end
        if batch_next <= out.next_offset:
            continue
        skip = False
        pid = batch.producer_id
        if pid is not None and pid >= 0:
            while txns and txns[0][1] <= base:
                aborted_pids.add(txns.pop(0)[0])
            if batch.is_control_batch:
                marker = next(iter(batch), None)
                if marker is not None and ControlRecord.parse(marker.key) == ABORT_MARKER:
                    aborted_pids.discard(pid)
                skip = True
            elif batch.is_transactional and pid in aborted_pids:
                skip = True
        if not skip and not batch.is_control_batch:
            for record in batch:
                if record.offset >= out.next_offset:
                    headers = record.headers
                    out.origins.append(
                        (_header_text(headers, TOPIC_HEADERS), _header_text(headers, GROUP_HEADERS))
                    )
        out.next_offset = batch_next
    return out


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
            from aiokafka.client import AIOKafkaClient
            from aiokafka.errors import KafkaConnectionError

            quiet_client_logs()
            self._client = AIOKafkaClient(
                metadata_max_age_ms=3_600_000, **client_kwargs(self.options, self.request_timeout)
            )
            try:
                await self._client.bootstrap()
            except BaseException as exc:
                client, self._client = self._client, None
                await _quiet_close(client)
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
            await _quiet_close(client)

    async def refresh_metadata(self) -> None:
        """Re-read topics, partitions and leaders (one Metadata request)."""
        from aiokafka.structs import TopicPartition

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
        from aiokafka.protocol.offset import OffsetRequest

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
        from aiokafka.protocol.coordination import FindCoordinatorRequest

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
        from aiokafka.protocol.admin import ListGroupsRequest

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
                out[group] = GroupInfo(None, None, None, error=_short(node))
            else:
                by_node.setdefault(node, []).append(group)

        async def one(node: int, names: list[str]) -> None:
            try:
                response = await self.send(node, _describe_groups_request(names))
            except (TimeoutError, OSError, ConnectionError) as exc:
                for name in names:
                    out[name] = GroupInfo(None, None, None, error=_short(exc))
                return
            dead: list[str] = []
            for entry in response.groups:
                code, name, state, protocol_type, _protocol, members = entry[:6]
                if code:
                    if code in COORDINATOR_ERRORS:
                        self.forget_coordinator(name)
                    out[name] = GroupInfo(None, None, None, error=error_name(code))
                    continue
                info = GroupInfo(str(state), str(protocol_type), len(members))
                if protocol_type == "consumer":
                    for member in members:
                        for topic, parts in decode_assignment(bytes(member[4] or b"")).items():
                            info.assigned.setdefault(topic, set()).update(parts)
                out[name] = info
                if state == "Dead" and not members:
                    dead.append(name)
            if dead and not self.no_consumer_group_describe:
                # a KIP-848 group looks dead to DescribeGroups: ask the new protocol
                try:
                    out.update(await self._describe_consumer_groups(node, dead))
                except (TimeoutError, OSError, ConnectionError) as exc:
                    for name in dead:
                        out[name] = GroupInfo(None, None, None, error=_short(exc))

        await asyncio.gather(*(one(n, names) for n, names in by_node.items()))
        return out

    async def _describe_consumer_groups(self, node: int, names: list[str]) -> dict[str, GroupInfo]:
        """ConsumerGroupDescribe: state, members and assignment of KIP-848 groups. Groups it
        does not know (really dead ones) and brokers without the API are left out."""
        from aiokafka.errors import IncompatibleBrokerVersion

        try:
            response = await self.send(node, _consumer_group_describe_class()(names))
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
        from aiokafka.errors import IncompatibleBrokerVersion, KafkaConnectionError
        from aiokafka.protocol.commit import OffsetFetchRequest

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
        from aiokafka.protocol.commit import OffsetCommitRequest

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
        from aiokafka.protocol.fetch import FetchRequest

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
        from aiokafka.protocol.fetch import FetchRequest

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


async def diagnose(options: KafkaOptions, wait: float) -> str:
    """Why the first bootstrap server refuses us, in one line without secrets."""
    from aiokafka.conn import create_conn
    from aiokafka.errors import SaslAuthenticationFailed, UnsupportedSaslMechanismError

    host, _, port = options.bootstrap_servers[0].rpartition(":")
    kwargs = client_kwargs(options, wait)
    del kwargs["bootstrap_servers"]
    try:
        conn = await asyncio.wait_for(create_conn(host, int(port), **kwargs), wait)
    except SaslAuthenticationFailed as exc:
        detail = str(exc).split(":", 1)[-1].strip() or "invalid credentials"
        return (
            f"authentication failed (SASL {options.sasl_mechanism} as "
            f"{options.sasl_username!r}): {detail}"
        )
    except UnsupportedSaslMechanismError:
        return f"the broker does not accept SASL mechanism {options.sasl_mechanism}"
    except TimeoutError:
        return f"no answer within {wait:g}s"
    except ConnectionRefusedError:
        return "connection refused"
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    except Exception as exc:
        return _short(exc)
    conn.close()
    if options.security_protocol != "PLAINTEXT":
        return "connected, but the broker closed the connection (security settings?)"
    return "the broker closed the connection (is it a Kafka listener with this protocol?)"


async def _quiet_close(client: Any) -> None:
    try:
        await asyncio.wait_for(client.close(), 10)
    except Exception:  # noqa: S110 - closing must never raise
        pass


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ---------------------------------------------------------------- end-offset history


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


# ---------------------------------------------------------------- dead-letter attribution


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
        if wanted:
            found = await wire.fetch_dead_letters(wanted)
            for tp, result in found.items():
                if isinstance(result, int):
                    continue  # an error (moved leader, records deleted): next poll retries
                dlt = tp[0]
                self._attribute(dlt, read[dlt], result.origins)
                self._attribute(dlt, read[dlt], [(None, None)] * result.unread)
                cur = self.cursor[tp]
                if result.need is not None:
                    if result.need <= MAX_FETCH_BYTES:
                        self.sizes[tp] = result.need
                        continue
                    # a batch too large to read: passed over, its records unattributed
                    skipped = await self._batch_end(wire, tp, cur)
                    if skipped is None:
                        continue
                    self._attribute(dlt, read[dlt], [(None, None)] * (skipped - cur))
                    result.next_offset = skipped
                self.sizes.pop(tp, None)
                self.cursor[tp] = max(cur, result.next_offset)
        # a topic whose dead letters can be attributed again starts over from zero
        for key in list(self.blocked):
            dlt, topic = key
            if key in self._unattributed:
                continue
            if key in self._attributed or len(consumers_of.get(topic, ())) == 1:
                self.blocked.discard(key)
                for ckey in [k for k in self.counts if k[0] == dlt and k[1] == topic]:
                    del self.counts[ckey]
        for tp in [tp for tp in self.cursor if tp not in live]:
            del self.cursor[tp]
            self.sizes.pop(tp, None)
        kept = {(d, t) for d, ts in read.items() for t in ts}
        self.counts = {k: v for k, v in self.counts.items() if (k[0], k[1]) in kept}
        self.blocked &= kept
        self.methods = {k: v for k, v in self.methods.items() if k in kept}

    async def _batch_end(self, wire: KafkaWire, tp: TP, offset: int) -> int | None:
        """The offset after the batch holding ``offset`` (from its header alone)."""
        from aiokafka.protocol.fetch import FetchRequest

        leader = wire.leaders.get(tp)
        if leader is None:
            return None
        request = FetchRequest(
            FETCH_WAIT_MS, 1, 64, READ_COMMITTED, [(tp[0], [(tp[1], offset, 64)])]
        )
        response = await wire.send(leader, request)
        for _topic, parts in response.topics:
            for part in parts:
                raw = part[-1]
                if part[0] == tp[1] and not part[1] and raw and len(raw) >= 27:
                    base, _length = struct.unpack_from(">qi", raw, 0)
                    (delta,) = struct.unpack_from(">i", raw, 23)
                    return max(offset + 1, int(base) + int(delta) + 1)
        return None

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


# ---------------------------------------------------------------- collector


@dataclass(slots=True)
class _GroupData:
    name: str
    committed: dict[TP, tuple[int, str]] | None
    info: GroupInfo | None
    error: str | None = None


class KafkaCollector:
    """Reads offsets, groups and record timestamps of one Kafka cluster."""

    def __init__(self, options: KafkaOptions) -> None:
        self.options = options
        self._wire: KafkaWire | None = None
        self._actions: MessageActions | None = None
        self._status = StatusTracker(options.group_status_window)
        self._history: dict[TP, OffsetHistory] = {}
        self._ts_cache: dict[tuple[str, int, int], int] = {}
        self._rotation = 0
        self._group_topics: dict[str, set[str]] = {}
        self._refresh_due = True
        self._explicit_offsets = False  # learnt from the broker; survives reconnections
        self._offsets_probed = False
        self._dead = DeadLetterCounts()

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
        try:
            from collectors.kafka.actions import KafkaActions
        except ImportError:
            return None
        if self._actions is None:
            self._actions = KafkaActions(self.options)
        return self._actions

    # -- helpers -----------------------------------------------------------------------

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

    # -- collection --------------------------------------------------------------------

    async def collect(self) -> Collected:
        wire = self.wire
        warnings: list[str] = []
        age = time.monotonic() - wire.metadata_time
        if self._refresh_due or age >= self.options.discover_every:
            await wire.refresh_metadata()
            self._refresh_due = False
        now = time.time()
        topics = self._watched_topics()
        dlqs = {t: d for t in topics if (d := self._dlq_of(t)) is not None}
        measured = sorted(set(topics) | {d for d in dlqs.values() if d in wire.partitions})
        tps = [(t, p) for t in measured for p in wire.partitions.get(t, ())]

        watched_parts = {t: wire.partitions.get(t, []) for t in topics}
        try:
            listed = await wire.list_groups()
        except KafkaProtocolError as exc:  # e.g. coordinator still loading: topics still count
            warnings.append(f"consumer groups unavailable: {exc}")
            listed = []
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
            if isinstance(result, BaseException):
                if isinstance(result, asyncio.CancelledError):
                    raise result
                data.append(_GroupData(group, None, info, _short(result)))
                warnings.append(f"group {group}: {_short(result)}")
            else:
                data.append(_GroupData(group, result, info))

        horizon = self.options.lag_history
        for tp, end in ends.items():
            hist = self._history.get(tp)
            if hist is None:
                hist = self._history[tp] = OffsetHistory()
            hist.add(now, end, horizon)

        watched = set(topics)
        # which topics each group consumes: committed offsets and member assignments
        pairs: list[tuple[_GroupData, str]] = []
        consumed: set[str] = set()
        for gd in data:
            if gd.committed is None:
                names = self._group_topics.get(gd.name, set())
            else:
                names = {t for t, _ in gd.committed}
                if gd.info is not None:
                    names |= set(gd.info.assigned)
                names &= watched
                unknown = {t for t, _ in gd.committed} - set(wire.partitions)
                if unknown and any(self.options.wants_topic(t) for t in unknown):
                    self._refresh_due = True
                self._group_topics[gd.name] = names
            for topic in sorted(names):
                pairs.append((gd, topic))
                consumed.add(topic)

        # lag per (group, partition) and the records whose timestamps are wanted
        rows: dict[tuple[str, str], list[dict[str, Any]]] = {}
        wanted: dict[tuple[str, int, int], None] = {}
        for gd, topic in pairs:
            if gd.committed is None:
                continue
            table = rows[(gd.name, topic)] = []
            for p in wire.partitions.get(topic, ()):
                tp = (topic, p)
                last = ends.get(tp)
                if last is None:
                    continue
                start = starts.get(tp, 0)
                c = gd.committed.get(tp)
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
                if lag > 0:
                    target = max(position, start)
                    key = (topic, p, target)
                    if key not in self._ts_cache:
                        wanted[key] = None

        consumers_of: dict[str, set[str]] = {}
        for gd, topic in pairs:
            consumers_of.setdefault(topic, set()).add(gd.name)
        await asyncio.gather(
            self._lookup_timestamps(list(wanted)),
            self._dead.update(wire, dlqs, consumers_of, ends, starts),
        )
        used: dict[tuple[str, int, int], int] = {}
        series: list[SeriesSample] = []
        broker = self.options.name
        for gd, topic in pairs:
            info = gd.info
            members = None if info is None or info.error else info.members
            active = (
                None
                if members is None
                else members > 0 and info is not None and (info.state in ACTIVE_STATES)
            )
            dlq = dlqs.get(topic)
            dlq_values = self._dlq_values(dlq, ends, starts)
            attribution: str | None = None
            if dlq is not None and dlq_values.get("dead_lettered_total") is not None:
                dlq_values["dead_lettered_total"], attribution = self._dead.total(
                    dlq, topic, gd.name
                )
            rows_of = rows.get((gd.name, topic))
            if gd.committed is None or rows_of is None:
                failed_info: dict[str, Any] = {
                    "error": gd.error or "offsets unavailable",
                    "partitions": [],
                }
                if attribution is not None:
                    failed_info["dead_letters"] = attribution
                series.append(
                    SeriesSample(
                        key=SeriesKey(broker, topic, gd.name),
                        kind="topic",
                        values={"group_status": 4.0, "consumers": _num(members), **dlq_values},
                        dlq=dlq,
                        info=failed_info,
                    )
                )
                continue
            verdicts: list[Verdict] = []
            total_lag = 0
            published = 0
            processed = 0
            lag_s_max: float | None = None
            lag_s_missing = False  # a lagging partition could not be timed at all
            lag_s_bound = False  # a lagging partition's time is only a lower bound
            for row in rows_of:
                p = row["partition"]
                lag = row["lag"]
                position = row["committed"] if row["committed"] is not None else row["log_start"]
                total_lag += lag
                published += row["end_offset"]
                processed += position
                if lag > 0:
                    target = max(position, row["log_start"])
                    key = (topic, p, target)
                    ts_ms = self._ts_cache.get(key)
                    appended: float | None = None
                    bound = False
                    if ts_ms is not None:
                        used[key] = ts_ms
                        appended = ts_ms / 1000.0
                    else:
                        hist = self._history.get((topic, p))
                        found = None if hist is None else hist.time_of(target)
                        # a bound from an observation made by this very poll says nothing
                        if found is not None and not (found[1] and found[0] >= now):
                            appended, bound = found
                    if appended is None:
                        lag_s_missing = True
                    else:
                        seconds = max(0.0, now - appended)
                        row["lag_seconds"] = round(seconds, 3)
                        if bound:
                            row["lag_seconds_lower_bound"] = True
                            lag_s_bound = True
                        lag_s_max = seconds if lag_s_max is None else max(lag_s_max, seconds)
                error = row.pop("_error")
                window = self._status.observe((gd.name, topic, p), now, position, lag, error)
                verdict = window.evaluate(now, active)
                row["status"] = None if verdict.status is None else verdict.status.name
                verdicts.append(verdict)
            if total_lag == 0:
                lag_seconds: float | None = 0.0
            else:
                lag_seconds = lag_s_max
            overall = combine(verdicts)
            values: dict[str, float | None] = {
                "queue_length": float(total_lag),
                "consumer_lag_messages": float(total_lag),
                "consumer_lag_seconds": lag_seconds,
                "latency_seconds": lag_seconds,
                "consumers": _num(members),
                "published_total": float(published),
                "processed_total": float(processed),
                "group_status": None if overall.status is None else float(overall.status),
                **dlq_values,
            }
            extra: dict[str, Any] = {
                "partitions": rows_of,
                "state": None if info is None else info.state,
                "status_reason": overall.reason,
            }
            if attribution is not None:
                extra["dead_letters"] = attribution
            if lag_seconds is not None and (lag_s_missing or lag_s_bound):
                # the figure is the max of what is known: the true lag may be larger
                extra["lag_seconds_lower_bound"] = True
                if lag_s_missing:
                    extra["lag_seconds_partial"] = True
            series.append(
                SeriesSample(
                    key=SeriesKey(broker, topic, gd.name),
                    kind="topic",
                    values=values,
                    dlq=dlq,
                    info=extra,
                )
            )

        for topic in topics:
            if topic in consumed:
                continue
            parts = wire.partitions.get(topic, ())
            known = [(p, ends[(topic, p)]) for p in parts if (topic, p) in ends]
            if not known:
                continue
            dlq = dlqs.get(topic)
            topic_rows = [
                {
                    "partition": p,
                    "end_offset": end,
                    "log_start": starts.get((topic, p)),
                    "committed": None,
                    "lag": None,
                    "lag_seconds": None,
                }
                for p, end in known
            ]
            series.append(
                SeriesSample(
                    key=SeriesKey(broker, topic, None),
                    kind="topic",
                    values={
                        "published_total": float(sum(end for _, end in known)),
                        "queue_length": None,
                        **self._dlq_values(dlq, ends, starts),
                    },
                    dlq=dlq,
                    info={"partitions": topic_rows},
                )
            )

        # keep only the timestamps still in use; forget partitions no longer watched
        self._ts_cache = used
        live = set(ends)
        for tp in [tp for tp in self._history if tp not in live]:
            del self._history[tp]
        self._status.forget_older_than(now - 2 * self.options.group_status_window)
        return Collected(series=tuple(series), warnings=tuple(warnings))

    def _dlq_values(
        self, dlq: str | None, ends: Mapping[TP, int], starts: Mapping[TP, int]
    ) -> dict[str, float | None]:
        if dlq is None:
            return {}
        parts = self.wire.partitions.get(dlq)
        if not parts or any((dlq, p) not in ends for p in parts):
            return {"dlq_length": None, "dead_lettered_total": None}
        inflow = sum(ends[(dlq, p)] for p in parts)
        held = sum(ends[(dlq, p)] - starts.get((dlq, p), 0) for p in parts)
        return {"dlq_length": float(max(held, 0)), "dead_lettered_total": float(inflow)}

    async def _lookup_timestamps(self, wanted: list[tuple[str, int, int]]) -> None:
        """Read records at lagging positions into the cache, within the per-poll budget of
        partition reads; one read answers every wanted offset its bytes reach."""
        budget = self.options.lag_seconds_budget
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
            result = await self.wire.fetch_timestamps(batch, sizes)
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


def _num(value: int | None) -> float | None:
    return None if value is None else float(value)


def _create(options: KafkaOptions) -> KafkaCollector:
    return KafkaCollector(options)


class KafkaMoveOptions(MoveOptions):
    """Options of a Kafka replay / move (a copy: the source keeps its records)."""

    batch: int | None = Field(
        None,
        ge=1,
        description="messages per batch / confirm window",
        json_schema_extra={"metavar": "N"},
    )
    keep_partition: bool = Field(False, description="Kafka: same partition number")
    keep_timestamp: bool = Field(False, description="Kafka: keep record timestamps")
    from_offset: int | None = Field(
        None, ge=0, description="Kafka: start at this offset", json_schema_extra={"metavar": "N"}
    )
    from_time: dt.datetime | None = Field(
        None, description="Kafka: start at this time", json_schema_extra={"metavar": "ISO8601"}
    )

    @field_validator("from_time")
    @classmethod
    def _utc(cls, value: dt.datetime | None) -> dt.datetime | None:
        """A time without a zone is UTC."""
        return value.replace(tzinfo=dt.UTC) if value and value.tzinfo is None else value


PLUGIN: CollectorPlugin[KafkaOptions] = CollectorPlugin(
    type="kafka",
    options_model=KafkaOptions,
    factory=_create,
    move_options=KafkaMoveOptions,
    description="Apache Kafka topics and consumer groups (lag in messages and seconds)",
)

__all__ = [
    "PLUGIN",
    "KafkaCollector",
    "KafkaOptions",
    "KafkaWire",
    "OffsetHistory",
    "client_kwargs",
    "record_timestamps",
]
