"""Redis collector: lists, streams (per consumer group) and pub/sub channels.

What Redis exposes and how it maps (see docs/metrics.md):
* list: ``LLEN`` -> queue_length (= consumer_lag_messages, as for any queue). Lists keep no
  counters or timestamps: rates, latency, in_flight and consumers are null.
* stream with consumer groups, one series per group (``XINFO STREAM`` / ``XINFO GROUPS``):
  ``lag`` -> queue_length and consumer_lag_messages (Redis reports nil when it cannot know:
  then null), PEL size -> in_flight, consumers, ``entries-added`` -> published_total,
  ``entries-read`` -> processed_total; latency_seconds and consumer_lag_seconds from the
  millisecond time in the ID of the first entry not yet delivered to the group.
* stream without groups: every entry waits, so queue_length = XLEN and latency_seconds is the
  age of the first entry.
* channel: ``PUBSUB NUMSUB`` -> consumers; nothing else is exposed.
* per group, pending entries idle longer than ``stuck_idle`` (``XPENDING ... IDLE``) are
  counted as ``info["stuck"]``: in Redis streams these are the dead letters when no DLQ
  exists. ``group_status`` follows Burrow's vocabulary over the last polls (docs/redis.md).

Keys are discovered with ``SCAN ... TYPE``, never ``KEYS``; discovery is refreshed every
``discover_every`` and discovered keys stay listed (an empty Redis list does not exist, but an
empty queue is still a queue worth showing).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from collectors.base import (
    BrokerOptions,
    ClientCertificate,
    Collected,
    CollectorPlugin,
    MessageActions,
    MoveOptions,
    dlq_candidates,
)
from collectors.group_status import GroupStatus, StatusTracker, Verdict
from mqtop.kernel.durations import Duration
from mqtop.kernel.model import SeriesKey, SeriesSample
from mqtop.kernel.secrets import Password, SecretUrl, strip_url_credentials

if TYPE_CHECKING:
    from redis.asyncio import Redis

GLOB_CHARS = frozenset("*?[")
MAX_KEYS = 20_000
STUCK_CAP = 1000  # stuck entries counted per group and poll (more is reported as capped)


class RedisOptions(ClientCertificate, BrokerOptions):
    """A Redis server (or cluster) holding list queues, streams and pub/sub channels."""

    type: Literal["redis"] = "redis"
    url: SecretUrl = Field(
        default_factory=lambda: SecretUrl("redis://localhost:6379/0"),
        description="redis:// or rediss:// (TLS) URL; user and password may be inside.",
    )
    username: str | None = Field(None, description="ACL user (instead of putting it in the URL).")
    password: Password | None = Field(
        None, description="Password (instead of putting it in the URL)."
    )
    lists: list[str] = Field(
        default_factory=lambda: ["*"], description="Glob patterns of list keys used as queues."
    )
    streams: list[str] = Field(
        default_factory=lambda: ["*"], description="Glob patterns of stream keys."
    )
    channels: list[str] = Field(
        default_factory=list, description="Glob patterns of pub/sub channels."
    )
    list_head: Literal["left", "right"] = Field(
        "right",
        description=(
            "End consumers pop from: right for LPUSH/BRPOP (Celery, Sidekiq, Bull), "
            "left for RPUSH/BLPOP (RQ, Resque, Laravel)."
        ),
    )
    cluster: bool = Field(False, description="Connect to a Redis Cluster.")
    tls_verify: bool = Field(True, description="Verify the server certificate (rediss://).")
    ca_file: str | None = Field(None, description="CA bundle for TLS.")
    scan_count: int = Field(1000, ge=10, le=100_000, description="COUNT hint for SCAN.")
    discover_every: Duration = Field(30.0, description="How often the keyspace is re-scanned.")
    group_status_window: Duration = Field(
        300.0, description="Sliding window of the stream group status evaluator."
    )
    stuck_idle: Duration = Field(
        300.0,
        description=(
            "Pending stream entries idle longer than this count as stuck "
            "(shown per group; see `mqtop dlq reclaim`)."
        ),
    )

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: SecretUrl) -> SecretUrl:
        scheme = value.get_secret_value().split("://", 1)[0].lower()
        if scheme not in ("redis", "rediss", "unix"):
            raise ValueError("url must start with redis://, rediss:// or unix://")
        return value

    def address(self) -> str:
        return strip_url_credentials(self.url.get_secret_value())


def _decode(raw: bytes | str) -> str | None:
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _id_ms(entry_id: bytes | str | None) -> int | None:
    if entry_id is None:
        return None
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    head = text.split("-", 1)[0]
    return int(head) if head.isdigit() else None


def _int_or_none(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def make_client(options: RedisOptions) -> Redis:
    """A redis.asyncio client (or cluster client) for the options; secrets never logged."""
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

    kwargs: dict[str, Any] = {"socket_timeout": 10.0, "socket_connect_timeout": 5.0}
    if options.username:
        kwargs["username"] = options.username
    if options.password is not None:
        kwargs["password"] = options.password.get_secret_value()
    url = options.url.get_secret_value()
    if url.startswith("rediss://"):
        kwargs["ssl_cert_reqs"] = "required" if options.tls_verify else "none"
        if options.ca_file:
            kwargs["ssl_ca_certs"] = options.ca_file
        if options.cert_file:  # mutual TLS (redis-server's tls-auth-clients)
            kwargs["ssl_certfile"] = options.cert_file
            kwargs["ssl_keyfile"] = options.key_file
            kwargs["ssl_password"] = options.key_password_value()
    if options.cluster:
        return RedisCluster.from_url(url, **kwargs)  # type: ignore[return-value]
    return Redis.from_url(url, **kwargs)


class RedisCollector:
    """Reads list lengths, stream group state and channel subscribers."""

    def __init__(self, options: RedisOptions) -> None:
        self.options = options
        self._client: Redis | None = None
        self._lists: dict[str, None] = {}  # insertion-ordered sets
        self._streams: dict[str, None] = {}
        self._last_discovery = -1e18
        self._actions: MessageActions | None = None
        self._status = StatusTracker(options.group_status_window)

    @property
    def client(self) -> Redis:
        if self._client is None:
            raise RuntimeError("not connected")
        return self._client

    async def connect(self) -> None:
        if self._client is None:
            self._client = make_client(self.options)
        await self._client.ping()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def actions(self) -> MessageActions | None:
        try:
            from collectors.redis.actions import RedisActions
        except ImportError:
            return None
        if self._actions is None:
            self._actions = RedisActions(self.options)
        return self._actions

    # -- discovery -------------------------------------------------------------------

    async def _scan(self, patterns: list[str], key_type: str) -> list[str]:
        found: dict[str, None] = {}
        client = self.client
        for pattern in patterns:
            if not (GLOB_CHARS & set(pattern)):
                found[pattern] = None  # literal names are always reported
                continue
            async for raw in client.scan_iter(
                match=pattern, count=self.options.scan_count, _type=key_type
            ):
                name = _decode(raw)
                if name is not None:
                    found[name] = None
                if len(found) >= MAX_KEYS:
                    break
        return [k for k in found if self.options.wants(k)]

    async def _discover(self) -> list[str]:
        warnings: list[str] = []
        lists = await self._scan(self.options.lists, "list")
        streams = await self._scan(self.options.streams, "stream")
        # literal names may be of another type: keep lists and streams apart
        literal = [k for k in (*lists, *streams) if not (GLOB_CHARS & set(k))]
        types: dict[str, str] = {}
        if literal:
            pipe = self.client.pipeline(transaction=False)
            for key in literal:
                pipe.type(key)
            for key, kind in zip(literal, await pipe.execute(), strict=True):
                types[key] = _decode(kind) or "none"
        for key in lists:
            if types.get(key, "list") in ("list", "none"):
                self._lists[key] = None
        for key in streams:
            if types.get(key, "stream") == "stream":
                self._streams[key] = None
        for store in (self._lists, self._streams):
            while len(store) > MAX_KEYS:
                store.pop(next(iter(store)))
        if len(self._lists) + len(self._streams) >= MAX_KEYS:
            warnings.append(f"more than {MAX_KEYS} keys match: narrow the patterns")
        self._last_discovery = time.monotonic()
        return warnings

    def _dlq_for(self, key: str, known: dict[str, None]) -> str | None:
        explicit = self.options.dlq.get(key)
        if explicit:
            return explicit
        for candidate in dlq_candidates(key):
            if candidate in known:
                return candidate
        return None

    # -- collection ------------------------------------------------------------------

    async def collect(self) -> Collected:
        warnings: list[str] = []
        if time.monotonic() - self._last_discovery >= self.options.discover_every:
            warnings.extend(await self._discover())
        lists = list(self._lists)
        streams = list(self._streams)
        series: list[SeriesSample] = []

        # one round trip: server time, every LLEN, every XINFO
        extra_dlqs = sorted(
            {
                d
                for d in self.options.dlq.values()
                if d not in self._lists and d not in self._streams
            }
        )
        pipe = self.client.pipeline(transaction=False)
        cluster = self.options.cluster
        if not cluster:
            pipe.time()
        for key in lists:
            pipe.llen(key)
        for key in extra_dlqs:
            pipe.type(key)
        for key in streams:
            pipe.xinfo_stream(key)
            pipe.xinfo_groups(key)
        if cluster:
            # a cluster pipeline only carries keyed commands; the time comes from any node
            seconds, micros = await self.client.time()
            results = [None, *(await pipe.execute(raise_on_error=False))]
        else:
            results = await pipe.execute(raise_on_error=False)
            seconds, micros = results[0]
        now = seconds + micros / 1e6
        pos = 1
        lengths: dict[str, int] = {}
        for key in lists:
            value = results[pos]
            pos += 1
            if isinstance(value, int):
                lengths[key] = value
            else:
                warnings.append(f"{key}: {type(value).__name__}: {value}")
        extra_types = {}
        for key in extra_dlqs:
            extra_types[key] = _decode(results[pos]) if isinstance(results[pos], bytes) else None
            pos += 1
        infos: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
        for key in streams:
            info, groups = results[pos], results[pos + 1]
            pos += 2
            if isinstance(info, Exception) or isinstance(groups, Exception):
                # the key vanished or changed type since discovery
                self._streams.pop(key, None)
                continue
            infos[key] = (info, groups)

        # DLQ keys named in config but not matched by patterns: measure them too
        extra_len: dict[str, int] = {}
        if extra_dlqs:
            pipe = self.client.pipeline(transaction=False)
            measured = []
            for key in extra_dlqs:
                kind = extra_types.get(key)
                if kind == "list":
                    pipe.llen(key)
                elif kind == "stream":
                    pipe.xlen(key)
                else:
                    continue
                measured.append(key)
            if measured:
                for key, value in zip(measured, await pipe.execute(), strict=True):
                    extra_len[key] = int(value)

        # next undelivered entry per group: one more round trip
        pipe = self.client.pipeline(transaction=False)
        # and, where entries are pending, how many are stuck (idle beyond stuck_idle)
        asked: list[tuple[str, str]] = []
        stuck_asked: list[tuple[str, str]] = []
        idle_asked: list[tuple[str, str]] = []
        stuck_ms = round(self.options.stuck_idle * 1000)
        for key, (_, groups) in infos.items():
            for group in groups:
                last = group.get("last-delivered-id") or b"0-0"
                last_s = last.decode() if isinstance(last, bytes) else str(last)
                pipe.xrange(key, min=f"({last_s}", count=1)
                name = _decode(group["name"]) or "?"
                asked.append((key, name))
                if _int_or_none(group.get("pending")):
                    pipe.xpending_range(
                        key, group["name"], min="-", max="+", count=STUCK_CAP, idle=stuck_ms
                    )
                    stuck_asked.append((key, name))
                if _int_or_none(group.get("consumers")) and _int_or_none(group.get("lag")) != 0:
                    # who is alive: Redis keeps consumers registered after they die
                    pipe.xinfo_consumers(key, group["name"])
                    idle_asked.append((key, name))
        next_entries: dict[tuple[str, str], int | None] = {}
        stuck: dict[tuple[str, str], int | None] = {}
        min_idle: dict[tuple[str, str], float | None] = {}
        if asked:
            replies = await pipe.execute(raise_on_error=False)
            pos = 0
            wants_stuck, wants_idle = set(stuck_asked), set(idle_asked)
            for ident in asked:
                entries = replies[pos]
                pos += 1
                if isinstance(entries, list) and entries:
                    next_entries[ident] = _id_ms(entries[0][0])
                else:
                    next_entries[ident] = None
                stuck[ident] = 0
                if ident in wants_stuck:
                    rows = replies[pos]
                    pos += 1
                    stuck[ident] = len(rows) if isinstance(rows, list) else None
                if ident in wants_idle:
                    members = replies[pos]
                    pos += 1
                    idles = (
                        [_int_or_none(m.get("idle")) for m in members if isinstance(m, dict)]
                        if isinstance(members, list)
                        else []
                    )
                    known_idles = [i for i in idles if i is not None]
                    min_idle[ident] = min(known_idles) / 1000 if known_idles else None

        def length_of(name: str) -> int | None:
            if name in lengths:
                return lengths[name]
            if name in infos:
                return int(infos[name][0].get("length", 0))
            return extra_len.get(name)

        known = {**self._lists, **self._streams, **dict.fromkeys(extra_len)}
        broker = self.options.name
        for key in lists:
            if key not in lengths:
                continue
            dlq = self._dlq_for(key, known)
            llen = float(lengths[key])
            # a list is a queue: its consumer lag is its length (SPEC §3)
            values: dict[str, float | None] = {
                "queue_length": llen,
                "consumer_lag_messages": llen,
            }
            dlq_len = length_of(dlq) if dlq else None
            values["dlq_length"] = None if dlq_len is None else float(dlq_len)
            series.append(
                SeriesSample(
                    key=SeriesKey(broker, key, None),
                    kind="list",
                    values=values,
                    dlq=dlq,
                    info={"head": self.options.list_head},
                )
            )

        for key, (info, groups) in infos.items():
            dlq = self._dlq_for(key, known)
            dlq_len = length_of(dlq) if dlq else None
            added = _int_or_none(info.get("entries-added"))
            length = int(info.get("length", 0))
            common: dict[str, float | None] = {
                "published_total": None if added is None else float(added),
                "dlq_length": None if dlq_len is None else float(dlq_len),
            }
            if not groups:
                first = info.get("first-entry")
                first_ms = _id_ms(first[0]) if first else None
                age = max(0.0, now - first_ms / 1000) if first_ms is not None else 0.0
                series.append(
                    SeriesSample(
                        key=SeriesKey(broker, key, None),
                        kind="stream",
                        values={**common, "queue_length": float(length), "latency_seconds": age},
                        dlq=dlq,
                        info={"length": length, "groups": 0},
                    )
                )
                continue
            for group in groups:
                name = _decode(group["name"]) or "?"
                lag = _int_or_none(group.get("lag"))
                read = _int_or_none(group.get("entries-read"))
                if read is None:
                    # Redis leaves entries-read nil until the group reads past a creation
                    # point; it is then exactly entries-added - lag (both exposed), or 0
                    # for a group that has delivered nothing yet.
                    last_id = _decode(group.get("last-delivered-id") or b"") or ""
                    if added is not None and lag is not None:
                        read = added - lag
                    elif last_id == "0-0":
                        read = 0
                pending = _int_or_none(group.get("pending"))
                consumers = _int_or_none(group.get("consumers"))
                next_ms = next_entries.get((key, name))
                if next_ms is None:
                    # nothing after the last delivered ID: the group is caught up
                    lag_s: float | None = 0.0 if lag in (0, None) else None
                else:
                    lag_s = max(0.0, now - next_ms / 1000)
                ident = (key, name)
                last_delivered = _decode(group.get("last-delivered-id") or b"") or ""
                n_stuck = stuck.get(ident)
                verdict = self._verdict(
                    ident=ident,
                    now=now,
                    last_delivered=last_delivered,
                    lag=lag,
                    consumers=consumers,
                    stuck=n_stuck,
                    min_idle=min_idle.get(ident),
                )
                values = {
                    **common,
                    "group_status": None if verdict.status is None else float(verdict.status),
                    "queue_length": None if lag is None else float(lag),
                    "consumer_lag_messages": None if lag is None else float(lag),
                    "in_flight": None if pending is None else float(pending),
                    "consumers": None if consumers is None else float(consumers),
                    "processed_total": None if read is None else float(read),
                    "consumer_lag_seconds": lag_s,
                    "latency_seconds": lag_s,
                }
                series.append(
                    SeriesSample(
                        key=SeriesKey(broker, key, name),
                        kind="stream",
                        values=values,
                        dlq=dlq,
                        info={
                            "length": length,
                            "last_delivered_id": last_delivered,
                            "stuck": n_stuck,
                            "stuck_capped": n_stuck is not None and n_stuck >= STUCK_CAP,
                            "stuck_idle": self.options.stuck_idle,
                            "status_reason": verdict.reason,
                        },
                    )
                )
        self._status.forget_older_than(now - 2 * self.options.group_status_window)

        series.extend(await self._channels())
        return Collected(series=tuple(series), warnings=tuple(warnings))

    def _verdict(
        self,
        *,
        ident: tuple[str, str],
        now: float,
        last_delivered: str,
        lag: int | None,
        consumers: int | None,
        stuck: int | None,
        min_idle: float | None,
    ) -> Verdict:
        """Group status from the shared Burrow-style evaluator, plus stuck entries.

        The group's position is its last-delivered ID; a consumer counts as active when it
        talked to Redis within the status window.
        """
        window = self.options.group_status_window
        if lag is None:
            verdict = Verdict(None, "Redis cannot tell the lag of this group")
        else:
            ms, _, seq = last_delivered.partition("-")
            position = (int(ms) << 64) + int(seq) if ms.isdigit() and seq.isdigit() else 0
            tracked = self._status.observe(ident, now, position, lag)
            active = bool(consumers) and (min_idle is None or min_idle < window)
            verdict = tracked.evaluate(now, active)
        if stuck and (verdict.status is None or verdict.status < GroupStatus.WARN):
            more = "+" if stuck >= STUCK_CAP else ""
            verdict = Verdict(
                GroupStatus.WARN,
                f"{stuck}{more} pending entries idle longer than "
                f"{self.options.stuck_idle:g}s (see mqtop dlq reclaim)",
            )
        return verdict

    async def _channels(self) -> list[SeriesSample]:
        if not self.options.channels:
            return []
        client = self.client
        names: dict[str, None] = {}
        for pattern in self.options.channels:
            if GLOB_CHARS & set(pattern):
                for raw in await client.pubsub_channels(pattern):
                    name = _decode(raw)
                    if name is not None:
                        names[name] = None
            else:
                names[pattern] = None
        wanted = [n for n in names if self.options.wants(n)]
        if not wanted:
            return []
        counts = await client.pubsub_numsub(*wanted)
        out = []
        for raw, count in counts:
            name = _decode(raw) or "?"
            out.append(
                SeriesSample(
                    key=SeriesKey(self.options.name, name, None),
                    kind="channel",
                    values={"consumers": float(count)},
                )
            )
        return out


def _create(options: RedisOptions) -> RedisCollector:
    return RedisCollector(options)


class RedisMoveOptions(MoveOptions):
    """Options of a Redis replay / move."""

    batch: int | None = Field(
        None,
        ge=1,
        description="messages per batch / confirm window",
        json_schema_extra={"metavar": "N"},
    )


PLUGIN: CollectorPlugin[RedisOptions] = CollectorPlugin(
    type="redis",
    options_model=RedisOptions,
    factory=_create,
    move_options=RedisMoveOptions,
    description="Redis lists, streams and pub/sub channels",
)

__all__ = ["PLUGIN", "RedisCollector", "RedisOptions", "make_client"]
