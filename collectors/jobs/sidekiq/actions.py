"""Sidekiq's dead set: peek, retry (``Sidekiq::SortedEntry#retry``) and purge.

Sidekiq 6.4's retry of a dead job removes it from the ``dead`` set, decrements its
``retry_count`` and pushes it with ``Sidekiq::Client.push``: ``enqueued_at`` becomes now, the
queue joins the ``queues`` set and the job JSON is LPUSHed to ``queue:<queue>``. mqtop makes
the new JSON in Python (numbers in the job's arguments stay exactly as they were; Lua's JSON
would round them), and one Lua script per batch does ``ZREM`` of the exact member, then
``SADD`` + ``LPUSH`` only when the ``ZREM`` removed it. ``--to QUEUE`` sends every job there
(its ``queue`` field is rewritten); by default each job goes back to its own queue.
"""

from __future__ import annotations

import base64
import json
import time
import zlib
from typing import TYPE_CHECKING, Any

from collectors.base import Death, PeekedMessage
from collectors.jobs.actions import DeadJob, DeadSetLibrary
from collectors.jobs.common import epoch_seconds, iso_seconds

if TYPE_CHECKING:
    from collectors.jobs.sidekiq.options import SidekiqKeys, SidekiqOptions

OWN_QUEUE = "*"  # replay target: each job's own queue

# KEYS: dead, queues. ARGV: queue key prefix, then triples (member, queue, new JSON).
RETRY = """
local out = {}
local i = 2
while i <= #ARGV do
  local member, q, payload = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  i = i + 3
  if redis.call('ZREM', KEYS[1], member) == 1 then
    redis.call('SADD', KEYS[2], q)
    redis.call('LPUSH', ARGV[1] .. q, payload)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
"""

# KEYS: dead. ARGV: members. Returns how many were removed.
DELETE = """
local n = 0
for i = 1, #ARGV do n = n + redis.call('ZREM', KEYS[1], ARGV[i]) end
return n
"""


def backtrace(job: dict[str, Any]) -> str | None:
    """Sidekiq's ``error_backtrace``: a list, or (6.0+) base64 of zlib of its JSON."""
    raw = job.get("error_backtrace")
    if isinstance(raw, list):
        return "\n".join(str(line) for line in raw)
    if isinstance(raw, str):
        try:
            lines = json.loads(zlib.decompress(base64.b64decode(raw)))
        except (ValueError, zlib.error):
            return raw
        if isinstance(lines, list):
            return "\n".join(str(line) for line in lines)
    return None


def decode(member: bytes, score: float) -> tuple[dict[str, Any] | None, PeekedMessage]:
    """A dead job's JSON and how peek shows it (arguments as the body)."""
    try:
        job = json.loads(member)
    except (ValueError, UnicodeDecodeError):
        job = None
    if not isinstance(job, dict):
        return None, PeekedMessage(id="?", body=member, note="not a Sidekiq job (invalid JSON)")
    failed_at = epoch_seconds(job.get("failed_at")) or score
    headers: dict[str, Any] = {
        key: job[key]
        for key in ("class", "queue", "jid", "error_class", "error_message", "retry_count")
        if key in job
    }
    if "wrapped" in job:  # ActiveJob: the real job class
        headers["wrapped"] = job["wrapped"]
    headers["failed_at"] = iso_seconds(failed_at)
    headers["enqueued_at"] = iso_seconds(epoch_seconds(job.get("enqueued_at")))
    trace = backtrace(job)
    if trace:
        headers["backtrace"] = trace
    args = json.dumps(job.get("args"), ensure_ascii=False).encode("utf-8")
    error = job.get("error_class")
    message = job.get("error_message")
    reason = f"{error}: {message}" if error and message else str(error or message or "dead")
    count = job.get("retry_count")
    return job, PeekedMessage(
        id=str(job.get("jid") or "?"),
        body=args,
        headers=headers,
        properties={
            "dead_at": iso_seconds(score),
            "created_at": iso_seconds(epoch_seconds(job.get("created_at"))),
        },
        death=Death(
            reason=reason,
            count=count if isinstance(count, int) else None,
            original_queue=job.get("queue") if isinstance(job.get("queue"), str) else None,
        ),
        timestamp=failed_at,
    )


def retried(job: dict[str, Any], queue: str, now: float) -> bytes:
    """The job as ``SortedEntry#retry`` pushes it again."""
    out = dict(job)
    if isinstance(out.get("retry_count"), int):
        out["retry_count"] -= 1
    millis = isinstance(job.get("created_at"), int) and job["created_at"] > 1e11  # Sidekiq 8
    out["enqueued_at"] = round(now * 1000) if millis else now
    out["queue"] = queue
    return json.dumps(out, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class SidekiqActions(DeadSetLibrary):
    """Dead-set actions of one Sidekiq instance."""

    library = "Sidekiq"

    def __init__(self, options: SidekiqOptions, keys: SidekiqKeys) -> None:
        super().__init__(options)
        self.keys = keys

    def dead_set_key(self, name: str) -> str | None:
        return self.keys.key("dead") if name == "dead" else None

    def dead_set_names(self) -> str:
        return "the dead set 'dead'"

    def retry_target(self, name: str) -> str | None:
        return OWN_QUEUE

    async def load(self, name: str, members: list[tuple[bytes, float]]) -> list[DeadJob]:
        out = []
        for member, score in members:
            job, message = decode(member, score)
            queue = job.get("queue") if job else None
            refusal = None if job else "not valid Sidekiq job JSON"
            out.append(DeadJob(member, message, queue if isinstance(queue, str) else None, refusal))
        return out

    async def retry_batch(self, name: str, jobs: list[DeadJob], destination: str) -> list[int]:
        if not jobs:
            return []
        now = time.time()
        args: list[Any] = [self.keys.queue("")]
        for job in jobs:
            queue = job.queue if destination == OWN_QUEUE else destination
            assert queue is not None
            data = json.loads(job.member)
            args += [job.member, queue, retried(data, queue, now)]
        keys = [self.keys.key("dead"), self.keys.key("queues")]
        return [int(r) for r in await self.run_script("retry", RETRY, keys, args)]

    async def delete_batch(self, name: str, members: list[bytes]) -> int:
        return int(await self.run_script("delete", DELETE, [self.keys.key("dead")], members))
