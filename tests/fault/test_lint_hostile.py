"""``mqtop lint`` against hostile management APIs on loopback: malformed entries are skipped
and noted, hostile names escaped, an error answer or a silent endpoint is exit 3 with one clear
line, and the URL's password is never printed."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

PASSWORD = "Pw-d0nt-pr1nt-me"
EVIL = "orders\x1b]0;owned\x07\u202e"

QUEUES: list[Any] = [
    {"name": EVIL, "vhost": "/", "type": "classic", "arguments": {}, "consumers": 1},
    {"vhost": "/", "type": "classic"},  # no name: skipped and noted
    {"name": "weird-args", "vhost": "/", "arguments": ["not", "a", "map"], "consumers": 1},
    "not an object",
]


def _answers(status: int) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            body: Any = {"rabbitmq_version": "3.10.8"}
            if path == "/api/queues":
                body = {"items": QUEUES, "page": 1, "page_count": 1}
            elif path == "/api/exchanges":
                body = {"items": [{"name": "x"}, 7], "page": 1, "page_count": 1}
            elif path == "/api/bindings":
                body = [{"source": "x"}, None]
            data = json.dumps(body).encode() if status == 200 else b"<html>boom</html>"
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def endpoint(request) -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _answers(request.param))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _config(write_config, port: int, extra: str = "") -> str:
    return str(
        write_config(
            "brokers:\n"
            "  - name: rabbit\n"
            "    type: rabbitmq\n"
            f'    url: "amqp://guest:{PASSWORD}@127.0.0.1:1/"\n'
            f'    management_url: "http://guest:{PASSWORD}@127.0.0.1:{port}"\n' + extra
        )
    )


@pytest.mark.parametrize("endpoint", [200], indirect=True)
def test_malformed_entries_are_skipped_and_names_escaped(endpoint, write_config, run_cli):
    path = _config(write_config, endpoint)
    result = run_cli("-vv", "lint", "--config", path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and PASSWORD not in result.stdout + result.stderr
    assert "\x1b" not in result.stdout and "\u202e" not in result.stdout
    assert "orders\\x1b]0;owned\\x07\\u202e: no dead-letter exchange" in result.stdout
    assert "weird-args: no dead-letter exchange" in result.stdout
    assert "note: broker 'rabbit': a queue entry without name or vhost was skipped" in (
        result.stdout
    )
    assert "note: broker 'rabbit': 2 malformed binding entries skipped" in result.stdout
    data = json.loads(run_cli("lint", "--config", path, "--format", "json").stdout)
    assert {f["queue"] for f in data["findings"]} == {EVIL, "weird-args"}


@pytest.mark.parametrize("endpoint", [500], indirect=True)
def test_error_answer_is_exit_3_without_the_password(endpoint, write_config, run_cli):
    result = run_cli("lint", "--config", _config(write_config, endpoint), "--format", "json")
    assert result.returncode == 3
    data = json.loads(result.stdout)
    assert data["findings"] == [] and data["status"] == "ok"
    assert "answered HTTP 500" in data["errors"][0]
    assert PASSWORD not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_silent_endpoint_ends_within_its_timeout(write_config, run_cli):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        path = _config(write_config, sock.getsockname()[1], "    http_timeout: 2s\n")
        started = time.monotonic()
        result = run_cli("lint", "--config", path)
        elapsed = time.monotonic() - started
    finally:
        sock.close()
    assert result.returncode == 3, result.stdout + result.stderr
    assert elapsed < 2 + 10, elapsed  # the timeout plus interpreter start-up on a busy box
    assert "error: broker 'rabbit' could not be read" in result.stdout
    assert PASSWORD not in result.stdout + result.stderr
