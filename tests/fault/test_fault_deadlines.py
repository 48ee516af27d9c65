"""Every one-shot command keeps its stated deadline whatever a broker's client library does:
the engine, not the collector, ends a poll.

The hostile broker is a RabbitMQ whose management API refuses connections (so the collector
falls back to AMQP through pika's blocking client, run in a thread) and whose AMQP port
accepts connections and never answers (pika waits ~20 s for its handshake). Before, the
poll said "timed out after 5s" at 5 s, yet the command lasted ~21 s: the thread was waited
for at exit. A real Redis in the same config is still reported, up, with its series.

What is asserted: `metrics` (table, json), `queues` and `check --once` end within their stated
deadline (metrics/check: interval + 2 x timeout + 1 s; queues: timeout + 1 s) plus interpreter
start-up; exit 3 (SPEC §4: a broker could not be reached); the Redis broker up in the JSON
report with its list; `serve` exits 0 within 2 s of SIGTERM (plus a little scheduling slack;
before: ~16 s, pika's handshake waited for at exit) and exported the Redis list meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis

from tests.harness import RedisBroker, free_port
from tests.support.serve import Serve, http_get, wait_until

pytestmark = [pytest.mark.broker]

TIMEOUT = 5.0  # the hostile broker's poll timeout (room for importing pika under load)
INTERVAL = 1.0
STARTUP = 5.0  # interpreter start-up and imports on a loaded 2-core machine
TWO_POLLS = INTERVAL + 2 * TIMEOUT + 1.0  # the stated deadline of metrics and check --once
ONE_POLL = TIMEOUT + 1.0  # the stated deadline of queues


class SilentEndpoint:
    """A TCP listener that accepts every connection and never reads or answers."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.sock.accept()
                self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def silent() -> Iterator[SilentEndpoint]:
    endpoint = SilentEndpoint()
    yield endpoint
    endpoint.close()


@pytest.fixture
def redis_list(redis_broker: RedisBroker) -> Iterator[str]:
    name = f"mqtop-deadline-{uuid.uuid4().hex[:8]}"
    client = redis.Redis(host=redis_broker.host, port=redis_broker.port)
    client.rpush(name, b"a", b"b", b"c")
    yield name
    client.delete(name)
    client.close()


def _config(write_config: Callable[..., object], silent: SilentEndpoint, broker, name: str):
    refused = free_port()  # nothing listens: the management API refuses connections
    return write_config(
        f"""
        interval: {INTERVAL:g}s
        brokers:
          - name: hole
            type: rabbitmq
            url: "amqp://guest:guest@127.0.0.1:{silent.port}/"
            management_url: "http://127.0.0.1:{refused}"
            include: ["orders"]
            timeout: {TIMEOUT:g}s
          - name: cache
            type: redis
            url: "redis://{broker.host}:{broker.port}/0"
            lists: ["{name}"]
        """
    )


@pytest.mark.parametrize(
    ("command", "deadline"),
    [
        (("metrics", "--format", "json"), TWO_POLLS),
        (("metrics",), TWO_POLLS),
        (("queues", "--format", "json"), ONE_POLL),
        (("check", "--once", "--format", "json"), TWO_POLLS),
    ],
    ids=["metrics-json", "metrics", "queues", "check"],
)
def test_a_blocking_client_on_a_silent_broker_does_not_outlive_the_deadline(
    silent, redis_broker, redis_list, write_config, run_cli, command, deadline
):
    path = _config(write_config, silent, redis_broker, redis_list)
    started = time.monotonic()
    result = run_cli(*command, "--config", str(path), timeout=90)
    wall = time.monotonic() - started
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert wall < deadline + STARTUP, f"{' '.join(command)} took {wall:.1f}s"
    assert silent.accepted, "the AMQP port was never called"
    assert "Traceback" not in result.stdout + result.stderr
    # the engine's deadline, or the collector's own budget within it, names the failure
    assert "hole" in result.stderr and "unreachable: " in result.stderr, result.stderr
    assert (
        f"unreachable: timed out after {TIMEOUT:g}s" in result.stderr
        or "no connection within" in result.stderr
    ), result.stderr
    if command[0] == "metrics":
        doc = json.loads(result.stdout) if "json" in command else None
        if doc is not None:
            up = {b["name"]: b["up"] for b in doc["brokers"]}
            assert up == {"hole": False, "cache": True}
            mine = [s for s in doc["series"] if s["queue"] == redis_list]
            assert [s["broker"] for s in mine] == ["cache"]
            assert mine[0]["metrics"]["queue_length"] == 3
        else:
            assert redis_list in result.stdout
    elif command[0] == "queues":
        rows = json.loads(result.stdout)
        assert ("cache", redis_list) in [(r["broker"], r["queue"]) for r in rows]
        assert {r["broker"] for r in rows} == {"cache"}
    else:
        doc = json.loads(result.stdout)
        assert any("hole" in e for e in doc["errors"]), doc
        assert not any("cache" in e for e in doc["errors"]), doc


def test_metrics_help_states_the_deadline(run_cli):
    for command, words in (
        ("metrics", "interval + 2 x timeout + 1s"),
        ("queues", "timeout + 1s"),
        ("check", "interval + 2 x timeout + 1s"),
    ):
        result = run_cli(command, "--help")
        assert result.returncode == 0
        assert words in " ".join(result.stdout.split()), result.stdout


def test_serve_ends_within_two_seconds_of_sigterm_while_a_client_hangs(
    silent, redis_broker, redis_list, write_config, tmp_path
):
    path = _config(write_config, silent, redis_broker, redis_list)
    port = free_port()
    serve = Serve(path, port, tmp_path / "serve")
    try:
        wait_until(lambda: http_get(f"http://127.0.0.1:{port}/metrics")[0] == 200, 30, "serve")
        wait_until(lambda: len(silent.accepted) > 0, 15, "a connection to the silent broker")
        wait_until(
            lambda: f'queue="{redis_list}"' in http_get(f"http://127.0.0.1:{port}/metrics")[1],
            15,
            "the Redis list exported while the other broker hangs",
        )
        time.sleep(0.5)  # pika now waits for a handshake that never comes
        serve.proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        code = serve.proc.wait(timeout=90)
        wall = time.monotonic() - started
    finally:
        if serve.proc.poll() is None:
            serve.proc.kill()
            serve.proc.wait()
    assert code == 0, serve.stderr_path.read_text()
    assert wall < 2.0 + 0.5, f"serve took {wall:.1f}s to exit after SIGTERM"
    stderr = serve.stderr_path.read_text()
    assert '"msg": "stopped"' in stderr
    assert "Traceback" not in stderr
