"""The Lua scripts of Redis actions: each runs atomically, a batch applied whole or not at all."""

from __future__ import annotations

# KEYS: list. ARGV: index of its head. A fingerprint of the head message (its first 256
# bytes and its length), so a poll sees a message consumed without reading whole bodies.
HEAD_ID = """
local v = redis.call('LINDEX', KEYS[1], ARGV[1])
if not v then return false end
return redis.sha1hex(string.sub(v, 1, 256) .. ':' .. #v)
"""

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

__all__ = ["HEAD_ID", "SCRIPTS"]
