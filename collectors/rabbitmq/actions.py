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
import datetime as dt
import functools
import hashlib
import json
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from collectors.base import (
    Death,
    MoveProgress,
    MoveRequest,
    MoveResult,
    PeekedMessage,
    ProgressCallback,
    RepublishRequest,
    RepublishResult,
)
from collectors.kit.options import options_as
from collectors.rabbitmq.collector import (
    RabbitMQMoveOptions,
    RabbitMQOptions,
    amqp_target,
    open_connection,
    pika_parameters,
    qualify,
    split_name,
)
from mqtop.kernel.errors import ActionFailed, ReadOnlyBroker, UnsupportedAction, UsageError
from mqtop.kernel.procs import process_alive
from mqtop.kernel.secrets import redact

if TYPE_CHECKING:
    from collectors.rabbitmq.collector import RabbitMQCollector

REPLAY_HEADER = "x-mqtop-replay"
PROPERTY_NAMES = (
    "content_type",
    "content_encoding",
    "delivery_mode",
    "priority",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_id",
    "timestamp",
    "type",
    "user_id",
    "app_id",
    "cluster_id",
)
# set by the broker on delivery, not part of the message: never copied to the destination
DELIVERY_HEADERS = ("x-delivery-count", "x-stream-offset")
IDLE_CHECK = 1.0  # seconds without deliveries before asking how many messages are left
STALL_LIMIT = 30.0  # no delivery for this long while messages are ready: give up
PROGRESS_EVERY = 0.1
# the prefetch until message sizes are known (no management API): then fitted to the window
UNKNOWN_SIZE_PREFETCH = 64


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def decode_death(headers: Mapping[str, Any], vhost: str) -> Death | None:
    """Why, how often and from where a message was dead-lettered (``x-death`` headers)."""
    raw = headers.get("x-death")
    entries = [e for e in raw if isinstance(e, Mapping)] if isinstance(raw, list) else []
    first_queue = _text(headers.get("x-first-death-queue"))
    first_reason = _text(headers.get("x-first-death-reason"))
    if not entries and first_queue is None and first_reason is None:
        return None
    reason = _text(entries[0].get("reason")) if entries else first_reason
    count: int | None = None
    if entries:
        total = 0
        for entry in entries:
            value = entry.get("count", 1)
            total += int(value) if isinstance(value, int) else 1
        count = total
    original = first_queue or (_text(entries[-1].get("queue")) if entries else None)
    return Death(
        reason=reason,
        count=count,
        original_queue=qualify(vhost, original) if original else None,
    )


def message_id(properties: Any, body: bytes) -> str:
    """The message's ``message_id``, else a digest of the body (stable across peeks)."""
    ident = getattr(properties, "message_id", None)
    if ident:
        return str(ident)
    return "sha256:" + hashlib.sha256(body).hexdigest()[:16]


def _plain(value: Any) -> Any:
    """Header values as plain data: AMQP timestamps as ISO 8601, decimals as text."""
    if isinstance(value, dt.datetime):
        when = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return when.isoformat().replace("+00:00", "Z")
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, int | float | str | bytes | bool) or value is None:
        return value
    return str(value)


def to_peeked(method: Any, properties: Any, body: bytes, vhost: str) -> PeekedMessage:
    """A delivered message as a PeekedMessage (header values as plain data)."""
    headers = _plain(dict(properties.headers or {}))
    props = {
        name: getattr(properties, name)
        for name in PROPERTY_NAMES
        if getattr(properties, name, None) is not None
    }
    timestamp = properties.timestamp
    return PeekedMessage(
        id=message_id(properties, body),
        body=bytes(body),
        headers=headers,
        properties=props,
        death=decode_death(headers, vhost),
        timestamp=float(timestamp) if isinstance(timestamp, int | float) else None,
        extra={
            "redelivered": bool(getattr(method, "redelivered", False)),
            "exchange": getattr(method, "exchange", None),
            "routing_key": getattr(method, "routing_key", None),
        },
    )


KEPT_HEADER = "x-mqtop-kept"


def delivery_count(properties: Any) -> int:
    """How many times a quorum queue has delivered and got back this message."""
    value = (getattr(properties, "headers", None) or {}).get("x-delivery-count")
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else 0


def strip_for_republish(
    headers: dict[str, Any], user_id: str | None, username: str | None
) -> tuple[str | None, dict[str, Any]]:
    """Edit ``headers`` (in place) for publishing a received message again.

    Removed: what the broker sets on delivery (``x-delivery-count``, ``x-stream-offset``);
    ``CC``/``BCC`` (sender-selected distribution would copy the message to the queues they
    name); a ``user_id`` other than the connecting user's (the broker refuses the publish).
    Returns the ``user_id`` to publish with and what was taken out (``cc``, ``user_id``).
    """
    for name in DELIVERY_HEADERS:
        headers.pop(name, None)
    taken: dict[str, Any] = {}
    if "CC" in headers or "BCC" in headers:
        taken["cc"] = [str(v) for k in ("CC", "BCC") for v in (headers.pop(k, None) or [])]
    if user_id and user_id != username:
        taken["user_id"] = user_id
        user_id = None
    return user_id, taken


def kept_copy(properties: Any, username: str | None, count: int, limit: int) -> Any:
    """Properties for re-publishing a message a requeue would drop (delivery limit reached).

    Everything is kept but what the broker sets on delivery (``x-delivery-count``), what it
    would refuse (a ``user_id`` not the connecting user's) and what would copy it elsewhere
    (``CC``/``BCC``): those go into an ``x-mqtop-kept`` table with why and when.
    """
    from pika import spec

    headers = dict(properties.headers or {})
    user_id, taken = strip_for_republish(headers, properties.user_id, username)
    headers[KEPT_HEADER] = {
        "reason": "delivery-limit",
        "delivery_count": count,
        "delivery_limit": limit,
        "time": dt.datetime.now(tz=dt.UTC).replace(microsecond=0, tzinfo=None),
        **taken,
    }
    values = {name: getattr(properties, name, None) for name in PROPERTY_NAMES}
    values.update(headers=headers, user_id=user_id)
    return spec.BasicProperties(**values)


def _used_deliveries(content: Any) -> int:
    """x-delivery-count of a delivery; raw properties are read in place, not decoded."""
    if not isinstance(content, RawContent):
        return delivery_count(content)
    raw = content.raw
    headers = content.spans.get("headers")
    if headers is None or b"x-delivery-count" not in raw:
        return 0
    try:
        for key, _start, _end, value_at in table_entries(raw, headers[0] + 4, headers[1]):
            if key == b"x-delivery-count":
                value = _pika_data().decode_value(raw, value_at)[0]
                return int(value) if isinstance(value, int) and not isinstance(value, bool) else 0
    except (RawError, IndexError):
        return delivery_count(content)
    return 0


