"""``mqtop serve``'s HTTP server: /metrics, /healthz and / on threads of their own.

Scrapes never run on the event loop that polls and evaluates: each connection is answered on a
thread (at most :data:`MAX_CONNECTIONS` at once; more are answered 503 and closed at once), and
a connection that sends nothing for :data:`REQUEST_TIMEOUT` is closed. An answer (status line,
headers and the body, which the exposition keeps rendered) leaves in one ``sendall`` on a socket
with Nagle's algorithm off, so no part of it waits for the client's acknowledgement of another.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from mqtop import __version__
from mqtop.exposition import CONTENT_TYPE, accepts_gzip
from mqtop.kernel.safe import strict_json
from mqtop.kernel.secrets import redact

log = logging.getLogger("mqtop.serve")

# the HTTP server answers at most this many connections at once (one thread each); more are
# answered 503 at once and closed, so a flood of connections cannot hold a thread apiece
MAX_CONNECTIONS = 64
# a connection that sends nothing for this long (half a request, an idle keep-alive) is closed
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


class BoundedHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server with a cap on concurrent connections (see MAX_CONNECTIONS)."""

    daemon_threads = True
    request_queue_size = 256  # connections waiting to be accepted (answered or refused at once)

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.refused = 0

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self.refused += 1
            with contextlib.suppress(OSError):
                request.setblocking(False)
                request.send(BUSY)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class MetricsHandler(BaseHTTPRequestHandler):
    """Answers /metrics, /healthz and / from ``endpoints`` (set by :func:`make_handler`)."""

    endpoints: Endpoints
    server_version = f"mqtop/{__version__}"
    timeout = REQUEST_TIMEOUT  # per read and write on the connection's socket

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        try:
            if path == "/metrics":
                self._metrics()
            elif path == "/healthz":
                self._healthz()
            elif path == "/":
                self._send(200, "text/plain; charset=utf-8", b"mqtop: /metrics /healthz\n")
            else:
                self._send(404, "text/plain; charset=utf-8", b"not found\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:
            log.error("http: %s", redact(f"{type(exc).__name__}: {exc}"))
            with contextlib.suppress(Exception):
                self._send(500, "text/plain; charset=utf-8", b"internal error\n")

    def _metrics(self) -> None:
        compress = accepts_gzip(self.headers.get("Accept-Encoding"))
        body = self.endpoints.metrics(compress)
        self._send(200, CONTENT_TYPE, body, "gzip" if compress else None)

    def _healthz(self) -> None:
        ok, doc = self.endpoints.health_report()
        body = (strict_json(doc) + "\n").encode()
        self._send(200 if ok else 503, "application/json", body)

    def _send(self, code: int, content_type: str, body: bytes, encoding: str | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        if encoding:
            self.send_header("Content-Encoding", encoding)
            self.send_header("Vary", "Accept-Encoding")
        self.send_header("Content-Length", str(len(body)))
        # the blank line and the body join the buffered status line and headers: one write
        self.send_header_end_and_body(body)

    def send_header_end_and_body(self, body: bytes) -> None:
        head = getattr(self, "_headers_buffer", None)
        if not isinstance(head, list):  # not buffered (never, in CPython 3.11-3.13)
            self.end_headers()
            self.wfile.write(body)
            return
        data = b"".join([*head, b"\r\n", body])
        head.clear()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("http %s", format % args)


def make_handler(endpoints: Endpoints) -> type[BaseHTTPRequestHandler]:
    """The request handler class answering from ``endpoints``."""
    return type("Handler", (MetricsHandler,), {"endpoints": endpoints})
