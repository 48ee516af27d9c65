"""BullMQ's failed sets: peek, retry (``Job#retry('failed')``) and purge.

The retry script follows BullMQ's ``reprocessJob`` Lua script job by job: the job hash must
exist and its id must leave ``<q>:failed`` (``ZREM``); then ``finishedOn``, ``processedOn`` and
``failedReason`` are deleted, the id goes to ``wait`` (LPUSH, RPUSH for LIFO jobs) or, with a
priority, to ``prioritized`` with BullMQ's priority score; the ``marker`` wakes the workers
unless the queue is paused or at its concurrency limit, and a ``waiting`` event is added to
the events stream (trimmed at the queue's ``opts.maxLenEvents``). Jobs of a flow (with a
parent) are left to BullMQ, which re-links them to their parent.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from collectors.base import Death, PeekedMessage
from collectors.jobs.actions import COUNTS, OUTCOMES, DeadJob, FailedSetLibrary, error_class
from collectors.jobs.common import epoch_seconds, integer, iso_seconds, json_object, text

if TYPE_CHECKING:
    from collectors.jobs.bullmq.options import BullMQKeys, BullMQOptions

FLOW = 2  # outcome: a job of a flow, left to BullMQ
FLOW_NOTE = "jobs of a flow (with a parent) must be retried by BullMQ itself"

# KEYS: failed, wait, meta, active, marker, prioritized, pc, events.
# ARGV: job key prefix, then either "ids" and the ids, or "range", offset and count (the
# script reads those ranks of the failed set itself). An outcome per job (a range: outcome,
# count pairs): 1 retried, 0 no longer failed, -1 no job hash (expired), 2 a job of a flow
# (left to BullMQ).
RETRY = (
    COUNTS
    + """
local rcall = redis.call
local attrs = rcall('HMGET', KEYS[3], 'paused', 'concurrency', 'opts.maxLenEvents')
local paused = attrs[1] ~= false
if not paused and attrs[2] then
  paused = rcall('LLEN', KEYS[4]) >= tonumber(attrs[2])
end
local maxEvents = attrs[3]
if not maxEvents then
  maxEvents = 10000
  rcall('HSET', KEYS[3], 'opts.maxLenEvents', maxEvents)
end
local ids, ranged
if ARGV[2] == 'range' then
  local first = tonumber(ARGV[3])
  ids = rcall('ZRANGE', KEYS[1], first, first + tonumber(ARGV[4]) - 1)
  ranged = true
else
  ids = {}
  for i = 3, #ARGV do ids[#ids + 1] = ARGV[i] end
