"""Redis message actions: peek / replay / move / purge for lists and streams, and reclaim.

Safety model (see docs/redis.md):

* Lists are moved with ``LMOVE`` inside a Lua script, a batch per call. A script runs
  atomically, so a crash at any instant leaves every item in the source or the destination,
  never both and never neither. Filtered moves remove each chosen item with ``LREM`` and push
  it in the same script. Items are taken from the head (``list_head``) and pushed at the tail
  of the destination, so its consumers see them in the original order.
* Stream entries are moved by a Lua script that re-reads each entry, ``XADD``s it to the
  destination, then ``XDEL``s it from the source and ``XACK``s it in every group of the
  source, all atomically. Entries already gone from the source are skipped, so two runs never
  duplicate.
* In a Redis Cluster, a script can only touch keys of one hash slot. When source and
  destination live in different slots, messages are added to the destination first and removed
  from the source after (crash: duplicates possible, never loss). A small journal key in the
  source's slot records the batch in flight, so the next run reports how many messages an
  interrupted run may have duplicated.
* Pub/sub channels store nothing: every action on a channel is refused (exit 2).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from collectors.base import (
    Death,
    MessageFilter,
    MoveProgress,
    MoveRequest,
    MoveResult,
    PeekedMessage,
    ProgressCallback,
    ReclaimRequest,
    matches_globs,
    original_of_dlq,
)
from collectors.kit.options import options_as
from collectors.redis.collector import RedisMoveOptions, RedisOptions, make_client
from mqtop.kernel.durations import format_duration
from mqtop.kernel.errors import (
    ActionFailed,
    BrokerUnreachable,
    MqtopError,
    UnsupportedAction,
    UsageError,
)
from mqtop.kernel.secrets import redact

if TYPE_CHECKING:
    from redis.asyncio import Redis

Kind = Literal["list", "stream", "none"]

# Fields mqtop adds to stream entries (JSON values). Fields with this prefix are left out of
# the canonical body used by --filter and peek.
MARKER_PREFIX = b"mqtop-"
REPLAY_FIELD = "mqtop-replay"  # added by `dlq replay`: {"from", "id", "at"}
DEAD_FIELD = "mqtop-dead-letter"  # added by `dlq reclaim --to`: {"stream", "group", ...}

LIST_BATCH = 1000
STREAM_BATCH = 500
RECLAIM_PAGE = 200
MAX_SCRIPT_BYTES = 8 * 1024 * 1024  # payload bytes per script call (filtered list moves)
JOURNAL_PREFIX = "mqtop:journal:"
# -- Lua --------------------------------------------------------------------------------

# KEYS: src, dst. ARGV: n, source end, destination end. Moves up to n items; returns count.
LIST_MOVE = """
local moved = 0
for i = 1, tonumber(ARGV[1]) do
  if not redis.call('LMOVE', KEYS[1], KEYS[2], ARGV[2], ARGV[3]) then break end
  moved = moved + 1