def journal_dir() -> Path:
    """Where running moves are recorded (to detect an interrupted earlier run)."""
    from mqtop.kernel.paths import default_state_dir

    return default_state_dir() / "rabbitmq-moves"


@dataclass
class Journal:
    """A file that exists while a move runs; left behind, it marks an interrupted run."""

    path: Path
    run: str
    previous: dict[str, Any] | None = None

    @classmethod
    def open(cls, broker: str, source: str, destination: str, run: str, window: int) -> Journal:
        key = hashlib.sha256(f"{broker}\0{source}\0{destination}".encode()).hexdigest()[:24]
        path = journal_dir() / f"{key}.json"
        previous = None
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(path.read_text())
            if isinstance(data, dict):
                previous = data
        record = {
            "run": run,
            "pid": os.getpid(),
            "started": time.time(),
            "window": window,
            "broker": broker,
            "source": source,
            "destination": destination,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        os.replace(tmp, path)
        return cls(path, run, previous)

    def interrupted(self) -> dict[str, Any] | None:
        """The earlier run of the same move if it died without finishing."""
        prev = self.previous
        if not prev or prev.get("run") == self.run:
            return None
        pid = prev.get("pid")
        if isinstance(pid, int) and pid != os.getpid() and process_alive(pid):
            return None  # still running (reported separately)
        return prev

    def concurrent(self) -> dict[str, Any] | None:
        """An earlier run of the same move that is still alive."""
        prev = self.previous
        if not prev:
            return None
        pid = prev.get("pid")
        if isinstance(pid, int) and pid != os.getpid() and process_alive(pid):
            return prev
        return None

    def close(self) -> None:
        """The run finished (completely or with a clean stop): forget it."""
        with contextlib.suppress(OSError):
            data = json.loads(self.path.read_text())
            if data.get("run") == self.run:
                self.path.unlink()


# ---------------------------------------------------------------- encoded properties

_SHORTSTR, _TABLE, _OCTET, _LONGLONG = range(4)
# basic properties in wire order: (flag, encoding, name)
_LAYOUT = (
    (1 << 15, _SHORTSTR, "content_type"),
    (1 << 14, _SHORTSTR, "content_encoding"),
    (1 << 13, _TABLE, "headers"),
    (1 << 12, _OCTET, "delivery_mode"),
    (1 << 11, _OCTET, "priority"),
    (1 << 10, _SHORTSTR, "correlation_id"),
    (1 << 9, _SHORTSTR, "reply_to"),
    (1 << 8, _SHORTSTR, "expiration"),
    (1 << 7, _SHORTSTR, "message_id"),
    (1 << 6, _LONGLONG, "timestamp"),
    (1 << 5, _SHORTSTR, "type"),
    (1 << 4, _SHORTSTR, "user_id"),
    (1 << 3, _SHORTSTR, "app_id"),
    (1 << 2, _SHORTSTR, "cluster_id"),
)
FLAG_HEADERS = 1 << 13
FLAG_USER_ID = 1 << 4
# field-table value sizes by type (after the type octet); S x A F carry a 32-bit length
_FIXED_SIZE = {
    ord("t"): 1,
    ord("b"): 1,
    ord("B"): 1,
    ord("s"): 2,
    ord("u"): 2,
    ord("I"): 4,
    ord("i"): 4,
    ord("f"): 4,
    ord("l"): 8,
    ord("L"): 8,
    ord("d"): 8,
    ord("T"): 8,
    ord("D"): 5,
    ord("V"): 0,
}
_SIZED = frozenset(b"SxAF")
_DROPPED_KEYS = frozenset(k.encode() for k in DELIVERY_HEADERS)
# length-prefixed keys that make an entry-by-entry walk necessary
_SPECIAL = (
    *(bytes([len(k)]) + k.encode() for k in DELIVERY_HEADERS),
    bytes([len(REPLAY_HEADER)]) + REPLAY_HEADER.encode(),
    b"\x02CC",
    b"\x03BCC",
)


@functools.cache
def _pika_data() -> Any:
    """pika's field-table codec (an untyped module, imported on first use)."""
    import importlib

    return importlib.import_module("pika.data")


class RawError(ValueError):
    """Encoded properties this fast path does not handle (they are decoded instead)."""


class RawContent:
    """The encoded basic properties of a delivery, edited without decoding them.

    Republishing normally means decoding every property and header (``x-death`` is a table
    of tables) and encoding them again. Here the bytes are copied as they are and only the
    headers table is touched: broker-set entries removed, ``x-mqtop-replay`` appended, so
    every other header keeps its exact AMQP type.
    """

    __slots__ = ("_decoded", "flags", "raw", "spans")

    def __init__(self, raw: bytes) -> None:
        import struct

        self.raw = raw
        self._decoded: Any = None
        if len(raw) < 2:
            raise RawError("truncated properties")
        flags = struct.unpack_from(">H", raw, 0)[0]
        if flags & 1:
            raise RawError("continued property flags")
        self.flags = flags
        spans: dict[str, tuple[int, int]] = {}
        pos = 2
        for flag, kind, name in _LAYOUT:
            if not flags & flag:
                continue
            start = pos
            if kind == _SHORTSTR:
                pos += 1 + raw[pos]
            elif kind == _TABLE:
                pos += 4 + struct.unpack_from(">I", raw, pos)[0]
            elif kind == _OCTET:
                pos += 1
            else:
                pos += 8
            spans[name] = (start, pos)
        if pos != len(raw):
            raise RawError("properties length mismatch")
        self.spans = spans

    def decoded(self) -> Any:
        """The properties decoded by pika (cached)."""
        if self._decoded is None:
            from pika import spec

            self._decoded = spec.BasicProperties().decode(self.raw)
        return self._decoded

    @property
    def headers(self) -> dict[str, Any] | None:
        """Headers, decoded on first use (filters on headers need them)."""
        return self.decoded().headers  # type: ignore[no-any-return]

    def shortstr(self, name: str) -> str | None:
        span = self.spans.get(name)
        if span is None:
            return None
        return self.raw[span[0] + 1 : span[1]].decode("utf-8", "replace")


def table_entries(raw: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int, int]]:
    """(key, entry start, entry end, value offset) of each entry of an encoded table."""
    import struct

    pos = start
    while pos < end:
        key_end = pos + 1 + raw[pos]
        kind = raw[key_end]
        size = _FIXED_SIZE.get(kind)
        if size is not None:
            value_end = key_end + 1 + size
        elif kind in _SIZED:
            value_end = key_end + 5 + struct.unpack_from(">I", raw, key_end + 1)[0]
        else:
            raise RawError(f"field type {chr(kind)!r}")
        yield raw[pos + 1 : key_end], pos, value_end, key_end
        pos = value_end
    if pos != end:
        raise RawError("table length mismatch")


