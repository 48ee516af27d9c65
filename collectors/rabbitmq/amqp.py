"""AMQP connections (pika): parameters bounded by the poll's budget, refusals named, pika's
own logging kept quiet, and the passive declares of the fallback mode."""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from collectors.rabbitmq.options import (
    RabbitMQOptions,
    amqp_target,
    poll_budget,
    ssl_context,
)
from mqtop.kernel.errors import BrokerUnreachable

if TYPE_CHECKING:
    import pika


def pika_parameters(
    options: RabbitMQOptions,
    vhost: str | None = None,
    heartbeat: int = 60,
    timeout: float | None = None,
) -> pika.ConnectionParameters:
    """pika connection parameters for a vhost (the URL's by default). Opening the connection
    (TCP, TLS and the AMQP handshake together) takes at most ``timeout`` seconds, the broker's
    poll budget by default."""
    import pika

    if timeout is None:
        timeout = poll_budget(options)
    timeout = max(timeout, 0.1)

    quiet_pika()
    target = amqp_target(options.url.get_secret_value())
    extra: dict[str, Any] = {}
    if target.tls:
        extra["ssl_options"] = pika.SSLOptions(ssl_context(options), server_hostname=target.host)
    return pika.ConnectionParameters(
        host=target.host,
        port=target.port,
        virtual_host=vhost if vhost is not None else target.vhost,
        credentials=(
            pika.credentials.ExternalCredentials()
            if options.auth_mechanism == "external"
            else pika.PlainCredentials(target.username, target.password)
        ),
        **extra,
        heartbeat=heartbeat,
        connection_attempts=1,
        socket_timeout=timeout,
        stack_timeout=timeout,
        blocked_connection_timeout=max(timeout * 6, 30.0),
        client_properties={"connection_name": f"mqtop ({options.name})"},
    )


def open_connection(
    options: RabbitMQOptions, vhost: str | None = None, timeout: float | None = None
) -> Any:
    """A pika ``BlockingConnection``, opened within ``timeout`` (the poll budget by default);
    one that is not opened in time is reported with its address and the deadline."""
    import pika

    params = pika_parameters(options, vhost, timeout=timeout)
    try:
        return pika.BlockingConnection(params)
    except Exception as exc:
        # pika raises (or wraps) a connection_workflow error whose class names the deadline
        timed_out = any(
            "timeout" in type(inner).__name__.lower()
            for inner in (exc, *exc.args)
            if isinstance(inner, BaseException)
        )
        refusal = tls_refusal(exc) if params.ssl_options is not None else None
        if refusal is not None:
            hint = (
                "the listener may require a client certificate (cert_file, key_file)"
                if options.cert_file is None
                else f"the server may not accept the client certificate {options.cert_file}"
            )
            raise BrokerUnreachable(
                f"AMQP at {params.host}:{params.port} refused the TLS connection "
                f"({refusal}): {hint}"
            ) from None
        if not timed_out:
            raise
        raise BrokerUnreachable(
            f"AMQP at {params.host}:{params.port}: no connection within "
            f"{params.stack_timeout:.2g}s (TCP, TLS and the AMQP handshake)"
        ) from None


def close_quietly(conn: Any) -> None:
    """Close a pika connection if it is open; never raises (closing is best effort)."""
    with contextlib.suppress(Exception):
        if conn.is_open:
            conn.close()


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps (args, pika's ``exception``, cause, context)."""
    pending, seen = [exc], set[int]()
    while pending and len(seen) < 16:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [*current.args, getattr(current, "exception", None)]
        linked += [current.__cause__, current.__context__]
        pending.extend(e for e in linked if isinstance(e, BaseException))


def tls_refusal(exc: BaseException) -> str | None:
    """How a TLS server refused the connection, if it did. A server that requires a client
    certificate says so with a CERTIFICATE_REQUIRED alert, or (TLS 1.3: the client's
    handshake is over before the server checks) closes the connection: EOF or a reset."""
    causes = list(_causes(exc))
    text = " ".join(f"{type(e).__name__} {e}" for e in causes)
    if "CERTIFICATE_REQUIRED" in text.upper() or "certificate required" in text.lower():
        return "CERTIFICATE_REQUIRED alert"
    closed = ssl.SSLEOFError | ssl.SSLZeroReturnError | ConnectionResetError | EOFError
    if any(isinstance(e, closed) for e in causes) or "EOF" in text:
        return "connection closed during the handshake: EOF"
    return None


def quiet_pika() -> None:
    """pika logs expected events (a 404 on a passive declare) as warnings and every failed
    connection as several ERROR lines, some with a traceback: mqtop reports the failure
    itself, once, at every verbosity."""
    logging.getLogger("pika").setLevel(logging.CRITICAL)


class PassiveProbe:
    """Passive ``queue.declare`` over long-lived blocking pika connections (one per vhost).

    Used from worker threads only, one call at a time (a lock serialises callers).
    """

    def __init__(self, options: RabbitMQOptions) -> None:
        self.options = options
        self._lock = threading.Lock()
        self._conns: dict[str, Any] = {}
        self._channels: dict[str, Any] = {}
        self.timeout: float | None = None  # opening a connection (None: the poll budget)

    def _channel(self, vhost: str) -> Any:

        conn = self._conns.get(vhost)
        if conn is None or not conn.is_open:
            conn = open_connection(self.options, vhost, timeout=self.timeout)
            self._conns[vhost] = conn
            self._channels.pop(vhost, None)
        channel = self._channels.get(vhost)
        if channel is None or not channel.is_open:
            channel = conn.channel()
            self._channels[vhost] = channel
        return channel

    def declare(self, names: Iterable[tuple[str, str]]) -> dict[tuple[str, str], tuple[int, int]]:
        """(ready, consumers) of existing queues; missing queues are left out."""
        import pika.exceptions

        out: dict[tuple[str, str], tuple[int, int]] = {}
        with self._lock:
            for vhost, name in names:
                channel = self._channel(vhost)
                try:
                    ok = channel.queue_declare(name, passive=True)
                except pika.exceptions.ChannelClosedByBroker as exc:
                    if exc.reply_code == 404:
                        continue
                    raise
                out[(vhost, name)] = (
                    int(ok.method.message_count),
                    int(ok.method.consumer_count),
                )
            for conn in self._conns.values():
                if conn.is_open:
                    conn.process_data_events(0)  # heartbeats
        return out

    def ping(self, vhost: str) -> None:
        """Open (or keep) the connection to ``vhost``; raises when the broker does not answer."""
        with self._lock:
            self._channel(vhost)
            self._conns[vhost].process_data_events(0)  # heartbeats

    def close(self) -> None:
        """Close every connection (never raises)."""
        with self._lock:
            for conn in self._conns.values():
                close_quietly(conn)
            self._conns.clear()
            self._channels.clear()
