"""Redis message actions: peek / replay / move / purge for lists and streams, and reclaim.

Safety model (see docs/redis.md): moves are atomic per batch (:mod:`collectors.redis.mover`);
across cluster slots they add before they remove (:mod:`collectors.redis.crossslot`); pub/sub
channels store nothing, so every action on a channel is refused (exit 2).

Names are taken as typed, or as mqtop printed them: a control character shown as ``\\x06``
or a byte that is not UTF-8 shown as ``\\xff`` names the same key when typed back.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Mapping
from typing import Any, ClassVar

from collectors.base import (
    Death,
    MoveRequest,
    MoveResult,
    PeekedMessage,
    ProgressCallback,
    ReclaimRequest,
    RepublishRequest,
    RepublishResult,
    original_of_dlq,
)
from collectors.kit.options import options_as
from collectors.redis.client import Kind, RedisSession
from collectors.redis.codecs import DEAD_FIELD, entry_body, entry_headers, id_ms, marker, text
from collectors.redis.mover import LIST_BATCH, STREAM_BATCH, Mover
from collectors.redis.options import RedisMoveOptions, RedisOptions
from collectors.redis.reclaim import Reclaim
from mqtop.kernel.errors import SAME_QUEUE, UsageError


class RedisActions:
    """Message actions on one Redis server or cluster (own client, opened on first use)."""

    # a replay / move honours MoveRequest.stop between batches (the CLI's interrupt hook)
    stops_between_batches: ClassVar[bool] = True

    def __init__(
        self, options: RedisOptions, seen: Callable[[], Container[str]] | None = None
    ) -> None:
        self.options = options
        self.session = RedisSession(options)
        self._seen = seen  # keys the collector knows (shown as 0 while absent)

    @property
    def r(self) -> Any:
        """The client (untyped: redis-py's reply types are unions of awaitables and values)."""
        return self.session.r

    async def close(self) -> None:
        await self.session.close()

    def _absent(self, name: str) -> UsageError:
        return UsageError(
            f"key {name!r} does not exist on broker {self.options.name!r} "
            "(Redis deletes a list when its last item is taken)"
        )

    def _known(self, name: str) -> bool:
        """A key the config names or the collector shows: absent, it is an empty queue."""
        return name in self.options.named_keys() or (
            self._seen is not None and name in self._seen()
        )

    # -- MessageActions --------------------------------------------------------------------

    async def peek_warning(self, queue: str) -> str | None:
        return None  # LRANGE / XRANGE have no side effects

    async def peek(self, queue: str, count: int) -> list[PeekedMessage]:
        """Up to ``count`` items from the head of a list, or the first entries of a stream."""

        async def go() -> list[PeekedMessage]:
            key = await self.session.resolve(queue)
            kind = await self.session.kind(key, repr(queue), "peek")
            if kind == "list":
                items = await self.session.lrange_head(key, 0, count)
                return [
                    PeekedMessage(id=str(i), body=item, extra={"index": i})
                    for i, item in enumerate(items)
                ]
            if kind == "stream":
                entries = await self.r.xrange(key, "-", "+", count=count)
                return [self._peeked_entry(raw_id, fields) for raw_id, fields in entries]
            if self._known(queue):
                return []
            raise self._absent(queue)

        result: list[PeekedMessage] = await self.session.guard(f"peek {queue!r}", go())
        return result

    def _peeked_entry(self, raw_id: bytes | str, fields: Mapping[bytes, bytes]) -> PeekedMessage:
        entry_id = text(raw_id)
        ms = id_ms(entry_id)
        dead = marker(fields, DEAD_FIELD)
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

    async def republish(self, request: RepublishRequest) -> RepublishResult:
        """One reviewed message (maybe edited) to another list or stream, then the original
        out, atomically within a slot (:mod:`collectors.redis.republish`)."""
        from collectors.redis.republish import republish

        return await republish(self.r, self.options, request)

    async def replay_target(self, dlq: str) -> str | None:
        """Config mapping, then the dead-letter marker of the first entry, then the name."""
        for source, target in self.options.dlq.items():
            if target == dlq:
                return source

        async def from_marker() -> str | None:
            key = await self.session.resolve(dlq)
            if text(await self.r.type(key)) != "stream":
                return None
            first = await self.r.xrange(key, "-", "+", count=1)
            if first:
                dead = marker(first[0][1], DEAD_FIELD)
                if dead and isinstance(dead.get("stream"), str):
                    return str(dead["stream"])
            return None

        found: str | None = await self.session.guard(f"inspect {dlq!r}", from_marker())
        return found or original_of_dlq(dlq)

    async def _length(self, queue: str, action: str) -> int:
        key = await self.session.resolve(queue)
        kind = await self.session.kind(key, repr(queue), action)
        if kind == "list":
            return int(await self.r.llen(key))
        if kind == "stream":
            return int(await self.r.xlen(key))
        return 0

    async def count(self, queue: str) -> int | None:
        result: int = await self.session.guard(f"count {queue!r}", self._length(queue, "count"))
        return result

    async def purge(self, queue: str) -> int | None:
        """Lists are deleted; streams are trimmed to nothing (consumer groups are kept)."""

        async def go() -> int:
            key = await self.session.resolve(queue)
            kind = await self.session.kind(key, repr(queue), "purge")
            if kind == "list":
                return int(await self.session.run("list_purge", [key], []))
            if kind == "stream":
                return int(await self.r.xtrim(key, maxlen=0, approximate=False))
            return 0

        result: int = await self.session.guard(f"purge {queue!r}", go())
        return result

    # -- move ------------------------------------------------------------------------------

    async def _kinds(self, request: MoveRequest) -> tuple[bytes, bytes, Kind, Kind]:
        s = self.session
        src = await s.resolve(request.source)
        dst = await s.resolve(request.destination)
        src_kind = await s.kind(src, f"source {request.source!r}", request.mode)
        dst_kind = await s.kind(dst, f"destination {request.destination!r}", request.mode)
        return src, dst, src_kind, dst_kind

    async def move(self, request: MoveRequest, progress: ProgressCallback) -> MoveResult:
        """Replay or move losslessly (atomic per batch; cross-slot: add, then delete)."""
        batch = options_as(request.options, RedisMoveOptions, "redis").batch
        what = f"{request.mode} {request.source!r}"
        src, dst, src_kind, dst_kind = await self.session.guard(what, self._kinds(request))
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
        if src == dst:
            # two spellings of one key (as typed, and as mqtop prints it)
            raise UsageError(SAME_QUEUE)
        if dst_kind not in ("none", src_kind):
            raise UsageError(
                f"destination {request.destination!r} is a {dst_kind}; a {src_kind} can only "
                f"be moved to a {src_kind}"
            )
        mover = Mover(self.session, request, (src, dst), progress)
        if src_kind == "list":
            tally = await mover.move_list(int(batch or LIST_BATCH))
        else:
            tally = await mover.move_stream(int(batch or STREAM_BATCH))
        if mover.gone:
            tally.note(
                f"{mover.gone} message(s) were taken from the source by someone else during "
                "the move and were not moved"
            )
        return tally.result(request.source, request.destination, request.dry_run)

    # -- reclaim ---------------------------------------------------------------------------

    async def reclaim(self, request: ReclaimRequest) -> dict[str, Any]:
        """List pending entries idle beyond the threshold; move them or hand them over."""
        return await Reclaim(self.session, request).run()


__all__ = ["RedisActions"]
