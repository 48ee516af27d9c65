"""RQ's failed job registries: peek, retry (``FailedJobRegistry.requeue``) and purge.

RQ's requeue removes the id from ``rq:failed:<q>``, clears ``started_at`` / ``ended_at`` and
the exception, sets ``status`` to ``queued`` and ``enqueued_at`` to now, RPUSHes the id to
``rq:queue:<origin>`` and registers the queue in ``rq:queues``. RQ does the ``ZREM`` and the
rest in two steps; mqtop does them in one Lua script per batch, so an interruption never leaves
a job outside both. A job whose hash has expired stays in the registry (RQ's own requeue
fails on it too); jobs with an RQ 3 rate limit are left to RQ (they must re-acquire capacity).

Job data is a pickle: mqtop never unpickles it. The function name is read from the pickle's
opcodes without executing anything; the arguments are shown as RQ's ``description``.
"""

from __future__ import annotations

import base64
import datetime as dt
import pickletools
import zlib
from typing import TYPE_CHECKING, Any

from collectors.base import Death, PeekedMessage
from collectors.jobs.actions import COUNTS, OUTCOMES, DeadJob, FailedSetLibrary, error_class
from collectors.jobs.common import epoch_seconds, integer, iso_seconds, text

if TYPE_CHECKING:
    from collectors.jobs.rq.options import RQKeys, RQOptions

RATE_LIMITED, OTHER_ORIGIN = 2, 3  # outcomes: jobs left to RQ
RATE_LIMITED_NOTE = "rate-limited jobs must be requeued by RQ itself"

# KEYS: failed registry, queue list, rq:queues. ARGV: job key prefix, queue key, queue name,
# now, then either "ids" and the ids, or "range", offset and count (the script reads those
# ranks of the registry itself). An outcome per job (a range: outcome, count pairs):
# 1 requeued, 0 no longer failed, -1 no job hash (expired), 2 rate-limited (left to RQ),
# 3 from another queue (its origin differs).
REQUEUE = (
    COUNTS
    + """
local ids, ranged
if ARGV[5] == 'range' then
  local first = tonumber(ARGV[6])
  ids = redis.call('ZRANGE', KEYS[1], first, first + tonumber(ARGV[7]) - 1)
  ranged = true
else
  ids = {}
  for i = 6, #ARGV do ids[#ids + 1] = ARGV[i] end
end
local out, taken = {}, {}
for _, id in ipairs(ids) do
  local jk = ARGV[1] .. id
  local f = redis.call('HMGET', jk, 'origin', 'rate_limit_key', 'status')
  if not f[1] and not f[3] and redis.call('EXISTS', jk) == 0 then
    out[#out + 1] = -1
  elseif f[2] and f[2] ~= '' then
    out[#out + 1] = 2
  elseif f[1] and f[1] ~= ARGV[3] then
    out[#out + 1] = 3
  elseif not ranged and redis.call('ZSCORE', KEYS[1], id) == false then
    out[#out + 1] = 0
  else
    redis.call('HSET', jk, 'status', 'queued', 'enqueued_at', ARGV[4],
               'started_at', '', 'ended_at', '')
    redis.call('HDEL', jk, 'exc_info')
    taken[#taken + 1] = id
    out[#out + 1] = 1
  end
end
for i = 1, #taken, 5000 do
  local last = math.min(i + 4999, #taken)
  redis.call('ZREM', KEYS[1], unpack(taken, i, last))
  redis.call('RPUSH', KEYS[2], unpack(taken, i, last))
end
if #taken > 0 then redis.call('SADD', KEYS[3], ARGV[2]) end
return outcomes(out, #ids, #taken, ranged)
"""
)

# KEYS: failed registry. ARGV: job key prefix, results key prefix, ids... Deletes each job
# with its hash and results stream (RQ's ``job.delete``); returns how many left the registry.
DELETE = """
local n = 0
for i = 3, #ARGV do
  if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then
    redis.call('DEL', ARGV[1] .. ARGV[i], ARGV[2] .. ARGV[i])
    n = n + 1
  end
end
return n
"""


def function_name(data: bytes | None) -> str | None:
    """The job's function from RQ's zlib-compressed pickle, read without unpickling."""
    if not data:
        return None
    try:
        raw = zlib.decompress(data)
    except zlib.error:
        raw = data
    try:
        for opcode, arg, _ in pickletools.genops(raw):
            if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE") and isinstance(
                arg, str
            ):
                return arg
    except (ValueError, TypeError, UnicodeDecodeError):
        return None
    return None


