"""Redis collector: lists, streams (per consumer group) and pub/sub channels.

What Redis exposes and how it maps (see docs/metrics.md and docs/redis.md):
* list: ``LLEN`` -> queue_length (= consumer_lag_messages, as for any queue). Lists keep no
  counters or timestamps: rates, latency, in_flight and consumers are null. A fingerprint
  of the head message (``info["head_id"]``, one small script per list; not in cluster mode)
  lets the queue health see messages consumed while producers keep the length growing.
* stream with consumer groups, one series per group: see :mod:`collectors.redis.streams`.
* stream without groups: every entry waits, so queue_length = XLEN and latency_seconds is the
  age of the first entry.
* channel: ``PUBSUB NUMSUB`` -> consumers; nothing else is exposed.

Keys are discovered with ``SCAN ... TYPE``, never ``KEYS``, every ``discover_every``; a glob
leaves out the job libraries' own bookkeeping (``collectors.redis.library_keys``). Redis
deletes a list when it drains, so a key that no longer exists is an empty queue: a key named
in the config is shown with 0 for as long as it is absent; a discovered key is shown with 0
for ``forget_after``, then forgotten. Key names that are not valid UTF-8 are shown with the
invalid bytes as ``\\xNN`` (typed back, they name the same key). Celery's priority lists
(``Q\\x06\\x16N``) found by a glob are shown as one queue ``Q``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from collectors.base import Collected, MessageActions, dlq_candidates
from collectors.group_status import StatusTracker
from collectors.redis.client import make_client
from collectors.redis.codecs import is_utf8, text
from collectors.redis.library_keys import celery_priority_groups, is_library_internal
from collectors.redis.options import RedisOptions, is_glob
from collectors.redis.scripts import HEAD_ID
from collectors.redis.streams import GroupDetails, fetch_group_details, stream_samples
from mqtop.kernel.model import SeriesKey, SeriesSample

if TYPE_CHECKING:
    from redis.asyncio import Redis

MAX_KEYS = 20_000  # keys of one type shown per broker (more is a warning on every poll)


class RedisCollector:
    """Reads list lengths, stream group state and channel subscribers."""

    def __init__(self, options: RedisOptions) -> None:
        self.options = options
        self._client: Redis | None = None
        self._lists: dict[str, None] = {}  # insertion-ordered sets of display names
        self._streams: dict[str, None] = {}
        self._raw: dict[str, bytes] = {}  # display name -> key, for names that are not UTF-8
        self._absent_since: dict[str, float] = {}  # discovered keys that no longer exist
        self._discovery_warnings: tuple[str, ...] = ()  # repeated on every poll
        self._last_discovery = -1e18
        self._actions: MessageActions | None = None
        self._status = StatusTracker(options.group_status_window)
        self._heads: dict[str, str] = {}  # list -> fingerprint of its head message, last poll
        self._scripts: bool | None = None  # the server runs Lua scripts (None: not asked yet)

    @property
    def client(self) -> Redis:
        if self._client is None:
            raise RuntimeError("not connected")
        return self._client

    @property
    def r(self) -> Any:
        """The client, untyped: redis-py's reply types are unions of awaitables and values."""
        return self.client

    async def connect(self) -> None:
        if self._client is None:
            self._client = make_client(self.options)
        await self._client.ping()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def actions(self) -> MessageActions | None:
        # a lazy import of the actions module: polling never loads the move code
        from collectors.redis.actions import RedisActions

        if self._actions is None:
            self._actions = RedisActions(self.options, seen=self.shown_keys)
        return self._actions

    def shown_keys(self) -> set[str]:
        """The lists and streams this collector shows (absent ones included, as empty)."""
        return {*self._lists, *self._streams}

    def key(self, name: str) -> bytes | str:
        """The Redis key of a shown name."""
        return self._raw.get(name, name)

    # -- discovery -------------------------------------------------------------------

    async def _scan(self, patterns: list[str], key_type: str) -> tuple[list[str], bool]:
        """Names matching the patterns (plain names always), and whether the scan was cut."""
        found: dict[str, bytes | str] = {}
        cut = False
        for pattern in patterns:
            if not is_glob(pattern):
                found[pattern] = pattern  # literal names are always reported
                continue
            async for raw in self.r.scan_iter(
                match=pattern, count=self.options.scan_count, _type=key_type
            ):
                name = text(raw)
                if not self.options.wants(name) or is_library_internal(name, key_type):
                    continue  # include/exclude apply before the cap
                found[name] = raw
                if len(found) > MAX_KEYS:
                    cut = True
                    break
            if cut:
                break
        names = [k for k in list(found)[:MAX_KEYS] if self.options.wants(k)]
        for name in names:
            raw = found[name]
            if isinstance(raw, bytes) and not is_utf8(raw):
                self._raw[name] = raw
        return names, cut

    async def _discover(self) -> None:
        lists, lists_cut = await self._scan(self.options.lists, "list")
        streams, streams_cut = await self._scan(self.options.streams, "stream")
        # plain names may be of another type, or absent: keep lists and streams apart
        literal = list(dict.fromkeys([*self.options.named_lists(), *self.options.named_streams()]))
        types: dict[str, str] = {}
        if literal:
            pipe = self.r.pipeline(transaction=False)
            for name in literal:
                pipe.type(name)
            for name, kind in zip(literal, await pipe.execute(), strict=True):
                types[name] = text(kind)
        for name in lists:
            kind = types.get(name, "list")
            if kind == "list" or (kind == "none" and name not in self._streams):
                self._streams.pop(name, None)
                self._lists[name] = None
        for name in streams:
            kind = types.get(name, "stream")
            if kind == "stream" or (kind == "none" and name not in self._lists):
                self._lists.pop(name, None)
                self._streams[name] = None
        warnings = []
        for kind, store, scan_cut in (
            ("list", self._lists, lists_cut),
            ("stream", self._streams, streams_cut),
        ):
            overflow = len(store) > MAX_KEYS  # keys kept from earlier scans, plus new ones
            while len(store) > MAX_KEYS:
                self._forget(next(iter(store)))
            if scan_cut or overflow:
                warnings.append(
                    f"more than {MAX_KEYS} {kind} keys match: only {MAX_KEYS} are shown "
                    f"(narrow the {kind}s patterns or use include/exclude)"
                )
        self._discovery_warnings = tuple(warnings)
        self._last_discovery = time.monotonic()

    def _forget(self, name: str) -> None:
        self._lists.pop(name, None)
        self._streams.pop(name, None)
        self._raw.pop(name, None)
        self._absent_since.pop(name, None)

    def _track_absence(self, absent: list[str], present: list[str]) -> set[str]:
        """Forget discovered keys absent longer than ``forget_after``; the rest stay shown."""
        now = time.monotonic()
        for name in present:
            self._absent_since.pop(name, None)
        named = self.options.named_keys()
        forgotten = set()
        for name in absent:
            if name in named:
                continue  # a queue the config names is empty, not gone
            if name in self._streams:
                # a drained stream still exists (XTRIM keeps the key): an absent one was deleted
                self._forget(name)
                forgotten.add(name)
                continue
            since = self._absent_since.setdefault(name, now)
            if now - since >= self.options.forget_after:
                self._forget(name)
                forgotten.add(name)
        return forgotten

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
        if time.monotonic() - self._last_discovery >= self.options.discover_every:
            await self._discover()
        warnings = list(self._discovery_warnings)
        lists, streams = list(self._lists), list(self._streams)
        extra_dlqs = sorted(
            {
                d
                for d in self.options.dlq.values()
                if d not in self._lists and d not in self._streams
            }
        )
        now, lengths, infos, absent_streams = await self._poll(lists, streams, warnings)
        extra_len = await self._measure_dlqs(extra_dlqs)
        absent = [k for k in lists if lengths.get(k) == 0] + absent_streams
        present = [k for k in lists if lengths.get(k)] + list(infos)
        forgotten = self._track_absence(absent, present)
        details = await fetch_group_details(self.r, infos, self.options.stuck_idle, self.key)

        known = {**self._lists, **self._streams, **dict.fromkeys(extra_len)}

        def length_of(name: str) -> int | None:
            if name in lengths:
                return lengths[name]
            if name in infos:
                return int(infos[name][0].get("length", 0))
            if name in absent_streams:
                return 0
            return extra_len.get(name)

        series = self._list_samples(lists, lengths, forgotten, known, length_of)
        for name in absent_streams:
            if name not in forgotten:
                series.append(self._absent_stream(name, known, length_of))
        series += self._stream_samples(now, infos, details, known, length_of)
        self._status.forget_older_than(now - 2 * self.options.group_status_window)
        series.extend(await self._channels())
        return Collected(series=tuple(series), warnings=tuple(warnings))

    async def _runs_scripts(self) -> bool:
        """Whether the server runs Lua (some Redis-protocol servers close the connection on
        EVAL): asked once, outside the poll's pipeline, so a refusal costs no poll."""
        try:
            answer = await self.r.eval("return redis.sha1hex('mqtop')", 0)  # what HEAD_ID uses
            return bool(answer)
        except Exception:  # refused, unknown command, or the connection closed on it
            return False

    async def _poll(
        self, lists: list[str], streams: list[str], warnings: list[str]
    ) -> tuple[float, dict[str, int], dict[str, tuple[dict[str, Any], list[Any]]], list[str]]:
        """One round trip: server time, every LLEN, every XINFO."""
        pipe = self.r.pipeline(transaction=False)
        cluster = self.options.cluster
        if not cluster:
            pipe.time()
        for name in lists:
            pipe.llen(self.key(name))
        if self._scripts is None and lists and not cluster:
            self._scripts = await self._runs_scripts()
        # a cluster pipeline routes no scripts; a server without scripting fingerprints nothing
        heads = lists if self._scripts and not cluster else []
        head_index = -1 if self.options.list_head == "right" else 0
        for name in heads:
            pipe.eval(HEAD_ID, 1, self.key(name), head_index)
        for name in streams:
            pipe.xinfo_stream(self.key(name))
            pipe.xinfo_groups(self.key(name))
        if cluster:
            # a cluster pipeline only carries keyed commands; the time comes from any node
            seconds, micros = await self.r.time()
            results = [None, *(await pipe.execute(raise_on_error=False))]
        else:
            results = await pipe.execute(raise_on_error=False)
            seconds, micros = results[0]
        lengths: dict[str, int] = {}
        for name, value in zip(lists, results[1 : 1 + len(lists)], strict=True):
            if isinstance(value, int):
                lengths[name] = value  # 0: Redis deleted the list (it drained), or never had it
            else:
                warnings.append(f"{name}: {type(value).__name__}: {value}")
        pos = 1 + len(lists)
        self._heads = {}
        for name, value in zip(heads, results[pos : pos + len(heads)], strict=True):
            if isinstance(value, bytes | str):
                self._heads[name] = text(value)  # else: empty, or scripts refused: unknown
        pos += len(heads)
        infos: dict[str, tuple[dict[str, Any], list[Any]]] = {}
        absent: list[str] = []
        for name in streams:
            info, groups = results[pos], results[pos + 1]
            pos += 2
            if not isinstance(info, Exception) and not isinstance(groups, Exception):
                infos[name] = (info, groups)
            elif "no such key" in str(info).lower():
                absent.append(name)
            else:
                self._streams.pop(name, None)  # changed type since discovery
        return seconds + micros / 1e6, lengths, infos, absent

    async def _measure_dlqs(self, names: list[str]) -> dict[str, int]:
        """DLQ keys named in the dlq mapping but not matched by the patterns."""
        if not names:
            return {}
        pipe = self.r.pipeline(transaction=False)
        for name in names:
            pipe.type(name)
        kinds = [text(k) if isinstance(k, bytes | str) else None for k in await pipe.execute()]
        out: dict[str, int] = {}
        measured = []
        pipe = self.r.pipeline(transaction=False)
        for name, kind in zip(names, kinds, strict=True):
            if kind == "list":
                pipe.llen(name)
            elif kind == "stream":
                pipe.xlen(name)
            elif kind == "none":
                out[name] = 0  # named in the config: an empty list, since Redis deletes those
                continue
            else:
                continue
            measured.append(name)
        if measured:
            for name, value in zip(measured, await pipe.execute(), strict=True):
                out[name] = int(value)
        return out

    def _list_samples(
        self,
        lists: list[str],
        lengths: dict[str, int],
        forgotten: set[str],
        known: dict[str, None],
        length_of: Any,
    ) -> list[SeriesSample]:
        out = []
        shown = [n for n in lists if n in lengths and n not in forgotten]
        groups = celery_priority_groups(shown, self.options.named_keys())
        for name, members in groups.items():
            dlq = self._dlq_for(name, known)
            llen = float(sum(lengths[member] for _, member in members))
            dlq_len = length_of(dlq) if dlq else None
            # a list is a queue: its consumer lag is its length (SPEC §3)
            values: dict[str, float | None] = {
                "queue_length": llen,
                "consumer_lag_messages": llen,
                "dlq_length": None if dlq_len is None else float(dlq_len),
            }
            info = self._list_info(name)
            if len(members) > 1 or members[0][1] != name:
                # kombu's priority lists shown as one queue, each list's length in the detail
                info.update({f"priority {prio}": lengths[m] for prio, m in members})
            out.append(
                SeriesSample(
                    key=SeriesKey(self.options.name, name, None),
                    kind="list",
                    values=values,
                    dlq=dlq,
                    info=info,
                )
            )
        return out

    def _list_info(self, name: str) -> dict[str, Any]:
        """The list's head end, and a fingerprint of the message there (the queue health
        reads a change of it as a message consumed: lists keep no counters)."""
        info: dict[str, Any] = {"head": self.options.list_head}
        head_id = self._heads.get(name)
        if head_id is not None:
            info["head_id"] = head_id
        return info

    def _absent_stream(self, name: str, known: dict[str, None], length_of: Any) -> SeriesSample:
        """A known stream that no longer exists: empty, like a stream without entries."""
        dlq = self._dlq_for(name, known)
        dlq_len = length_of(dlq) if dlq else None
        return SeriesSample(
            key=SeriesKey(self.options.name, name, None),
            kind="stream",
            values={
                "published_total": None,
                "dlq_length": None if dlq_len is None else float(dlq_len),
                "queue_length": 0.0,
                "latency_seconds": 0.0,
            },
            dlq=dlq,
            info={"length": 0, "groups": 0, "exists": False},
        )

    def _stream_samples(
        self,
        now: float,
        infos: dict[str, tuple[dict[str, Any], list[Any]]],
        details: GroupDetails,
        known: dict[str, None],
        length_of: Any,
    ) -> list[SeriesSample]:
        out: list[SeriesSample] = []
        for name, (info, groups) in infos.items():
            dlq = self._dlq_for(name, known)
            dlq_len = length_of(dlq) if dlq else None
            out += stream_samples(
                options=self.options,
                tracker=self._status,
                now=now,
                name=name,
                info=info,
                groups=groups,
                details=details,
                dlq=(dlq, dlq_len),
            )
        return out

    async def _channels(self) -> list[SeriesSample]:
        if not self.options.channels:
            return []
        names: dict[str, bytes | str] = {}
        for pattern in self.options.channels:
            if is_glob(pattern):
                for raw in await self.r.pubsub_channels(pattern):
                    names[text(raw)] = raw
            else:
                names[pattern] = pattern
        wanted = [n for n in names if self.options.wants(n)]
        if not wanted:
            return []
        counts = await self.r.pubsub_numsub(*(names[n] for n in wanted))
        return [
            SeriesSample(
                key=SeriesKey(self.options.name, text(raw), None),
                kind="channel",
                values={"consumers": float(count)},
            )
            for raw, count in counts
        ]


__all__ = ["MAX_KEYS", "RedisCollector"]
