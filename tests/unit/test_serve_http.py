"""`mqtop serve`'s HTTP server (its own event loop, in one thread) over real loopback sockets,
answering from a fake daemon: the answers, hostile requests, the connection cap and shutdown."""

from __future__ import annotations

import gzip
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from mqtop.commands import serve_http
from mqtop.commands.serve_http import BUSY, MAX_CONNECTIONS, LoopHTTPServer


class FakeDaemon:
    def __init__(self) -> None:
        self.scrapes: list[bool] = []

    def metrics(self, compress: bool = False) -> bytes:
        self.scrapes.append(compress)
        body = b"mqtop_up 1\n" * 1000
        return gzip.compress(body) if compress else body

    def health_report(self) -> tuple[bool, dict[str, Any]]:
        return False, {"status": "stalled"}


@pytest.fixture
def server() -> Iterator[LoopHTTPServer]:
    srv = LoopHTTPServer(("127.0.0.1", 0), FakeDaemon())
    srv.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _ask(server: LoopHTTPServer, request: bytes) -> bytes:
    with socket.create_connection(server.server_address, timeout=5) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_answers_metrics_plain_and_gzip_then_closes(server):
    plain = _ask(server, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = plain.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 OK\r\n")
    assert b"Content-Type: text/plain; version=0.0.4; charset=utf-8" in head
    assert f"Content-Length: {len(body)}".encode() in head and body == b"mqtop_up 1\n" * 1000
    packed = _ask(server, b"GET /metrics?x=1 HTTP/1.1\r\nAccept-Encoding: gzip\r\n\r\n")
    head, _, body = packed.partition(b"\r\n\r\n")
    assert b"Content-Encoding: gzip" in head and b"Vary: Accept-Encoding" in head
    assert gzip.decompress(body) == b"mqtop_up 1\n" * 1000
    refused = _ask(server, b"GET /metrics HTTP/1.1\r\nAccept-Encoding: gzip;q=0\r\n\r\n")
    assert b"Content-Encoding" not in refused
    assert server.endpoints.scrapes == [False, True, False]  # type: ignore[attr-defined]


def test_healthz_root_unknown_and_hostile_requests(server):
    health = _ask(server, b"GET /healthz HTTP/1.1\r\n\r\n")
    assert health.startswith(b"HTTP/1.0 503 ") and health.endswith(b'{"status": "stalled"}\n')
    assert _ask(server, b"GET / HTTP/1.0\r\n\r\n").endswith(b"mqtop: /metrics /healthz\n")
    assert _ask(server, b"GET /nope HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.0 404 ")
    assert _ask(server, b"POST /metrics HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.0 501 ")
    assert _ask(server, b"garbage\r\n\r\n").startswith(b"HTTP/1.0 400 ")
    assert _ask(server, b"\x00\xff\xfe GET\r\n\r\n").startswith(b"HTTP/1.0 400 ")
    huge = b"GET /metrics HTTP/1.1\r\nX: " + b"a" * (serve_http.MAX_HEAD + 10)
    assert _ask(server, huge).startswith(b"HTTP/1.0 431 ")
    # still answering after all that
    assert _ask(server, b"GET /metrics HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.0 200 ")


def test_connections_beyond_the_cap_are_refused_and_silent_ones_closed(server, monkeypatch):
    monkeypatch.setattr(serve_http, "REQUEST_TIMEOUT", 1.0)
    socks = []
    try:
        for _ in range(MAX_CONNECTIONS + 5):
            sock = socket.create_connection(server.server_address, timeout=5)
            sock.sendall(b"GET /metrics HTTP/1.1\r\n")  # half a request
            socks.append(sock)
        extra = socks[-1]
        assert extra.recv(len(BUSY)) == BUSY
        assert server.refused >= 5
        for sock in socks[:MAX_CONNECTIONS]:  # closed after the (shortened) request timeout
            sock.settimeout(5)
            assert sock.recv(100) == b""
        deadline = time.monotonic() + 5
        while server.open and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.open == 0
        assert _ask(server, b"GET /metrics HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.0 200 ")
    finally:
        for sock in socks:
            sock.close()


def test_shutdown_stops_answering_quickly():
    srv = LoopHTTPServer(("127.0.0.1", 0), FakeDaemon())
    thread = srv.start()
    assert _ask(srv, b"GET / HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.0 200 ")
    started = time.monotonic()
    srv.shutdown()
    srv.server_close()
    assert not thread.is_alive() and time.monotonic() - started < 2.5
    with pytest.raises(OSError):
        socket.create_connection(srv.server_address, timeout=1)


def test_an_unusable_address_raises_at_construction():
    srv = LoopHTTPServer(("127.0.0.1", 0), FakeDaemon())
    try:
        with pytest.raises(OSError):
            LoopHTTPServer(srv.server_address, FakeDaemon())
    finally:
        srv.server_close()
