"""AMQP 0-9-1 on the wire, for bulk moves: basic properties read and edited in their encoded
form (no decode/encode per message), a pre-encoded basic.publish, and a pika SelectConnection
that batches writes and reads."""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable, Iterator
from typing import Any

from collectors.rabbitmq.messages import DELIVERY_HEADERS, REPLAY_HEADER, delivery_count

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


def _take_raw(conn: Any, kind: int, buf: bytes, start: int, stop: int) -> bool:
    """Take a Basic.Deliver and its content on the raw channel; False otherwise."""
    state = conn._mqtop_raw_state
    if state is None:
        if kind != 1 or buf[start : start + 4] != DELIVER_ID:
            return False
        pos = start + 5 + buf[start + 4]  # after the consumer tag
        tag = struct.unpack_from(">Q", buf, pos)[0]
        conn._mqtop_raw_state = [tag, bool(buf[pos + 8] & 1), None, 0, []]
        return True
    if state[2] is None:
        if kind != 2:
            raise ValueError("content header expected after basic.deliver")
        remaining = struct.unpack_from(">Q", buf, start + 4)[0]
        state[2] = buf[start + 12 : stop]
        if remaining == 0:
            conn._mqtop_raw_state = None
            conn._mqtop_raw_handler(state[0], state[1], state[2], b"")
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
        conn._mqtop_raw_state = None
        body = chunk if len(chunks) == 1 else b"".join(chunks)
        conn._mqtop_raw_handler(state[0], state[1], state[2], body)
    return True


def _read_frames(conn: Any, buf: bytes, decode_frame: Callable[[bytes], Any]) -> None:
    """Cut the frames out of ``buf`` by offset; raw-channel deliveries go to the handler,
    the rest to pika; an incomplete tail stays buffered."""
    size = len(buf)
    pos = 0
    raw_channel = conn._mqtop_raw_channel
    while size - pos >= 7:
        kind, channel, length = struct.unpack_from(">BHL", buf, pos)
        end = pos + length + 8
        if end > size:
            break
        if channel == raw_channel and buf[end - 1] != FRAME_END:
            raise ValueError("invalid AMQP frame end")
        if channel == raw_channel and _take_raw(conn, kind, buf, pos + 7, end - 1):
            pos = end
            conn.bytes_received += length + 8
            conn.frames_received += 1
            if conn.is_closed:
                return
            continue
        consumed, value = decode_frame(buf[pos:end])
        if value is None:
            break
        pos = end
        conn.bytes_received += consumed
        conn._process_frame(value)
        if conn.is_closed:
            return
    conn._frame_buffer = buf[pos:] if pos else buf


def _tune_transport(conn: Any) -> None:
    transport = getattr(conn, "_transport", None)
    if transport is not None and hasattr(transport, "_MAX_RECV_BYTES"):
        transport._MAX_RECV_BYTES = RECV_BYTES


def batching_connection_class() -> Any:
    """A pika SelectConnection tuned for bulk moves (same protocol, fewer syscalls and copies).

    * pika writes every frame (method, header, body, ack) with its own ``send()``: frames
      produced in one burst of callbacks are joined and written once, in order, on the next
      loop turn (or as soon as the batch is large);
    * pika reads 4 KB per ``recv()`` and re-slices its whole input buffer after every
      frame: reads are 128 KB and frames are cut out by offset, so a burst costs linear time.
    """
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
        tune_transport = staticmethod(_tune_transport)

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
            _read_frames(self, buf, pika_frame.decode_frame)

    return BatchingSelectConnection


# ---------------------------------------------------------------- the mover


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


def fast_publisher(channel: Any, routing_key: str) -> Callable[[bytes, bytes], None] | None:
    """A sender of pre-encoded basic.publish frames to ``routing_key`` (default exchange,
    mandatory), or None when the connection does not allow it.

    ``channel.basic_publish`` rebuilds and re-encodes the same method frame for every
    message; the frames written here are byte for byte what it would write.
    """
    import struct

    from pika import frame, spec

    conn = channel.connection
    emit = getattr(conn, "_output_marshaled_frames", None)
    body_max = getattr(conn, "_body_max_length", None)
    if emit is None or not isinstance(body_max, int) or body_max <= 0:
        return None
    number = channel.channel_number
    method = frame.Method(
        number, spec.Basic.Publish(exchange="", routing_key=routing_key, mandatory=True)
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

    return send
