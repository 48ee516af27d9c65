"""Hostile HTTP clients of `mqtop serve`: a thousand connections that send half a request and
wait. Before, each held a thread of the daemon for as long as the client liked (1,000
threads, no timeout). Now at most ``MAX_CONNECTIONS`` are served at once (the rest are answered
503 and closed at once) and a connection that stops sending is closed after
``REQUEST_TIMEOUT``; /metrics answers again as soon as the slots are free, and polling (a real
Redis) never stops.
"""

from __future__ import annotations

import contextlib
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from mqtop.commands.serve import MAX_CONNECTIONS, REQUEST_TIMEOUT
from tests.harness import RedisBroker, free_port
from tests.support.serve import Serve, http_get, wait_until

pytestmark = [pytest.mark.broker]

FLOOD = 1000


def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads line")


@pytest.fixture
def redis_list(redis_broker: RedisBroker) -> Iterator[str]:
    name = f"mqtop-scrapers-{uuid.uuid4().hex[:8]}"
    client = redis.Redis(host=redis_broker.host, port=redis_broker.port)
    client.rpush(name, b"a")
    yield name
    client.delete(name)
    client.close()


def test_half_sent_requests_hold_neither_threads_nor_the_server(
    redis_broker, redis_list, write_config, tmp_path
):
    path = write_config(
        f"""
        interval: 1s
        brokers:
          - name: cache
            type: redis
            url: "redis://{redis_broker.host}:{redis_broker.port}/0"
            lists: ["{redis_list}"]
        """
    )
    port = free_port()
    serve = Serve(path, port, tmp_path / "serve")
    socks: list[socket.socket] = []
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        wait_until(lambda: redis_list in http_get(url)[1], 30, "the first poll exported")
        idle = _threads(serve.proc.pid)
        for _ in range(FLOOD):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # no blank line: half sent
            socks.append(sock)
        time.sleep(1.0)
        held = _threads(serve.proc.pid)
        assert held <= idle + MAX_CONNECTIONS + 4, (idle, held)
        # the connections beyond the cap were answered 503 and closed at once
        answered = 0
        for sock in socks[MAX_CONNECTIONS + 8 :]:
            with contextlib.suppress(OSError):
                sock.settimeout(0.5)
                if sock.recv(200).startswith(b"HTTP/1.1 503"):
                    answered += 1
        assert answered >= FLOOD - MAX_CONNECTIONS - 8 - 16, answered
        # after the request timeout the held connections are closed and /metrics answers
        started = time.monotonic()
        wait_until(lambda: http_get(url)[0] == 200, REQUEST_TIMEOUT + 10, "a scrape after")
        assert time.monotonic() - started < REQUEST_TIMEOUT + 10
        status, text = http_get(url)
        assert status == 200 and redis_list in text
        assert 'mqtop_up{broker="cache"} 1' in text
        wait_until(lambda: _threads(serve.proc.pid) <= idle + 4, 10, "threads released")
    finally:
        for sock in socks:
            sock.close()
        assert serve.stop() == 0