end
return moved
"""

# KEYS: src, dst. ARGV: LREM count (1 from the left, -1 from the right), push command,
# items... Removes one occurrence of each item (nearest the head) and pushes it to dst.
LIST_PICK = """
local out = {}
for i = 3, #ARGV do
  local n = redis.call('LREM', KEYS[1], ARGV[1], ARGV[i])
  if n > 0 then redis.call(ARGV[2], KEYS[2], ARGV[i]) end
  out[#out + 1] = n
end
return out
"""

# KEYS: src, journal. ARGV: LREM count, items... Cross-slot second half: the items were
# pushed to the destination already; remove them from the source and drop the journal.
LIST_REMOVE = """
local out = {}
for i = 2, #ARGV do
  out[#out + 1] = redis.call('LREM', KEYS[1], ARGV[1], ARGV[i])
end
if KEYS[2] ~= '' then redis.call('DEL', KEYS[2]) end
return out
"""

# KEYS: src, dst. ARGV: marker field ('' = none), field to drop ('' = none), group count,
# groups..., then pairs of (entry id, marker value). Returns the new ids (false = gone).
STREAM_MOVE = """
local src, dst = KEYS[1], KEYS[2]
local mfield, strip = ARGV[1], ARGV[2]
local ng = tonumber(ARGV[3])
local out = {}
local i = 4 + ng
while i <= #ARGV do
  local id, mval = ARGV[i], ARGV[i + 1]
  i = i + 2
  local e = redis.call('XRANGE', src, id, id)
  if #e == 0 then
    out[#out + 1] = false
  else
    local f = e[1][2]
    local args = {}
    for j = 1, #f, 2 do
      if (mfield == '' or f[j] ~= mfield) and (strip == '' or f[j] ~= strip) then
        args[#args + 1] = f[j]
        args[#args + 1] = f[j + 1]
      end
    end
    if mfield ~= '' then
      args[#args + 1] = mfield
      args[#args + 1] = mval
    end
    local nid = redis.call('XADD', dst, '*', unpack(args))
    redis.call('XDEL', src, id)
    for g = 1, ng do redis.call('XACK', src, ARGV[3 + g], id) end
    out[#out + 1] = nid
  end
end
return out
"""

# KEYS: src, dst. ARGV: start ('-' or '(id'), end id, count, marker field ('' = none), field
# to drop ('' = none), marker prefix, marker suffix (the value is prefix .. id .. suffix),
# group count, groups... Unfiltered moves: the entries never leave Redis. Returns
# {moved, last id moved}.
STREAM_MOVE_RANGE = """
local src, dst = KEYS[1], KEYS[2]
local mfield, strip, pre, post = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local ng = tonumber(ARGV[8])
local entries = redis.call('XRANGE', src, ARGV[1], ARGV[2], 'COUNT', ARGV[3])
local last = false
for _, e in ipairs(entries) do
  local id, f = e[1], e[2]
  local args = {}
  for j = 1, #f, 2 do
    if (mfield == '' or f[j] ~= mfield) and (strip == '' or f[j] ~= strip) then
      args[#args + 1] = f[j]
      args[#args + 1] = f[j + 1]
    end
  end
  if mfield ~= '' then
    args[#args + 1] = mfield
    args[#args + 1] = pre .. id .. post
  end
  redis.call('XADD', dst, '*', unpack(args))
  redis.call('XDEL', src, id)
  for g = 1, ng do redis.call('XACK', src, ARGV[8 + g], id) end
  last = id
end
return {#entries, last}
"""

# KEYS: src, journal. ARGV: group count, groups..., ids... Cross-slot second half.
STREAM_REMOVE = """
local ng = tonumber(ARGV[1])
local out = {}
for i = 2 + ng, #ARGV do
  for g = 1, ng do redis.call('XACK', KEYS[1], ARGV[1 + g], ARGV[i]) end
  out[#out + 1] = redis.call('XDEL', KEYS[1], ARGV[i])
end
if KEYS[2] ~= '' then redis.call('DEL', KEYS[2]) end
return out
"""

# KEYS: src, dst. ARGV: group, min idle ms, marker field, then pairs (id, marker value).
# Moves a pending entry to dst and acknowledges it, only if it is still pending and idle.
# Returns per id: new id, 'skipped' (acknowledged or active since) or 'missing' (the entry
# was deleted from the stream; its dangling PEL record is acknowledged).
RECLAIM_MOVE = """
local src, dst, group, idle, mfield = KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3]
local out = {}
local i = 4
while i <= #ARGV do
  local id, mval = ARGV[i], ARGV[i + 1]
  i = i + 2
  local p = redis.call('XPENDING', src, group, 'IDLE', idle, id, id, 1)
  if #p == 0 then
    out[#out + 1] = 'skipped'
  else
    local e = redis.call('XRANGE', src, id, id)
    if #e == 0 then
      redis.call('XACK', src, group, id)
      out[#out + 1] = 'missing'
    else
      local f = e[1][2]
      local args = {}
      for j = 1, #f, 2 do
        if f[j] ~= mfield then
          args[#args + 1] = f[j]
          args[#args + 1] = f[j + 1]
        end
      end
      args[#args + 1] = mfield
      args[#args + 1] = mval
      local nid = redis.call('XADD', dst, '*', unpack(args))
      redis.call('XACK', src, group, id)
      out[#out + 1] = nid
    end
  end
end
return out
"""

# KEYS: src, journal. ARGV: group, ids... Cross-slot second half of a reclaim move.
RECLAIM_ACK = """
local out = {}
for i = 2, #ARGV do
  out[#out + 1] = redis.call('XACK', KEYS[1], ARGV[1], ARGV[i])
end
if KEYS[2] ~= '' then redis.call('DEL', KEYS[2]) end
return out
"""

# KEYS: list. Returns the length it had, deleting it atomically.
LIST_PURGE = """
local n = redis.call('LLEN', KEYS[1])
redis.call('DEL', KEYS[1])
return n
"""

SCRIPTS = {
    "list_move": LIST_MOVE,
    "list_pick": LIST_PICK,
    "list_remove": LIST_REMOVE,
    "stream_move": STREAM_MOVE,
    "stream_move_range": STREAM_MOVE_RANGE,
    "stream_remove": STREAM_REMOVE,
    "reclaim_move": RECLAIM_MOVE,
    "reclaim_ack": RECLAIM_ACK,
    "list_purge": LIST_PURGE,
}


# -- helpers ----------------------------------------------------------------------------


def _text(raw: bytes | str) -> str:
    return raw if isinstance(raw, str) else raw.decode("utf-8", "backslashreplace")


def _now_iso() -> str:
    return dt.datetime.now(tz=dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _id_ms(entry_id: str) -> int | None:
    head = entry_id.split("-", 1)[0]
    return int(head) if head.isdigit() else None


def hash_tag(key: str) -> str:
    """The part of ``key`` Redis Cluster hashes (the ``{tag}`` when there is one)."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


def key_slot(key: str) -> int:
    """Redis Cluster hash slot of a key."""
    from redis.crc import key_slot as _slot

    return int(_slot(key.encode("utf-8")))


def journal_key(source: str) -> str | None:
    """A key in the same cluster slot as ``source`` for the cross-slot journal."""
    key = f"{JOURNAL_PREFIX}{{{hash_tag(source)}}}"
    return key if key_slot(key) == key_slot(source) else None


def entry_body(fields: Mapping[bytes, bytes]) -> bytes:
    """Canonical body of a stream entry for peek and --filter.

    The value itself when the entry has a single field (ignoring ``mqtop-*`` fields), else
    the fields as a compact JSON object (values decoded as UTF-8, invalid bytes escaped).
    """
    data = [(k, v) for k, v in fields.items() if not k.startswith(MARKER_PREFIX)]
    if not data:
        data = list(fields.items())
    if len(data) == 1:
        return data[0][1]
    obj = {_text(k): _text(v) for k, v in data}
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def entry_headers(fields: Mapping[bytes, bytes]) -> dict[str, Any]:
    """Every field of a stream entry, named as text; values stay bytes unless valid UTF-8."""
    out: dict[str, Any] = {}
    for k, v in fields.items():
        try:
            out[_text(k)] = v.decode("utf-8")
        except UnicodeDecodeError:
            out[_text(k)] = v
    return out


def _marker(fields: Mapping[bytes, bytes], name: str) -> dict[str, Any] | None:
    raw = fields.get(name.encode())
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _matches(msg_filter: MessageFilter | None, body: bytes, headers: Mapping[str, Any]) -> bool:
    return msg_filter is None or msg_filter.matches(body, headers)


@dataclass
class _Tally:
    """Running counts of one move."""

    total: int | None
    moved: int = 0
    failed: int = 0
    skipped: int = 0
    gone: int = 0
    duplicates: int = 0
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def progress(self) -> MoveProgress:
        return MoveProgress(self.moved, self.total, self.failed, self.skipped)


class RedisActions:
    """Message actions on one Redis server or cluster (own client, opened on first use)."""

    def __init__(self, options: RedisOptions) -> None:
        self.options = options
        self._client: Redis | None = None
        self._scripts: dict[str, Any] = {}
        right = options.list_head == "right"
        self._head_end = "RIGHT" if right else "LEFT"
        self._tail_end = "LEFT" if right else "RIGHT"
        self._lrem_dir = -1 if right else 1  # LREM count sign: search from the head
        self._push_tail = "LPUSH" if right else "RPUSH"

    # -- plumbing -------------------------------------------------------------------------

    @property
    def client(self) -> Redis:
        """The long-lived client of these actions."""
        if self._client is None:
            self._client = make_client(self.options)
        return self._client

    @property
    def r(self) -> Any:
        """The client, untyped: redis-py's reply types are unions of awaitables and values."""
        return self.client

    async def close(self) -> None:
        client, self._client = self._client, None
        self._scripts.clear()
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()

    async def _run(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        script = self._scripts.get(name)
        if script is None:
            script = self.r.register_script(SCRIPTS[name])
            self._scripts[name] = script
        return await script(keys=list(keys), args=list(args))

    def _error(self, exc: Exception, what: str) -> MqtopError:
        """Map a redis-py error to the contract's exit codes, secrets masked."""
        from redis import exceptions as rex

        text = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        where = f"broker {self.options.name!r} ({self.options.address()})"
        if isinstance(exc, rex.AuthenticationError | rex.AuthorizationError):
            return BrokerUnreachable(f"{where}: {what}: authentication failed: {text}")
        if isinstance(exc, rex.ConnectionError | rex.TimeoutError | OSError):
            return BrokerUnreachable(f"{where} unreachable: {what}: {text}")
        if isinstance(exc, rex.ResponseError):
            if text.startswith(("NOGROUP", "WRONGTYPE")):
                return UsageError(f"{what}: {text}")
            if text.startswith("NOPERM"):
                return ActionFailed(f"{where}: {what}: permission denied by ACL: {text}")
        return ActionFailed(f"{where}: {what}: {type(exc).__name__}: {text}")

    async def _guard(self, what: str, call: Awaitable[Any]) -> Any:
        from redis.exceptions import RedisError

        try:
            return await call
        except MqtopError:
            raise
        except (RedisError, OSError) as exc:
            raise self._error(exc, what) from None

    async def _is_channel(self, key: str) -> bool:
        if self.options.channels and matches_globs(key, self.options.channels, []):
            return True
        from redis.exceptions import RedisError

        try:
            counts = await self.r.pubsub_numsub(key)
        except RedisError:
            return False
        return any(int(n) > 0 for _, n in counts)

    async def _kind(self, key: str, action: str, role: str = "") -> Kind:
        """``list``, ``stream`` or ``none``; refuse channels and other key types clearly."""
        raw = await self.r.type(key)
        kind = _text(raw)
        if kind in ("list", "stream"):
            return kind  # type: ignore[return-value]
        label = f"{role} {key!r}" if role else repr(key)
        if kind == "none":
            if await self._is_channel(key):
                raise UnsupportedAction(
                    f"{label} is a pub/sub channel: Redis stores no pub/sub messages, so it "
                    "cannot be peeked, replayed, moved, purged or reclaimed"
                )
            return "none"
        raise UnsupportedAction(
            f"{label} is a Redis {kind}, not a list or stream: {action} works on lists "
            "and streams only"
        )

    def _cross_slot(self, source: str, destination: str) -> bool:
        return self.options.cluster and key_slot(source) != key_slot(destination)

    # -- MessageActions --------------------------------------------------------------------

    async def peek_warning(self, queue: str) -> str | None:
        return None  # LRANGE / XRANGE have no side effects

    async def peek(self, queue: str, count: int) -> list[PeekedMessage]:
        """Up to ``count`` items from the head of a list, or the first entries of a stream."""

        async def go() -> list[PeekedMessage]:
            kind = await self._kind(queue, "peek")
            if kind == "list":
                items = await self._lrange_head(queue, 0, count)
                return [
                    PeekedMessage(id=str(i), body=item, extra={"index": i})
                    for i, item in enumerate(items)
                ]
            if kind == "stream":
                entries = await self.r.xrange(queue, "-", "+", count=count)
                return [self._peeked_entry(raw_id, fields) for raw_id, fields in entries]
            return []

        result: list[PeekedMessage] = await self._guard(f"peek {queue!r}", go())
        return result

    def _peeked_entry(self, raw_id: bytes | str, fields: Mapping[bytes, bytes]) -> PeekedMessage:
        entry_id = _text(raw_id)
        ms = _id_ms(entry_id)
        dead = _marker(fields, DEAD_FIELD)
        death = None
        if dead is not None:
            count = dead.get("deliveries")
            death = Death(
                reason=str(dead.get("reason") or "stuck"),
                count=count if isinstance(count, int) else None,
                original_queue=str(dead["stream"]) if dead.get("stream") else None,
            )
        return PeekedMessage(
            id=entry_id,
            body=entry_body(fields),
            headers=entry_headers(fields),
            death=death,
            timestamp=None if ms is None else ms / 1000,
            extra={"fields": len(fields)},
        )

    async def _lrange_head(self, key: str, offset: int, count: int) -> list[bytes]:
        """``count`` items starting ``offset`` items from the head, head first."""
        if count <= 0:
            return []
        if self.options.list_head == "left":
            items: list[bytes] = await self.r.lrange(key, offset, offset + count - 1)
            return items
        items = await self.r.lrange(key, -(offset + count), -(offset + 1))
        items.reverse()
        return items

    async def replay_target(self, dlq: str) -> str | None:
        """Config mapping, then the dead-letter marker of the first entry, then the name."""
        for source, target in self.options.dlq.items():
            if target == dlq:
                return source

        async def from_marker() -> str | None:
            if _text(await self.r.type(dlq)) != "stream":
                return None
            first = await self.r.xrange(dlq, "-", "+", count=1)
            if first:
                dead = _marker(first[0][1], DEAD_FIELD)
                if dead and isinstance(dead.get("stream"), str):
                    return str(dead["stream"])
            return None

        found: str | None = await self._guard(f"inspect {dlq!r}", from_marker())
        return found or original_of_dlq(dlq)

    async def count(self, queue: str) -> int | None:
        async def go() -> int | None:
            kind = await self._kind(queue, "count")
            if kind == "list":
                return int(await self.r.llen(queue))
            if kind == "stream":
                return int(await self.r.xlen(queue))
            return 0

        result: int | None = await self._guard(f"count {queue!r}", go())
        return result

    async def purge(self, queue: str) -> int | None:
        """Lists are deleted; streams are trimmed to nothing (consumer groups are kept)."""

        async def go() -> int:
            kind = await self._kind(queue, "purge")
            if kind == "list":
                return int(await self._run("list_purge", [queue], []))
            if kind == "stream":
                return int(await self.r.xtrim(queue, maxlen=0, approximate=False))
            return 0

        result: int = await self._guard(f"purge {queue!r}", go())
        return result

    # -- move ------------------------------------------------------------------------------

    async def move(self, request: MoveRequest, progress: ProgressCallback) -> MoveResult:
        """Replay or move losslessly (atomic per batch; cross-slot: add, then delete)."""
        batch = options_as(request.options, RedisMoveOptions, "redis").batch

        async def kinds() -> tuple[Kind, Kind]:
            src = await self._kind(request.source, request.mode, "source")
            dst = await self._kind(request.destination, request.mode, "destination")
            return src, dst

        src_kind, dst_kind = await self._guard(f"{request.mode} {request.source!r}", kinds())
        if src_kind == "none":
            return MoveResult(
                request.source,
                request.destination,
                0,
                0,
                0,
                request.dry_run,
                notes=(f"{request.source} does not exist: nothing to {request.mode}",),
            )
        if dst_kind not in ("none", src_kind):
            raise UsageError(
                f"destination {request.destination!r} is a {dst_kind}; a {src_kind} can only "
                f"be moved to a {src_kind}"
            )
        if src_kind == "list":
            tally = await self._move_list(request, int(batch or LIST_BATCH), progress)
        else:
            tally = await self._move_stream(request, int(batch or STREAM_BATCH), progress)
        if tally.gone:
            tally.notes.append(
                f"{tally.gone} message(s) were taken from the source by someone else during "
                "the move and were not moved"
            )
        return MoveResult(
            source=request.source,
            destination=request.destination,
            moved=tally.moved,
            failed=tally.failed,
            skipped=tally.skipped,
            dry_run=request.dry_run,
            duplicates_possible=tally.duplicates,
            errors=tuple(tally.errors),
            notes=tuple(tally.notes),
        )

    async def _check_journal(self, source: str, destination: str, tally: _Tally) -> str | None:
        """Cross-slot: report an interrupted earlier run; return the journal key."""
        key = journal_key(source)
        tally.notes.append(
            f"{source} and {destination} are in different cluster slots: "
            "messages are added to the destination before being removed from the source, "
            "so an interruption can duplicate up to one batch (never lose)"
        )
        if key is None:
            return None
        raw = await self.r.get(key)
        if raw:
            try:
                info = json.loads(raw)
                count = int(info.get("count", 0))
            except (ValueError, TypeError, AttributeError):
                count = 0
            tally.duplicates += count
            tally.notes.append(
                f"an earlier run was interrupted with {count} message(s) in flight: they may "
                "now be in the destination twice"
            )
        return key

    async def _write_journal(
        self, key: str | None, action: str, destination: str, count: int
    ) -> None:
        if key is not None:
            record = {
                "action": action,
                "destination": destination,
                "count": count,
                "time": _now_iso(),
            }
            await self.r.set(key, json.dumps(record))

    def _fail(self, tally: _Tally, exc: Exception, what: str, in_flight: int) -> None:
        """Record an error that stops the move (the rest stays in the source)."""
        error = exc if isinstance(exc, MqtopError) else self._error(exc, what)
        tally.failed += max(1, in_flight)
        tally.errors.append(error.message)

    async def _move_list(
        self, request: MoveRequest, batch: int, progress: ProgressCallback
    ) -> _Tally:
        from redis.exceptions import RedisError

        src, dst = request.source, request.destination
        length = int(await self._guard(f"LLEN {src!r}", self.r.llen(src)))
        bound = length if request.limit is None else min(length, request.limit)
        cross = self._cross_slot(src, dst)
        if request.filter is None and not cross:
            tally = _Tally(total=bound)
            if request.dry_run:
                tally.moved = bound
                return tally
            while tally.moved < bound:
                n = min(batch, bound - tally.moved)
                try:
                    got = int(
                        await self._run(
                            "list_move", [src, dst], [n, self._head_end, self._tail_end]
                        )
                    )
                except (RedisError, OSError) as exc:
                    self._fail(tally, exc, f"move {src!r} to {dst!r}", n)
                    break
                tally.moved += got
                progress(tally.progress())
                if got < n:  # consumers drained the source meanwhile
                    break
            return self._list_note(request, tally)

        # filtered and/or cross-slot: page from the head, pick, move the picks
        tally = _Tally(total=bound if request.filter is None else None)
        journal = None
        if cross and not request.dry_run:
            journal = await self._guard("read journal", self._check_journal(src, dst, tally))
        offset = 0  # items left in place before the read position
        examined = 0
        limit = request.limit
        while examined < length and (limit is None or tally.moved < limit):
            want = min(batch, length - examined)
            items = await self._guard(f"LRANGE {src!r}", self._lrange_head(src, offset, want))
            if not items:
                break
            picks: list[bytes] = []
            used = 0
            for item in items:
                if limit is not None and tally.moved + len(picks) >= limit:
                    break
                used += 1
                if _matches(request.filter, item, {}):
                    picks.append(item)
                else:
                    tally.skipped += 1
            examined += used
            if request.dry_run:
                tally.moved += len(picks)
                offset += used
                progress(tally.progress())
                continue
            try:
                removed = await self._list_apply(
                    src=src,
                    dst=dst,
                    picks=picks,
                    cross=cross,
                    journal=journal,
                    request=request,
                    tally=tally,
                )
            except (RedisError, OSError) as exc:
                self._fail(tally, exc, f"move {src!r} to {dst!r}", len(picks))
                break
            offset += used - removed
            progress(tally.progress())
            if used < len(items):
                break
        return self._list_note(request, tally)

    @staticmethod
    def _list_note(request: MoveRequest, tally: _Tally) -> _Tally:
        if request.mode == "replay" and not request.dry_run and tally.moved:
            tally.notes.append(
                "list items carry no headers: they were replayed byte for byte, without a "
                "replay marker"
            )
        return tally

    async def _list_apply(
        self,
        *,
        src: str,
        dst: str,
        picks: list[bytes],
        cross: bool,
        journal: str | None,
        request: MoveRequest,
        tally: _Tally,
    ) -> int:
        """Move the picked items; return how many left the source."""
        removed = 0
        for chunk in _chunks(picks, MAX_SCRIPT_BYTES):
            if not cross:
                flags = await self._run(
                    "list_pick", [src, dst], [self._lrem_dir, self._push_tail, *chunk]
                )
                got = sum(1 for n in flags if int(n) > 0)
                tally.moved += got
                tally.gone += len(chunk) - got
                removed += got
                continue
            await self._write_journal(journal, request.mode, dst, len(chunk))
            await self.r.execute_command(self._push_tail, dst, *chunk)
            flags = await self._run("list_remove", [src, journal or ""], [self._lrem_dir, *chunk])
            got = sum(1 for n in flags if int(n) > 0)
            tally.moved += len(chunk)
            # pushed, but a consumer had already taken the original: delivered twice
            tally.duplicates += len(chunk) - got
            removed += got
        return removed

    async def _move_stream(
        self, request: MoveRequest, batch: int, progress: ProgressCallback
    ) -> _Tally:
        from redis.exceptions import RedisError

        src, dst = request.source, request.destination
        client = self.r

        async def start() -> tuple[str | None, int, list[str]]:
            last = await client.xrevrange(src, "+", "-", count=1)
            length = int(await client.xlen(src))
            groups = [_text(g["name"]) for g in await client.xinfo_groups(src)]
            return (_text(last[0][0]) if last else None), length, groups

        last_id, length, groups = await self._guard(f"inspect {src!r}", start())
        bound = length if request.limit is None else min(length, request.limit)
        tally = _Tally(total=bound if request.filter is None else None)
        if last_id is None:
            return tally
        cross = self._cross_slot(src, dst)
        journal = None
        if cross and not request.dry_run:
            journal = await self._guard("read journal", self._check_journal(src, dst, tally))
        replay = request.mode == "replay"
        marker_field = REPLAY_FIELD if replay else ""
        strip = DEAD_FIELD if replay else ""
        at = _now_iso()
        if request.filter is None and not cross and not request.dry_run:
            return await self._move_stream_range(
                request=request,
                batch=batch,
                progress=progress,
                tally=tally,
                last_id=last_id,
                groups=groups,
                at=at,
            )
        cursor = "-"
        limit = request.limit
        while limit is None or tally.moved < limit:
            entries = await self._guard(
                f"XRANGE {src!r}",
                client.xrange(src, cursor, last_id, count=batch),
            )
            if not entries:
                break
            cursor = "(" + _text(entries[-1][0])
            picks: list[tuple[str, Mapping[bytes, bytes]]] = []
            stop = False
            for raw_id, fields in entries:
                if limit is not None and tally.moved + len(picks) >= limit:
                    stop = True
                    break
                headers = entry_headers(fields) if request.filter is not None else {}
                body = entry_body(fields) if request.filter is not None else b""
                if _matches(request.filter, body, headers):
                    picks.append((_text(raw_id), fields))
                else:
                    tally.skipped += 1
            if request.dry_run:
                tally.moved += len(picks)
                progress(tally.progress())
                if stop:
                    break
                continue
            markers = [
                json.dumps({"from": src, "id": eid, "at": at}) if replay else "" for eid, _ in picks
            ]
            try:
                if picks and not cross:
                    args: list[Any] = [marker_field, strip, len(groups), *groups]
                    for (eid, _), mval in zip(picks, markers, strict=True):
                        args += [eid, mval]
                    new_ids = await self._run("stream_move", [src, dst], args)
                    got = sum(1 for n in new_ids if n)
                    tally.moved += got
                    tally.gone += len(picks) - got
                elif picks:
                    await self._write_journal(journal, request.mode, dst, len(picks))
                    pipe = client.pipeline(transaction=False)
                    for (_, fields), mval in zip(picks, markers, strict=True):
                        out: dict[Any, Any] = {
                            k: v
                            for k, v in fields.items()
                            if not replay or k not in (REPLAY_FIELD.encode(), DEAD_FIELD.encode())
                        }
                        if replay:
                            out[REPLAY_FIELD] = mval
                        pipe.xadd(dst, out)
                    await pipe.execute()
                    deleted = await self._run(
                        "stream_remove",
                        [src, journal or ""],
                        [len(groups), *groups, *(eid for eid, _ in picks)],
                    )
                    tally.moved += len(picks)
                    tally.duplicates += sum(1 for n in deleted if int(n) == 0)
            except (RedisError, OSError) as exc:
                self._fail(tally, exc, f"move {src!r} to {dst!r}", len(picks))
                break
            progress(tally.progress())
            if stop:
                break
        return tally

    async def _move_stream_range(
        self,
        *,
        request: MoveRequest,
        batch: int,
        progress: ProgressCallback,
        tally: _Tally,
        last_id: str,
        groups: list[str],
        at: str,
    ) -> _Tally:
        """Unfiltered, same slot: Redis reads and moves each batch itself (no payload trip)."""
        from redis.exceptions import RedisError

        src, dst = request.source, request.destination
        replay = request.mode == "replay"
        # the marker is JSON: {"from": SRC, "id": ID, "at": AT}, built around the id in Lua
        head = json.dumps({"from": src})[:-1] + ', "id": "'
        tail = '", "at": ' + json.dumps(at) + "}"
        fixed: list[Any] = [
            REPLAY_FIELD if replay else "",
            DEAD_FIELD if replay else "",
            head,
            tail,
            len(groups),
            *groups,
        ]
        cursor = "-"
        while request.limit is None or tally.moved < request.limit:
            n = batch if request.limit is None else min(batch, request.limit - tally.moved)
            try:
                count, last = await self._run(
                    "stream_move_range", [src, dst], [cursor, last_id, n, *fixed]
                )
            except (RedisError, OSError) as exc:
                self._fail(tally, exc, f"move {src!r} to {dst!r}", n)
                break
            tally.moved += int(count)
            progress(tally.progress())
            if not last or int(count) < n:
                break
            cursor = "(" + _text(last)
        return tally

    # -- reclaim ---------------------------------------------------------------------------

    async def reclaim(self, request: ReclaimRequest) -> dict[str, Any]:
        """List pending entries idle beyond the threshold; move them or hand them over."""
        from redis.exceptions import RedisError

        stream, group = request.stream, request.group
        if request.limit is not None and request.limit < 0:
            raise UsageError("--limit must not be negative")
        if request.to_stream is not None and request.to_stream == stream:
            raise UsageError("--to must name another stream")
        client = self.r
        min_idle = round(request.idle * 1000)

        async def start() -> int:
            kind = await self._kind(stream, "reclaim")
            if kind != "stream":
                raise UsageError(f"stream {stream!r} does not exist")
            if request.to_stream is not None:
                dst_kind = await self._kind(request.to_stream, "reclaim", "destination")
                if dst_kind == "list":
                    raise UsageError(f"destination {request.to_stream!r} is a list, not a stream")
            summary = await client.xpending(stream, group)
            return int(summary["pending"])

        pending = await self._guard(f"reclaim {stream!r} group {group!r}", start())
        action = "move" if request.to_stream else "claim" if request.consumer else "list"
        report: dict[str, Any] = {
            "stream": stream,
            "group": group,
            "idle_ms": min_idle,
            "action": action,
            "dry_run": request.dry_run,
            "pending": pending,
            "stuck": 0,
        }
        if request.to_stream:
            report["destination"] = request.to_stream
        if request.consumer:
            report["consumer"] = request.consumer
        entries: list[dict[str, Any]] = []
        done = skipped = missing = failed = duplicates = 0
        errors: list[str] = []
        notes: list[str] = []
        cross = request.to_stream is not None and self._cross_slot(stream, request.to_stream)
        journal = None
        if cross and not request.dry_run:
            tally = _Tally(total=None)
            journal = await self._guard(
                "read journal",
                self._check_journal(stream, request.to_stream or "", tally),
            )
            notes += tally.notes
            duplicates += tally.duplicates
        cursor = "-"
        at = _now_iso()
        while request.limit is None or len(entries) < request.limit:
            page_n = RECLAIM_PAGE
            if request.limit is not None:
                page_n = min(page_n, request.limit - len(entries))
            rows = await self._guard(
                f"XPENDING {stream!r} {group!r}",
                client.xpending_range(
                    stream, group, min=cursor, max="+", count=page_n, idle=min_idle
                ),
            )
            if not rows:
                break
            cursor = "(" + _text(rows[-1]["message_id"])
            page: list[dict[str, Any]] = [
                {
                    "id": _text(r["message_id"]),
                    "consumer": _text(r["consumer"]),
                    "idle_ms": int(r["time_since_delivered"]),
                    "deliveries": int(r["times_delivered"]),
                }
                for r in rows
            ]
            entries += page
            if request.dry_run or action == "list":
                for e in page:
                    e["result"] = "stuck" if action == "list" else f"would {action}"
                continue
            ids = [e["id"] for e in page]
            try:
                if action == "move":
                    results, dups = await self._reclaim_move(
                        stream=stream,
                        group=group,
                        min_idle=min_idle,
                        dst=request.to_stream or "",
                        page=page,
                        at=at,
                        cross=cross,
                        journal=journal,
                    )
                    for e, res in zip(page, results, strict=True):
                        e["result"] = res
                    done += sum(1 for r in results if r == "moved")
                    duplicates += dups
                else:
                    claimed = await client.xclaim(
                        stream, group, request.consumer or "", min_idle, ids, justid=True
                    )
                    got = {_text(x) for x in claimed}
                    pipe = client.pipeline(transaction=False)
                    for eid in ids:
                        pipe.xrange(stream, eid, eid)
                    exists = await pipe.execute()
                    for e, found in zip(page, exists, strict=True):
                        if e["id"] in got:
                            e["result"] = "claimed"
                        elif not found:
                            e["result"] = "missing"
                        else:
                            e["result"] = "skipped"
                    done += len(got)
            except (RedisError, OSError) as exc:
                failed += len(page)
                errors.append(self._error(exc, f"reclaim {stream!r}").message)
                for e in page:
                    e.setdefault("result", "failed")
                break
            skipped += sum(1 for e in page if e["result"] == "skipped")
            missing += sum(1 for e in page if e["result"] == "missing")
        report["stuck"] = len(entries)
        if action != "list" and not request.dry_run:
            report["moved" if action == "move" else "claimed"] = done
            report["skipped"] = skipped
            report["missing"] = missing
        if action == "move":
            report["duplicates_possible"] = duplicates
        report["failed"] = failed
        if errors:
            report["errors"] = errors
        if notes:
            report["notes"] = notes
        report["entries"] = entries
        return report

    async def _reclaim_move(
        self,
        *,
        stream: str,
        group: str,
        min_idle: int,
        dst: str,
        page: list[dict[str, Any]],
        at: str,
        cross: bool,
        journal: str | None,
    ) -> tuple[list[str], int]:
        """Move one page of stuck entries; per entry moved/skipped/missing, and duplicates."""
        markers = [
            json.dumps(
                {
                    "stream": stream,
                    "group": group,
                    "id": e["id"],
                    "consumer": e["consumer"],
                    "deliveries": e["deliveries"],
                    "idle_ms": e["idle_ms"],
                    "reason": f"pending longer than {format_duration(min_idle / 1000)}",
                    "at": at,
                }
            )
            for e in page
        ]
        if not cross:
            args: list[Any] = [group, min_idle, DEAD_FIELD]
            for e, mval in zip(page, markers, strict=True):
                args += [e["id"], mval]
            raw = await self._run("reclaim_move", [stream, dst], args)
            out = []
            for r in raw:
                text = _text(r)
                out.append(text if text in ("skipped", "missing") else "moved")
            return out, 0
        # cross-slot: read what is still pending and idle, add it, then acknowledge it
        client = self.r
        pipe = client.pipeline(transaction=False)
        for e in page:
            pipe.xpending_range(stream, group, min=e["id"], max=e["id"], count=1, idle=min_idle)
            pipe.xrange(stream, e["id"], e["id"])
        raw_rows = await pipe.execute()
        results: list[str] = []
        to_add: list[tuple[str, dict[Any, Any]]] = []
        for i, (e, mval) in enumerate(zip(page, markers, strict=True)):
            still, found = raw_rows[2 * i], raw_rows[2 * i + 1]
            if not still:
                results.append("skipped")
            elif not found:
                results.append("missing")
            else:
                fields = {k: v for k, v in found[0][1].items() if k != DEAD_FIELD.encode()}
                fields[DEAD_FIELD] = mval
                to_add.append((e["id"], fields))
                results.append("pending")
        if to_add:
            await self._write_journal(journal, "reclaim", dst, len(to_add))
            pipe = client.pipeline(transaction=False)
            for _, fields in to_add:
                pipe.xadd(dst, fields)
            await pipe.execute()
        ids = [eid for eid, _ in to_add] + [
            e["id"] for e, r in zip(page, results, strict=True) if r == "missing"
        ]
        acked = (
            await self._run("reclaim_ack", [stream, journal or ""], [group, *ids]) if ids else []
        )
        ack_of = dict(zip(ids, (int(a) for a in acked), strict=True))
        final = []
        dups = 0
        for e, r in zip(page, results, strict=True):
            if r == "pending":
                # acknowledged by its consumer between our read and our ack: delivered twice
                dups += 0 if ack_of.get(e["id"]) else 1
                final.append("moved")
            else:
                final.append(r)
        return final, dups


def _chunks(items: list[bytes], max_bytes: int) -> list[list[bytes]]:
    """Split items into chunks of at most ``max_bytes`` payload (at least one item each)."""
    out: list[list[bytes]] = []
    current: list[bytes] = []
    size = 0
    for item in items:
        if current and size + len(item) > max_bytes:
            out.append(current)
            current, size = [], 0
        current.append(item)
        size += len(item)
    if current:
        out.append(current)
    return out


__all__ = [
    "DEAD_FIELD",
    "REPLAY_FIELD",
    "RedisActions",
    "entry_body",
    "entry_headers",
    "hash_tag",
    "journal_key",
]
