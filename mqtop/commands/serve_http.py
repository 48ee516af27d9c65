"""``mqtop serve``'s HTTP server: /metrics, /healthz and /, on an event loop of its own.

Scrapes never run on the event loop that polls and evaluates: the server has its own loop in
one thread, so 20 scrapers cost the daemon one thread, not 20 threads contending for the GIL
with each other and with the polling loop (docs/benchmarks.md has the figures). The /metrics
body is kept rendered by the exposition; an answer (status line, headers, body) is one write
on a socket with Nagle's algorithm off, sent by the loop while it reads other requests.

At most :data:`MAX_CONNECTIONS` connections are served at once (more are answered 503 and
closed at once); a connection that has not sent its request and read its answer
:data:`REQUEST_TIMEOUT` after it was accepted is closed (a deadline, not an idle timeout: a
request sent a byte at a time cannot hold a slot longer). Answers are HTTP/1.0 and close the
connection, as with the thread-per-connection server before.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import socket
import threading
from typing import Any, Protocol

from mqtop import __version__
from mqtop.exposition import CONTENT_TYPE, accepts_gzip
from mqtop.kernel.safe import strict_json
from mqtop.kernel.secrets import redact

log = logging.getLogger("mqtop.serve")

# the HTTP server answers at most this many connections at once; more are answered 503 at once
# and closed, so a flood of connections cannot hold the server
MAX_CONNECTIONS = 64
# a connection is closed this long after it was accepted (half a request, an unread answer)
REQUEST_TIMEOUT = 10.0
BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n"
    b"Connection: close\r\n\r\n"
)


class Endpoints(Protocol):
    """What the HTTP server answers with (the daemon)."""

    def metrics(self, compress: bool = False) -> bytes:
        """The /metrics body."""

    def health_report(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, document) for /healthz."""


MAX_HEAD = 65536  # bytes of request line and headers (http.server's line limit)
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}


class _Connection(asyncio.Protocol):
    """One client: reads a request, answers it in one write, closes (HTTP/1.0)."""

    def __init__(self, server: LoopHTTPServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.counted = False
        self.timer: asyncio.TimerHandle | None = None
        self.done = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        server = self.server
        if server.open >= MAX_CONNECTIONS:
            server.refused += 1
            transport.write(BUSY)
            transport.close()
            return
        server.open += 1
        self.counted = True
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timer = server.loop.call_later(REQUEST_TIMEOUT, self._expire)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.counted:
            self.server.open -= 1
            self.counted = False
        if self.timer is not None:
            self.timer.cancel()

    def _expire(self) -> None:
        if self.transport is not None:
            self.transport.abort()  # silent for REQUEST_TIMEOUT, or not reading its answer

    def data_received(self, data: bytes) -> None:
        if self.done or self.transport is None:
            return
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_HEAD:
                self._answer(431, "text/plain; charset=utf-8", b"request too large\n")
            return
        head = bytes(self.buffer[:end]).decode("latin-1")
        self.buffer.clear()
        self._request(head)

    def _request(self, head: str) -> None:
        lines = head.split("\r\n")
        parts = lines[0].split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            self._answer(400, "text/plain; charset=utf-8", b"bad request\n")
            return
        method, target, _ = parts
        if method != "GET":
            self._answer(501, "text/plain; charset=utf-8", b"not implemented\n")
            return
        accept = None
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep and name.strip().lower() == "accept-encoding":
                accept = value.strip()
        path = target.split("?", 1)[0]
        endpoints = self.server.endpoints
        try:
            if path == "/metrics":
                compress = accepts_gzip(accept)
                body = endpoints.metrics(compress)
                self._answer(200, CONTENT_TYPE, body, "gzip" if compress else None)
            elif path == "/healthz":
                ok, doc = endpoints.health_report()
                body = (strict_json(doc) + "\n").encode()
                self._answer(200 if ok else 503, "application/json", body)
            elif path == "/":
                self._answer(200, "text/plain; charset=utf-8", b"mqtop: /metrics /healthz\n")
            else:
                self._answer(404, "text/plain; charset=utf-8", b"not found\n")
        except Exception as exc:
            log.error("http: %s", redact(f"{type(exc).__name__}: {exc}"))
            self._answer(500, "text/plain; charset=utf-8", b"internal error\n")

    def _answer(
        self, code: int, content_type: str, body: bytes, encoding: str | None = None
    ) -> None:
        if self.transport is None or self.done:
            return
        self.done = True
        head = [
            f"HTTP/1.0 {code} {_REASONS.get(code, '')}",
            f"Server: mqtop/{__version__}",
            f"Date: {email.utils.formatdate(usegmt=True)}",
            f"Content-Type: {content_type}",
        ]
        if encoding:
            head += [f"Content-Encoding: {encoding}", "Vary: Accept-Encoding"]
        head += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
        self.transport.write(b"".join(["\r\n".join(head).encode("latin-1"), body]))
        self.transport.close()  # after the buffered answer is sent; the timer still bounds it
        if log.isEnabledFor(logging.DEBUG):
            log.debug("http %d %d", code, len(body))


class LoopHTTPServer:
    """The HTTP server on an event loop of its own, in one thread (not the polling loop).

    The socket is bound at construction (an unusable address raises OSError there); answers
    start with :meth:`start`.
    """

    def __init__(self, address: tuple[str, int], endpoints: Endpoints) -> None:
        self.endpoints = endpoints
        self.open = 0
        self.refused = 0
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.socket.bind(address)
            self.socket.listen(256)  # connections waiting to be accepted, then answered or refused
            self.socket.setblocking(False)
        except BaseException:
            self.socket.close()
            raise
        self.server_address: tuple[str, int] = self.socket.getsockname()[:2]
        self.loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None

    def serve_forever(self) -> None:
        """Answer until :meth:`shutdown` (in the calling thread)."""
        loop = self.loop
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(
            loop.create_server(lambda: _Connection(self), sock=self.socket)
        )
        try:
            loop.run_forever()
        finally:
            server.close()
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.close()

    def start(self) -> threading.Thread:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(target=self.serve_forever, name="mqtop-http", daemon=True)
        self._thread.start()
        return self._thread

    def shutdown(self) -> None:
        """Stop answering (from another thread) and wait for the server's thread briefly."""
        with contextlib.suppress(RuntimeError):  # the loop is closed already
            self.loop.call_soon_threadsafe(self.loop.stop)
        if self._thread is not None:
            self._thread.join(2.0)

    def server_close(self) -> None:
        """Close the listening socket."""
        self.socket.close()
