"""One replay/move on a pika SelectConnection, run in a worker thread: consume the source
with a prefetch window, publish each message to the destination with confirms and
``mandatory``, acknowledge the source only once the destination has it."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from collectors.rabbitmq.amqp import pika_parameters
from collectors.rabbitmq.moverbase import PROGRESS_EVERY, MoverBase
from collectors.rabbitmq.movespec import MoveOutcome
from collectors.rabbitmq.protocol import (
    RawContent,
    RawError,
    _used_deliveries,
    batching_connection_class,
    fast_publisher,
)
from mqtop.kernel.secrets import redact

IDLE_CHECK = 1.0  # seconds without deliveries before asking how many messages are left
STALL_LIMIT = 30.0  # no delivery for this long while messages are ready: give up


class Mover(MoverBase):
    """One replay/move on a pika SelectConnection, run in a worker thread."""

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
            for text in error:
                self.out.error(redact(text))
        self._progress(force=True)
        return self.out

    def _fail(self, message: str) -> None:
        if self._failure is None:
            self._failure = redact(message)
            self.out.error(self._failure)
        if not self._closing:
            self._stop_taking()

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
            self._fast_send = fast_publisher(channel, self.spec.destination[1])
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        if self.spec.dry_run:
            self._maybe_start()
            return
        channel.confirm_delivery(self._on_confirm, callback=lambda _f: self._maybe_start())

    def _on_consumer_channel(self, channel: Any) -> None:
        self._con = channel
        conn = channel.connection
        if hasattr(conn, "_mqtop_raw_handler"):  # the batching connection takes raw deliveries
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
                self.out.republished += 1
            elif not ok:
                self.out.error(
                    "the broker refused the copy of a message at its delivery limit: putting "
                    "it back may make the broker drop it"
                )
        if not self._keeping:
            self._keeper_returned = False
        self._check_done()

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

    def _tick(self) -> None:
        """Periodic: progress, stop requests, end-of-queue and stall detection."""
        if self._closing:
            return
        self._progress()
        now = time.monotonic()
        idle = now - self._last_activity
        if self.stop_requested.is_set() and not self._cancel_sent:
            self.out.note("stopped on request: the rest stays in the source")
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


# ---------------------------------------------------------------- actions