end
local out, taken, fifo = {}, {}, {}  -- out[i]: the outcome of ids[i] unless retried
local prefix, events = ARGV[1], KEYS[8]
for i, id in ipairs(ids) do
  local jk = prefix .. id
  local f = rcall('HMGET', jk, 'priority', 'parentKey', 'opts')
  if not f[1] and not f[3] and rcall('EXISTS', jk) == 0 then
    out[i] = -1
  elseif f[2] then
    out[i] = 2
  elseif not ranged and not rcall('ZSCORE', KEYS[1], id) then
    out[i] = 0
  else
    rcall('HDEL', jk, 'finishedOn', 'processedOn', 'failedReason')
    local priority = tonumber(f[1]) or 0
    if priority > 0 then
      local counter = rcall('INCR', KEYS[7])
      rcall('ZADD', KEYS[6], priority * 0x100000000 + counter % 0x100000000, id)
    elseif f[3] and string.find(f[3], '"lifo":true', 1, true) then
      rcall('RPUSH', KEYS[2], id)
    else
      fifo[#fifo + 1] = id
    end
    rcall('XADD', events, 'MAXLEN', '~', maxEvents, '*', 'event', 'waiting',
          'jobId', id, 'prev', 'failed')
    taken[#taken + 1] = id
  end
end
for i = 1, #taken, 5000 do
  rcall('ZREM', KEYS[1], unpack(taken, i, math.min(i + 4999, #taken)))
end
for i = 1, #fifo, 5000 do
  rcall('LPUSH', KEYS[2], unpack(fifo, i, math.min(i + 4999, #fifo)))
end
if #taken > 0 and not paused then rcall('ZADD', KEYS[5], 0, '0') end
return outcomes(out, #ids, #taken, ranged)
"""
)

# KEYS: failed. ARGV: job key prefix, ids... Deletes each job with its logs and bookkeeping.
DELETE = """
local n = 0
for i = 2, #ARGV do
  if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then
    local jk = ARGV[1] .. ARGV[i]
    redis.call('DEL', jk, jk .. ':logs', jk .. ':dependencies', jk .. ':processed',
               jk .. ':failed', jk .. ':unsuccessful')
    n = n + 1
  end
end
return n
"""


def decode(job_id: str, fields: dict[bytes, bytes], queue: str) -> PeekedMessage:
    """How peek shows a failed BullMQ job (its data as the body)."""
    try:
        stack = json.loads(fields.get(b"stacktrace") or b"[]")
    except (ValueError, UnicodeDecodeError):
        stack = []
    last = stack[-1] if isinstance(stack, list) and stack and isinstance(stack[-1], str) else None
    failed_at = epoch_seconds(fields.get(b"finishedOn"))
    headers: dict[str, Any] = {
        "class": text(fields.get(b"name")),
        "queue": queue,
        "error_class": error_class(last.splitlines()[0]) if last else None,
        "error_message": text(fields.get(b"failedReason")),
        "failed_at": iso_seconds(failed_at),
        "enqueued_at": iso_seconds(epoch_seconds(fields.get(b"timestamp"))),
        "attempts_made": integer(fields.get(b"atm")),
        "priority": integer(fields.get(b"priority")),
    }
    if last:
        headers["backtrace"] = last
    reason = headers["error_message"] or "failed"
    if headers["error_class"]:
        reason = f"{headers['error_class']}: {reason}"
    return PeekedMessage(
        id=job_id,
        body=fields.get(b"data", b""),
        headers={k: v for k, v in headers.items() if v is not None},
        properties={"opts": json_object(fields.get(b"opts")) or {}},
        death=Death(reason=reason, count=headers.get("attempts_made"), original_queue=queue),
        timestamp=failed_at,
    )


class BullMQActions(FailedSetLibrary):
    """Failed-set actions of one BullMQ installation."""

    library = "BullMQ"
    outcomes = {**OUTCOMES, FLOW: f"job(s) left in the dead set: {FLOW_NOTE}"}

    def __init__(self, options: BullMQOptions, keys: BullMQKeys) -> None:
        super().__init__(options)
        self.keys = keys

    def dead_set_key(self, name: str) -> str | None:
        queue = self._queue(name)
        return None if queue is None else self.keys.key(queue, "failed")

    def dead_set_names(self) -> str:
        return "failed sets, named '<queue>:failed'"

    async def load(self, name: str, members: list[tuple[bytes, float]]) -> list[DeadJob]:
        queue = self._queue(name) or ""
        pipe = self.r.pipeline(transaction=False)
        for member, _ in members:
            pipe.hgetall(self.keys.job(queue, member.decode("utf-8", "replace")))
        replies = await pipe.execute()
        out = []
        for (member, _), fields in zip(members, replies, strict=True):
            job_id = member.decode("utf-8", "replace")
            refusal = None
            if fields and fields.get(b"parentKey"):
                refusal = FLOW_NOTE
            out.append(DeadJob(member, decode(job_id, fields or {}, queue), queue, refusal))
        return out

    async def requeue(self, queue: str, args: list[Any]) -> list[int]:
        parts = ("failed", "wait", "meta", "active", "marker", "prioritized", "pc", "events")
        keys = [self.keys.key(queue, part) for part in parts]
        got = await self.run_script("retry", RETRY, keys, [self.keys.job(queue, ""), *args])
        return [int(r) for r in got]

    async def delete_batch(self, name: str, members: list[bytes]) -> int:
        queue = self._queue(name) or ""
        args = [self.keys.job(queue, ""), *members]
        return int(await self.run_script("delete", DELETE, [self.keys.key(queue, "failed")], args))