def exception_text(entry: Any) -> str | None:
    """The traceback in the newest entry of a job's results stream (base64 of zlib)."""
    if not entry:
        return None
    fields = entry[0][1]
    raw = fields.get(b"exc_string")
    if raw is None:
        return None
    try:
        return zlib.decompress(base64.b64decode(raw)).decode("utf-8", "replace")
    except (ValueError, zlib.error):
        return text(raw)


def decode(job_id: str, fields: dict[bytes, bytes], trace: str | None, queue: str) -> PeekedMessage:
    """How peek shows a failed RQ job (its description as the body)."""
    last = next((ln for ln in reversed((trace or "").splitlines()) if ln.strip()), None)
    failed_at = epoch_seconds(fields.get(b"ended_at"))
    headers: dict[str, Any] = {
        "class": function_name(fields.get(b"data")),
        "queue": text(fields.get(b"origin")) or queue,
        "status": text(fields.get(b"status")),
        "error_class": error_class(last),
        "error_message": last.partition(":")[2].strip() if last and ":" in last else last,
        "failed_at": iso_seconds(failed_at),
        "enqueued_at": iso_seconds(epoch_seconds(fields.get(b"enqueued_at"))),
        "retries_left": integer(fields.get(b"retries_left")),
    }
    if trace:
        headers["backtrace"] = trace
    return PeekedMessage(
        id=job_id,
        body=fields.get(b"description", b""),
        headers={k: v for k, v in headers.items() if v is not None},
        properties={"worker_name": text(fields.get(b"worker_name"))},
        death=Death(
            reason=f"{headers['error_class']}: {headers['error_message']}"
            if headers.get("error_class")
            else "failed",
            count=integer(fields.get(b"number_of_retries")),
            original_queue=headers["queue"],
        ),
        timestamp=failed_at,
    )


class RQActions(FailedSetLibrary):
    """Failed-registry actions of one RQ installation."""

    library = "RQ"
    outcomes = {
        **OUTCOMES,
        RATE_LIMITED: f"job(s) left in the dead set: {RATE_LIMITED_NOTE}",
        OTHER_ORIGIN: "job(s) left in the dead set: their origin is another queue",
    }
    own_queue = "requeues a failed job into the queue it came from"

    def __init__(self, options: RQOptions, keys: RQKeys) -> None:
        super().__init__(options)
        self.keys = keys

    def dead_set_key(self, name: str) -> str | None:
        queue = self._queue(name)
        return None if queue is None else self.keys.registry("failed", queue)

    def dead_set_names(self) -> str:
        return "failed registries, named '<queue>:failed'"

    async def load(self, name: str, members: list[tuple[bytes, float]]) -> list[DeadJob]:
        queue = self._queue(name) or ""
        pipe = self.r.pipeline(transaction=False)
        for member, _ in members:
            job_id = member.decode("utf-8", "replace")
            pipe.hgetall(self.keys.job(job_id))
            pipe.xrevrange(self.keys.results(job_id), "+", "-", count=1)
        replies = await pipe.execute()
        out = []
        for i, (member, _) in enumerate(members):
            job_id = member.decode("utf-8", "replace")
            fields, result = replies[2 * i], replies[2 * i + 1]
            message = decode(job_id, fields or {}, exception_text(result), queue)
            refusal = None
            if fields and fields.get(b"rate_limit_key"):
                refusal = RATE_LIMITED_NOTE
            origin = text(fields.get(b"origin")) if fields else queue
            if origin not in (None, queue):
                refusal = f"the job's origin is {origin!r}, not {queue!r}"
            out.append(DeadJob(member, message, queue, refusal))
        return out

    async def requeue(self, queue: str, args: list[Any]) -> list[int]:
        now = dt.datetime.now(tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # RQ's utcformat
        keys = [self.keys.registry("failed", queue), self.keys.queue(queue), self.keys.queues]
        head = [self.keys.job(""), self.keys.queue(queue), queue, now]
        got = await self.run_script("requeue", REQUEUE, keys, [*head, *args])
        return [int(r) for r in got]

    async def delete_batch(self, name: str, members: list[bytes]) -> int:
        key = self.dead_set_key(name) or ""
        args = [self.keys.job(""), self.keys.results(""), *members]
        return int(await self.run_script("delete", DELETE, [key], args))
