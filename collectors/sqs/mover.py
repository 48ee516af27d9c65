"""The lossless batched move: ReceiveMessage -> SendMessageBatch -> DeleteMessageBatch.

``SendMessageBatch`` preserves body, message attributes, AWSTraceHeader and, into FIFO queues,
group and deduplication ids; ``DeleteMessageBatch`` runs **only** for the entries whose send
succeeded. Entries that fail stay in the source (made visible again at the end of the run) and
are reported. A crash leaves received-but-undeleted messages invisible until their visibility
timeout: they reappear in the source, nothing is lost; duplicates are bounded by the batches
in flight, whose message ids the run's journal names before each send. The run is bounded by
the source's length at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import time
from collections.abc import Mapping
from typing import Any, Protocol

from collectors.base import (
    MessageFilter,
    MoveProgress,
    MoveRequest,
    MoveResult,
    ProgressCallback,
)
from collectors.kit.journal import MoveJournal
from collectors.kit.tally import Tally
from collectors.sqs.client import THROTTLED, describe_aws_error, error_code, http_status
from collectors.sqs.codecs import (
    BATCH_MAX,
    MAX_ATTRIBUTES,
    REPLAY_ATTRIBUTE,
    Received,
    build_entry,
    chunk_entries,
    int_attr,
    replay_marker,
)
from collectors.sqs.options import SQSOptions
from mqtop.kernel.errors import ActionFailed

DEFAULT_VISIBILITY = 90  # send + delete, each with retries, fit well inside
RECEIVE_WAIT = 1  # seconds of long polling per receive
IDLE_ROUNDS = 50  # receives that bring back only messages this run holds, then stop
# whole-batch errors caused by one entry: split the batch to find it (nothing was sent)
SPLITTABLE = frozenset(
    {
        "InvalidParameterValue",
        "InvalidMessageContents",
        "MessageTooLong",
        "BatchRequestTooLong",
        "AWS.SimpleQueueService.BatchRequestTooLong",
        "InvalidAttributeName",
        "InvalidAttributeValue",
        "InvalidParameterCombination",
    }
)
Sent = tuple[list[str], dict[str, str], BaseException | None, int]


class Calls(Protocol):
    """What a move needs from the broker's actions: its options and three SQS calls."""

    options: SQSOptions
    server: str  # the endpoint's Server header

    async def raw(self, operation: str, **kwargs: Any) -> Any:
        """Call an SQS operation in a worker thread; botocore exceptions propagate."""

    async def receive(self, url: str, count: int, visibility: int, wait: int) -> list[Received]:
        """ReceiveMessage with every attribute."""

    async def release(self, url: str, receipts: list[str]) -> int:
        """Make received messages visible again; how many could not be."""


