"""Dead-job actions every job library shares: the ``MessageActions`` driver over a dead set.

A library supplies the mechanics (``DeadSetLibrary``): which names are dead sets, how a
member becomes a peeked message, and the Lua scripts that retry or delete a batch the way the
library's own API does. This driver pages through the sorted set, applies ``--filter`` (on the
headers a library sets: ``class``, ``error_class``, ``queue``... and ``age`` on the failure
time), and counts. One script call per batch removes each job from the dead set and puts it in
its queue atomically, so a crash at any instant leaves every job in one of the two, never both
and never neither; a job already gone from the set (retried by someone else) is skipped.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from collectors.base import (
    MessageFilter,
    MoveOptions,
    MoveRequest,
    MoveResult,
    PeekedMessage,
    ProgressCallback,
)
from collectors.jobs.common import JobsOptions, client_for, queue_of_failed
from collectors.kit.options import batch_field, not_supported, options_as
from collectors.kit.tally import Tally
from mqtop.kernel.errors import MqtopError, UnsupportedAction

if TYPE_CHECKING:
    from redis.asyncio import Redis

BATCH = 500  # jobs per script call when each batch is read, filtered and decoded here
IN_PLACE_BATCH = 2000  # jobs per call when the script reads its batch itself
MAX_BATCH = 10_000  # jobs per script call: Redis runs nothing else while a script runs

MOVED, GONE, MISSING = 1, 0, -1  # per job, what a retry script reports (refusals: 2 and up)
OUTCOMES: dict[int, str] = {
    GONE: "job(s) left the dead set during the retry (not retried)",
    MISSING: "job(s) have no job data any more (expired): left in the dead set",
}

# Lua: what a retry script returns. ``out[i]`` is the outcome of the i-th job, absent for 1
# (retried). A range returns outcome, count pairs (its reply stays small), ids one per job.
COUNTS = """
local function outcomes(out, n, moved, ranged)
  if ranged then
    if moved == n then return {1, moved} end
    local by, flat = {[1] = moved}, {}
    for _, code in pairs(out) do
      if code ~= 1 then by[code] = (by[code] or 0) + 1 end
    end
    for code, k in pairs(by) do flat[#flat + 1] = code; flat[#flat + 1] = k end
    return flat
  end
  local list = {}
  for i = 1, n do list[i] = out[i] or 1 end
  return list
end
"""


def pairs(flat: list[int]) -> dict[int, int]:
    """Outcome -> count from a script's flat ``outcome, count, ...`` reply."""
    return {int(flat[i]): int(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}


class JobsMoveOptions(MoveOptions):
    """Options of a job library's retry (``dlq replay``)."""

    batch: int | None = batch_field(le=MAX_BATCH)


@dataclass(frozen=True, slots=True)
class DeadJob:
    """One member of a dead set, read and decoded."""

    member: bytes  # the sorted-set member (the job JSON for Sidekiq, the job id otherwise)
    message: PeekedMessage
    queue: str | None  # where a retry sends it
    refusal: str | None = None  # why mqtop leaves this job to the library's own tools


class DeadSetLibrary:
    """The library-specific half; subclasses fill in every method that raises here."""

    library = "job library"
    outcomes: dict[int, str] = OUTCOMES  # outcome code -> why a job stayed (notes)
    in_place = False  # True when ``retry_range`` is implemented

    def __init__(self, options: JobsOptions) -> None:
        self.options = options
        self._client: Redis | None = None
        self._scripts: dict[str, Any] = {}

    # -- hooks ------------------------------------------------------------------------

    def dead_set_key(self, name: str) -> str | None:
        """The sorted set behind a dead-set name, None when ``name`` is not one."""
        raise NotImplementedError

    def dead_set_names(self) -> str:
        """How dead sets are named, for messages."""
        raise NotImplementedError

    def retry_target(self, name: str) -> str | None:
        """Where a retry of this dead set sends jobs by default."""
        raise NotImplementedError

    def refuse_destination(self, name: str, destination: str) -> str | None:
        """Why the library cannot retry this dead set into ``destination`` (None: it can)."""
        return None

    async def load(self, name: str, members: list[tuple[bytes, float]]) -> list[DeadJob]:
        """Read and decode members (with their scores) of a dead set."""
        raise NotImplementedError

    async def retry_batch(self, name: str, jobs: list[DeadJob], destination: str) -> list[int]:
        """Retry jobs as the library does, atomically; an outcome per job (MOVED...)."""
        raise NotImplementedError

    async def retry_range(
        self, name: str, destination: str, offset: int, count: int
    ) -> dict[int, int]:
        """Retry the jobs at ranks offset..offset+count-1 in one script that reads them
        itself; how many jobs had each outcome (none: no job left there). Libraries whose
        retry needs the client (Sidekiq rewrites the job JSON) use the read-and-retry path."""
        raise NotImplementedError

    async def delete_batch(self, name: str, members: list[bytes]) -> int:
        """Delete dead jobs (and what the library keeps with them); return how many."""
        raise NotImplementedError

    # -- plumbing ---------------------------------------------------------------------

    @property
    def r(self) -> Any:
        """The client, untyped: redis-py's replies are unions of awaitables and values."""
        if self._client is None:
            self._client = client_for(self.options)
        return self._client

    async def run_script(
        self, name: str, source: str, keys: Sequence[str], args: Sequence[Any]
    ) -> Any:
        """Run a Lua script (EVALSHA, loaded on first use)."""
        script = self._scripts.get(name)
        if script is None:
            script = self.r.register_script(source)
            self._scripts[name] = script
        return await script(keys=list(keys), args=list(args))

    async def close(self) -> None:
        client, self._client = self._client, None
        self._scripts.clear()
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()

    def error(self, exc: Exception, what: str) -> MqtopError:
        """A redis-py error as one line with the contract's exit code, secrets masked."""
        from collectors.redis.client import redis_error

        where = f"broker {self.options.name!r} ({self.options.address()})"
        return redis_error(exc, what, where, usage=())

    async def guard(self, what: str, call: Awaitable[Any]) -> Any:
        """Await ``call``, mapping Redis errors to one clear line."""
        from collectors.redis.client import guarded

        return await guarded(call, what, self.error)

    def _key(self, name: str, action: str) -> str:
        key = self.dead_set_key(name)
        if key is None:
            raise UnsupportedAction(
                f"{name!r} is not a dead set of {self.library}: {action} works on "
                f"{self.dead_set_names()}"
            )
        return key

    # -- MessageActions ---------------------------------------------------------------

    async def peek_warning(self, queue: str) -> str | None:
        return None  # ZRANGE and HGETALL change nothing

    async def peek(self, queue: str, count: int) -> list[PeekedMessage]:
        """The oldest ``count`` dead jobs, decoded."""
        key = self._key(queue, "peek")

        async def go() -> list[PeekedMessage]:
            members = await self.r.zrange(key, 0, count - 1, withscores=True)
            jobs = await self.load(queue, [(_raw(m), float(s)) for m, s in members])
            return [job.message for job in jobs]

        result: list[PeekedMessage] = await self.guard(f"peek {queue!r}", go())
        return result

    async def replay_target(self, dlq: str) -> str | None:
        return self.retry_target(dlq) if self.dead_set_key(dlq) is not None else None

    async def count(self, queue: str) -> int | None:
        key = self._key(queue, "count")
        return int(await self.guard(f"count {queue!r}", self.r.zcard(key)))

    async def purge(self, queue: str) -> int | None:
        """Delete every dead job of the set, a batch per script call."""
        key = self._key(queue, "purge")
        deleted = 0
        while True:
            members = await self.guard(f"read {queue!r}", self.r.zrange(key, 0, BATCH - 1))
            if not members:
                return deleted
            got = await self.guard(
                f"purge {queue!r}", self.delete_batch(queue, [_raw(m) for m in members])
            )
            deleted += int(got)

    async def move(self, request: MoveRequest, progress: ProgressCallback) -> MoveResult:
        """Retry dead jobs into their queue with the library's semantics, a batch at a time."""
        batch = options_as(request.options, JobsMoveOptions, self.options.type).batch
        in_place = self.in_place and request.filter is None and not request.dry_run
        batch = batch or (IN_PLACE_BATCH if in_place else BATCH)
        key = self._key(request.source, request.mode)
        why = self.refuse_destination(request.source, request.destination)
        if why is not None:
            what = "--to" if request.mode == "replay" else "dlq move to another queue"
            raise not_supported(what, self.options.type, why)
        total = int(await self.guard(f"count {request.source!r}", self.r.zcard(key)))
        bound = total if request.limit is None else min(total, request.limit)
        tally = Tally(total=bound if request.filter is None else None)
        left: dict[str, int] = {}  # why jobs stayed in the dead set -> how many
        await self._retry_pages(request, key, batch, tally, progress, left=left)
        for why_left, n in left.items():
            tally.note(f"{n} {why_left}")
        return tally.result(request.source, request.destination, request.dry_run)

    async def _retry_pages(
        self,
        request: MoveRequest,
        key: str,
        batch: int,
        tally: Tally,
        progress: ProgressCallback,
        *,
        left: dict[str, int],
    ) -> None:
        from redis.exceptions import RedisError

        offset = 0  # jobs left in place before the read position (skipped, refused)
        limit = request.limit
        # unfiltered: the library's script reads each batch itself (no job crosses the wire)
        in_place = self.in_place and request.filter is None and not request.dry_run
        while limit is None or tally.moved < limit:
            if request.stop is not None and request.stop.is_set():
                tally.note(
                    f"interrupted: stopped between batches after {tally.moved} job(s); "
                    "the rest are still in the dead set"
                )
                return
            want = batch if limit is None else min(batch, limit - tally.moved)
            if request.filter is not None or request.dry_run:
                want = batch
            results: dict[int, int] | list[int] | None
            read: int | None = None
            try:
                if in_place:
                    results = await self.retry_range(
                        request.source, request.destination, offset, want
                    )
                else:
                    read, results = await self._read_and_retry(
                        request, key, offset, want, tally=tally, left=left
                    )
            except (RedisError, OSError) as exc:
                # the script ran entirely or not at all: this batch is still dead
                remaining = (
                    want if tally.total is None else tally.total - tally.moved - tally.skipped
                )
                tally.fail(
                    max(0, min(want, remaining)),
                    self.error(exc, f"retry {request.source!r}").message,
                )
                return
            if results is None:
                return  # nothing left to read
            outcomes = results if isinstance(results, dict) else Counter(results)
            moved, gone = outcomes.get(MOVED, 0), outcomes.get(GONE, 0)
            seen = sum(outcomes.values())
            tally.moved += moved
            tally.skipped += seen - moved
            for code, n in outcomes.items():
                if code != MOVED and n:
                    why = self.outcomes.get(code, f"job(s) left in the dead set (code {code})")
                    left[why] = left.get(why, 0) + n
            offset += (seen if read is None else read) - moved - gone
            progress(tally.progress())
            if in_place and not seen:
                return

    async def _read_and_retry(
        self,
        request: MoveRequest,
        key: str,
        offset: int,
        want: int,
        *,
        tally: Tally,
        left: dict[str, int],
    ) -> tuple[int, list[int] | None]:
        """Read a page, filter it here, retry the picks: (jobs read, per-job outcomes)."""
        members = await self.guard(
            f"read {request.source!r}",
            self.r.zrange(key, offset, offset + want - 1, withscores=True),
        )
        if not members:
            return 0, None
        jobs = await self.guard(
            f"read {request.source!r}",
            self.load(request.source, [(_raw(m), float(s)) for m, s in members]),
        )
        picks = self._pick(jobs, request.filter, tally, left, request.limit)
        if request.dry_run:
            return len(members), [MOVED] * len(picks)
        if not picks:
            return len(members), []
        return len(members), await self.retry_batch(request.source, picks, request.destination)

    @staticmethod
    def _pick(
        jobs: list[DeadJob],
        flt: MessageFilter | None,
        tally: Tally,
        left: dict[str, int],
        limit: int | None,
    ) -> list[DeadJob]:
        picks: list[DeadJob] = []
        for job in jobs:
            if limit is not None and tally.moved + len(picks) >= limit:
                break
            msg = job.message
            if flt is not None and not flt.matches(msg.body, msg.headers, msg.timestamp):
                tally.skipped += 1
            elif job.refusal is not None or job.queue is None:
                reason = f"job(s) left in the dead set: {job.refusal or 'the job names no queue'}"
                left[reason] = left.get(reason, 0) + 1
                tally.skipped += 1
            else:
                picks.append(job)
        return picks


def _raw(member: bytes | str) -> bytes:
    return member if isinstance(member, bytes) else member.encode("utf-8")


class FailedSetLibrary(DeadSetLibrary):
    """A library whose dead sets are ``<queue>:failed`` (RQ, BullMQ): a failed job goes back
    into its own queue, by one script that reads the jobs itself (``requeue``)."""

    in_place = True
    own_queue = "retries a failed job in its own queue"  # what the library does, for refusals

    def _queue(self, name: str) -> str | None:
        return queue_of_failed(name)

    def retry_target(self, name: str) -> str | None:
        return self._queue(name)

    def refuse_destination(self, name: str, destination: str) -> str | None:
        own = self._queue(name)
        return None if destination == own else f"{self.library} {self.own_queue}, {own!r}"

    async def retry_batch(self, name: str, jobs: list[DeadJob], destination: str) -> list[int]:
        return await self.requeue(destination, ["ids", *(job.member for job in jobs)])

    async def retry_range(
        self, name: str, destination: str, offset: int, count: int
    ) -> dict[int, int]:
        return pairs(await self.requeue(destination, ["range", offset, count]))

    async def requeue(self, queue: str, args: list[Any]) -> list[int]:
        """Run the library's retry script into ``queue``: ``ids`` then members, or ``range``
        then offset and count; an outcome per job (or outcome, count pairs for a range)."""
        raise NotImplementedError


def error_class(line: str | None) -> str | None:
    """``TypeError`` from ``TypeError: flaky 0`` (the head of a trace's exception line)."""
    if not line:
        return None
    head, sep, _ = line.strip().partition(":")
    name = head.strip()
    if sep and name and all(part.isidentifier() for part in name.split(".")):
        return name
    return None
