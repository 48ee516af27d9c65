"""``dlq reclaim``: pending stream entries idle beyond a threshold, listed, moved or handed over.

* Listing reads ``XPENDING … IDLE`` page by page (oldest ID first).
* ``--to`` moves each entry to a dead-letter stream with a ``mqtop-dead-letter`` field and
  acknowledges it, in one script, only if it is still pending and idle at that moment. Across
  cluster slots it adds first and acknowledges after (:mod:`collectors.redis.crossslot`).
* ``--consumer`` hands entries over with ``XCLAIM … JUSTID`` and the same idle threshold.
"""

from __future__ import annotations

import json
from typing import Any

from collectors.base import ReclaimRequest
from collectors.kit.tally import Tally
from collectors.redis.client import RedisError, RedisSession
from collectors.redis.codecs import DEAD_FIELD, now_iso, text
from collectors.redis.crossslot import check_journal, write_journal
from mqtop.kernel.durations import format_duration
from mqtop.kernel.errors import UsageError

RECLAIM_PAGE = 200


class Reclaim:
    """One reclaim run on one stream and group."""

    def __init__(self, session: RedisSession, request: ReclaimRequest) -> None:
        self.s = session
        self.request = request
        self.min_idle = round(request.idle * 1000)
        self.action = "move" if request.to_stream else "claim" if request.consumer else "list"
        self.tally = Tally()  # moved or claimed, failed, skipped, duplicates, errors, notes
        self.missing = 0
        self.journal: bytes | None = None
        self.at = now_iso()
        self.src = b""
        self.dst = b""

    async def _start(self) -> int:
        """Check both streams; the group's pending count."""
        request = self.request
        self.src = await self.s.resolve(request.stream)
        kind = await self.s.kind(self.src, repr(request.stream), "reclaim")
        if kind != "stream":
            raise UsageError(f"stream {request.stream!r} does not exist")
        if request.to_stream is not None:
            self.dst = await self.s.resolve(request.to_stream)
            label = f"destination {request.to_stream!r}"
            if await self.s.kind(self.dst, label, "reclaim") == "list":
                raise UsageError(f"destination {request.to_stream!r} is a list, not a stream")
        summary = await self.s.r.xpending(self.src, request.group)
        return int(summary["pending"])

    async def run(self) -> dict[str, Any]:
        """List, move or hand over the stuck entries; the report (the contract's shape)."""
        request = self.request
        if request.limit is not None and request.limit < 0:
            raise UsageError("--limit must not be negative")
        if request.to_stream is not None and request.to_stream == request.stream:
            raise UsageError("--to must name another stream")
        what = f"reclaim {request.stream!r} group {request.group!r}"
        pending = await self.s.guard(what, self._start())
        cross = request.to_stream is not None and self.s.cross_slot(self.src, self.dst)
        if cross and not request.dry_run:
            labels = (request.stream, request.to_stream or "")
            self.journal = await self.s.guard(
                "read journal", check_journal(self.s, self.src, labels, self.tally)
            )
        entries = await self._pages(cross)
        return self._report(pending, entries)

    async def _pages(self, cross: bool) -> list[dict[str, Any]]:
        request = self.request
        entries: list[dict[str, Any]] = []
        cursor = "-"
        while request.limit is None or len(entries) < request.limit:
            page_n = RECLAIM_PAGE
            if request.limit is not None:
                page_n = min(page_n, request.limit - len(entries))
            rows = await self.s.guard(
                f"XPENDING {request.stream!r} {request.group!r}",
                self.s.r.xpending_range(
                    self.src, request.group, min=cursor, max="+", count=page_n, idle=self.min_idle
                ),
            )
            if not rows:
                break
            cursor = "(" + text(rows[-1]["message_id"])
            page: list[dict[str, Any]] = [
                {
                    "id": text(r["message_id"]),
                    "consumer": text(r["consumer"]),
                    "idle_ms": int(r["time_since_delivered"]),
                    "deliveries": int(r["times_delivered"]),
                }
                for r in rows
            ]
            entries += page
            if request.dry_run or self.action == "list":
                for e in page:
                    e["result"] = "stuck" if self.action == "list" else f"would {self.action}"
                continue
            if not await self._apply(page, cross):
                break
        return entries

    async def _apply(self, page: list[dict[str, Any]], cross: bool) -> bool:
        """Move or claim one page; False when an error stopped the run."""
        try:
            if self.action == "move":
                results, dups = await self._move_page(page, cross)
                for e, res in zip(page, results, strict=True):
                    e["result"] = res
                self.tally.moved += sum(1 for r in results if r == "moved")
                self.tally.duplicates += dups
            else:
                await self._claim_page(page)
        except (RedisError, OSError) as exc:
            self.tally.fail(
                len(page), self.s.error(exc, f"reclaim {self.request.stream!r}").message
            )
            for e in page:
                e.setdefault("result", "failed")
            return False
        self.tally.skipped += sum(1 for e in page if e["result"] == "skipped")
        self.missing += sum(1 for e in page if e["result"] == "missing")
        return True

    async def _claim_page(self, page: list[dict[str, Any]]) -> None:
        r = self.s.r
        ids = [e["id"] for e in page]
        claimed = await r.xclaim(
            self.src, self.request.group, self.request.consumer or "", self.min_idle, ids,
            justid=True,
        )  # fmt: skip
        got = {text(x) for x in claimed}
        pipe = r.pipeline(transaction=False)
        for eid in ids:
            pipe.xrange(self.src, eid, eid)
        exists = await pipe.execute()
        for e, found in zip(page, exists, strict=True):
            e["result"] = "claimed" if e["id"] in got else "skipped" if found else "missing"
        self.tally.moved += len(got)

    def _markers(self, page: list[dict[str, Any]]) -> list[str]:
        reason = f"pending longer than {format_duration(self.min_idle / 1000)}"
        return [
            json.dumps(
                {
                    "stream": self.request.stream,
                    "group": self.request.group,
                    "id": e["id"],
                    "consumer": e["consumer"],
                    "deliveries": e["deliveries"],
                    "idle_ms": e["idle_ms"],
                    "reason": reason,
                    "at": self.at,
                }
            )
            for e in page
        ]

    async def _move_page(self, page: list[dict[str, Any]], cross: bool) -> tuple[list[str], int]:
        """Move one page of stuck entries; per entry moved/skipped/missing, and duplicates."""
        markers = self._markers(page)
        group = self.request.group
        if not cross:
            args: list[Any] = [group, self.min_idle, DEAD_FIELD]
            for e, mval in zip(page, markers, strict=True):
                args += [e["id"], mval]
            raw = await self.s.run("reclaim_move", [self.src, self.dst], args)
            out = []
            for item in raw:
                result = text(item)
                out.append(result if result in ("skipped", "missing") else "moved")
            return out, 0
        return await self._move_page_across(page, markers)

    async def _move_page_across(
        self, page: list[dict[str, Any]], markers: list[str]
    ) -> tuple[list[str], int]:
        """Cross-slot: read what is still pending and idle, add it, then acknowledge it."""
        r, group = self.s.r, self.request.group
        pipe = r.pipeline(transaction=False)
        for e in page:
            pipe.xpending_range(
                self.src, group, min=e["id"], max=e["id"], count=1, idle=self.min_idle
            )
            pipe.xrange(self.src, e["id"], e["id"])
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
            destination = self.request.to_stream or ""
            await write_journal(self.s, self.journal, "reclaim", destination, len(to_add))
            pipe = r.pipeline(transaction=False)
            for _, fields in to_add:
                pipe.xadd(self.dst, fields)
            await pipe.execute()
        ids = [eid for eid, _ in to_add] + [
            e["id"] for e, res in zip(page, results, strict=True) if res == "missing"
        ]
        acked = (
            await self.s.run("reclaim_ack", [self.src, self.journal or b""], [group, *ids])
            if ids
            else []
        )
        ack_of = dict(zip(ids, (int(a) for a in acked), strict=True))
        final = []
        dups = 0
        for e, res in zip(page, results, strict=True):
            if res == "pending":
                # acknowledged by its consumer between our read and our ack: delivered twice
                dups += 0 if ack_of.get(e["id"]) else 1
                final.append("moved")
            else:
                final.append(res)
        return final, dups

    def _report(self, pending: int, entries: list[dict[str, Any]]) -> dict[str, Any]:
        request, tally = self.request, self.tally
        report: dict[str, Any] = {
            "stream": request.stream,
            "group": request.group,
            "idle_ms": self.min_idle,
            "action": self.action,
            "dry_run": request.dry_run,
            "pending": pending,
            "stuck": len(entries),
        }
        if request.to_stream:
            report["destination"] = request.to_stream
        if request.consumer:
            report["consumer"] = request.consumer
        if self.action != "list" and not request.dry_run:
            report["moved" if self.action == "move" else "claimed"] = tally.moved
            report["skipped"] = tally.skipped
            report["missing"] = self.missing
        if self.action == "move":
            report["duplicates_possible"] = tally.duplicates
        report["failed"] = tally.failed
        if tally.errors:
            report["errors"] = list(tally.errors)
        if tally.notes:
            report["notes"] = list(tally.notes)
        report["entries"] = entries
        return report


__all__ = ["RECLAIM_PAGE", "Reclaim"]