FLUSH_BYTES = 512 * 1024
RECV_BYTES = 128 * 1024
FRAME_END = 0xCE
DELIVER_ID = b"\x00\x3c\x00\x3c"  # class 60 (basic), method 60 (deliver)


def batching_connection_class() -> Any:
    """A pika SelectConnection tuned for bulk moves (same protocol, fewer syscalls and copies).

    * pika writes every frame (method, header, body, ack) with its own ``send()``: frames
      produced in one burst of callbacks are joined and written once, in order, on the next
      loop turn (or as soon as the batch is large);
    * pika reads 4 KB per ``recv()`` and re-slices its whole input buffer after every
      frame: reads are 128 KB and frames are cut out by offset, so a burst costs linear time.
    """
    import struct

    import pika
    from pika import frame as pika_frame

    class BatchingSelectConnection(pika.SelectConnection):
        _mqtop_batch: list[bytes]
        _frame_buffer: bytes
        _mqtop_batch_bytes = 0
        _mqtop_flush_pending = False
        # deliveries on this channel go to the handler as (tag, redelivered, raw props, body)
        _mqtop_raw_channel: int | None = None
        _mqtop_raw_handler: Any = None
        _mqtop_raw_state: list[Any] | None = None

        def _output_marshaled_frames(self, marshaled_frames: Any) -> None:
            batch = self.__dict__.get("_mqtop_batch")
            if batch is None:
                batch = self._mqtop_batch = []
            for data in marshaled_frames:
                self.bytes_sent += len(data)
                self.frames_sent += 1
                batch.append(data)
                self._mqtop_batch_bytes += len(data)
            if self._mqtop_batch_bytes >= FLUSH_BYTES:
                self._mqtop_flush()
            elif not self._mqtop_flush_pending:
                self._mqtop_flush_pending = True
                self.ioloop.call_later(0, self._mqtop_flush)

        def _mqtop_raw(self, kind: int, buf: bytes, start: int, stop: int) -> bool:
            """Take a Basic.Deliver and its content on the raw channel; False otherwise."""
            state = self._mqtop_raw_state
            if state is None:
                if kind != 1 or buf[start : start + 4] != DELIVER_ID:
                    return False
                pos = start + 5 + buf[start + 4]  # after the consumer tag
                tag = struct.unpack_from(">Q", buf, pos)[0]
                self._mqtop_raw_state = [tag, bool(buf[pos + 8] & 1), None, 0, []]
                return True
            if state[2] is None:
                if kind != 2:
                    raise ValueError("content header expected after basic.deliver")
                remaining = struct.unpack_from(">Q", buf, start + 4)[0]
                state[2] = buf[start + 12 : stop]
                if remaining == 0:
                    self._mqtop_raw_state = None
                    self._mqtop_raw_handler(state[0], state[1], state[2], b"")
                else:
                    state[3] = remaining
                return True
            if kind != 3:
                raise ValueError("content body expected")
            chunk = buf[start:stop]
            chunks = state[4]
            chunks.append(chunk)
            state[3] -= len(chunk)
            if state[3] <= 0:
                self._mqtop_raw_state = None
                body = chunk if len(chunks) == 1 else b"".join(chunks)
                self._mqtop_raw_handler(state[0], state[1], state[2], body)
            return True

        def _mqtop_flush(self) -> None:
            self._mqtop_flush_pending = False
            batch = self.__dict__.get("_mqtop_batch")
            if not batch:
                return
            data = b"".join(batch)
            batch.clear()
            self._mqtop_batch_bytes = 0
            if getattr(self, "_transport", None) is not None:
                self._adapter_emit_data(data)  # type: ignore[attr-defined]

        def _on_data_available(self, data_in: bytes) -> None:
            buffered = self._frame_buffer
            buf = buffered + data_in if buffered else data_in
            if buf[:4] == b"AMQP":  # protocol header: only at connection start
                self._frame_buffer = b""
                super()._on_data_available(buf)  # type: ignore[misc]
                return
            size = len(buf)
            pos = 0
            raw_channel = self._mqtop_raw_channel
            while size - pos >= 7:
                kind, channel, length = struct.unpack_from(">BHL", buf, pos)
                end = pos + length + 8
                if end > size:
                    break
                if channel == raw_channel and buf[end - 1] != FRAME_END:
                    raise ValueError("invalid AMQP frame end")
                if channel == raw_channel and self._mqtop_raw(kind, buf, pos + 7, end - 1):
                    pos = end
                    self.bytes_received += length + 8
                    self.frames_received += 1
                    if self.is_closed:
                        return
                    continue
                consumed, value = pika_frame.decode_frame(buf[pos:end])
                if value is None:
                    break
                pos = end
                self.bytes_received += consumed
                self._process_frame(value)  # type: ignore[attr-defined]
                if self.is_closed:
                    return
            self._frame_buffer = buf[pos:] if pos else buf

    def tune_transport(conn: Any) -> None:
        transport = getattr(conn, "_transport", None)
        if transport is not None and hasattr(transport, "_MAX_RECV_BYTES"):
            transport._MAX_RECV_BYTES = RECV_BYTES

    BatchingSelectConnection.tune_transport = staticmethod(tune_transport)  # type: ignore[attr-defined]
    return BatchingSelectConnection


# ---------------------------------------------------------------- the mover


