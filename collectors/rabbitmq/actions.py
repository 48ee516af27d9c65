"""RabbitMQ message actions over AMQP (pika, always in worker threads).

* peek: ``basic.get`` without ack, then one ``basic.nack(multiple, requeue)``: the messages go
  back to their places, marked redelivered (quorum queues also raise ``x-delivery-count``).
  Stream queues are read from offset ``first`` and nothing changes.
* replay / move: an asynchronous pika connection consumes the source with a prefetch window
  and republishes each message to the destination queue through the default exchange with
  publisher confirms **and** ``mandatory``. A source message is acked only after its publish
  was confirmed and not returned; returned or nacked messages are failures and stay in the
  source. At most ``window`` publishes are unconfirmed at any time, which bounds what an
  interrupted run can duplicate. Only the messages present when the move starts are taken.
* purge: ``queue.purge``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from collectors.base import (
    MoveProgress,
    MoveRequest,
    MoveResult,
    PeekedMessage,
    ProgressCallback,
    RepublishRequest,
    RepublishResult,
)
from collectors.kit.journal import MoveJournal
from collectors.kit.options import options_as
from collectors.kit.tally import Tally
from collectors.rabbitmq.amqp import close_quietly, open_connection
from collectors.rabbitmq.api import ManagementApi
from collectors.rabbitmq.deadletters import QueueDetails
from collectors.rabbitmq.messages import (
    KEPT_HEADER,
    delivery_count,
    kept_copy,
    to_peeked,
)
from collectors.rabbitmq.mover import Mover
from collectors.rabbitmq.movespec import (
    MoveOutcome,
    MoveSpec,
    finish_notes,
    journal_notes,
    open_journal,
)
from collectors.rabbitmq.options import (
    RabbitMQMoveOptions,
    RabbitMQOptions,
    amqp_target,
    qualify,
    split_name,
)
from collectors.rabbitmq.republish import republish_one
from mqtop.kernel.errors import ActionFailed, ReadOnlyBroker, UnsupportedAction, UsageError


class RabbitMQActions:
    """Peek / replay / move / purge for one RabbitMQ broker."""

    def __init__(self, options: RabbitMQOptions, api: ManagementApi) -> None:
        self.options = options
        self.api = api
        url = options.url.get_secret_value()
        # the user the broker authenticates: a publish whose user_id differs is refused. With
        # EXTERNAL the broker derives it from the certificate; the URL's user names it, and
        # without one it is unknown (every user_id is then kept in x-mqtop-replay instead)
        self._username: str | None = amqp_target(url).username
        if options.auth_mechanism == "external" and urlsplit(url).username is None:
            self._username = None

    # -- helpers ---------------------------------------------------------------------

    async def _resolve(self, queue: str) -> tuple[str, str]:
        if "/" not in queue:
            return "/", queue
        vhosts = await self.api.known_vhosts()
        return split_name(queue, vhosts)

    @contextlib.contextmanager
    def _connection(self, vhost: str) -> Iterator[Any]:
        """A short-lived blocking connection (actions are rare; idle ones would time out)."""

        conn = open_connection(self.options, vhost)
        try:
            yield conn
        finally:
            close_quietly(conn)

    def _declare(self, vhost: str, name: str) -> tuple[int, int] | None:
        """(ready, consumers) of a queue, None when it does not exist."""
        return self._declare_many([(vhost, name)])[0]

    def _declare_many(self, queues: list[tuple[str, str]]) -> list[tuple[int, int] | None]:
        """Passive declares, one connection per vhost."""
        import pika.exceptions

        out: list[tuple[int, int] | None] = []
        with contextlib.ExitStack() as stack:
            conns: dict[str, Any] = {}
            for vhost, name in queues:
                if vhost not in conns:
                    conns[vhost] = stack.enter_context(self._connection(vhost))
                channel = conns[vhost].channel()
                try:
                    ok = channel.queue_declare(name, passive=True)
                except pika.exceptions.ChannelClosedByBroker as exc:
                    if exc.reply_code != 404:
                        raise
                    out.append(None)
                    continue
                out.append((int(ok.method.message_count), int(ok.method.consumer_count)))
                channel.close()
        return out

    def _missing(self, queue: str, vhost: str) -> UsageError:
        return UsageError(f"queue {queue!r} does not exist (vhost {vhost!r})")

    # -- MessageActions --------------------------------------------------------------

    async def peek_warning(self, queue: str) -> str | None:
        """The side effects of basic.get + requeue, for this queue's type."""
        classic = (
            "peeking reads messages with basic.get and puts them back unacknowledged: they "
            "come back marked redelivered"
        )
        quorum = (
            "each peek raises x-delivery-count (it counts toward x-delivery-limit) and "
            "RabbitMQ 3.x puts the peeked messages behind the others"
        )
        limit: int | None = None
        try:
            vhost, name = await self._resolve(queue)
            details = await self.api.queue_details(vhost, name)
            kind = None if details is None else details.type
            if details is not None:
                limit = details.delivery_limit
        except Exception:  # the peek itself reports a missing queue or a failure
            kind = None
        if kind == "stream":
            return None  # read from the first offset: nothing changes on the broker
        if kind == "quorum" and limit is not None:
            return (
                f"{classic}; this is a quorum queue with a delivery limit of {limit}: {quorum}. "
                f"A message that has used all {limit} attempts would be dropped when put "
                f"back: mqtop re-publishes it to the back of the queue instead ({KEPT_HEADER} "
                "header; recorded in the audit log)."
            )
        if kind == "quorum":
            return f"{classic}; this is a quorum queue: {quorum}."
        if kind == "classic":
            return f"{classic}."
        return (
            f"{classic}; on a quorum queue {quorum}. Stream queues are read from their first "
            "offset without side effects."
        )

    async def _peek_plan(self, queue: str) -> tuple[str, str, str | None, int | None]:
        """(vhost, name, type, delivery limit) of a queue about to be peeked.

        On a quorum queue with a delivery limit every peek uses up one delivery attempt, and
        a message that has used them all would be dropped (or dead-lettered) when put back:
        peek keeps such a message by re-publishing it, a write ``readonly`` forbids.
        """
        vhost, name = await self._resolve(queue)
        details = await self.api.queue_details(vhost, name)
        kind = None if details is None else details.type
        limit = details.delivery_limit if details is not None and kind == "quorum" else None
        if limit is not None and self.options.readonly:
            raise ReadOnlyBroker(
                f"peek of {queue!r} refused: it is a quorum queue with a delivery limit of "
                f"{limit}, each peek uses one delivery attempt, and a message that has used "
                "them all would be dropped when put back; mqtop keeps such messages by "
                f"re-publishing them, a write that readonly: true on broker "
                f"{self.options.name!r} forbids"
            )
        return vhost, name, kind, limit

    async def peek(self, queue: str, count: int) -> list[PeekedMessage]:
        vhost, name, kind, limit = await self._peek_plan(queue)
        return await asyncio.to_thread(
            self._peek_sync, queue, vhost, name, count, kind=kind, limit=limit
        )

    def _peek_sync(
        self,
        queue: str,
        vhost: str,
        name: str,
        count: int,
        *,
        kind: str | None,
        limit: int | None = None,
    ) -> list[PeekedMessage]:
        import pika.exceptions

        found = self._declare(vhost, name)
        if found is None:
            raise self._missing(queue, vhost)
        if kind == "stream":
            return self._peek_stream(vhost, name, count)
        if limit is not None:
            # re-published messages go to the back: never read one twice
            count = min(count, found[0])
        out: list[PeekedMessage] = []
        with self._connection(vhost) as conn:
            channel = conn.channel()
            keeper: Any = None
            try:
                for _ in range(count):
                    method, properties, body = channel.basic_get(name, auto_ack=False)
                    if method is None:
                        break
                    message = to_peeked(method, properties, body, vhost)
                    used = delivery_count(properties)
                    if limit is not None and used >= limit:
                        # putting it back would drop it: a confirmed copy to the back of the
                        # queue first, then the original is acknowledged
                        if keeper is None:
                            keeper = conn.channel()
                            keeper.confirm_delivery()
                        copy = kept_copy(properties, self._username, used, limit)
                        try:
                            keeper.basic_publish("", name, body, copy, mandatory=True)
                        except (
                            pika.exceptions.UnroutableError,
                            pika.exceptions.NackError,
                        ) as exc:
                            raise ActionFailed(
                                f"peek of {queue!r}: message {message.id} has used its "
                                f"{limit} delivery attempts and the broker refused its copy "
                                f"({type(exc).__name__}); putting it back drops it"
                            ) from None
                        channel.basic_ack(method.delivery_tag)
                        message = dataclasses.replace(
                            message,
                            note=(
                                f"had used its {used} delivery attempt(s) (delivery limit "
                                f"{limit}): putting it back would have dropped it, so it was "
                                f"re-published to the back of the queue ({KEPT_HEADER} header)"
                            ),
                        )
                    out.append(message)
            except pika.exceptions.ConnectionClosedByBroker as exc:
                if exc.reply_code != 540 or kind is not None:
                    raise
                # basic.get is not implemented by stream queues
                return self._peek_stream(vhost, name, count)
            if channel.is_open:
                # every message back where it was, in order
                channel.basic_nack(delivery_tag=0, multiple=True, requeue=True)
                channel.close()
        return out

    def _peek_stream(self, vhost: str, name: str, count: int) -> list[PeekedMessage]:
        out: list[PeekedMessage] = []
        with self._connection(vhost) as conn:
            channel = conn.channel()
            channel.basic_qos(prefetch_count=min(count, 65_535))
            for method, properties, body in channel.consume(
                name,
                auto_ack=False,
                arguments={"x-stream-offset": "first"},
                inactivity_timeout=1.0,
            ):
                if method is None:
                    break
                out.append(to_peeked(method, properties, body, vhost))
                if len(out) >= count:
                    break
            with contextlib.suppress(Exception):
                channel.cancel()
        return out

    async def republish(self, request: RepublishRequest) -> RepublishResult:
        """One reviewed message (maybe edited) to another queue, confirmed, then the original
        acknowledged (:mod:`collectors.rabbitmq.republish`)."""

        src = await self._resolve(request.source)
        dst = await self._resolve(request.destination)
        details = await self.api.queue_details(*src)
        if details is not None and details.type == "quorum" and details.delivery_limit:
            raise UnsupportedAction(
                f"{request.source!r} is a quorum queue with a delivery limit: finding one "
                "message there uses a delivery attempt of every message read before it; "
                "replay with a --filter instead"
            )
        if await asyncio.to_thread(self._declare, *dst) is None:
            raise self._missing(request.destination, dst[0])

        def connect(vhost: str) -> Any:
            return open_connection(self.options, vhost)

        return await asyncio.to_thread(republish_one, connect, src, dst, request, self._username)

    async def replay_target(self, dlq: str) -> str | None:
        vhost, name = await self._resolve(dlq)
        qualified = qualify(vhost, name)
        sources = await self.api.dead_letter_sources_of(qualified)
        if sources and len(sources) == 1:
            return sources[0]
        if sources and len(sources) > 1:
            shown = ", ".join(sources[:10])
            raise UsageError(
                f"{dlq!r} receives dead letters from several queues ({shown}): replay them "
                "one at a time with --to QUEUE --filter header.x-first-death-queue=QUEUE"
            )
        _vhost, _name, kind, limit = await self._peek_plan(dlq)
        head = await asyncio.to_thread(self._peek_sync, dlq, vhost, name, 1, kind=kind, limit=limit)
        if head and head[0].death is not None:
            return head[0].death.original_queue
        return None

    async def count(self, queue: str) -> int | None:
        vhost, name = await self._resolve(queue)
        found = await asyncio.to_thread(self._declare, vhost, name)
        if found is None:
            raise self._missing(queue, vhost)
        return found[0]

    async def purge(self, queue: str) -> int | None:
        vhost, name = await self._resolve(queue)
        return await asyncio.to_thread(self._purge_sync, queue, vhost, name)

    def _purge_sync(self, queue: str, vhost: str, name: str) -> int:
        import pika.exceptions

        with self._connection(vhost) as conn:
            channel = conn.channel()
            try:
                ok = channel.queue_purge(name)
            except pika.exceptions.ChannelClosedByBroker as exc:
                if exc.reply_code == 404:
                    raise self._missing(queue, vhost) from None
                raise
            return int(ok.method.message_count)

    async def move(self, request: MoveRequest, progress: ProgressCallback) -> MoveResult:
        opts = options_as(request.options, RabbitMQMoveOptions, "rabbitmq")
        window = opts.batch or self.options.move_window
        src, dst, details = await self._move_plan(request)
        src_label, dst_label = qualify(*src), qualify(*dst)
        limit = details.delivery_limit if details is not None else None
        counts, dst_counts = await asyncio.to_thread(self._declare_many, [src, dst])
        if counts is None:
            raise self._missing(request.source, src[0])
        bound = counts[0]
        early = _nothing_to_move(request, src_label, dst_label, bound, dst_counts is None)
        if early is not None:
            return early
        run = uuid.uuid4().hex[:12]
        before: list[str] = []  # notes on other runs of the same move
        journal: MoveJournal | None = None
        if not request.dry_run:
            journal = open_journal(self.options.name, src_label, dst_label, window)
            run = journal.run
            other = journal.concurrent()
            if other is not None:
                before.append(
                    f"another move of the same queues (pid {other.get('pid')}) seems to be running"
                )
        spec = MoveSpec(
            source=src,
            destination=dst,
            source_label=src_label,
            destination_label=dst_label,
            mode=request.mode,
            window=window,
            bound=bound,
            limit=request.limit,
            filter=request.filter,
            dry_run=request.dry_run,
            run=run,
            username=self._username,
            window_bytes=self.options.move_window_bytes,
            average_bytes=None if details is None else details.average_bytes,
            delivery_limit=limit,
        )
        outcome = await self._run_mover(spec, progress, journal, request.mode)
        outcome.duplicates = outcome.uncertain
        if journal is not None:
            outcome.duplicates += journal_notes(journal, outcome, window, dst_label, before)
        finish_notes(outcome, spec, before)
        return outcome.result(src_label, dst_label, request.dry_run)

    async def _move_plan(
        self, request: MoveRequest
    ) -> tuple[tuple[str, str], tuple[str, str], QueueDetails | None]:
        """Source, destination and the source's details; refusals before anything is read."""
        src = await self._resolve(request.source)
        dst = await self._resolve(request.destination)
        src_label = qualify(*src)
        if src == dst:
            raise UsageError("source and destination are the same queue")
        details = await self.api.queue_details(*src)
        limit = details.delivery_limit if details is not None else None
        if (
            limit is not None
            and request.dry_run
            and request.filter is not None
            and self.options.readonly
        ):
            raise ReadOnlyBroker(
                f"dry run of {request.source!r} refused: a filtered dry run reads every "
                f"message and puts it back, and {src_label} is a quorum queue with a "
                f"delivery limit of {limit}: a message that has used its attempts would be "
                "dropped, and mqtop keeps such messages by re-publishing them, a write "
                f"that readonly: true on broker {self.options.name!r} forbids"
            )
        if details is not None and details.type == "stream":
            raise UnsupportedAction(
                f"{src_label} is a stream: consuming does not remove messages, so a move "
                "would only copy them"
            )
        return src, dst, details

    async def _run_mover(
        self, spec: MoveSpec, progress: ProgressCallback, journal: MoveJournal | None, mode: str
    ) -> MoveOutcome:
        """Run the mover in a worker thread; on cancel, stop it cleanly and re-raise."""
        loop = asyncio.get_running_loop()

        def report(update: MoveProgress) -> None:
            loop.call_soon_threadsafe(progress, update)

        stop = threading.Event()
        mover = Mover(self.options, spec, report, stop)
        task = asyncio.ensure_future(asyncio.to_thread(mover.run))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            # interrupted (Ctrl-C): stop taking messages, let confirmed ones be acked and
            # the rest requeued, then give up
            stop.set()
            with contextlib.suppress(BaseException):
                await task
            if journal is not None and task.done() and not task.cancelled():
                with contextlib.suppress(BaseException):
                    if not task.result().uncertain:
                        journal.close()
            raise
        except ConnectionError as exc:
            if journal is not None:
                journal.close()
            raise ActionFailed(f"{mode} failed: {exc}") from None

    async def close(self) -> None:
        return None


__all__ = ["RabbitMQActions"]


def _nothing_to_move(
    request: MoveRequest, src_label: str, dst_label: str, bound: int, no_destination: bool
) -> MoveResult | None:
    """The result when nothing is read: no destination, or a dry run without a filter."""
    planned = bound if request.limit is None else min(bound, request.limit)
    tally = Tally()
    if no_destination:
        tally.fail(
            0 if request.dry_run else planned,
            f"destination queue {dst_label!r} does not exist: nothing was moved, every "
            f"message stays in {src_label}",
        )
        return tally.result(src_label, dst_label, request.dry_run)
    if request.dry_run and request.filter is None:
        tally.moved = planned
        tally.note(f"{src_label} holds {bound} ready message(s); nothing was read")
        return tally.result(src_label, dst_label, dry_run=True)
    return None