class RateLimiter:
    """Spaces sends so at most ``rate`` messages go out per second."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self._next = time.monotonic()

    async def acquire(self, count: int) -> None:
        if not self.rate:
            return
        now = time.monotonic()
        if self._next > now:
            await asyncio.sleep(self._next - now)
        self._next = max(now, self._next) + count / self.rate


def stamp(epoch: Any) -> str:
    """A journal's start time for a note (UTC)."""
    try:
        when = dt.datetime.fromtimestamp(float(epoch or 0), tz=dt.UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return "at an unknown time"
    return f"{when:%Y-%m-%d %H:%M:%S}Z"


class BatchMove:
    """One batched receive/send/delete run (state shared by its worker tasks)."""

    def __init__(
        self,
        calls: Calls,
        request: MoveRequest,
        *,
        urls: tuple[str, str],
        attrs: tuple[Mapping[str, str], Mapping[str, str]],
        batch: int,
        rate: float | None,
        progress: ProgressCallback,
    ) -> None:
        self.calls = calls
        self.request = request
        self.src_url, self.dst_url = urls
        self.src_fifo = attrs[0].get("FifoQueue") == "true"
        self.dst_fifo = attrs[1].get("FifoQueue") == "true"
        self.batch = batch
        self.limiter = RateLimiter(rate)
        self.progress = progress
        self.filter: MessageFilter | None = request.filter
        self.limit = request.limit
        options = calls.options
        self.visibility = math.ceil(options.move_visibility_timeout or DEFAULT_VISIBILITY)
        # FIFO: one loop keeps every group in order; standard queues: parallel loops
        self.workers = 1 if self.src_fifo else options.move_workers
        self.start_count = int_attr(attrs[0], "ApproximateNumberOfMessages") or 0
        self.examine_left = self.start_count
        total = self.start_count if self.limit is None else min(self.start_count, self.limit)
        self.tally = Tally(total=total)
        self.reserved = 0  # messages being sent by a worker (counted against --limit)
        self.seen: set[str] = set()
        self.held: dict[str, str] = {}  # id -> receipt: released at the end, stays in source
        self.deleted: set[str] = set()  # ids this run moved and deleted from the source
        self.unmarked = 0
        self.fatal: str | None = None
        # moto (a werkzeug server) loses one of two concurrent deletes on a queue, bringing
        # deleted messages back as unreported duplicates: one delete in flight there. SQS and
        # other servers take them in parallel. A message handed to two concurrent receives
        # (moto again) is caught by ``seen``.
        self._delete_lock: contextlib.AbstractAsyncContextManager[Any] = (
            asyncio.Lock() if "werkzeug" in calls.server.lower() else contextlib.nullcontext()
        )
        self.journal: MoveJournal | None = None
        self.in_flight: set[str] = set()  # ids between send and delete
        self.earlier: set[str] = set()  # ids an interrupted earlier run may have sent
        self.earlier_moved = 0
        self.when = dt.datetime.now(tz=dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

    # -- helpers -------------------------------------------------------------------------

    def _report(self) -> None:
        self.progress(self.tally.progress())

    def _want(self) -> int:
        want = min(self.batch, self.examine_left)
        if self.limit is not None:
            room = self.limit - self.tally.moved - self.reserved
            want = min(want, room) if self.filter is None else (want if room > 0 else 0)
        return max(0, want)

    def _hold(self, message: Received) -> None:
        self.held[message.id] = message.receipt

    async def _take(self) -> tuple[list[Received], bool]:
        """Receive a batch of new messages; (messages, stop)."""
        want = self._want()
        if want <= 0 or self.fatal:
            return [], True
        self.examine_left -= want
        if self.filter is None:
            self.reserved += want
        try:
            batch = await self.calls.receive(self.src_url, want, self.visibility, RECEIVE_WAIT)
        except Exception as exc:
            self.examine_left += want
            if self.filter is None:
                self.reserved -= want
            self.fatal = f"ReceiveMessage: {describe_aws_error(exc)}"
            return [], True
        fresh: list[Received] = []
        for message in batch:
            if message.id in self.seen:
                # held here (skipped/failed), or moved but its delete failed: stays put
                self._hold(message)
            else:
                self.seen.add(message.id)
                fresh.append(message)
        unused = want - len(fresh)
        self.examine_left += unused
        if self.filter is None:
            self.reserved -= unused
        return fresh, not batch

    def _select(self, fresh: list[Received]) -> list[Received]:
        """Apply --filter and --limit; everything not selected is held."""
        if self.filter is None:
            return fresh
        chosen: list[Received] = []
        for message in fresh:
            if self.filter.matches(message.body.encode("utf-8"), message.headers()):
                chosen.append(message)
            else:
                self.tally.skipped += 1
                self._hold(message)
        if self.limit is not None:
            room = max(0, self.limit - self.tally.moved - self.reserved)
            for message in chosen[room:]:
                self._hold(message)  # beyond --limit: neither moved nor skipped
            chosen = chosen[:room]
        self.reserved += len(chosen)
        return chosen

    # -- sending -----------------------------------------------------------------------

    async def _send(self, entries: list[dict[str, Any]], groups: dict[str, str | None]) -> Sent:
        """Send one batch: (ids sent, id -> error, fatal exception, sends of unknown outcome).

        A batch refused for one bad entry is split until the entry is found (nothing of a
        refused batch was sent). ``groups`` (FIFO sources) keeps order: once a message of a
        group fails, the later ones of that group are held back.
        """
        try:
            response = await self.calls.raw(
                "send_message_batch", QueueUrl=self.dst_url, Entries=entries
            )
        except Exception as exc:
            status, code = http_status(exc), error_code(exc)
            rejected = status is not None and 400 <= status < 500 and code not in THROTTLED
            if rejected and (code in SPLITTABLE or code == "400"):
                return await self._split(entries, groups, exc)
            # refused as a whole (permissions, throttling after retries) or no answer at all:
            # without an answer the messages may have been stored
            unknown = len(entries) if status is None or status >= 500 or code in THROTTLED else 0
            return [], {e["Id"]: describe_aws_error(exc) for e in entries}, exc, unknown
        sent = [str(s["Id"]) for s in response.get("Successful", [])]
        bad = {
            str(f["Id"]): f"{f.get('Code', 'error')}: {f.get('Message', '')}".strip(": ")
            for f in response.get("Failed", [])
        }
        return sent, bad, None, 0

    async def _split(
        self, entries: list[dict[str, Any]], groups: dict[str, str | None], exc: Exception
    ) -> Sent:
        """Send the halves of a batch refused for one bad entry (nothing of it was sent)."""
        if len(entries) == 1:
            return [], {entries[0]["Id"]: describe_aws_error(exc)}, None, 0
        middle = len(entries) // 2
        sent_a, bad_a, fatal_a, unknown_a = await self._send(entries[:middle], groups)
        if fatal_a is not None:
            rest = {e["Id"]: "not sent (stopped)" for e in entries[middle:]}
            return sent_a, {**bad_a, **rest}, fatal_a, unknown_a
        right, held = self._unblocked(entries[middle:], bad_a, groups)
        sent_b, bad_b, fatal_b, unknown_b = (
            await self._send(right, groups) if right else ([], {}, None, 0)
        )
        return sent_a + sent_b, {**bad_a, **held, **bad_b}, fatal_b, unknown_b

    @staticmethod
    def _unblocked(
        entries: list[dict[str, Any]], failed: Mapping[str, str], groups: dict[str, str | None]
    ) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """Entries still to send, and those held back behind a failed message of their group."""
        blocked = {groups.get(ident) for ident in failed} - {None}
        if not blocked:
            return entries, {}
        keep = [e for e in entries if groups.get(e["Id"]) not in blocked]
        held = {
            e["Id"]: "held back: an earlier message of its FIFO group was not sent"
            for e in entries
            if groups.get(e["Id"]) in blocked
        }
        return keep, held

    def _entries(
        self, messages: list[Received]
    ) -> tuple[list[dict[str, Any]], dict[str, Received], dict[str, str | None]]:
        """Batch entries of the messages, the message of each entry id, and its FIFO group."""
        now_ms = int(time.time() * 1000)
        entries: list[dict[str, Any]] = []
        by_id: dict[str, Received] = {}
        groups: dict[str, str | None] = {}
        replay = self.request.mode == "replay"
        for i, message in enumerate(messages):
            marker = replay_marker(message, self.request.source, self.when) if replay else None
            if replay and marker is None:
                self.unmarked += 1
            entry = build_entry(
                i, message, destination_fifo=self.dst_fifo, marker=marker, now_ms=now_ms
            )
            entries.append(entry)
            by_id[entry["Id"]] = message
            groups[entry["Id"]] = message.system.get("MessageGroupId") if self.src_fifo else None
        return entries, by_id, groups

    async def _transfer(self, messages: list[Received]) -> None:
        """Send, then delete exactly the messages whose send succeeded."""
        entries, by_id, groups = self._entries(messages)
        sent: list[Received] = []
        failed: dict[str, str] = {}
        fatal: BaseException | None = None
        if self.journal is not None:
            # recorded before the send: a kill from here on leaves them named on disk
            self.in_flight.update(m.id for m in messages)
            # a few hundred bytes to the local disk: cheaper inline than a thread hop
            self.journal.write(in_flight=sorted(self.in_flight))
        for planned in chunk_entries(entries, self.batch):
            if fatal is not None:
                failed.update({e["Id"]: "not sent (stopped)" for e in planned})
                continue
            chunk, held = self._unblocked(planned, failed, groups)
            failed.update(held)
            if not chunk:
                continue
            ok, bad, fatal, unknown = await self._send(chunk, groups)
            sent.extend(by_id[i] for i in ok)
            failed.update(bad)
            self.tally.duplicates += unknown
            if fatal is not None:
                self.fatal = f"SendMessageBatch: {describe_aws_error(fatal)}"
        for ident, reason in failed.items():
            message = by_id[ident]
            self.tally.fail(1, None if fatal is not None else f"{message.id}: {reason}")
            self._hold(message)
        await self._delete(sent)
        self.tally.moved += len(sent)
        self.earlier_moved += sum(1 for m in sent if m.id in self.earlier)
        self.reserved -= len(messages)
        if fatal is None or not self.tally.duplicates:
            # their outcome is known now (deleted, or refused and still in the source)
            self.in_flight.difference_update(m.id for m in messages)

    async def _delete(self, messages: list[Received]) -> None:
        for at in range(0, len(messages), BATCH_MAX):
            chunk = messages[at : at + BATCH_MAX]
            entries = [{"Id": str(i), "ReceiptHandle": m.receipt} for i, m in enumerate(chunk)]
            try:
                async with self._delete_lock:
                    response = await self.calls.raw(
                        "delete_message_batch", QueueUrl=self.src_url, Entries=entries
                    )
            except Exception as exc:
                self.tally.duplicates += len(chunk)
                self.tally.error(
                    f"DeleteMessageBatch: {describe_aws_error(exc)}: {len(chunk)} message(s) "
                    "were sent and remain in the source too"
                )
                continue
            failures = response.get("Failed", [])
            refused = {int(failure["Id"]) for failure in failures}
            self.deleted.update(m.id for i, m in enumerate(chunk) if i not in refused)
            for failure in failures:
                message = chunk[int(failure["Id"])]
                self.tally.duplicates += 1
                self.tally.error(
                    f"{message.id}: sent, but delete failed ({failure.get('Code')}): it "
                    "remains in the source too"
                )

    # -- the run -----------------------------------------------------------------------

    async def _worker(self) -> None:
        idle = 0
        while not self.fatal:
            # tokens first: received messages must not wait (invisible) for the rate limit
            await self.limiter.acquire(self.batch)
            fresh, stop = await self._take()
            if stop:
                return
            if not fresh:
                idle += 1  # only messages held by this run came back
                if idle > IDLE_ROUNDS:
                    return
                continue
            idle = 0
            chosen = self._select(fresh)
            if chosen:
                await self._transfer(chosen)
            self._report()

    async def _finish(self) -> None:
        # a message handed to two receives at once (moto does) and deleted through one of
        # them is gone: its other receipt cannot be released, and need not be
        receipts = [r for ident, r in self.held.items() if ident not in self.deleted]
        if receipts:
            unreleased = await self.calls.release(self.src_url, receipts)
            if unreleased:
                self.tally.error(
                    f"{unreleased} message(s) left in the source could not be made visible "
                    f"now; they reappear within {self.visibility}s"
                )

    async def run(self) -> MoveResult:
        """Move with ``move_workers`` loops until the source's count at start is examined."""
        journal = MoveJournal("sqs", self.calls.options.name, self.src_url, self.dst_url)
        self.journal = journal
        earlier = journal.interrupted() or {}
        ids = earlier.get("in_flight")
        self.earlier = {str(i) for i in ids} if isinstance(ids, list) else set()
        other = journal.concurrent()
        tasks = [asyncio.ensure_future(self._worker()) for _ in range(self.workers)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.shield(self._finish())
        self._report()
        if not self.in_flight and not self.tally.duplicates:
            await asyncio.to_thread(journal.close)
        self.tally.duplicates += self.earlier_moved
        if self.fatal:
            self._raise_stopped()
        self._notes(stamp(earlier.get("started")), other)
        return self.tally.result(self.request.source, self.request.destination, dry_run=False)

    def _raise_stopped(self) -> None:
        """The run stopped on an error that is not about one message: one clear failure."""
        duplicates = self.tally.duplicates
        dup = (
            f"; up to {duplicates} may also be in {self.request.destination!r}"
            if duplicates
            else ""
        )
        raise ActionFailed(
            f"{self.request.mode} stopped after moving {self.tally.moved} message(s): "
            f"{self.fatal}; the rest stay in {self.request.source!r}{dup}"
        )

    def _notes(self, earlier_started: str, other: Mapping[str, Any] | None) -> None:
        self.tally.note(
            "moved by batched receive/send/delete; the run was bounded by the "
            f"{self.start_count} message(s) counted at start"
        )
        if self.unmarked:
            self.tally.note(
                f"{self.unmarked} message(s) already had {MAX_ATTRIBUTES} attributes: the "
                f"{REPLAY_ATTRIBUTE} attribute was not added to them"
            )
        if self.earlier:
            self.tally.note(
                f"an earlier run of this move (started {earlier_started}) was interrupted with "
                f"{len(self.earlier)} message(s) being sent; {self.earlier_moved} of them were "
                f"moved now and may already have been in {self.request.destination!r}"
            )
        if other is not None:
            self.tally.note(
                f"another move of the same queues (pid {other.get('pid')}) seemed to be running"
            )

    async def dry_run(self) -> MoveResult:
        """Count what would move: from the queue length, or by receiving when filtering."""
        source, destination = self.request.source, self.request.destination
        if self.filter is None:
            self.tally.moved = self.tally.total or 0
            self.tally.note("counted from ApproximateNumberOfMessages; nothing was received")
            return self.tally.result(source, destination, dry_run=True)
        matched = 0
        try:
            while not self.fatal:
                fresh, stop = await self._take()
                if stop:
                    break
                for message in fresh:
                    self._hold(message)
                    if self.filter.matches(message.body.encode("utf-8"), message.headers()):
                        if self.limit is None or matched < self.limit:
                            matched += 1
                    else:
                        self.tally.skipped += 1
                self.tally.moved = matched
                self.progress(MoveProgress(done=matched, total=None, skipped=self.tally.skipped))
                if self.limit is not None and matched >= self.limit:
                    break
        finally:
            await asyncio.shield(self._finish())
        if self.fatal:
            raise ActionFailed(f"dry run stopped: {self.fatal}")
        self.tally.note(
            "messages were received to test the filter and made visible again: their "
            "ApproximateReceiveCount went up by one"
        )
        return self.tally.result(source, destination, dry_run=True)
