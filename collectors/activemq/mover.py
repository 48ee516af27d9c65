"""The replay / move of ActiveMQ messages: the broker's own transactional move operations.

* Without ``--filter``: the broker's bulk move, ``batch`` messages per call (Artemis
  ``moveMessages``, Classic ``moveMatchingMessagesTo``), bounded by the source's length at
  start. Without a set batch, the first call moves about 24 MiB of messages of the source's
  average size (1,000 to 25,000; Classic: 128 MiB, 1,000 to 75,000; 1,000 when the broker
  does not tell the size) and each
  next one as many as the last call's rate moves in about a second (at most 16 times more,
  at most 100,000): a broker call costs ~20 ms on Artemis whatever its size, and Classic
  scans the queue from its head on every call. The source, its count and size, and the
  destination are read in one bulk POST before the first move. A replay without ``--to``
  sends each message back to its own original queue (Artemis ``_AMQ_ORIG_QUEUE``, Classic
  ``originalDestination``), one selector per original queue. A destination that does not
  exist is never created: its messages stay in the source and count as failed.
* With ``--filter``: the messages are browsed, the filter is evaluated by mqtop (on whole
  bodies when a body condition needs them, bodies.py), and each chosen message is moved by id
  by the broker (Artemis ``moveMessage``, Classic ``moveMessageTo``), one bulk Jolokia POST
  per batch. A body that could not be read whole cannot be tested and counts as failed.
Every broker operation moves a message in one transaction: killing mqtop at any point leaves
each message in the source or the destination, never both, never neither.

Why no ``x-mqtop-replay`` property: see docs/activemq.md ("Replay record"). The broker's
move keeps the message as it is and records its previous queue itself.
"""

from __future__ import annotations

import time

from collectors.activemq.bodies import complete
from collectors.activemq.jolokia import JolokiaError, MBeanError
from collectors.activemq.ops import FlavorOps, QueueRef
from collectors.base import MessageFilter, MoveRequest, MoveResult, ProgressCallback
from collectors.kit.tally import Tally
from mqtop.kernel.errors import SAME_QUEUE, ActionFailed, UsageError

ORIGINAL = "(original queue of each message)"
FIRST_BATCH = 1000
# The first call moves about FIRST_BYTES of messages (the source's average size), at most
# FIRST_MAX: about 2 s at the slowest rate seen on the test brokers (Artemis, 1 KB persistent
# messages on a loaded machine: ~11,000 msg/s, ~13 MB/s). Every call costs the broker a fixed
# part (Classic pages the queue in from its head), so a small total moves in one call.
FIRST_BYTES = 24 * 1024 * 1024
FIRST_MAX = 25_000
# Classic moves 1 KB persistent messages at 37,000-170,000 msg/s on the same machine, and each
# call pages the queue in from its head again (a second call of a split move ran at half the
# first's rate): its first call moves up to 128 MiB by Classic's AverageMessageSize (which
# counts 2 KiB for a 1 KB body), at most 75,000 messages (about 2 s at the slowest rate
# seen), so a move of tens of thousands of messages is one call, as the broker's own is.
CLASSIC_FIRST_BYTES = 128 * 1024 * 1024
CLASSIC_FIRST_MAX = 75_000
MAX_BATCH = 100_000
CALL_SECONDS = 1.0  # what a grown batch aims at: progress and interruption stay prompt
BODY_CONDITIONS = frozenset({"body_contains", "body_regex", "json"})
MARKER_NOTE = (
    "the broker's own move records each message's previous queue (Artemis _AMQ_ORIG_QUEUE and "
    "_AMQ_ORIG_MESSAGE_ID, Classic originalDestination); it cannot add an x-mqtop-replay "
    "property, so the audit log is mqtop's record of the replay"
)


def first_batch(average_bytes: float | None, flavor: str = "artemis") -> int:
    """The first call's batch: FIRST_BYTES of messages of the source's average size, between
    FIRST_BATCH and FIRST_MAX (Classic: CLASSIC_FIRST_BYTES, CLASSIC_FIRST_MAX; FIRST_BATCH
    when the broker does not tell the size)."""
    if average_bytes is None or average_bytes <= 0:
        return FIRST_BATCH
    classic = flavor == "classic"
    most = CLASSIC_FIRST_MAX if classic else FIRST_MAX
    size = (CLASSIC_FIRST_BYTES if classic else FIRST_BYTES) / average_bytes
    return max(FIRST_BATCH, min(most, int(size)))


def grown(size: int, seconds: float) -> int:
    """The next batch after ``size`` messages took ``seconds``: about CALL_SECONDS' worth."""
    factor = min(16.0, CALL_SECONDS / max(seconds, 0.001))
    return max(size, min(MAX_BATCH, int(size * factor)))


def needs_body(msg_filter: MessageFilter) -> bool:
    """True when the filter looks at the body (unknown filter types are assumed to)."""
    conditions = getattr(msg_filter, "conditions", None)
    if conditions is None:
        return True
    return any(getattr(c, "kind", "body_regex") in BODY_CONDITIONS for c in conditions)


