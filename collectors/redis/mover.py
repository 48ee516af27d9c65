"""The lossless Redis replay / move of lists and streams, one atomic batch at a time.

* Lists move with ``LMOVE`` inside a Lua script, a batch per call; filtered moves remove each
  chosen item with ``LREM`` and push it in the same script. Items are taken from the head
  (``list_head``) and pushed at the tail of the destination, so its consumers see them in the
  original order.
* Stream entries move by a script that re-reads each entry, ``XADD``s it to the destination,
  ``XDEL``s it from the source and ``XACK``s it in every group of the source, atomically.
  Entries already gone from the source are skipped, so two runs never duplicate.
* Across cluster slots, see :mod:`collectors.redis.crossslot`.

An interrupt (the request's ``stop`` flag, set by the CLI's signal handler) is honoured
between batches: the batch in flight completes, the move stops and its result says
"interrupted". A cancelled task also finishes the batch in flight before the cancellation goes
on, and a cancellation that redis-py swallowed (Python 3.11's ``wait_for`` returns a finished
send's result) is noticed at the next batch boundary.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

from collectors.base import MoveRequest, ProgressCallback
from collectors.kit.tally import Tally
from collectors.redis.client import RedisError, RedisSession
from collectors.redis.codecs import (
    DEAD_FIELD,
    REPLAY_FIELD,
    entry_body,
    entry_headers,
    matches,
    now_iso,
    text,
)
from collectors.redis.crossslot import check_journal, write_journal
from mqtop.kernel.errors import MqtopError

LIST_BATCH = 1000
STREAM_BATCH = 500
MAX_SCRIPT_BYTES = 8 * 1024 * 1024  # payload bytes per script call (filtered list moves)
T = TypeVar("T")


def chunks(items: list[bytes], max_bytes: int) -> list[list[bytes]]:
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


class Mover:
    """One replay or move from ``src`` to ``dst`` (keys as Redis knows them)."""

    def __init__(
        self,
        session: RedisSession,
        request: MoveRequest,
        keys: tuple[bytes, bytes],
        progress: ProgressCallback,
    ) -> None:
        self.s = session
        self.request = request
        self.src, self.dst = keys
        self.progress = progress
        self.tally = Tally()
        self.gone = 0  # taken from the source by someone else during the move
        self.what = f"move {request.source!r} to {request.destination!r}"
        right = session.options.list_head == "right"
        self._head_end = "RIGHT" if right else "LEFT"
        self._tail_end = "LEFT" if right else "RIGHT"
        self._lrem_dir = -1 if right else 1  # LREM count sign: search from the head
        self._push_tail = "LPUSH" if right else "RPUSH"

    # -- interrupts and errors -------------------------------------------------------------

    def stopping(self) -> bool:
        """Between batches: True when the operator asked the move to stop."""
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError  # requested, but swallowed inside redis-py
        stop = self.request.stop
        if stop is None or not stop.is_set():
            return False
        self.tally.note(
            f"interrupted: stopped between batches after {self.tally.moved} message(s); "
            "the rest are still in the source"
        )
        return True

    async def batch(self, call: Awaitable[T]) -> T:
        """Run one batch to its end even when the move is cancelled meanwhile.

        Scripts are atomic in Redis anyway; this keeps a cross-slot add-then-remove pair whole
        and makes a cancellation arrive here, where redis-py cannot swallow it.
        """
        task = asyncio.ensure_future(call)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.wait({task})
            raise

    def fail(self, exc: Exception, in_flight: int) -> None:
        """Record an error that stops the move (the rest stays in the source)."""
        error = exc if isinstance(exc, MqtopError) else self.s.error(exc, self.what)
        self.tally.fail(max(1, in_flight), error.message)

    def step(self) -> None:
        """Report progress after a batch."""
        self.progress(self.tally.progress())

    # -- lists -----------------------------------------------------------------------------

    async def move_list(self, batch: int) -> Tally:
        """Move list items from the head of the source to the tail of the destination."""
        request = self.request
        length = int(await self.s.guard(f"LLEN {request.source!r}", self.s.r.llen(self.src)))
        bound = length if request.limit is None else min(length, request.limit)
        cross = self.s.cross_slot(self.src, self.dst)
        if request.filter is None and not cross:
            await self._list_whole(bound, batch)
        else:
            await self._list_picked(length, batch, cross)
        if request.mode == "replay" and not request.dry_run and self.tally.moved:
            self.tally.note(
                "list items carry no headers: they were replayed byte for byte, without a "
                "replay marker"
            )
        return self.tally

    async def _list_whole(self, bound: int, batch: int) -> None:
        """Unfiltered, one slot: ``LMOVE`` batches inside a script."""
        tally = self.tally
        tally.total = bound
        if self.request.dry_run:
            tally.moved = bound
            return
        while tally.moved < bound and not self.stopping():
            n = min(batch, bound - tally.moved)
            try:
                got = int(
                    await self.batch(
                        self.s.run(
                            "list_move", [self.src, self.dst], [n, self._head_end, self._tail_end]
                        )
                    )
                )
            except (RedisError, OSError) as exc:
                self.fail(exc, n)
                break
            tally.moved += got
            self.step()
            if got < n:  # consumers drained the source meanwhile
                break

    async def _list_picked(self, length: int, batch: int, cross: bool) -> None:
        """Filtered and/or cross-slot: page from the head, pick, move the picks."""
        request, tally = self.request, self.tally
        tally.total = length if request.filter is None else None
        if request.filter is None and request.limit is not None:
            tally.total = min(length, request.limit)
        journal = None
        if cross and not request.dry_run:
            journal = await self.s.guard(
                "read journal",
                check_journal(self.s, self.src, (request.source, request.destination), tally),
            )
        offset = 0  # items left in place before the read position
        examined = 0
        limit = request.limit
        while examined < length and (limit is None or tally.moved < limit):
            if self.stopping():
                break
            want = min(batch, length - examined)
            items = await self.s.guard(
                f"LRANGE {request.source!r}", self.s.lrange_head(self.src, offset, want)
            )
            if not items:
                break
            picks: list[bytes] = []
            used = 0
            for item in items:
                if limit is not None and tally.moved + len(picks) >= limit:
                    break
                used += 1
                if matches(request.filter, item, {}):
                    picks.append(item)
                else:
                    tally.skipped += 1
            examined += used
            if request.dry_run:
                tally.moved += len(picks)
                offset += used
                self.step()
                continue
            try:
                removed = await self.batch(self._list_apply(picks, cross, journal))
            except (RedisError, OSError) as exc:
                self.fail(exc, len(picks))
                break
            offset += used - removed
            self.step()
            if used < len(items):
                break

    async def _list_apply(self, picks: list[bytes], cross: bool, journal: bytes | None) -> int:
        """Move the picked items; return how many left the source."""
        tally = self.tally
        removed = 0
        for chunk in chunks(picks, MAX_SCRIPT_BYTES):
            if not cross:
                flags = await self.s.run(
                    "list_pick", [self.src, self.dst], [self._lrem_dir, self._push_tail, *chunk]
                )
                got = sum(1 for n in flags if int(n) > 0)
                tally.moved += got
                self.gone += len(chunk) - got
                removed += got
                continue
            await write_journal(
                self.s, journal, self.request.mode, self.request.destination, len(chunk)
            )
            await self.s.r.execute_command(self._push_tail, self.dst, *chunk)
            flags = await self.s.run(
                "list_remove", [self.src, journal or b""], [self._lrem_dir, *chunk]
            )
            got = sum(1 for n in flags if int(n) > 0)
            tally.moved += len(chunk)
            # pushed, but a consumer had already taken the original: delivered twice
            tally.duplicates += len(chunk) - got
            removed += got
        return removed

    # -- streams ---------------------------------------------------------------------------

    async def move_stream(self, batch: int) -> Tally:
        """Move stream entries present at the start (up to the last ID then)."""
        request, tally, r = self.request, self.tally, self.s.r

        async def start() -> tuple[str | None, int, list[str]]:
            last = await r.xrevrange(self.src, "+", "-", count=1)
            length = int(await r.xlen(self.src))
            groups = [text(g["name"]) for g in await r.xinfo_groups(self.src)]
            return (text(last[0][0]) if last else None), length, groups

        last_id, length, groups = await self.s.guard(f"inspect {request.source!r}", start())
        bound = length if request.limit is None else min(length, request.limit)
        tally.total = bound if request.filter is None else None
        if last_id is None:
            return tally
        cross = self.s.cross_slot(self.src, self.dst)
        if request.filter is None and not cross and not request.dry_run:
            await self._stream_range(batch, last_id, groups)
        else:
            await self._stream_picked(batch, last_id, groups, cross)
        return tally

    def _marker(self, entry_id: str, at: str) -> str:
        return json.dumps({"from": text(self.src), "id": entry_id, "at": at})

    async def _stream_range(self, batch: int, last_id: str, groups: list[str]) -> None:
        """Unfiltered, same slot: Redis reads and moves each batch itself (no payload trip)."""
        request, tally = self.request, self.tally
        replay = request.mode == "replay"
        # the marker is JSON: {"from": SRC, "id": ID, "at": AT}, built around the id in Lua
        head = json.dumps({"from": text(self.src)})[:-1] + ', "id": "'
        tail = '", "at": ' + json.dumps(now_iso()) + "}"
        fixed: list[Any] = [
            REPLAY_FIELD if replay else "",
            DEAD_FIELD if replay else "",
            head,
            tail,
            len(groups),
            *groups,
        ]
        cursor = "-"
        while (request.limit is None or tally.moved < request.limit) and not self.stopping():
            n = batch if request.limit is None else min(batch, request.limit - tally.moved)
            try:
                count, last = await self.batch(
                    self.s.run(
                        "stream_move_range", [self.src, self.dst], [cursor, last_id, n, *fixed]
                    )
                )
            except (RedisError, OSError) as exc:
                self.fail(exc, n)
                break
            tally.moved += int(count)
            self.step()
            if not last or int(count) < n:
                break
            cursor = "(" + text(last)

    async def _stream_picked(
        self, batch: int, last_id: str, groups: list[str], cross: bool
    ) -> None:
        """Filtered, cross-slot or dry run: read a page, pick, move the picks."""
        request, tally = self.request, self.tally
        journal = None
        if cross and not request.dry_run:
            journal = await self.s.guard(
                "read journal",
                check_journal(self.s, self.src, (request.source, request.destination), tally),
            )
        at = now_iso()
        cursor = "-"
        limit = request.limit
        while (limit is None or tally.moved < limit) and not self.stopping():
            entries = await self.s.guard(
                f"XRANGE {request.source!r}",
                self.s.r.xrange(self.src, cursor, last_id, count=batch),
            )
            if not entries:
                break
            cursor = "(" + text(entries[-1][0])
            picks, stop = self._pick(entries)
            if request.dry_run:
                tally.moved += len(picks)
            elif picks:
                try:
                    await self.batch(self._stream_apply(picks, groups, cross, journal, at))
                except (RedisError, OSError) as exc:
                    self.fail(exc, len(picks))
                    break
            self.step()
            if stop:
                break

    def _pick(
        self, entries: list[tuple[Any, Mapping[bytes, bytes]]]
    ) -> tuple[list[tuple[str, Mapping[bytes, bytes]]], bool]:
        """The entries of a page to move, and whether the limit was reached."""
        request, tally = self.request, self.tally
        picks: list[tuple[str, Mapping[bytes, bytes]]] = []
        for raw_id, fields in entries:
            if request.limit is not None and tally.moved + len(picks) >= request.limit:
                return picks, True
            filtered = request.filter is not None
            headers = entry_headers(fields) if filtered else {}
            body = entry_body(fields) if filtered else b""
            if matches(request.filter, body, headers):
                picks.append((text(raw_id), fields))
            else:
                tally.skipped += 1
        return picks, False

    async def _stream_apply(
        self,
        picks: list[tuple[str, Mapping[bytes, bytes]]],
        groups: list[str],
        cross: bool,
        journal: bytes | None,
        at: str,
    ) -> None:
        """Move one page of picked entries (atomically in one slot; add then remove across)."""
        tally = self.tally
        replay = self.request.mode == "replay"
        markers = [self._marker(eid, at) if replay else "" for eid, _ in picks]
        if not cross:
            args: list[Any] = [
                REPLAY_FIELD if replay else "",
                DEAD_FIELD if replay else "",
                len(groups),
                *groups,
            ]
            for (eid, _), mval in zip(picks, markers, strict=True):
                args += [eid, mval]
            new_ids = await self.s.run("stream_move", [self.src, self.dst], args)
            got = sum(1 for n in new_ids if n)
            tally.moved += got
            self.gone += len(picks) - got
            return
        await write_journal(
            self.s, journal, self.request.mode, self.request.destination, len(picks)
        )
        pipe = self.s.r.pipeline(transaction=False)
        dropped = (REPLAY_FIELD.encode(), DEAD_FIELD.encode())
        for (_, fields), mval in zip(picks, markers, strict=True):
            out: dict[Any, Any] = {
                k: v for k, v in fields.items() if not replay or k not in dropped
            }
            if replay:
                out[REPLAY_FIELD] = mval
            pipe.xadd(self.dst, out)
        await pipe.execute()
        deleted = await self.s.run(
            "stream_remove",
            [self.src, journal or b""],
            [len(groups), *groups, *(eid for eid, _ in picks)],
        )
        tally.moved += len(picks)
        tally.duplicates += sum(1 for n in deleted if int(n) == 0)


__all__ = ["LIST_BATCH", "STREAM_BATCH", "Mover", "chunks"]