@dataclass
class MoveSpec:
    """Everything the mover thread needs (resolved names, bounds)."""

    source: tuple[str, str]  # (vhost, queue)
    destination: tuple[str, str]
    source_label: str
    destination_label: str
    mode: str
    window: int
    bound: int  # messages in the source when the move started (deliveries taken at most)
    limit: int | None
    filter: Any
    dry_run: bool
    run: str
    username: str | None  # the authenticated user; None when unknown
    window_bytes: int = 32 * 1024 * 1024  # bodies in flight at most (the window shrinks)
    average_bytes: float | None = None  # mean ready message size at start, when known
    delivery_limit: int | None = None  # quorum source: returns allowed before a drop

    def fit(self, average: float | None) -> int:
        """The prefetch for messages of ``average`` bytes: the window, or less to fit."""
        if average is None:
            return min(self.window, UNKNOWN_SIZE_PREFETCH)
        return max(1, min(self.window, int(self.window_bytes // max(average, 1.0))))


@dataclass
class MoveOutcome:
    """Counters filled by the mover."""

    moved: int = 0
    failed: int = 0
    skipped: int = 0
    delivered: int = 0
    moved_redelivered: int = 0
    uncertain: int = 0  # published or confirmed when the connection broke
    stripped_user_id: int = 0
    stripped_cc: int = 0
    kept: int = 0  # held messages at their delivery limit, re-published to the source
    # the smallest window move_window_bytes imposed: (messages, average message bytes)
    narrowed: tuple[int, float] | None = None
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stopped_early: str | None = None


class Mover:
    """One replay/move on a pika SelectConnection, run in a worker thread."""

    def __init__(
        self,
        options: RabbitMQOptions,
        spec: MoveSpec,
        report: Callable[[MoveProgress], None],
        stop: threading.Event,
    ) -> None:
        self.options = options
        self.spec = spec
        self.report = report
        self.stop_requested = stop
        self.out = MoveOutcome()
        self._conns: list[Any] = []
        self._ioloop: Any = None
        self._pub: Any = None
        self._con: Any = None
        self._probe: Any = None
        self._tag_base = f"mqtop-{spec.mode}-{spec.run}"
        self._consumer_tag = self._tag_base
        self._subscriptions = 1
        self._consuming = False
        self._cancel_sent = False
        self._cancelled = False
        self._seq = 0
        # seq -> (delivery tag, redelivered, body, encoded properties); body and properties
        # identify a basic.return (returns carry no sequence number but come in order)
        self._pending: dict[int, tuple[int, bool, bytes, bytes]] = {}
        self._order: deque[int] = deque()  # pending seqs in publish order (lazily pruned)
        self._probing = False
        self._fast_send: Callable[[bytes, bytes], None] | None = None
        self._entries: dict[int, bytes] = {}
        self._returned: set[int] = set()
        self._buffer: deque[tuple[int, bool, Any, bytes]] = deque()
        self._done_tags: list[int] = []
        self._held = 0
        self._held_here = 0  # held since the current consumer subscribed
        self._prefetch = spec.fit(spec.average_bytes)
        if spec.average_bytes is not None and self._prefetch < spec.window:
            self.out.narrowed = (self._prefetch, spec.average_bytes)
        self._sized = 0  # deliveries since the prefetch was last fitted to their size
        # quorum source with a delivery limit: deliveries that a requeue would drop, by tag,
        # until moved; held ones are re-published to the source (keeper channel) instead
        self._at_limit: dict[int, tuple[Any, bytes, int]] = {}
        self._keeper: Any = None
        self._keeping: dict[int, int] = {}  # keeper publish seq -> source delivery tag
        self._keep_seq = 0
        self._keeper_returned = False
        self._sized_bytes = 0
        self._queued_for_publish = 0  # published + buffered (for --limit)
        self._last_activity = time.monotonic()
        self._last_progress = 0.0
        self._finishing = False
        self._closing = False
        self._failure: str | None = None
        self._second = -1
        self._stamp: dt.datetime | None = None

    # -- running ---------------------------------------------------------------------

    def run(self) -> MoveOutcome:
        spec = self.spec
        same_vhost = spec.source[0] == spec.destination[0]
        params_src = pika_parameters(self.options, spec.source[0], heartbeat=30)
        error: list[str] = []

        def on_open_error(_conn: Any, exc: str | Exception) -> None:
            error.append(f"cannot connect: {type(exc).__name__}: {exc}")
            self._close_all()

        def on_closed(_conn: Any, reason: BaseException) -> None:
            if not self._closing:
                self._fail(f"connection closed: {type(reason).__name__}: {reason}")
                self._abort_state()
                self._close_all()
            if all(c.is_closed for c in self._conns):
                self._stop_loop()

        connection_class = batching_connection_class()
        first = connection_class(
            params_src,
            on_open_callback=self._on_source_open,
            on_open_error_callback=on_open_error,
            on_close_callback=on_closed,
        )
        self._conns.append(first)
        self._ioloop = first.ioloop
        if not same_vhost:
            second = connection_class(
                pika_parameters(self.options, spec.destination[0], heartbeat=30),
                on_open_callback=self._on_destination_open,
                on_open_error_callback=on_open_error,
                on_close_callback=on_closed,
                custom_ioloop=first.ioloop,
            )
            self._conns.append(second)
        self._ioloop.call_later(PROGRESS_EVERY, self._tick)
        try:
            self._ioloop.start()
        except Exception as exc:
            # a bug or an unexpected library error: everything unacked is requeued when the
            # connection goes; what was published meanwhile may be in both queues
            self._fail(f"{type(exc).__name__}: {exc}")
            self._abort_state()
            for conn in self._conns:
                with contextlib.suppress(Exception):
                    conn.close()
        if error and not self.out.delivered:
            raise ConnectionError(redact(error[0]))
        if error:
            self.out.errors.extend(redact(e) for e in error)
        self._progress(force=True)
        return self.out

    def _stop_loop(self) -> None:
        if self._ioloop is not None:
            self._ioloop.stop()

    def _fail(self, message: str) -> None:
        if self._failure is None:
            self._failure = redact(message)
            self.out.errors.append(self._failure)
        if not self._closing:
            self._stop_taking()

    def _abort_state(self) -> None:
        """The connection broke: whatever was unconfirmed or confirmed-unacked is uncertain."""
        self.out.uncertain += len(self._pending) + len(self._done_tags)
        self._pending.clear()
        self._done_tags.clear()
        self._buffer.clear()
        if self._keeping:
            self.out.notes.append(
                f"the connection broke while {len(self._keeping)} message(s) at their delivery "
                "limit were being re-published to the source: the broker drops the originals "
                "it takes back, so those whose copy had not arrived may be gone"
            )
            self._keeping.clear()

    # -- setup chain -----------------------------------------------------------------

    def _on_source_open(self, conn: Any) -> None:
        if self._closing:
            conn.close()
            return
        with contextlib.suppress(Exception):
            conn.tune_transport(conn)
        conn.channel(on_open_callback=self._on_consumer_channel)
        conn.channel(on_open_callback=self._on_probe_channel)
        if self.spec.delivery_limit is not None:
            conn.channel(on_open_callback=self._on_keeper_channel)
        if len(self._conns) == 1:
            conn.channel(on_open_callback=self._on_publisher_channel)

    def _on_destination_open(self, conn: Any) -> None:
        if self._closing:
            conn.close()
            return
        with contextlib.suppress(Exception):
            conn.tune_transport(conn)
        conn.channel(on_open_callback=self._on_publisher_channel)

    def _on_probe_channel(self, channel: Any) -> None:
        self._probe = channel

    def _on_keeper_channel(self, channel: Any) -> None:
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_keeper_return)

        def ready(_frame: Any) -> None:
            self._keeper = channel
            self._maybe_start()

        channel.confirm_delivery(self._on_keeper_confirm, callback=ready)

    def _on_publisher_channel(self, channel: Any) -> None:
        self._pub = channel
        with contextlib.suppress(Exception):
            self._prepare_publisher(channel)
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        if self.spec.dry_run:
            self._maybe_start()
            return
        channel.confirm_delivery(self._on_confirm, callback=lambda _f: self._maybe_start())

    def _on_consumer_channel(self, channel: Any) -> None:
        self._con = channel
        conn = channel.connection
        if hasattr(conn, "_mqtop_raw"):
            conn._mqtop_raw_channel = channel.channel_number
            conn._mqtop_raw_handler = self._on_raw
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_cancel_callback(self._on_broker_cancel)
        channel.basic_qos(prefetch_count=self._prefetch, callback=lambda _f: self._maybe_start())

    def _maybe_start(self) -> None:
        if self._consuming or self._pub is None or self._con is None or self._closing:
            return
        if self.spec.delivery_limit is not None and self._keeper is None:
            return
        if self.spec.bound <= 0 or self.spec.limit == 0:
            self._finish()
            return
        self._consuming = True
        self._last_activity = time.monotonic()
        self._con.basic_consume(
            self.spec.source[1],
            self._on_message,
            auto_ack=False,
            consumer_tag=self._consumer_tag,
        )

    def _on_channel_closed(self, channel: Any, reason: BaseException) -> None:
        if channel is self._con:
            channel.connection._mqtop_raw_channel = None  # the number may be reused
        if self._closing:
            return
        which = (
            "publisher"
            if channel is self._pub
            else "re-publishing"
            if channel is self._keeper
            else "consumer"
        )
        self._fail(f"{which} channel closed by the broker: {reason}")
        self._abort_state()
        self._close_all()

    def _on_broker_cancel(self, _frame: Any) -> None:
        self._cancelled = True
        self._fail(f"the broker cancelled the consumer on {self.spec.source_label} (deleted?)")
        self._check_done()

    # -- messages --------------------------------------------------------------------

    def _on_message(self, _channel: Any, method: Any, properties: Any, body: bytes) -> None:
        """A delivery decoded by pika (connections without the raw path)."""
        self._on_delivery(method.delivery_tag, bool(method.redelivered), properties, body)

    def _on_raw(self, tag: int, redelivered: bool, raw: bytes, body: bytes) -> None:
        """A delivery with its properties still encoded."""
        content: Any
        try:
            content = RawContent(raw)
        except (RawError, IndexError):
            from pika import spec

            content = spec.BasicProperties().decode(raw)
        self._on_delivery(tag, redelivered, content, body)

    def _on_delivery(self, tag: int, redelivered: bool, content: Any, body: bytes) -> None:
        spec = self.spec
        self._last_activity = time.monotonic()
        self.out.delivered += 1
        self._fit_size(len(body))
        if spec.delivery_limit is not None:
            used = _used_deliveries(content)
            if used >= spec.delivery_limit:
                self._at_limit[tag] = (content, body, used)
        if self.out.delivered > spec.bound or self._cancel_sent or self._failure:
            self._hold(tag)  # arrived after the start-time count: not ours to move
            return
        if self.out.delivered >= spec.bound:
            self._cancel()
        if self.stop_requested.is_set():
            self._hold(tag)
            self._cancel()
            return
        if spec.filter is not None and not spec.filter.matches(body, content.headers or {}):
            self.out.skipped += 1
            self._hold(tag)
            return
        if spec.limit is not None and self._queued_for_publish >= spec.limit:
            self._hold(tag)
            self._cancel()
            return
        self._queued_for_publish += 1
        if spec.limit is not None and self._queued_for_publish >= spec.limit:
            self._cancel()
        if spec.dry_run:
            self.out.moved += 1
            self._hold(tag)
            return
        if len(self._pending) < self._prefetch:
            self._publish(tag, redelivered, content, body)
        else:
            self._buffer.append((tag, redelivered, content, body))

    def _hold(self, tag: int | None = None) -> None:
        """A delivery stays unacked until the end (then requeued): keep prefetch free.

        One that a requeue would drop (a quorum source's delivery limit reached) is
        re-published to the source instead, and acknowledged once that is confirmed.

        RabbitMQ applies a new ``basic.qos`` only to consumers created after it, and the
        messages held here occupy the prefetch of the consumer they were delivered to. When
        half of the current consumer's prefetch is held, it is replaced by a fresh one: the
        held messages stay unacknowledged on the channel (cancelling a consumer does not
        requeue them) and the new consumer starts with a whole window.
        """
        self._held += 1
        self._held_here += 1
        if tag is not None and tag in self._at_limit:
            self._keep(tag, *self._at_limit.pop(tag))
        if self._held_here * 2 >= self._prefetch:
            self._resubscribe(self._prefetch)

    def _keep(self, tag: int, content: Any, body: bytes, used: int) -> None:
        """Publish a copy of a held message to the back of the source (its delivery count
        starts afresh); the original is acknowledged when the copy is confirmed."""
        keeper = self._keeper
        limit = self.spec.delivery_limit
        if keeper is None or not keeper.is_open or limit is None:
            self.out.errors.append(
                f"a message at its delivery limit ({limit}) could not be re-published: "
                "putting it back may make the broker drop it"
            )
            return
        properties = content.decoded() if isinstance(content, RawContent) else content
        copy = kept_copy(properties, self.spec.username, used, limit)
        self._keep_seq += 1
        self._keeping[self._keep_seq] = tag
        keeper.basic_publish("", self.spec.source[1], body, properties=copy, mandatory=True)

    def _on_keeper_return(self, *_args: Any) -> None:
        self._keeper_returned = True

    def _on_keeper_confirm(self, frame: Any) -> None:
        method = frame.method
        ok = type(method).__name__ == "Ack" and not self._keeper_returned
        last = int(method.delivery_tag)
        done = [s for s in self._keeping if s <= last] if method.multiple else [last]
        for seq in done:
            tag = self._keeping.pop(seq, None)
            if tag is None:
                continue
            if ok and self._con is not None and self._con.is_open:
                self._con.basic_ack(tag, multiple=False)
                self._held -= 1
                self.out.kept += 1
            elif not ok:
                self.out.errors.append(
                    "the broker refused the copy of a message at its delivery limit: putting "
                    "it back may make the broker drop it"
                )
        if not self._keeping:
            self._keeper_returned = False
        self._check_done()

    def _fit_size(self, size: int) -> None:
        """Keep the bodies in flight within ``window_bytes`` as message sizes change."""
        self._sized += 1
        self._sized_bytes += size
        if self._sized < max(UNKNOWN_SIZE_PREFETCH, self._prefetch):
            return
        average = self._sized_bytes / self._sized
        fitted = self.spec.fit(average)
        self._sized = self._sized_bytes = 0
        if fitted < self.spec.window and (
            self.out.narrowed is None or fitted < self.out.narrowed[0]
        ):
            self.out.narrowed = (fitted, average)
        if fitted * 5 < self._prefetch * 4 or fitted * 4 > self._prefetch * 5:
            self._resubscribe(fitted)

    def _resubscribe(self, prefetch: int) -> None:
        """Replace the consumer by one with ``prefetch`` (and all of it free)."""
        con = self._con
        if (
            not self._consuming
            or self._cancel_sent
            or self._failure
            or self._closing
            or con is None
            or not con.is_open
        ):
            return
        old = self._consumer_tag
        self._subscriptions += 1
        self._consumer_tag = f"{self._tag_base}-{self._subscriptions}"
        self._held_here = 0
        if prefetch != self._prefetch:
            self._prefetch = prefetch
            con.basic_qos(prefetch_count=prefetch)
        con.basic_cancel(old)  # no callback: nowait; late deliveries still come here
        con.basic_consume(
            self.spec.source[1],
            self._on_message,
            auto_ack=False,
            consumer_tag=self._consumer_tag,
        )

    def _stamp_now(self) -> dt.datetime:
        now = int(time.time())
        if now != self._second or self._stamp is None:
            self._second = now
            self._stamp = dt.datetime.fromtimestamp(now, tz=dt.UTC)
            self._entries.clear()
        return self._stamp

    def _replay_entry(self, count: int, extra: Mapping[str, Any]) -> bytes:
        """The encoded ``x-mqtop-replay`` header entry (cached per second and count)."""
        data = _pika_data()
        stamp = self._stamp_now()
        if not extra:
            cached = self._entries.get(count)
            if cached is not None:
                return cached
        pieces: list[bytes] = []
        data.encode_table(pieces, {"count": count, "time": stamp, "run": self.spec.run, **extra})
        key = REPLAY_HEADER.encode()
        entry = bytes([len(key)]) + key + b"F" + b"".join(pieces)
        if not extra:
            self._entries[count] = entry
        return entry

    def _edit_raw(self, content: RawContent) -> bytes:
        """Encoded properties to publish: the delivery's, with the headers table edited."""
        import struct

        data = _pika_data()
        raw = content.raw
        spans = content.spans
        extra: dict[str, Any] = {}
        count = 1
        headers = spans.get("headers")
        if headers is not None:
            table = raw[headers[0] + 4 : headers[1]]
            if any(marker in table for marker in _SPECIAL):
                kept: list[bytes] = []
                for key, start, end, value_at in table_entries(raw, headers[0] + 4, headers[1]):
                    if key in _DROPPED_KEYS:
                        continue
                    if key == b"x-mqtop-replay":
                        previous = data.decode_value(raw, value_at)[0]
                        if isinstance(previous, Mapping) and isinstance(previous.get("count"), int):
                            count = int(previous["count"]) + 1
                        continue
                    if key in (b"CC", b"BCC"):
                        values = data.decode_value(raw, value_at)[0]
                        if not isinstance(values, list):
                            values = [values]
                        extra.setdefault("cc", []).extend(_text(v) for v in values)
                        continue
                    kept.append(raw[start:end])
                table = b"".join(kept)
                if "cc" in extra:
                    self.out.stripped_cc += 1
            insert_at, resume_at = headers
        else:
            table = b""
            before = spans.get("content_encoding") or spans.get("content_type")
            insert_at = resume_at = before[1] if before else 2
        flags = content.flags | FLAG_HEADERS
        tail = raw[resume_at:]
        user = spans.get("user_id")
        if user is not None:
            user_id = content.shortstr("user_id")
            if user_id != self.spec.username:
                # the broker refuses a user_id that is not the publishing user's
                extra["user_id"] = user_id
                flags &= ~FLAG_USER_ID
                tail = raw[resume_at : user[0]] + raw[user[1] :]
                self.out.stripped_user_id += 1
        entry = self._replay_entry(count, extra)
        return b"".join(
            (
                struct.pack(">H", flags),
                raw[2:insert_at],
                struct.pack(">I", len(table) + len(entry)),
                table,
                entry,
                tail,
            )
        )

    def _edit_decoded(self, properties: Any) -> bytes:
        """Encoded properties to publish, from decoded ones (the general path)."""
        headers = dict(properties.headers) if properties.headers else {}
        properties.user_id, taken = strip_for_republish(
            headers, properties.user_id, self.spec.username
        )
        self.out.stripped_cc += "cc" in taken
        self.out.stripped_user_id += "user_id" in taken
        previous = headers.pop(REPLAY_HEADER, None)
        count = 1
        if isinstance(previous, Mapping) and isinstance(previous.get("count"), int):
            count = int(previous["count"]) + 1
        headers[REPLAY_HEADER] = {
            "count": count,
            "time": self._stamp_now(),
            "run": self.spec.run,
            **taken,
        }
        properties.headers = headers
        return b"".join(properties.encode())

    def _publish(self, tag: int, redelivered: bool, content: Any, body: bytes) -> None:
        self._seq += 1
        encoded: bytes | None = None
        if isinstance(content, RawContent):
            try:
                encoded = self._edit_raw(content)
            except (RawError, IndexError):
                content = content.decoded()
        if encoded is None:
            encoded = self._edit_decoded(content)
        self._pending[self._seq] = (tag, redelivered, body, encoded)
        self._order.append(self._seq)
        self._send(encoded, body)

    def _prepare_publisher(self, channel: Any) -> None:
        """Pre-encode the (constant) basic.publish frame for the destination.

        ``channel.basic_publish`` rebuilds and re-encodes the same method frame for every
        message; the frames written here are byte for byte what it would write.
        """
        import struct

        from pika import frame, spec

        conn = channel.connection
        emit = getattr(conn, "_output_marshaled_frames", None)
        body_max = getattr(conn, "_body_max_length", None)
        if emit is None or not isinstance(body_max, int) or body_max <= 0:
            return
        number = channel.channel_number
        method = frame.Method(
            number,
            spec.Basic.Publish(exchange="", routing_key=self.spec.destination[1], mandatory=True),
        ).marshal()
        pack = struct.pack
        header_prefix = pack(">BH", spec.FRAME_HEADER, number)
        body_prefix = pack(">BH", spec.FRAME_BODY, number)
        end = bytes([spec.FRAME_END])
        class_id = spec.BasicProperties.INDEX

        def send(encoded: bytes, body: bytes) -> None:
            if not channel.is_open:
                raise RuntimeError("publisher channel is closed")
            payload = pack(">HxxQ", class_id, len(body)) + encoded
            frames = [method, header_prefix + pack(">I", len(payload)) + payload + end]
            for start in range(0, len(body), body_max):
                chunk = body[start : start + body_max]
                frames.append(body_prefix + pack(">I", len(chunk)) + chunk + end)
            emit(frames)

        self._fast_send = send

    def _send(self, encoded: bytes, body: bytes) -> None:
        if self._fast_send is not None:
            self._fast_send(encoded, body)
            return
        from pika import spec

        properties = spec.BasicProperties().decode(encoded)
        self._pub.basic_publish(
            "", self.spec.destination[1], body, properties=properties, mandatory=True
        )

    def _on_return(self, _channel: Any, _method: Any, properties: Any, body: bytes) -> None:
        from pika import spec

        headers = properties.headers or {}
        fallback: int | None = None
        for seq in self._order:
            entry = self._pending.get(seq)
            if entry is None or seq in self._returned or entry[2] != body:
                continue
            if spec.BasicProperties().decode(entry[3]).headers == headers:
                self._returned.add(seq)
                return
            if fallback is None:
                fallback = seq
        if fallback is not None:
            self._returned.add(fallback)
            return
        self._fail("a returned message could not be matched to its publish")

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        ok = type(method).__name__ == "Ack"  # pika.spec.Basic.Ack / Basic.Nack
        last = int(method.delivery_tag)
        self._last_activity = time.monotonic()
        seqs: list[int] = []
        if method.multiple:
            order = self._order
            while order and order[0] <= last:
                seq = order.popleft()
                if seq in self._pending:
                    seqs.append(seq)
        elif last in self._pending:
            seqs.append(last)
        failed_now = 0
        for seq in seqs:
            tag, redelivered, _, _ = self._pending.pop(seq)
            if ok and seq not in self._returned:
                self._at_limit.pop(tag, None)
                self._done_tags.append(tag)
                self.out.moved += 1
                if redelivered:
                    self.out.moved_redelivered += 1
            else:
                self._returned.discard(seq)
                self.out.failed += 1
                failed_now += 1
                self._hold(tag)
        if failed_now and self.out.stopped_early is None:
            dst = self.spec.destination_label
            self.out.stopped_early = (
                f"the broker did not accept messages for {dst} (unroutable or refused): "
                "stopped taking new messages; failed ones stay in the source"
            )
            self._stop_taking()
        self._flush_acks()
        self._drain_buffer()
        self._check_done()

    def _stop_taking(self) -> None:
        """Take no new message; buffered ones were never published and stay in the source."""
        self._cancel()
        while self._buffer:
            self._hold(self._buffer.popleft()[0])

    def _drain_buffer(self) -> None:
        while self._buffer and len(self._pending) < self._prefetch:
            tag, redelivered, properties, body = self._buffer.popleft()
            self._publish(tag, redelivered, properties, body)

    def _lowest_pending_tag(self) -> int | None:
        order = self._order
        while order and order[0] not in self._pending:
            order.popleft()
        return self._pending[order[0]][0] if order else None

    def _flush_acks(self) -> None:
        """Ack sources of confirmed publishes (one multiple-ack while nothing is held)."""
        if not self._done_tags or self._con is None or not self._con.is_open:
            return
        if self._held == 0:
            lowest_pending = self._lowest_pending_tag()
            if lowest_pending is None:
                self._con.basic_ack(self._done_tags[-1], multiple=True)
                self._done_tags.clear()
                return
            ready = [t for t in self._done_tags if t < lowest_pending]
            if ready:
                self._con.basic_ack(max(ready), multiple=True)
                self._done_tags = [t for t in self._done_tags if t >= lowest_pending]
            return
        for tag in self._done_tags:
            self._con.basic_ack(tag, multiple=False)
        self._done_tags.clear()

    # -- ending ----------------------------------------------------------------------

    def _cancel(self) -> None:
        if self._cancel_sent or self._con is None or not self._con.is_open:
            return
        self._cancel_sent = True
        if not self._consuming:
            self._cancelled = True
            return

        def done(_frame: Any) -> None:
            self._cancelled = True
            self._check_done()

        self._con.basic_cancel(self._consumer_tag, callback=done)

    def _check_done(self) -> None:
        if self._finishing or self._closing:
            return
        if not self._cancelled:
            return
        if self._pending or self._buffer or self._keeping:
            return
        self._finish()

    def _finish(self) -> None:
        self._finishing = True
        self._flush_acks()
        if self._con is not None and self._con.is_open and self._held:
            # skipped, failed and late deliveries go back where they were
            self._con.basic_nack(delivery_tag=0, multiple=True, requeue=True)
        self._close_all()

    def _close_all(self) -> None:
        self._closing = True
        for conn in self._conns:
            if conn.is_open:
                conn.close()
            elif conn.is_closed:
                continue
        if all(c.is_closed for c in self._conns):
            self._stop_loop()

    def _tick(self) -> None:
        """Periodic: progress, stop requests, end-of-queue and stall detection."""
        if self._closing:
            return
        self._progress()
        now = time.monotonic()
        idle = now - self._last_activity
        if self.stop_requested.is_set() and not self._cancel_sent:
            self.out.notes.append("stopped on request: the rest stays in the source")
            self._stop_taking()
            self._check_done()
        elif (
            self._consuming
            and not self._cancel_sent
            and not self._pending
            and not self._buffer
            and idle > IDLE_CHECK
        ):
            self._probe_remaining(idle)
        self._ioloop.call_later(PROGRESS_EVERY, self._tick)

    def _probe_remaining(self, idle: float) -> None:
        probe = self._probe
        if probe is None or not probe.is_open or self._probing:
            return
        self._probing = True

        def answered(frame: Any) -> None:
            self._probing = False
            ready = int(frame.method.message_count)
            if ready == 0:
                self._cancel()
            elif idle > STALL_LIMIT:
                self._fail(
                    f"no delivery for {idle:.0f}s although {self.spec.source_label} has "
                    f"{ready} ready message(s) (single-active-consumer queue in use?)"
                )
                self._cancel()

        probe.queue_declare(self.spec.source[1], passive=True, callback=answered)

    def _progress(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_progress < PROGRESS_EVERY:
            return
        self._last_progress = now
        total = (
            self.spec.bound if self.spec.limit is None else min(self.spec.bound, self.spec.limit)
        )
        with contextlib.suppress(Exception):
            self.report(
                MoveProgress(
                    done=self.out.moved,
                    total=total,
                    failed=self.out.failed,
                    skipped=self.out.skipped,
                )
            )


# ---------------------------------------------------------------- actions


class RabbitMQActions:
    """Peek / replay / move / purge for one RabbitMQ broker."""

    def __init__(self, options: RabbitMQOptions, collector: RabbitMQCollector) -> None:
        self.options = options
        self.collector = collector
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
        vhosts = await self.collector.known_vhosts()
        return split_name(queue, vhosts)

    @contextlib.contextmanager
    def _connection(self, vhost: str) -> Iterator[Any]:
        """A short-lived blocking connection (actions are rare; idle ones would time out)."""

        conn = open_connection(self.options, vhost)
        try:
            yield conn
        finally:
            with contextlib.suppress(Exception):
                if conn.is_open:
                    conn.close()

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
            details = await self.collector.queue_details(vhost, name)
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
        details = await self.collector.queue_details(vhost, name)
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
        from collectors.rabbitmq.republish import republish_one

        src = await self._resolve(request.source)
        dst = await self._resolve(request.destination)
        details = await self.collector.queue_details(*src)
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

        return await asyncio.to_thread(
            republish_one,
            connect,
            src,
            dst,
            request,
            identify=message_id,
            strip=strip_for_republish,
            username=self._username,
            replay_header=REPLAY_HEADER,
        )

    async def replay_target(self, dlq: str) -> str | None:
        vhost, name = await self._resolve(dlq)
        qualified = qualify(vhost, name)
        sources = await self.collector.dead_letter_sources_of(qualified)
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
        src = await self._resolve(request.source)
        dst = await self._resolve(request.destination)
        src_label, dst_label = qualify(*src), qualify(*dst)
        if src == dst:
            raise UsageError("source and destination are the same queue")
        details = await self.collector.queue_details(*src)
        src_kind = None if details is None else details.type
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
        if src_kind == "stream":
            raise UnsupportedAction(
                f"{src_label} is a stream: consuming does not remove messages, so a move "
                "would only copy them"
            )
        counts, dst_counts = await asyncio.to_thread(self._declare_many, [src, dst])
        if counts is None:
            raise self._missing(request.source, src[0])
        bound = counts[0]
        planned = bound if request.limit is None else min(bound, request.limit)
        notes: list[str] = []
        if dst_counts is None:
            message = (
                f"destination queue {dst_label!r} does not exist: nothing was moved, every "
                f"message stays in {src_label}"
            )
            return MoveResult(
                source=src_label,
                destination=dst_label,
                moved=0,
                failed=0 if request.dry_run else planned,
                skipped=0,
                dry_run=request.dry_run,
                errors=(message,),
            )
        if request.dry_run and request.filter is None:
            return MoveResult(
                source=src_label,
                destination=dst_label,
                moved=planned,
                failed=0,
                skipped=0,
                dry_run=True,
                notes=(f"{src_label} holds {bound} ready message(s); nothing was read",),
            )
        run = uuid.uuid4().hex[:12]
        journal: Journal | None = None
        if not request.dry_run:
            journal = Journal.open(self.options.name, src_label, dst_label, run, window)
            other = journal.concurrent()
            if other is not None:
                notes.append(
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
        loop = asyncio.get_running_loop()

        def report(update: MoveProgress) -> None:
            loop.call_soon_threadsafe(progress, update)

        stop = threading.Event()
        mover = Mover(self.options, spec, report, stop)
        task = asyncio.ensure_future(asyncio.to_thread(mover.run))
        try:
            outcome = await asyncio.shield(task)
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
            raise ActionFailed(f"{request.mode} failed: {exc}") from None
        duplicates = outcome.uncertain
        if journal is not None:
            previous = journal.interrupted()
            if previous is not None:
                prev_window = int(previous.get("window") or window)
                possible = min(prev_window, outcome.moved_redelivered)
                duplicates += possible
                when = dt.datetime.fromtimestamp(float(previous.get("started") or 0), tz=dt.UTC)
                notes.append(
                    f"an earlier run of this move (run {previous.get('run')}, started "
                    f"{when:%Y-%m-%d %H:%M:%S}Z) was interrupted: {possible} of the messages "
                    "moved now had been delivered before and may already be in "
                    f"{dst_label} (at most one window of {prev_window})"
                )
            if not outcome.uncertain:
                journal.close()
        if outcome.stopped_early:
            notes.append(outcome.stopped_early)
        notes.extend(outcome.notes)
        if outcome.skipped:
            notes.append(
                f"{outcome.skipped} message(s) did not match the filter and were returned to "
                f"{src_label} (marked redelivered; on quorum queues their delivery count rose)"
            )
        if request.dry_run:
            notes.append(
                f"dry run: the {outcome.delivered} message(s) read were returned to "
                f"{src_label} marked redelivered"
            )
        if outcome.narrowed is not None:
            size, average = outcome.narrowed
            notes.append(
                f"messages average {average / 1024:.0f} KiB: at most {size} were in flight at "
                f"a time (move_window_bytes {self.options.move_window_bytes // 1024} KiB; "
                f"move_window {window})"
            )
        if outcome.kept:
            notes.append(
                f"{outcome.kept} message(s) left in {src_label} had used up their delivery "
                f"limit ({limit}): putting them back would have dropped them, so they were "
                f"re-published to the back of {src_label} ({KEPT_HEADER} header)"
            )
        if outcome.stripped_user_id:
            notes.append(
                f"{outcome.stripped_user_id} message(s) carried a user_id other than the "
                f"connecting user's; it was moved into the {REPLAY_HEADER} header (RabbitMQ "
                "refuses a foreign user_id)"
            )
        if outcome.stripped_cc:
            notes.append(
                f"{outcome.stripped_cc} message(s) had CC/BCC headers; they were moved into "
                f"the {REPLAY_HEADER} header so the message is not copied to other queues"
            )
        if outcome.uncertain:
            notes.append(
                f"the connection broke with {outcome.uncertain} message(s) published but not "
                "yet acknowledged in the source: they may now be in both queues"
            )
        return MoveResult(
            source=src_label,
            destination=dst_label,
            moved=outcome.moved,
            failed=outcome.failed,
            skipped=outcome.skipped,
            dry_run=request.dry_run,
            duplicates_possible=duplicates,
            errors=tuple(outcome.errors),
            notes=tuple(notes),
            republished=outcome.kept,
        )

    async def close(self) -> None:
        return None


__all__ = ["REPLAY_HEADER", "RabbitMQActions", "decode_death", "to_peeked"]
