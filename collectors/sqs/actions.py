"""SQS message actions: peek, replay/move (native move task or lossless fallback), purge.

Replay/move takes one of two paths:
* native: ``StartMessageMoveTask`` (plain replays and moves: no ``--filter``, ``--limit`` or
  ``--dry-run``), followed with ``ListMessageMoveTasks`` until it ends. Endpoints that do not
  implement it (moto answers HTTP 500) or refuse it (not a DLQ, no permission) fall back.
* fallback: ``ReceiveMessage`` (10, long poll) -> ``SendMessageBatch`` preserving body,
  message attributes, AWSTraceHeader and, into FIFO queues, group and deduplication ids ->
  ``DeleteMessageBatch`` **only** for the entries whose send succeeded. Entries that fail stay
  in the source (made visible again at the end of the run) and are reported. A crash leaves
  received-but-undeleted messages invisible until their visibility timeout: they reappear in
  the source, nothing is lost; duplicates are bounded by the batches in flight. The run is
  bounded by the source's length at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import math
import os
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from collectors.base import Death as DeathInfo
from collectors.base import (
    MessageFilter,
    MoveProgress,
    MoveRequest,
    MoveResult,
    PeekedMessage,
    ProgressCallback,
    original_of_dlq,
)
from collectors.kit.options import options_as
from collectors.sqs.collector import (
    NO_SUCH_QUEUE,
    ConfigProblem,
    SQSMoveOptions,
    SQSOptions,
    arn_parts,
    describe_aws_error,
    error_code,
    http_status,
    int_attr,
    make_client,
    queue_name_of,
    redrive_target,
)
from mqtop.kernel.errors import ActionFailed, UsageError
from mqtop.kernel.procs import process_alive

T = TypeVar("T")

REPLAY_ATTRIBUTE = "mqtop-replayed"
MAX_ATTRIBUTES = 10  # SQS limit of message attributes per message
BATCH_MAX = 10  # SQS limit of entries per batch call
BATCH_BYTES = 256 * 1024  # conservative payload budget per SendMessageBatch
PEEK_VISIBILITY = 30  # seconds a peeked message is hidden at most (released at once)
DEFAULT_VISIBILITY = 90  # send + delete, each with retries, fit well inside
FIFO_DEDUP_WINDOW_MS = 6 * 60 * 1000  # SQS deduplicates for 5 minutes; one minute of margin
RECEIVE_WAIT = 1  # seconds of long polling per receive
TASK_POLL = 2.0  # seconds between ListMessageMoveTasks calls
MAX_ERRORS = 50  # error lines kept in a result

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
THROTTLED = frozenset({"RequestThrottled", "ThrottlingException", "Throttling"})
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


@dataclass(slots=True)
class Received:
    """One received SQS message."""

    id: str
    receipt: str
    body: str
    system: dict[str, str]
    attributes: dict[str, dict[str, Any]]

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> Received:
        return cls(
            id=str(raw["MessageId"]),
            receipt=str(raw["ReceiptHandle"]),
            body=str(raw.get("Body", "")),
            system=dict(raw.get("Attributes", {})),
            attributes={k: dict(v) for k, v in raw.get("MessageAttributes", {}).items()},
        )

    def headers(self) -> dict[str, Any]:
        """Message attributes as name -> value (text, or bytes for Binary types)."""
        out: dict[str, Any] = {}
        for name, attr in self.attributes.items():
            if "StringValue" in attr:
                out[name] = attr["StringValue"]
            elif "BinaryValue" in attr:
                out[name] = bytes(attr["BinaryValue"])
        return out

    def size(self) -> int:
        """Bytes SQS counts against the message size limit (body plus attributes)."""
        total = len(self.body.encode("utf-8"))
        for name, attr in self.attributes.items():
            total += len(name.encode()) + len(str(attr.get("DataType", "")).encode())
            if "StringValue" in attr:
                total += len(str(attr["StringValue"]).encode("utf-8"))
            elif "BinaryValue" in attr:
                total += len(attr["BinaryValue"])
        return total


def _clean_attribute(attr: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"DataType": attr["DataType"]}
    if "StringValue" in attr:
        out["StringValue"] = attr["StringValue"]
    if "BinaryValue" in attr:
        out["BinaryValue"] = attr["BinaryValue"]
    return out


def fifo_dedup_id(message: Received, now_ms: int) -> str:
    """Deduplication id for a FIFO destination.

    The original id is kept once its 5-minute deduplication window is surely over: reusing it
    sooner (a quick replay back to the source) would make SQS drop the message silently. A
    younger message gets an id derived from its message id, stable across reruns, so a rerun
    after a crash is deduplicated too.
    """
    original = message.system.get("MessageDeduplicationId")
    sent = int_attr(message.system, "SentTimestamp")
    if original and sent is not None and now_ms - sent > FIFO_DEDUP_WINDOW_MS:
        return original
    digest = hashlib.sha256(f"mqtop:{message.id}:{original or ''}".encode()).hexdigest()
    return digest


def replay_marker(message: Received, source: str, when: str) -> dict[str, Any] | None:
    """The replay attribute to add, or None when the message already has 10 attributes."""
    previous = message.attributes.get(REPLAY_ATTRIBUTE)
    if previous is None and len(message.attributes) >= MAX_ATTRIBUTES:
        return None
    count = 1
    if previous is not None:
        try:
            count = int(json.loads(previous.get("StringValue", "{}")).get("count", 0)) + 1
        except (ValueError, AttributeError, TypeError):
            count = 1
    value = json.dumps({"from": source, "at": when, "count": count}, separators=(",", ":"))
    return {"DataType": "String", "StringValue": value}


def build_entry(
    index: int,
    message: Received,
    *,
    destination_fifo: bool,
    marker: dict[str, Any] | None,
    now_ms: int,
) -> dict[str, Any]:
    """A SendMessageBatch entry preserving body, attributes and FIFO ids."""
    attributes = {k: _clean_attribute(v) for k, v in message.attributes.items()}
    if marker is not None:
        attributes[REPLAY_ATTRIBUTE] = marker
    entry: dict[str, Any] = {"Id": str(index), "MessageBody": message.body}
    if attributes:
        entry["MessageAttributes"] = attributes
    trace = message.system.get("AWSTraceHeader")
    if trace:
        entry["MessageSystemAttributes"] = {
            "AWSTraceHeader": {"DataType": "String", "StringValue": trace}
        }
    if destination_fifo:
        # a standard source has no group: one group per message keeps them independent
        entry["MessageGroupId"] = message.system.get("MessageGroupId") or message.id
        entry["MessageDeduplicationId"] = fifo_dedup_id(message, now_ms)
    return entry


def entry_size(entry: Mapping[str, Any]) -> int:
    """Payload bytes of one batch entry (body and attributes)."""
    total = len(str(entry["MessageBody"]).encode("utf-8"))
    for name, attr in entry.get("MessageAttributes", {}).items():
        total += len(name.encode()) + len(str(attr["DataType"]).encode())
        total += len(str(attr.get("StringValue", "")).encode("utf-8"))
        total += len(attr.get("BinaryValue", b""))
    return total


def chunk_entries(
    entries: list[dict[str, Any]], size: int = BATCH_MAX
) -> list[list[dict[str, Any]]]:
    """Split entries into batches of at most ``size`` entries and BATCH_BYTES payload."""
    chunks: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    used = 0
    for entry in entries:
        nbytes = entry_size(entry)
        if current and (len(current) >= size or used + nbytes > BATCH_BYTES):
            chunks.append(current)
            current, used = [], 0
        current.append(entry)
        used += nbytes
    if current:
        chunks.append(current)
    return chunks


def native_unsupported(exc: BaseException) -> bool:
    """True when StartMessageMoveTask failed in a way the fallback can handle."""
    if type(exc).__name__ != "ClientError" and not error_code(exc):
        return False  # network trouble: the fallback would fail the same way
    return error_code(exc) not in THROTTLED


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


class SQSActions:
    """Peek / replay / move / purge on one SQS account and region."""

    def __init__(self, options: SQSOptions) -> None:
        self.options = options
        self._client: Any = None
        self._native_client: Any = None
        self._pool: ThreadPoolExecutor | None = None
        self._urls: dict[str, str] = {}
        self.server = ""  # the endpoint's Server header (tells emulators apart)

    # -- plumbing --------------------------------------------------------------------

    async def _call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=self.options.move_workers + 4, thread_name_prefix="mqtop-sqs-act"
            )
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

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

    async def _raw(self, operation: str, **kwargs: Any) -> Any:
        """Call an SQS operation in a thread; botocore exceptions propagate."""
        client = await self._sqs()
        return await self._call(getattr(client, operation), **kwargs)

    async def _api(self, operation: str, queue: str | None = None, **kwargs: Any) -> Any:
        """Call an SQS operation; failures become one-line mqtop errors."""
        try:
            return await self._raw(operation, **kwargs)
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
        generic = (
            "SQS cannot peek: messages are received and made visible again at once. Each "
            "receive raises their ApproximateReceiveCount"
        )
        url = await self.resolve(queue)  # failing here, the peek would fail the same way
        try:
            attributes = await self._attributes(queue, url)
        except (ActionFailed, UsageError):  # e.g. no sqs:GetQueueAttributes: say what may apply
            return (
                f"{generic}; if this queue has a RedrivePolicy, messages at maxReceiveCount "
                "move to its dead-letter queue when received."
            )
        arn, max_receives = redrive_target(attributes)
        if not attributes.get("RedrivePolicy"):
            return f"{generic} (this queue has no RedrivePolicy, so none can be dead-lettered)."
        target = arn.rsplit(":", 1)[-1] if arn else "its dead-letter queue"
        limit = "maxReceiveCount" if max_receives is None else f"maxReceiveCount {max_receives}"
        return (
            f"{generic}, and this queue has a RedrivePolicy ({limit}, dead-letter queue "
            f"{target}): a message received that many times moves to {target} when it is "
            "received again — peeking can dead-letter messages."
        )

    async def _receive(self, url: str, count: int, visibility: int, wait: int) -> list[Received]:
        response = await self._raw(
            "receive_message",
            QueueUrl=url,
            MaxNumberOfMessages=max(1, min(BATCH_MAX, count)),
            WaitTimeSeconds=wait,
            VisibilityTimeout=visibility,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return [Received.of(m) for m in response.get("Messages", [])]

    async def _release(self, url: str, receipts: list[str]) -> int:
        """Make received messages visible again at once; return how many could not be."""
        unreleased = 0
        for at in range(0, len(receipts), BATCH_MAX):
            chunk = receipts[at : at + BATCH_MAX]
            entries = [
                {"Id": str(i), "ReceiptHandle": r, "VisibilityTimeout": 0}
                for i, r in enumerate(chunk)
            ]
            try:
                response = await self._raw(
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
                    batch = await self._receive(url, count - len(found), PEEK_VISIBILITY, 1)
                except Exception as exc:
                    raise self._translate(exc, "ReceiveMessage", queue) from None
                if not batch:
                    break
                fresh = 0
                for message in batch:
                    receipts.append(message.receipt)
                    if message.id not in found:
                        found[message.id] = message
                        fresh += 1
                if not fresh:
                    break
        finally:
            await self._release(url, receipts)
        return [self._peeked(m, sources) for m in list(found.values())[:count]]

    def _peeked(self, message: Received, sources: list[str]) -> PeekedMessage:
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
            # in a DLQ, but SQS did not say it moved this message (an application may have
            # sent it; some endpoints never set the attribute): no reason or count is
            # claimed, only the queue that dead-letters here when there is exactly one
            death = DeathInfo(
                reason=None,
                count=None,
                original_queue=sources[0] if len(sources) == 1 else None,
            )
        properties: dict[str, Any] = {"MessageId": message.id}
        for name in SYSTEM_PROPERTIES:
            if name in system:
                properties[name] = system[name]
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
            await self._raw("purge_queue", QueueUrl=url)
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
        batch = opts.batch or BATCH_MAX
        rate = float(opts.rate) if opts.rate is not None else None
        src_url = await self.resolve(request.source)
        dst_url = await self.resolve(request.destination)
        if src_url == dst_url:
            raise UsageError("source and destination are the same queue")
        src_attrs = await self._attributes(request.source, src_url)
        dst_attrs = await self._attributes(request.destination, dst_url)
        notes: list[str] = []
        plain = request.filter is None and request.limit is None and not request.dry_run
        if plain and self.options.native_move:
            native = await self._native_move(request, src_attrs, dst_attrs, rate, progress)
            if isinstance(native, MoveResult):
                return native
            notes.append(native)
        run = _FallbackRun(
            self,
            request,
            src_url=src_url,
            dst_url=dst_url,
            src_attrs=src_attrs,
            dst_attrs=dst_attrs,
            batch=batch,
            rate=rate,
            progress=progress,
        )
        result = await (run.dry_run() if request.dry_run else run.run())
        if notes:
            result = dataclasses.replace(result, notes=(*notes, *result.notes))
        return result

    async def _native_client_get(self) -> Any:
        if self._native_client is None:
            # StartMessageMoveTask is not idempotent: never retried automatically
            try:
                self._native_client = await self._call(
                    make_client, self.options, pool=4, max_attempts=1
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
            if native_unsupported(exc):
                return (
                    "StartMessageMoveTask unavailable "
                    f"({describe_aws_error(exc)}): used batched receive/send/delete"
                )
            raise self._translate(exc, "StartMessageMoveTask", request.source) from None
        handle = str(response.get("TaskHandle", ""))
        return await follow_move_task(
            lambda: self._call(client.list_message_move_tasks, SourceArn=src_arn, MaxResults=10),
            lambda: self._call(client.cancel_message_move_task, TaskHandle=handle),
            request=request,
            handle=handle,
            started=started,
            progress=progress,
        )


async def follow_move_task(
    list_tasks: Callable[[], Any],
    cancel: Callable[[], Any],
    *,
    request: MoveRequest,
    handle: str,
    started: float,
    progress: ProgressCallback,
    poll: float | None = None,
) -> MoveResult:
    """Follow a started move task with ListMessageMoveTasks until it ends.

    Only a RUNNING task carries its TaskHandle in the listing; once it has ended it is found
    by its StartedTimestamp, remembered while it ran (or the newest task started after us).
    """
    poll = TASK_POLL if poll is None else poll
    started_ms: int | None = None
    failures = 0
    unseen = 0
    task: dict[str, Any] = {}
    try:
        while True:
            try:
                results = list((await list_tasks()).get("Results", []))
                failures = 0
            except Exception as exc:
                failures += 1
                if failures >= 5:
                    raise ActionFailed(
                        f"move task {handle or '?'} runs on the server but its progress cannot "
                        f"be read: {describe_aws_error(exc)}"
                    ) from None
                await asyncio.sleep(poll)
                continue
            mine = None
            for candidate in results:
                if handle and candidate.get("TaskHandle") == handle:
                    mine = candidate
                    break
                if started_ms is not None and candidate.get("StartedTimestamp") == started_ms:
                    mine = candidate
                    break
            if mine is None and started_ms is None:
                later = [
                    c for c in results if int(c.get("StartedTimestamp", 0)) >= started * 1000 - 5000
                ]
                mine = later[0] if later else None
            if mine is not None:
                task = mine
                if started_ms is None and mine.get("StartedTimestamp") is not None:
                    started_ms = int(mine["StartedTimestamp"])
                moved = int(task.get("ApproximateNumberOfMessagesMoved", 0))
                total = task.get("ApproximateNumberOfMessagesToMove")
                progress(MoveProgress(done=moved, total=None if total is None else int(total)))
                status = task.get("Status")
                if status in ("COMPLETED", "FAILED", "CANCELLED"):
                    break
            else:
                unseen += 1
                if unseen >= 30:
                    raise ActionFailed(
                        f"move task {handle or '?'} was started but ListMessageMoveTasks does "
                        "not show it"
                    )
            await asyncio.sleep(poll)
    except asyncio.CancelledError:
        # interrupted: stop the server-side task (what it moved stays moved)
        with contextlib.suppress(Exception):
            await asyncio.shield(cancel())
        raise
    moved = int(task.get("ApproximateNumberOfMessagesMoved", 0))
    total_raw = task.get("ApproximateNumberOfMessagesToMove")
    total = None if total_raw is None else int(total_raw)
    status = str(task.get("Status"))
    errors: tuple[str, ...] = ()
    failed = 0
    if status != "COMPLETED":
        failed = max(0, (total or 0) - moved) or (1 if status == "FAILED" else 0)
        reason = task.get("FailureReason") or status
        errors = (f"move task {status.lower()}: {reason}",)
    return MoveResult(
        source=request.source,
        destination=request.destination,
        moved=moved,
        failed=failed,
        skipped=0,
        dry_run=False,
        errors=errors,
        notes=(
            "moved by the SQS native move task (StartMessageMoveTask); counts are approximate "
            "and no replay attribute is added",
        ),
    )


def journal_dir() -> Path:
    """Where running SQS moves record the messages they are sending."""
    from mqtop.kernel.paths import default_state_dir

    return default_state_dir() / "sqs-moves"


class MoveJournal:
    """A file naming the messages a run may have sent but not yet deleted.

    Written before every send; removed when the run ends cleanly. Left behind by a killed
    run, it tells the next run of the same move which of the messages it moves may already be
    in the destination, so ``duplicates_possible`` covers them.
    """

    def __init__(self, broker: str, source: str, destination: str) -> None:
        key = hashlib.sha256(f"{broker}\0{source}\0{destination}".encode()).hexdigest()[:24]
        self.path = journal_dir() / f"{key}.json"
        self.run = uuid.uuid4().hex[:12]
        self.previous: dict[str, Any] | None = None
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            data = None
        if isinstance(data, dict) and isinstance(data.get("in_flight"), list):
            self.previous = data
        self.started = time.time()

    def interrupted(self) -> tuple[set[str], str | None]:
        """Message ids an earlier, dead run of this move may have sent; and its start time."""
        prev = self.previous
        if not prev:
            return set(), None
        pid = prev.get("pid")
        if isinstance(pid, int) and pid != os.getpid() and process_alive(pid):
            return set(), None  # still running: not an interrupted run
        when = dt.datetime.fromtimestamp(float(prev.get("started") or 0), tz=dt.UTC)
        return {str(i) for i in prev.get("in_flight", [])}, f"{when:%Y-%m-%d %H:%M:%S}Z"

    def concurrent_pid(self) -> int | None:
        """The pid of another live run of the same move, if any."""
        pid = (self.previous or {}).get("pid")
        if isinstance(pid, int) and pid != os.getpid() and process_alive(pid):
            return pid
        return None

    def write(self, in_flight: set[str]) -> None:
        """Record the ids being sent (blocking; small file, atomic replace)."""
        record = {
            "run": self.run,
            "pid": os.getpid(),
            "started": self.started,
            "in_flight": sorted(in_flight),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{self.run}.tmp")
        tmp.write_text(json.dumps(record))
        os.replace(tmp, self.path)

    def close(self) -> None:
        """The run ended with nothing of unknown outcome: forget it."""
        with contextlib.suppress(OSError, ValueError):
            if json.loads(self.path.read_text()).get("run") == self.run:
                self.path.unlink()


class _FallbackRun:
    """One batched receive/send/delete run (state shared by its worker tasks)."""

    def __init__(
        self,
        actions: SQSActions,
        request: MoveRequest,
        *,
        src_url: str,
        dst_url: str,
        src_attrs: dict[str, str],
        dst_attrs: dict[str, str],
        batch: int,
        rate: float | None,
        progress: ProgressCallback,
    ) -> None:
        self.actions = actions
        self.request = request
        self.src_url = src_url
        self.dst_url = dst_url
        self.src_fifo = src_attrs.get("FifoQueue") == "true"
        self.dst_fifo = dst_attrs.get("FifoQueue") == "true"
        self.batch = batch
        self.limiter = RateLimiter(rate)
        self.progress = progress
        self.filter: MessageFilter | None = request.filter
        self.limit = request.limit
        options = actions.options
        self.visibility = math.ceil(options.move_visibility_timeout or DEFAULT_VISIBILITY)
        # FIFO: one loop keeps every group in order; standard queues: parallel loops
        self.workers = 1 if self.src_fifo else options.move_workers
        self.start_count = int_attr(src_attrs, "ApproximateNumberOfMessages") or 0
        self.examine_left = self.start_count
        self.total = self.start_count if self.limit is None else min(self.start_count, self.limit)
        self.moved = self.failed = self.skipped = self.duplicates = 0
        self.reserved = 0  # messages being sent by a worker (counted against --limit)
        self.seen: set[str] = set()
        self.held: dict[str, str] = {}  # id -> receipt: released at the end, stays in source
        self.errors: list[str] = []
        self.error_count = 0
        self.unmarked = 0
        self.fatal: str | None = None
        # moto (a werkzeug server) loses one of two concurrent deletes on a queue, bringing
        # deleted messages back as unreported duplicates: one delete in flight there. SQS and
        # other servers take them in parallel. A message handed to two concurrent receives
        # (moto again) is caught by ``seen``.
        self._delete_lock: contextlib.AbstractAsyncContextManager[Any] = (
            asyncio.Lock() if "werkzeug" in actions.server.lower() else contextlib.nullcontext()
        )
        self.journal: MoveJournal | None = None
        self.in_flight: set[str] = set()  # ids between send and delete
        self.earlier: set[str] = set()  # ids an interrupted earlier run may have sent
        self.earlier_moved = 0
        self.when = dt.datetime.now(tz=dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

    # -- helpers -------------------------------------------------------------------------

    def _error(self, text: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(text)

    def _report(self) -> None:
        self.progress(
            MoveProgress(
                done=self.moved, total=self.total, failed=self.failed, skipped=self.skipped
            )
        )

    def _want(self) -> int:
        want = min(self.batch, self.examine_left)
        if self.limit is not None:
            room = self.limit - self.moved - self.reserved
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
            batch = await self.actions._receive(self.src_url, want, self.visibility, RECEIVE_WAIT)
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
                self.skipped += 1
                self._hold(message)
        if self.limit is not None:
            room = max(0, self.limit - self.moved - self.reserved)
            for message in chosen[room:]:
                self._hold(message)  # beyond --limit: neither moved nor skipped
            chosen = chosen[:room]
        self.reserved += len(chosen)
        return chosen

    # -- sending -----------------------------------------------------------------------

    async def _send(
        self, entries: list[dict[str, Any]], groups: dict[str, str | None]
    ) -> tuple[list[str], dict[str, str], BaseException | None, int]:
        """Send one batch: (ids sent, id -> error, fatal exception, sends of unknown outcome).

        A batch refused for one bad entry is split until the entry is found (nothing of a
        refused batch was sent). ``groups`` (FIFO sources) keeps order: once a message of a
        group fails, the later ones of that group are held back.
        """
        try:
            response = await self.actions._raw(
                "send_message_batch", QueueUrl=self.dst_url, Entries=entries
            )
        except Exception as exc:
            status = http_status(exc)
            code = error_code(exc)
            rejected = status is not None and 400 <= status < 500 and code not in THROTTLED
            if rejected and (code in SPLITTABLE or code == "400"):
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

    async def _transfer(self, messages: list[Received]) -> None:
        """Send, then delete exactly the messages whose send succeeded."""
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
        sent: list[Received] = []
        failed: dict[str, str] = {}
        fatal: BaseException | None = None
        if self.journal is not None:
            # recorded before the send: a kill from here on leaves them named on disk
            self.in_flight.update(m.id for m in messages)
            # a few hundred bytes to the local disk: cheaper inline than a thread hop
            self.journal.write(self.in_flight)
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
            self.duplicates += unknown
            if fatal is not None:
                self.fatal = f"SendMessageBatch: {describe_aws_error(fatal)}"
        for ident, reason in failed.items():
            message = by_id[ident]
            self.failed += 1
            self._hold(message)
            if fatal is None:
                self._error(f"{message.id}: {reason}")
        await self._delete(sent)
        self.moved += len(sent)
        self.earlier_moved += sum(1 for m in sent if m.id in self.earlier)
        self.reserved -= len(messages)
        if fatal is None or not self.duplicates:
            # their outcome is known now (deleted, or refused and still in the source)
            self.in_flight.difference_update(m.id for m in messages)

    async def _delete(self, messages: list[Received]) -> None:
        for at in range(0, len(messages), BATCH_MAX):
            chunk = messages[at : at + BATCH_MAX]
            entries = [{"Id": str(i), "ReceiptHandle": m.receipt} for i, m in enumerate(chunk)]
            try:
                async with self._delete_lock:
                    response = await self.actions._raw(
                        "delete_message_batch", QueueUrl=self.src_url, Entries=entries
                    )
            except Exception as exc:
                self.duplicates += len(chunk)
                self._error(
                    f"DeleteMessageBatch: {describe_aws_error(exc)}: {len(chunk)} message(s) "
                    "were sent and remain in the source too"
                )
                continue
            for failure in response.get("Failed", []):
                message = chunk[int(failure["Id"])]
                self.duplicates += 1
                self._error(
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
                if idle > 50:
                    return
                continue
            idle = 0
            chosen = self._select(fresh)
            if chosen:
                await self._transfer(chosen)
            self._report()

    async def _finish(self) -> None:
        if self.held:
            unreleased = await self.actions._release(self.src_url, list(self.held.values()))
            if unreleased:
                self._error(
                    f"{unreleased} message(s) left in the source could not be made visible "
                    f"now; they reappear within {self.visibility}s"
                )

    async def run(self) -> MoveResult:
        journal = MoveJournal(self.actions.options.name, self.src_url, self.dst_url)
        self.journal = journal
        self.earlier, earlier_started = journal.interrupted()
        other = journal.concurrent_pid()
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
        if not self.in_flight and not self.duplicates:
            await asyncio.to_thread(journal.close)
        self.duplicates += self.earlier_moved
        if self.fatal:
            dup = (
                f"; up to {self.duplicates} may also be in {self.request.destination!r}"
                if self.duplicates
                else ""
            )
            raise ActionFailed(
                f"{self.request.mode} stopped after moving {self.moved} message(s): "
                f"{self.fatal}; the rest stay in {self.request.source!r}{dup}"
            )
        notes = [
            "moved by batched receive/send/delete; the run was bounded by the "
            f"{self.start_count} message(s) counted at start"
        ]
        if self.unmarked:
            notes.append(
                f"{self.unmarked} message(s) already had {MAX_ATTRIBUTES} attributes: the "
                f"{REPLAY_ATTRIBUTE} attribute was not added to them"
            )
        if self.earlier:
            notes.append(
                f"an earlier run of this move (started {earlier_started}) was interrupted with "
                f"{len(self.earlier)} message(s) being sent; {self.earlier_moved} of them were "
                f"moved now and may already have been in {self.request.destination!r}"
            )
        if other is not None:
            notes.append(f"another move of the same queues (pid {other}) seemed to be running")
        if self.error_count > len(self.errors):
            notes.append(f"{self.error_count - len(self.errors)} more error(s) not shown")
        return MoveResult(
            source=self.request.source,
            destination=self.request.destination,
            moved=self.moved,
            failed=self.failed,
            skipped=self.skipped,
            dry_run=False,
            duplicates_possible=self.duplicates,
            errors=tuple(self.errors),
            notes=tuple(notes),
        )

    async def dry_run(self) -> MoveResult:
        """Count what would move: from the queue length, or by receiving when filtering."""
        if self.filter is None:
            return MoveResult(
                source=self.request.source,
                destination=self.request.destination,
                moved=self.total,
                failed=0,
                skipped=0,
                dry_run=True,
                notes=("counted from ApproximateNumberOfMessages; nothing was received",),
            )
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
                        self.skipped += 1
                self.progress(MoveProgress(done=matched, total=None, skipped=self.skipped))
                if self.limit is not None and matched >= self.limit:
                    break
        finally:
            await asyncio.shield(self._finish())
        if self.fatal:
            raise ActionFailed(f"dry run stopped: {self.fatal}")
        return MoveResult(
            source=self.request.source,
            destination=self.request.destination,
            moved=matched,
            failed=0,
            skipped=self.skipped,
            dry_run=True,
            notes=(
                "messages were received to test the filter and made visible again: their "
                "ApproximateReceiveCount went up by one",
            ),
        )


__all__ = ["REPLAY_ATTRIBUTE", "SQSActions", "build_entry", "fifo_dedup_id", "follow_move_task"]
