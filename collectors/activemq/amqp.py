"""Browsing an Artemis queue over AMQP 1.0 (python-qpid-proton) for whole message bodies.

A receiver link whose source has ``distribution-mode: copy`` is a queue browser on Artemis:
messages are sent but never delivered to a consumer (no delivery count, no redelivered flag,
nothing acknowledged). The link names the queue by its fully qualified name
``address::queue``: a bare name is an *address* to Artemis, which would auto-create one.
No selector is sent: on a fully qualified name Artemis takes it for the queue's own filter and
closes the connection when they differ. The link asks for ``limit`` messages with drain, so
the broker says when the queue has no more.

This module imports proton at its top; it is loaded only when a browse needs it.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from proton import Message, SSLDomain
from proton.handlers import MessagingHandler
from proton.reactor import Container, Copy

from collectors.activemq.options import ActiveMQOptions

ORIG_ID = "_AMQ_ORIG_MESSAGE_ID"
MAX_BYTES = 256 << 20  # whole bodies held by one browse; the rest stay previews


class BrowseFailed(Exception):
    """The AMQP browse could not be done (connection, credentials, the link refused...)."""


@dataclass(frozen=True, slots=True)
class Whole:
    """A browsed message's whole body and what identifies it."""

    body: bytes
    original_id: int | None  # _AMQ_ORIG_MESSAGE_ID of a dead letter
    timestamp_ms: int | None
    priority: int | None


def whole(message: Any) -> Whole | None:
    """The body of a text or bytes message; None for other bodies (map, list, none)."""
    body = message.body
    if isinstance(body, str):
        data = body.encode("utf-8")
    elif isinstance(body, bytes | bytearray | memoryview):
        data = bytes(body)
    else:
        return None
    props = message.properties or {}
    orig = props.get(ORIG_ID)
    created = message.creation_time
    return Whole(
        body=data,
        original_id=int(orig) if isinstance(orig, int) else None,
        timestamp_ms=round(created * 1000) if created else None,
        priority=int(message.priority) if message.priority is not None else None,
    )


def ssl_domain(options: ActiveMQOptions) -> Any:
    """The TLS settings for amqps://: verification on unless tls_verify: false."""
    domain = SSLDomain(SSLDomain.MODE_CLIENT)
    if options.ca_file:
        domain.set_trusted_ca_db(options.ca_file)
    elif options.tls_verify:
        paths = ssl.get_default_verify_paths()
        if paths.cafile:
            domain.set_trusted_ca_db(paths.cafile)
    if options.tls_verify:
        domain.set_peer_authentication(SSLDomain.VERIFY_PEER_NAME)
    else:
        domain.set_peer_authentication(SSLDomain.ANONYMOUS_PEER)
    if options.cert_file:
        domain.set_credentials(options.cert_file, options.key_file or options.cert_file,
                               options.key_password_value())  # fmt: skip
    return domain


class _Browser(MessagingHandler):  # type: ignore[misc,unused-ignore]  # untyped without proton
    """One connection, one browser link, at most ``limit`` messages, then close.

    Its link is the only one of its connection, so every link event is about it.
    """

    def __init__(self, options: ActiveMQOptions, source: str, limit: int) -> None:
        super().__init__(prefetch=0, auto_accept=False, auto_settle=True)
        self.options = options
        self.source = source
        self.limit = limit
        self.messages: list[Message] = []
        self.size = 0
        self.error: str | None = None
        self._conn: Any = None
        self._timer: Any = None

    def on_start(self, event: Any) -> None:
        assert self.options.browse_url is not None
        parts = urlsplit(self.options.browse_url.get_secret_value())
        scheme = parts.scheme.lower()
        user, password = self.options.browse_credentials() or (None, None)
        self._conn = event.container.connect(
            f"{scheme}://{parts.hostname}:{parts.port}",
            user=user,
            password=password,
            allowed_mechs="PLAIN" if user else "ANONYMOUS",
            ssl_domain=ssl_domain(self.options) if scheme == "amqps" else None,
            reconnect=False,
            heartbeat=None,
        )
        event.container.create_receiver(self._conn, self.source, options=Copy())
        self._timer = event.container.schedule(self.options.http_timeout, self)

    def on_link_opened(self, event: Any) -> None:
        if event.link.remote_source.address is None:
            self._stop(f"the broker refused a browser on {self.source!r}")
            return
        event.receiver.drain_mode = True  # the broker answers with a flow when it has no more
        event.receiver.flow(self.limit)

    def on_message(self, event: Any) -> None:
        self.messages.append(event.message)
        body = event.message.body
        self.size += len(body) if isinstance(body, str | bytes | memoryview) else 0
        if len(self.messages) >= self.limit or self.size > MAX_BYTES:
            self._stop(None)

    def on_link_flow(self, event: Any) -> None:
        if not event.receiver.draining():
            self._stop(None)  # drained: the queue had no more

    def on_timer_task(self, event: Any) -> None:
        self._timer = None
        self._stop(f"no answer within {self.options.http_timeout:g}s")

    def on_link_error(self, event: Any) -> None:
        self._stop(_condition(event.link.remote_condition))

    def on_connection_error(self, event: Any) -> None:
        self._stop(_condition(event.connection.remote_condition))

    def on_transport_error(self, event: Any) -> None:
        self._stop(_condition(event.transport.condition))

    def on_disconnected(self, event: Any) -> None:
        if self._conn is not None:
            transport = getattr(event, "transport", None)
            condition = transport.condition if transport is not None else None
            self._stop(_condition(condition) if condition else "the connection closed")

    def _stop(self, error: str | None) -> None:
        if error is not None and self.error is None:
            self.error = error
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def _condition(condition: Any) -> str:
    if condition is None:
        return "closed by the broker"
    return f"{condition.name}: {condition.description or ''}".strip(": ")


def browse(options: ActiveMQOptions, address: str, queue: str, limit: int) -> list[Whole | None]:
    """The first ``limit`` messages of a queue, browsed (blocking: run it in a thread)."""
    handler = _Browser(options, f"{address}::{queue}", max(1, limit))
    Container(handler).run()
    if handler.error is not None and not handler.messages:
        raise BrowseFailed(handler.error)
    return [whole(m) for m in handler.messages]
