"""SQS message actions: peek, replay target, count, purge, and replay/move.

Replay/move takes one of two paths: the SQS native move task (:mod:`collectors.sqs.native`)
for plain replays and moves where the endpoint supports it, else the lossless batched
receive/send/delete (:mod:`collectors.sqs.mover`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

from collectors.base import Death as DeathInfo
from collectors.base import (
    MoveRequest,
    MoveResult,
    PeekedMessage,
    ProgressCallback,
    original_of_dlq,
)
from collectors.kit.options import options_as
from collectors.sqs import native
from collectors.sqs.client import (
    NO_SUCH_QUEUE,
    THROTTLED,
    ConfigProblem,
    Limits,
    describe_aws_error,
    error_code,
    http_status,
    make_client,
)
from collectors.sqs.codecs import (
    BATCH_MAX,
    Received,
    arn_parts,
    int_attr,
    queue_name_of,
    redrive_target,
)
from collectors.sqs.mover import BatchMove
from collectors.sqs.options import SQSMoveOptions, SQSOptions
from collectors.sqs.pool import DaemonPool
from mqtop.kernel.errors import ActionFailed, UsageError

T = TypeVar("T")

PEEK_VISIBILITY = 30  # seconds a peeked message is hidden at most (released at once)
# StartMessageMoveTask is not idempotent: never retried automatically (one attempt in all;
# botocore's retries={"max_attempts": 1} meant one retry)
NATIVE_LIMITS = Limits(connect=5.0, read=20.0, attempts=1)
PURGE_IN_PROGRESS = frozenset(
    {"AWS.SimpleQueueService.PurgeQueueInProgress", "PurgeQueueInProgress"}
)
CREDENTIAL_ERRORS = (
    "NoCredentialsError",
    "PartialCredentialsError",
    "NoRegionError",
    "ProfileNotFound",
)
SYSTEM_PROPERTIES = (
    "MessageGroupId",
    "MessageDeduplicationId",
    "SequenceNumber",
    "SentTimestamp",
    "ApproximateFirstReceiveTimestamp",
    "ApproximateReceiveCount",
    "SenderId",
    "AWSTraceHeader",
    "DeadLetterQueueSourceArn",
)
GENERIC_PEEK_WARNING = (
    "SQS cannot peek: messages are received and made visible again at once. Each "
    "receive raises their ApproximateReceiveCount"
)


class SQSActions:
    """Peek / replay / move / purge on one SQS account and region."""

    def __init__(self, options: SQSOptions) -> None:
        self.options = options
        self._client: Any = None
        self._native_client: Any = None
        self._pool: DaemonPool | None = None
        self._urls: dict[str, str] = {}
        self.server = ""  # the endpoint's Server header (tells emulators apart)

    # -- plumbing --------------------------------------------------------------------

    async def _call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        if self._pool is None:
            self._pool = DaemonPool(self.options.move_workers + 4, "mqtop-sqs-act")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    async def _sqs(self) -> Any:
        if self._client is None:
            pool = max(self.options.max_parallel, self.options.move_workers * 2) + 4
            try:
                # requests are built here, and the server checks them again: client-side
                # validation would cost a tenth of a batch move's CPU
                self._client = await self._call(
                    make_client, self.options, pool=pool, validate=False
                )
            except ConfigProblem as exc:
                raise UsageError(f"broker {self.options.name!r}: {exc}") from None
        return self._client

    async def raw(self, operation: str, **kwargs: Any) -> Any:
        """Call an SQS operation in a thread; botocore exceptions propagate."""
        client = await self._sqs()
        return await self._call(getattr(client, operation), **kwargs)

    async def _api(self, operation: str, queue: str | None = None, **kwargs: Any) -> Any:
        """Call an SQS operation; failures become one-line mqtop errors."""
        try:
            return await self.raw(operation, **kwargs)
        except Exception as exc:
            raise self._translate(exc, operation, queue) from None

    def _translate(self, exc: BaseException, operation: str, queue: str | None) -> Exception:
        if isinstance(exc, UsageError | ActionFailed):
            return exc
        where = f"broker {self.options.name!r} ({self.options.address()})"
        if error_code(exc) in NO_SUCH_QUEUE:
            return UsageError(f"{where}: no queue {queue!r}")
        status, code = http_status(exc), error_code(exc)
        refused_name = status is not None and 400 <= status < 500 and code not in THROTTLED
        if operation == "get_queue_url" and refused_name and "AccessDenied" not in code:
            # an invalid queue name is the operator's input, not a broker failure
            return UsageError(f"{where}: queue {queue!r}: {describe_aws_error(exc)}")
        if type(exc).__name__ in CREDENTIAL_ERRORS:
            return UsageError(f"{where}: {describe_aws_error(exc)}")
        return ActionFailed(f"{where}: {operation}: {describe_aws_error(exc)}")

    async def resolve(self, queue: str) -> str:
        """The URL of a queue given by name, URL or ARN."""
        if queue in self._urls:
            return self._urls[queue]
        if queue.startswith(("https://", "http://")):
            url = queue
        else:
            kwargs: dict[str, Any] = {"QueueName": queue}
            parts = arn_parts(queue) if queue.startswith("arn:") else None
            if queue.startswith("arn:") and parts is None:
                raise UsageError(f"{queue!r} is not an SQS queue ARN")
            if parts is not None:
                kwargs = {"QueueName": parts[2], "QueueOwnerAWSAccountId": parts[1]}
            response = await self._api("get_queue_url", queue, **kwargs)
            url = str(response["QueueUrl"])
        self._urls[queue] = url
        return url

    async def _attributes(self, queue: str, url: str) -> dict[str, str]:
        response = await self._api(
            "get_queue_attributes", queue, QueueUrl=url, AttributeNames=["All"]
        )
        headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        self.server = str(headers.get("server", self.server))
        return dict(response.get("Attributes", {}))

    async def _sources(self, queue: str, url: str) -> list[str]:
        """Names of the queues whose RedrivePolicy targets this queue (config mapping first)."""
        name = queue_name_of(url)
        explicit = sorted(s for s, d in self.options.dlq.items() if d in (name, queue))
        if explicit:
            return explicit
        names: list[str] = []
        kwargs: dict[str, Any] = {"QueueUrl": url, "MaxResults": 1000}
        while True:
            page = await self._api("list_dead_letter_source_queues", queue, **kwargs)
            names.extend(queue_name_of(u) for u in page.get("queueUrls", []))
            token = page.get("NextToken")
            if not token:
                return sorted(names)
            kwargs["NextToken"] = token

    async def close(self) -> None:
        for client in (self._client, self._native_client):
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()
        self._client = self._native_client = None
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    # -- peek ------------------------------------------------------------------------

    async def peek_warning(self, queue: str) -> str | None:
        """What receiving does to this queue: worse when it has a RedrivePolicy."""
        url = await self.resolve(queue)  # failing here, the peek would fail the same way
        try:
            attributes = await self._attributes(queue, url)
        except (ActionFailed, UsageError):  # e.g. no sqs:GetQueueAttributes: say what may apply
            return (
                f"{GENERIC_PEEK_WARNING}; if this queue has a RedrivePolicy, messages at "
                "maxReceiveCount move to its dead-letter queue when received."
            )
        arn, max_receives = redrive_target(attributes)
        if not attributes.get("RedrivePolicy"):
            return (
                f"{GENERIC_PEEK_WARNING} (this queue has no RedrivePolicy, so none can be "
                "dead-lettered)."
            )
        target = arn.rsplit(":", 1)[-1] if arn else "its dead-letter queue"
        limit = "maxReceiveCount" if max_receives is None else f"maxReceiveCount {max_receives}"
        return (
            f"{GENERIC_PEEK_WARNING}, and this queue has a RedrivePolicy ({limit}, dead-letter "
            f"queue {target}): a message received that many times moves to {target} when it "
            "is received again — peeking can dead-letter messages."
        )

    async def receive(self, url: str, count: int, visibility: int, wait: int) -> list[Received]:
        """ReceiveMessage of up to ``count`` (at most 10) with every attribute."""
        response = await self.raw(
            "receive_message",
            QueueUrl=url,
            MaxNumberOfMessages=max(1, min(BATCH_MAX, count)),
            WaitTimeSeconds=wait,
            VisibilityTimeout=visibility,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return [Received.of(m) for m in response.get("Messages", [])]

    async def release(self, url: str, receipts: list[str]) -> int:
        """Make received messages visible again at once; return how many could not be."""
        unreleased = 0
        for at in range(0, len(receipts), BATCH_MAX):
            chunk = receipts[at : at + BATCH_MAX]
            entries = [
                {"Id": str(i), "ReceiptHandle": r, "VisibilityTimeout": 0}
                for i, r in enumerate(chunk)
            ]
            try:
                response = await self.raw(
                    "change_message_visibility_batch", QueueUrl=url, Entries=entries
                )
                unreleased += len(response.get("Failed", []))
            except Exception:
                unreleased += len(chunk)  # they reappear when their timeout ends
        return unreleased

    async def peek(self, queue: str, count: int) -> list[PeekedMessage]:
        url = await self.resolve(queue)
        try:
            sources = await self._sources(queue, url)
        except ActionFailed:  # e.g. no permission: peeking still works
            sources = []
        found: dict[str, Received] = {}
        receipts: list[str] = []
        try:
            while len(found) < count:
                try:
                    batch = await self.receive(url, count - len(found), PEEK_VISIBILITY, 1)
                except Exception as exc:
                    raise self._translate(exc, "ReceiveMessage", queue) from None
                fresh = [m for m in batch if m.id not in found]
                receipts.extend(m.receipt for m in batch)
                found.update((m.id, m) for m in fresh)
                if not fresh:
                    break
        finally:
            await self.release(url, receipts)
        return [peeked(m, sources) for m in list(found.values())[:count]]

    # -- replay target / count / purge -------------------------------------------------

    async def replay_target(self, dlq: str) -> str | None:
        url = await self.resolve(dlq)
        sources = await self._sources(dlq, url)
        if len(sources) == 1:
            return sources[0]
        if len(sources) > 1:
            names = ", ".join(sources[:10])
            raise UsageError(
                f"{dlq!r} is the dead-letter queue of several queues ({names}): choose one "
                "with --to"
            )
        original = original_of_dlq(queue_name_of(url))
        if original is not None:
            with contextlib.suppress(UsageError):
                await self.resolve(original)
                return original
        return None

    async def count(self, queue: str) -> int | None:
        url = await self.resolve(queue)
        return int_attr(await self._attributes(queue, url), "ApproximateNumberOfMessages")

    async def purge(self, queue: str) -> int | None:
        url = await self.resolve(queue)
        attrs = await self._attributes(queue, url)
        parts = [
            int_attr(attrs, name)
            for name in (
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            )
        ]
        try:
            await self.raw("purge_queue", QueueUrl=url)
        except Exception as exc:
            if error_code(exc) in PURGE_IN_PROGRESS:
                raise ActionFailed(
                    f"{queue!r}: a purge is already in progress. SQS allows one PurgeQueue per "
                    "queue every 60 seconds and takes up to 60 seconds to delete; try again "
                    "in a minute"
                ) from None
            raise self._translate(exc, "PurgeQueue", queue) from None
        return None if any(p is None for p in parts) else sum(p for p in parts if p is not None)

    # -- replay / move -----------------------------------------------------------------

    async def move(self, request: MoveRequest, progress: ProgressCallback) -> MoveResult:
        opts = options_as(request.options, SQSMoveOptions, "sqs")
        rate = float(opts.rate) if opts.rate is not None else None
        src_url = await self.resolve(request.source)
        dst_url = await self.resolve(request.destination)
        if src_url == dst_url:
            # names, URLs and ARNs of one queue differ: only their URLs can tell
            raise UsageError("source and destination are the same queue")
        src_attrs = await self._attributes(request.source, src_url)
        dst_attrs = await self._attributes(request.destination, dst_url)
        note = None
        plain = request.filter is None and request.limit is None and not request.dry_run
        if plain and self.options.native_move:
            done = await self._native_move(request, src_attrs, dst_attrs, rate, progress)
            if isinstance(done, MoveResult):
                return done
            note = done
        run = BatchMove(
            self,
            request,
            urls=(src_url, dst_url),
            attrs=(src_attrs, dst_attrs),
            batch=opts.batch or BATCH_MAX,
            rate=rate,
            progress=progress,
        )
        if note is not None:
            run.tally.note(note)
        return await (run.dry_run() if request.dry_run else run.run())

    async def _native_client_get(self) -> Any:
        if self._native_client is None:
            try:
                self._native_client = await self._call(
                    make_client, self.options, limits=NATIVE_LIMITS, pool=4
                )
            except ConfigProblem as exc:
                raise UsageError(f"broker {self.options.name!r}: {exc}") from None
        return self._native_client

    async def _native_move(
        self,
        request: MoveRequest,
        src_attrs: dict[str, str],
        dst_attrs: dict[str, str],
        rate: float | None,
        progress: ProgressCallback,
    ) -> MoveResult | str:
        """Run StartMessageMoveTask to completion; a note string when unsupported."""
        src_arn, dst_arn = src_attrs.get("QueueArn"), dst_attrs.get("QueueArn")
        if not src_arn or not dst_arn:
            return "native move task skipped: the endpoint reports no queue ARN"
        client = await self._native_client_get()
        kwargs: dict[str, Any] = {"SourceArn": src_arn, "DestinationArn": dst_arn}
        if rate is not None:
            kwargs["MaxNumberOfMessagesPerSecond"] = int(rate)
        started = time.time()
        try:
            response = await self._call(client.start_message_move_task, **kwargs)
        except Exception as exc:
            if native.native_unsupported(exc):
                return (
                    "StartMessageMoveTask unavailable "
                    f"({describe_aws_error(exc)}): used batched receive/send/delete"
                )
            raise self._translate(exc, "StartMessageMoveTask", request.source) from None
        handle = str(response.get("TaskHandle", ""))
        return await native.follow_move_task(
            lambda: self._call(client.list_message_move_tasks, SourceArn=src_arn, MaxResults=10),
            lambda: self._call(client.cancel_message_move_task, TaskHandle=handle),
            request=request,
            handle=handle,
            started=started,
            progress=progress,
        )


def peeked(message: Received, sources: list[str]) -> PeekedMessage:
    """A received message as peek shows it, with why it is dead when that can be known."""
    system = message.system
    source_arn = system.get("DeadLetterQueueSourceArn")
    death = None
    if source_arn:
        # SQS moved it here: the redrive policy's maxReceiveCount was reached
        death = DeathInfo(
            reason="maxReceiveCount",
            count=int_attr(system, "ApproximateReceiveCount"),
            original_queue=queue_name_of(source_arn),
        )
    elif sources:
        # in a DLQ, but SQS did not say it moved this message (an application may have sent
        # it; some endpoints never set the attribute): no reason or count is claimed, only
        # the queue that dead-letters here when there is exactly one
        death = DeathInfo(
            reason=None, count=None, original_queue=sources[0] if len(sources) == 1 else None
        )
    properties: dict[str, Any] = {"MessageId": message.id}
    properties.update((name, system[name]) for name in SYSTEM_PROPERTIES if name in system)
    types = {
        name: attr.get("DataType")
        for name, attr in message.attributes.items()
        if attr.get("DataType") != "String"
    }
    if types:
        properties["attribute_types"] = types
    sent = int_attr(system, "SentTimestamp")
    return PeekedMessage(
        id=message.id,
        body=message.body.encode("utf-8"),
        headers=message.headers(),
        properties=properties,
        death=death,
        timestamp=None if sent is None else sent / 1000,
        extra={"receive_count": int_attr(system, "ApproximateReceiveCount")},
    )


__all__ = ["SQSActions", "peeked"]
