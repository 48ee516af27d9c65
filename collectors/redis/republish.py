"""One reviewed message, as given or edited, to another list or stream; then the original out.

Within one slot the copy and the removal are one Lua script: Redis runs it whole or not at
all, so the message is in the source or in the destination, never in neither. Across cluster
slots the copy is written first (its reply is the confirmation), then the original removed.

A list item is found by its position from the head, checked against its bytes; if the list
moved meanwhile, by its first equal copy (byte-identical list items are the same message).
A stream entry is found by its id.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from collectors.base import RepublishRequest, RepublishResult
from mqtop.kernel.errors import ActionFailed, BrokerUnreachable, UnsupportedAction
from mqtop.kernel.secrets import redact

MISSING = "not in the source any more: already replayed, consumed or expired"
REPLAY_FIELD = "mqtop-replay"
DEAD_FIELD = "mqtop-dead-letter"

# KEYS: source, destination ('' = do not push). ARGV: position from the head, original bytes,
# new bytes, head end ('LEFT' | 'RIGHT'), push command ('RPUSH' | 'LPUSH'), tombstone.
# Returns 1 when moved, 0 when the original was not found.
LIST_ONE = """
local src, dst = KEYS[1], KEYS[2]
local pos, original, body = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local left = ARGV[4] == 'LEFT'
local at = left and pos or -(pos + 1)
if redis.call('LINDEX', src, at) ~= original then
  local found = redis.call('LPOS', src, original, 'RANK', left and 1 or -1)
  if not found then return 0 end
  at = found
end
redis.call('LSET', src, at, ARGV[6])
redis.call('LREM', src, 1, ARGV[6])
if dst ~= '' then redis.call(ARGV[5], dst, body) end
return 1
"""

# KEYS: source, destination ('' = do not add). ARGV: id, then field, value pairs.
# Returns the new id ('' when not added), or false when the entry was not found.
STREAM_ONE = """
local src, dst, id = KEYS[1], KEYS[2], ARGV[1]
if #redis.call('XRANGE', src, id, id) == 0 then return false end
local nid = ''
if dst ~= '' then nid = redis.call('XADD', dst, '*', unpack(ARGV, 2)) end
redis.call('XDEL', src, id)
for _, g in ipairs(redis.call('XINFO', 'GROUPS', src)) do
  local name
  for i = 1, #g, 2 do if g[i] == 'name' then name = g[i + 1] end end
  if name then redis.call('XACK', src, name, id) end
end
return nid
"""


def _text(raw: bytes | str) -> str:
    return raw if isinstance(raw, str) else raw.decode("utf-8", "backslashreplace")


def stream_fields(request: RepublishRequest, now: str) -> dict[str, Any]:
    """The fields to write for a stream entry: the given headers (a stream entry's fields),
    the edited body put back, the dead-letter marker dropped and a replay marker added."""
    original = request.original
    fields: dict[str, Any] = {
        k: v for k, v in request.headers.items() if k not in (REPLAY_FIELD, DEAD_FIELD)
    }
    if request.body != original.body:
        data = [k for k in fields if not k.startswith("mqtop-")]
        if len(data) == 1:
            fields[data[0]] = request.body
        else:
            try:
                parsed = json.loads(request.body)
            except ValueError:
                parsed = None
            if not isinstance(parsed, dict):
                raise UnsupportedAction(
                    "this stream entry has several fields: its body is a JSON object of "
                    "them; edit it as one (or edit the fields in the headers)"
                )
            fields = {**{k: v for k, v in fields.items() if k.startswith("mqtop-")}, **parsed}
    if request.mode == "replay":
        marker = {"from": request.source, "id": original.id, "at": now}
        fields[REPLAY_FIELD] = json.dumps(marker)
    return {k: v if isinstance(v, bytes | str) else json.dumps(v) for k, v in fields.items()}


async def republish(client: Any, options: Any, request: RepublishRequest) -> RepublishResult:
    """Move one reviewed (possibly edited) message; see the module's words."""
    from redis.exceptions import RedisError

    try:
        return await _republish(client, options, request)
    except (UnsupportedAction, ActionFailed):
        raise
    except (RedisError, OSError) as exc:
        where = f"broker {options.name!r} ({options.address()})"
        text = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc))
        from redis.exceptions import ConnectionError as RedisConnectionError

        if isinstance(exc, RedisConnectionError | OSError):
            raise BrokerUnreachable(f"{where} unreachable: republish: {text}") from None
        raise ActionFailed(f"{where}: republish {request.original.id}: {text}") from None


async def _republish(client: Any, options: Any, request: RepublishRequest) -> RepublishResult:
    src, dst = request.source, request.destination
    kind = _text(await client.type(src))
    target = _text(await client.type(dst))
    if kind not in ("list", "stream"):
        return RepublishResult(False, False, MISSING)
    if target not in (kind, "none"):
        raise UnsupportedAction(
            f"{dst!r} is a Redis {target} and {src!r} a {kind}: one message is republished "
            "between two lists or two streams only"
        )
    together = not options.cluster or _slot(src) == _slot(dst)
    if kind == "list":
        return await _list_one(client, options, request, together)
    return await _stream_one(client, request, together)


def _slot(key: str) -> int:
    from redis.crc import key_slot

    return int(key_slot(key.encode("utf-8")))


async def _list_one(
    client: Any, options: Any, request: RepublishRequest, together: bool
) -> RepublishResult:
    if request.headers:
        raise UnsupportedAction("a Redis list item has no headers: edit its body only")
    right = options.list_head == "right"
    head, push = ("RIGHT", "LPUSH") if right else ("LEFT", "RPUSH")
    extra = request.original.extra
    position = extra.get("index") if isinstance(extra.get("index"), int) else 0
    tombstone = "mqtop-tombstone-" + hashlib.sha256(request.original.body).hexdigest()[:16]
    script = client.register_script(LIST_ONE)
    original = request.original.body
    if together:
        args = [position, original, request.body, head, push, tombstone]
        moved = int(await script(keys=[request.source, request.destination], args=args))
        if not moved:
            return RepublishResult(False, False, MISSING)
        return RepublishResult(True, True)
    # across slots: is it there? then the copy (confirmed by its reply), then the removal
    if await client.lpos(request.source, original) is None:
        return RepublishResult(False, False, MISSING)
    await client.execute_command(push, request.destination, request.body)
    args = [position, original, b"", head, push, tombstone]
    removed = int(await script(keys=[request.source, ""], args=args))
    if not removed:
        return RepublishResult(True, False, "published; the original had already left the source")
    return RepublishResult(True, True)


async def _stream_one(client: Any, request: RepublishRequest, together: bool) -> RepublishResult:
    now = dt.datetime.now(tz=dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    fields = stream_fields(request, now)
    flat: list[Any] = []
    for key, value in fields.items():
        flat += [key, value]
    script = client.register_script(STREAM_ONE)
    entry = request.original.id
    if together:
        added = await script(keys=[request.source, request.destination], args=[entry, *flat])
        if added is None:
            return RepublishResult(False, False, MISSING)
        return RepublishResult(True, True)
    if not await client.xrange(request.source, entry, entry):
        return RepublishResult(False, False, MISSING)
    await client.xadd(request.destination, _as_mapping(fields))
    removed = await script(keys=[request.source, ""], args=[entry])
    if removed is None:
        return RepublishResult(True, False, "published; the original had already left the source")
    return RepublishResult(True, True)


def _as_mapping(fields: Mapping[str, Any]) -> dict[Any, Any]:
    return dict(fields)
