"""The state of one replay/move and the steps that change it without driving the flow:
the prefetch window fitted to message sizes, publishing (edited properties, pre-encoded
frames), acknowledgements of confirmed messages, keeping messages at their delivery limit,
progress reports and closing. :class:`collectors.rabbitmq.mover.Mover` drives the flow."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from collectors.base import MoveProgress
from collectors.rabbitmq.editing import PropertyEditor
from collectors.rabbitmq.messages import kept_copy
from collectors.rabbitmq.movespec import UNKNOWN_SIZE_PREFETCH, MoveOutcome, MoveSpec
from collectors.rabbitmq.options import RabbitMQOptions
from collectors.rabbitmq.protocol import (
    RawContent,
    RawError,
)

PROGRESS_EVERY = 0.1


class MoverBase:
    """State and state-changing steps of a :class:`~collectors.rabbitmq.mover.Mover`."""

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
        bound = spec.bound if spec.limit is None else min(spec.bound, spec.limit)
        self.out = MoveOutcome(total=bound)
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
        self.editor = PropertyEditor(spec.run, spec.username, self.out)

    def _stop_loop(self) -> None:
        if self._ioloop is not None:
            self._ioloop.stop()

    def _abort_state(self) -> None:
        """The connection broke: whatever was unconfirmed or confirmed-unacked is uncertain."""
        self.out.uncertain += len(self._pending) + len(self._done_tags)
        self._pending.clear()
        self._done_tags.clear()
        self._buffer.clear()
        if self._keeping:
            self.out.note(
                f"the connection broke while {len(self._keeping)} message(s) at their delivery "
                "limit were being re-published to the source: the broker drops the originals "
                "it takes back, so those whose copy had not arrived may be gone"
            )
            self._keeping.clear()

    def _keep(self, tag: int, content: Any, body: bytes, used: int) -> None:
        """Publish a copy of a held message to the back of the source (its delivery count
        starts afresh); the original is acknowledged when the copy is confirmed."""
        keeper = self._keeper
        limit = self.spec.delivery_limit
        if keeper is None or not keeper.is_open or limit is None:
            self.out.error(
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

    def _on_message(self, _channel: Any, method: Any, properties: Any, body: bytes) -> None:
        raise NotImplementedError  # deliveries drive the flow: Mover takes them

    def _publish(self, tag: int, redelivered: bool, content: Any, body: bytes) -> None:
        self._seq += 1
        encoded: bytes | None = None
        if isinstance(content, RawContent):
            try:
                encoded = self.editor.edit_raw(content)
            except (RawError, IndexError):
                content = content.decoded()
        if encoded is None:
            encoded = self.editor.edit_decoded(content)
        self._pending[self._seq] = (tag, redelivered, body, encoded)
        self._order.append(self._seq)
        self._send(encoded, body)

    def _send(self, encoded: bytes, body: bytes) -> None:
        if self._fast_send is not None:
            self._fast_send(encoded, body)
            return
        from pika import spec

        properties = spec.BasicProperties().decode(encoded)
        self._pub.basic_publish(
            "", self.spec.destination[1], body, properties=properties, mandatory=True
        )

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

    def _close_all(self) -> None:
        self._closing = True
        for conn in self._conns:
            if conn.is_open:
                conn.close()
            elif conn.is_closed:
                continue
        if all(c.is_closed for c in self._conns):
            self._stop_loop()

    def _progress(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_progress < PROGRESS_EVERY:
            return
        self._last_progress = now
        with contextlib.suppress(Exception):
            self.report(self.out.progress())
