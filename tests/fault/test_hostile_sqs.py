"""Hostile SQS endpoints on loopback: one that accepts connections and never answers, and one
that refuses them, with a password in the endpoint URL.

What is asserted: `metrics`, `queues` and `check --once` end within the stated poll timeout
plus a small margin (before: ~81 s, botocore's 20 s read timeout x 3 attempts, waited for at
exit), with one line on stderr naming the timeout and exit 3; `serve` ends within seconds of
SIGTERM while a call hangs; with `-vv` nothing prints the URL's password.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from tests.harness import free_port
from tests.support.serve import Serve, http_get, wait_until

PASSWORD = "Pw-d0nt-pr1nt-me"
TIMEOUT = 2  # seconds: the poll timeout the commands state
MARGIN = 8.0  # interpreter start-up and imports on a loaded 2-core machine (1-3 s)


class SilentEndpoint:
    """A TCP listener that accepts every connection and never reads or answers."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.sock.accept()
                self.accepted.append(conn)  # held open, never answered

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def silent() -> Iterator[SilentEndpoint]:
    endpoint = SilentEndpoint()
    yield endpoint
    endpoint.close()


def _config(write_config: Callable[..., object], port: int, extra: str = "") -> object:
    return write_config(
        f"""
        brokers:
          - name: hole
            type: sqs
            endpoint_url: "http://alice:{PASSWORD}@127.0.0.1:{port}"
            timeout: {TIMEOUT}s
            cloudwatch: true
        {extra}
        """
    )


def _timed(run_cli: Callable[..., subprocess.CompletedProcess[str]], *args: str):
    started = time.monotonic()
    result = run_cli(*args, timeout=60)
    return result, time.monotonic() - started


@pytest.mark.parametrize(
    "command",
    [("metrics",), ("queues",), ("check", "--once"), ("metrics", "--format", "json")],
    ids=["metrics", "queues", "check", "metrics-json"],
)
def test_black_hole_ends_within_the_timeout(silent, write_config, run_cli, command):
    path = _config(write_config, silent.port)
    result, wall = _timed(run_cli, *command, "--config", str(path))
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert wall < TIMEOUT + MARGIN, f"{' '.join(command)} took {wall:.1f}s"
    assert len([line for line in result.stderr.splitlines() if line.strip()]) <= 1, result.stderr
    said = f"(http://127.0.0.1:{silent.port}) unreachable: timed out after {TIMEOUT}s"
    output = result.stdout + result.stderr
    assert len([line for line in output.splitlines() if said in line]) == 1, output
    assert "Traceback" not in output
    assert PASSWORD not in result.stdout + result.stderr
    assert silent.accepted, "the endpoint was never called"


def test_serve_stops_promptly_while_a_call_hangs(silent, write_config, tmp_path):
    path = _config(write_config, silent.port, "interval: 1s")
    port = free_port()
    serve = Serve(path, port, tmp_path / "serve")
    try:
        wait_until(lambda: http_get(f"http://127.0.0.1:{port}/metrics")[0] == 200, 30, "serve")
        wait_until(lambda: len(silent.accepted) > 0, 10, "a call to the silent endpoint")
        time.sleep(0.5)  # the call is now waiting for an answer that never comes
        serve.proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        code = serve.proc.wait(timeout=60)
        wall = time.monotonic() - started
    finally:
        if serve.proc.poll() is None:
            serve.proc.kill()
            serve.proc.wait()
    assert code == 0, serve.stderr_path.read_text()
    assert wall < 3.0, f"serve took {wall:.1f}s to exit after SIGTERM"
    assert PASSWORD not in serve.stderr_path.read_text() + serve.stdout_path.read_text()


@pytest.mark.parametrize("command", [("metrics",), ("dlq", "peek", "hole", "orders-dlq")])
def test_debug_logs_never_print_the_endpoint_password(write_config, run_cli, command):
    port = free_port()  # nothing listens: every call fails and botocore logs a traceback
    path = _config(write_config, port)
    result = run_cli("-vv", *command, "--config", str(path), timeout=60)
    assert result.returncode == 3, result.stderr
    assert "Traceback" in result.stderr  # -vv does print botocore's tracebacks
    assert PASSWORD not in result.stdout + result.stderr
    assert f"127.0.0.1:{port}" in result.stderr
