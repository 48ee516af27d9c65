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

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

from collectors.base import Death, PeekedMessage
from collectors.jobs.actions import DeadJob, DeadSetLibrary, error_class
from collectors.jobs.common import epoch_seconds, integer, json_object, queue_of_failed, text

if TYPE_CHECKING:
    from collectors.jobs.bullmq.options import BullMQKeys, BullMQOptions

# KEYS: failed, wait, meta, active, marker, prioritized, pc, events.
# ARGV: job key prefix, then pairs (id, push command).
RETRY = """
local attrs = redis.call('HMGET', KEYS[3], 'paused', 'concurrency')
local paused = attrs[1] ~= false
if not paused and attrs[2] then
  paused = redis.call('LLEN', KEYS[4]) >= tonumber(attrs[2])
end
local maxEvents = redis.call('HGET', KEYS[3], 'opts.maxLenEvents')
if not maxEvents then
  maxEvents = 10000
  redis.call('HSET', KEYS[3], 'opts.maxLenEvents', maxEvents)
end
local out = {}
local i = 2
while i <= #ARGV do
  local id, push = ARGV[i], ARGV[i + 1]
  i = i + 2
  local jk = ARGV[1] .. id
  if redis.call('EXISTS', jk) == 0 then
    out[#out + 1] = -1
  elseif redis.call('ZREM', KEYS[1], id) == 0 then
    out[#out + 1] = 0
  else
    redis.call('HDEL', jk, 'finishedOn', 'processedOn', 'failedReason')
    local priority = tonumber(redis.call('HGET', jk, 'priority')) or 0
    if priority == 0 then
      redis.call(push, KEYS[2], id)
    else
      local counter = redis.call('INCR', KEYS[7])
      redis.call('ZADD', KEYS[6], priority * 0x100000000 + counter % 0x100000000, id)
    end
    if not paused then redis.call('ZADD', KEYS[5], 0, '0') end
    redis.call('XADD', KEYS[8], 'MAXLEN', '~', maxEvents, '*', 'event', 'waiting',
               'jobId', id, 'prev', 'failed')
    out[#out + 1] = 1
  end
end
return out
"""

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


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC).isoformat(timespec="milliseconds")


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
        "failed_at": _iso(failed_at),
        "enqueued_at": _iso(epoch_seconds(fields.get(b"timestamp"))),
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


class BullMQActions(DeadSetLibrary):
    """Failed-set actions of one BullMQ installation."""

    library = "BullMQ"

    def __init__(self, options: BullMQOptions, keys: BullMQKeys) -> None:
        super().__init__(options)
        self.keys = keys

    def _queue(self, name: str) -> str | None:
        return queue_of_failed(name)

    def dead_set_key(self, name: str) -> str | None:
        queue = self._queue(name)
        return None if queue is None else self.keys.key(queue, "failed")

    def dead_set_names(self) -> str:
        return "failed sets, named '<queue>:failed'"

    def retry_target(self, name: str) -> str | None:
        return self._queue(name)

    def refuse_destination(self, name: str, destination: str) -> str | None:
        own = self._queue(name)
        return (
            None if destination == own else f"BullMQ retries a failed job in its own queue, {own!r}"
        )

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
                refusal = "jobs of a flow (with a parent) must be retried by BullMQ itself"
            out.append(DeadJob(member, decode(job_id, fields or {}, queue), queue, refusal))
        return out

    async def retry_batch(self, name: str, jobs: list[DeadJob], destination: str) -> list[int]:
        if not jobs:
            return []
        q = destination
        parts = ("failed", "wait", "meta", "active", "marker", "prioritized", "pc", "events")
        keys = [self.keys.key(q, part) for part in parts]
        args: list[Any] = [self.keys.job(q, "")]
        for job in jobs:
            opts = job.message.properties.get("opts") or {}
            args += [job.member, "RPUSH" if opts.get("lifo") else "LPUSH"]
        return [int(r) for r in await self.run_script("retry", RETRY, keys, args)]

    async def delete_batch(self, name: str, members: list[bytes]) -> int:
        queue = self._queue(name) or ""
        args = [self.keys.job(queue, ""), *members]
        return int(await self.run_script("delete", DELETE, [self.keys.key(queue, "failed")], args))