class Mover:
    """One replay or move: plan the targets, then move batch by batch."""

    def __init__(
        self, ops: FlavorOps, request: MoveRequest, batch: int | None, progress: ProgressCallback
    ) -> None:
        self.ops = ops
        self.request = request
        self.batch = batch
        self.report = progress
        self.tally = Tally()
        self.found: dict[str, QueueRef | None] = {}  # destinations the pre-flight looked up
        self.first = FIRST_BATCH

    async def run(self) -> MoveResult:
        request, tally = self.request, self.tally
        named = None if request.destination == ORIGINAL else request.destination
        pre = await self.ops.preflight(request.source, named)
        src, start = pre.source, pre.count or 0
        if named is not None:
            self.found[named] = pre.destination
        self.first = first_batch(pre.average_bytes, self.ops.flavor)
        bound = start if request.limit is None else min(start, request.limit)
        tally.total = bound
        tally.note(
            f"moved by the broker's own operations; bounded by the {start} message(s) in "
            f"{request.source!r} at start"
        )
        if request.mode == "replay" and not request.dry_run:
            tally.note(MARKER_NOTE)
        try:
            if request.filter is not None:
                await self._filtered(src, start, bound, request.filter)
            else:
                await self._bulk(src, bound)
        except (MBeanError, JolokiaError) as exc:
            raise ActionFailed(
                f"{request.mode} stopped after moving {tally.moved} message(s): {exc}; the "
                f"rest stay in {request.source!r}"
            ) from None
        self.report(tally.progress())
        return tally.result(request.source, request.destination, request.dry_run)

    async def _destination(self, src: QueueRef, name: str) -> QueueRef | None:
        dest = self.found[name] if name in self.found else await self.ops.find(name)
        if dest is not None and dest.mbean == src.mbean:
            raise UsageError(SAME_QUEUE)
        return dest

    async def _targets(self, src: QueueRef, bound: int) -> list[tuple[QueueRef, str, int]]:
        """(destination, selector, most to move) per target; unknown targets count failed."""
        if self.request.destination != ORIGINAL:
            dest = await self._destination(src, self.request.destination)
            if dest is None:
                self._missing(self.request.destination, bound)
                return []
            return [(dest, "", bound)]
        targets: list[tuple[QueueRef, str, int]] = []
        for origin, count in sorted((await self.ops.origins(src, set())).items()):
            amount = bound if count is None else count
            dest = None if origin in (src.queue, "null") else await self.ops.find(origin)
            if dest is None:
                self._missing(origin, amount)
            else:
                targets.append((dest, self.ops.origin_selector(origin), amount))
        return targets

    def _missing(self, name: str, count: int) -> None:
        self.tally.fail(
            count,
            f"no queue {name!r} on the broker: {count} message(s) for it stay in "
            f"{self.request.source!r} (mqtop never creates a destination)",
        )

    async def _bulk(self, src: QueueRef, bound: int) -> None:
        tally = self.tally
        for dest, selector, amount in await self._targets(src, bound):
            left = min(amount, bound - tally.moved)
            if self.request.dry_run:
                tally.moved += left
                continue
            size = self.batch or self.first
            while left > 0:
                began = time.monotonic()
                moved = await self.ops.move_matching(src, selector, dest, min(size, left))
                if self.batch is None:
                    size = grown(size, time.monotonic() - began)
                if moved <= 0:
                    break
                tally.moved += moved
                left -= moved
                self.report(tally.progress())

    async def _filtered(
        self, src: QueueRef, start: int, bound: int, msg_filter: MessageFilter
    ) -> None:
        tally = self.tally
        messages = await self.ops.messages(src, start)
        if len(messages) < start:
            tally.note(
                f"the broker showed {len(messages)} of the {start} message(s) to browsing "
                "(Classic: MaxBrowsePageSize); the others were not examined"
            )
        body_needed = needs_body(msg_filter)
        if body_needed:
            messages = await complete(self.ops.options, self.ops.flavor, src, messages)
        chosen: dict[str, list[str]] = {}
        cut = 0
        for message in messages:
            if body_needed and not message.body_complete:
                cut += 1
                continue
            if not msg_filter.matches(message.body, message.headers):
                tally.skipped += 1
                continue
            if sum(len(v) for v in chosen.values()) >= bound:
                continue  # beyond --limit: neither moved nor skipped
            target: str | None = self.request.destination
            if target == ORIGINAL:
                target = message.death.original_queue if message.death else None
            chosen.setdefault(target or "", []).append(message.id)
        if cut:
            tally.fail(
                cut,
                f"{cut} message(s) are larger than the body the broker shows to management and "
                "were not read whole (browse_url): a body filter cannot be tested on them; "
                "they stay in the source",
            )
        for name, ids in chosen.items():
            dest = await self._destination(src, name) if name else None
            if dest is None:
                self._missing(name or "(unknown original queue)", len(ids))
            elif self.request.dry_run:
                tally.moved += len(ids)
            else:
                await self._move_ids(src, ids, dest)

    async def _move_ids(self, src: QueueRef, ids: list[str], dest: QueueRef) -> None:
        tally = self.tally
        step = self.batch or FIRST_BATCH
        for at in range(0, len(ids), step):
            chunk = ids[at : at + step]
            done = await self.ops.move_ids(src, chunk, dest)
            tally.moved += sum(done)
            missed = [i for i, ok in zip(chunk, done, strict=True) if not ok]
            for ident in missed:
                tally.fail(1, f"{ident}: the broker did not move it (consumed or removed?)")
            self.report(tally.progress())
