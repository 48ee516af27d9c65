"""Hostile RabbitMQ endpoints on loopback: a management API and an AMQP port that accept
connections and never answer, a management API that trickles one byte every 2 s, one that
answers 500, bad JSON, 200 MB, an absurd ``page_count``, entries that are not queues and
non-finite counters; an AMQP port with nothing listening.

What is asserted: every command ends within the deadline it states (a poll within the
broker's ``timeout``; ``dlq peek`` within twice it, management lookup then AMQP connection)
plus a margin for interpreter start-up, with exit 3 and one line naming what failed (the
management API's own error, not only the AMQP fallback's), no traceback, no pika log lines;
a huge answer is refused by size (memory bounded), bad entries are skipped and counted; the
real RabbitMQ next to the hostile one keeps reporting.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.harness import free_port

pytestmark = pytest.mark.broker

TIMEOUT = 3  # seconds: the broker's poll timeout in the configs below
# interpreter start-up and imports on a loaded 2-core machine (1-3 s), and the one interval
# (1 s, set in the configs below) that `metrics` waits between its two polls of the real broker
MARGIN = 8.0
# the poll timeout of tests whose fake answers at once (what is asserted is the answer's own
# error): far enough that a loaded machine never reaches the engine's deadline first; their
# wall-time bounds stay those of TIMEOUT
PROMPT = 15
REAL = """
          - name: real
            type: rabbitmq
            url: "amqp://guest:guest@127.0.0.1:5672/"
            management_url: "http://127.0.0.1:15672/"
            include: ["mqtop-hostile-none-*"]
"""


class SilentEndpoint:
    """A TCP listener that accepts every connection and never answers (or trickles)."""

    def __init__(self, trickle: bytes | None = None, every: float = 2.0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.trickle = trickle
        self.every = every
        self.closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.sock.accept()
                self.accepted.append(conn)  # held open
                if self.trickle is not None:
                    threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        assert self.trickle is not None
        with contextlib.suppress(OSError):
            conn.recv(65536)
            for byte in self.trickle:
                conn.sendall(bytes([byte]))
                if self.closed.wait(self.every):
                    return

    def close(self) -> None:
        self.closed.set()
        self.sock.close()
        for conn in self.accepted:
            conn.close()


Route = Callable[[BaseHTTPRequestHandler], None]


def send_json(handler: BaseHTTPRequestHandler, body: bytes, status: int = 200) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


OVERVIEW = json.dumps({"rates_mode": "basic", "rabbitmq_version": "3.10.8"}).encode()


class FakeManagement:
    """A management API answering ``/api/overview`` sanely and ``/api/queues`` by ``queues``."""

    def __init__(self, queues: Route, overview: Route | None = None) -> None:
        routes = {"/api/overview": overview or (lambda h: send_json(h, OVERVIEW))}
        self.requests: list[str] = []
        requests = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                requests.append(self.path)
                path = self.path.split("?", 1)[0]
                route = routes.get(path, queues if path.startswith("/api/queues") else None)
                if route is None:
                    send_json(self, b'{"error":"not_found"}', 404)
                    return
                with contextlib.suppress(OSError):
                    route(self)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoints() -> Iterator[list[Any]]:
    opened: list[Any] = []
    yield opened
    for endpoint in opened:
        endpoint.close()


def _config(
    write_config, mgmt_port: int, amqp_port: int, extra: str = "", timeout: int = TIMEOUT
) -> Any:
    return write_config(
        f"""
        interval: 1s
        brokers:
          - name: hole
            type: rabbitmq
            url: "amqp://guest:s3cr3t-hostile@127.0.0.1:{amqp_port}/"
            management_url: "http://127.0.0.1:{mgmt_port}/"
            timeout: {timeout}s
            {extra}
        {REAL}
        """
    )


def _timed(run_cli, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = run_cli(*args, timeout=200)
    return result, time.monotonic() - started


def _hole_error(result: subprocess.CompletedProcess[str]) -> str:
    """The one error line about broker 'hole'; checks the rest of the output is clean."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert "s3cr3t-hostile" not in output
    assert "pika" not in output.lower(), output  # no library log lines
    lines = [line for line in output.splitlines() if "'hole'" in line]
    assert len(lines) == 1, output
    return lines[0]


def _real_up(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    brokers = {b["name"]: b for b in json.loads(result.stdout)["brokers"]}
    assert brokers["real"]["up"] is True, brokers  # the other broker keeps reporting
    return brokers


# ---------------------------------------------------------------- time


@pytest.mark.parametrize("command", [("metrics",), ("queues",), ("check", "--once")])
def test_black_holes_end_within_the_poll_timeout(endpoints, write_config, run_cli, command):
    mgmt, amqp = SilentEndpoint(), SilentEndpoint()
    endpoints += [mgmt, amqp]
    path = _config(write_config, mgmt.port, amqp.port)
    result, wall = _timed(run_cli, *command, "--config", str(path))
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert wall < TIMEOUT + MARGIN, f"{' '.join(command)} took {wall:.1f}s"
    line = _hole_error(result)
    assert mgmt.accepted and amqp.accepted
    if line.endswith(f"unreachable: timed out after {TIMEOUT}s"):
        # a loaded machine: the engine's deadline came first, with its own bounded wording
        return
    # both failures named, each with its own deadline, within the poll's timeout
    assert "management API at http://127.0.0.1" in line and "no complete answer" in line, line
    assert "AMQP" in line and "no connection within" in line, line


def test_dlq_peek_on_black_holes_keeps_its_deadline(endpoints, write_config, run_cli):
    mgmt, amqp = SilentEndpoint(), SilentEndpoint()
    endpoints += [mgmt, amqp]
    path = _config(write_config, mgmt.port, amqp.port)
    result, wall = _timed(run_cli, "dlq", "peek", "hole", "orders.dlq", "--config", str(path))
    assert result.returncode == 3, (result.stdout, result.stderr)
    # the management lookups share one deadline, then the AMQP connection has its own
    assert wall < 2 * TIMEOUT + MARGIN, f"dlq peek took {wall:.1f}s (before: 60-81 s)"
    assert f"AMQP at 127.0.0.1:{amqp.port}: no connection within {TIMEOUT}s" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_dlq_peek_on_a_trickling_management_api_ends(endpoints, write_config, run_cli):
    """One byte every 2 s never trips a per-read timeout: the total deadline ends it."""
    trickle = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" * 100
    mgmt, amqp = SilentEndpoint(trickle=trickle, every=2.0), SilentEndpoint()
    endpoints += [mgmt, amqp]
    path = _config(write_config, mgmt.port, amqp.port)
    result, wall = _timed(run_cli, "dlq", "peek", "hole", "orders.dlq", "--config", str(path))
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert wall < 2 * TIMEOUT + MARGIN, f"dlq peek took {wall:.1f}s (before: never returned)"
    assert "Traceback" not in result.stdout + result.stderr
    assert mgmt.accepted


# ---------------------------------------------------------------- causes


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        (lambda h: send_json(h, b'{"error":"boom"}', 500), "HTTP 500 from /api/overview"),
        (lambda h: send_json(h, b"<html>not json"), "/api/overview did not answer JSON"),
    ],
    ids=["http-500", "bad-json"],
)
def test_management_errors_are_reported_as_themselves(
    endpoints, write_config, run_cli, answer, said
):
    fake = FakeManagement(queues=answer, overview=answer)
    endpoints.append(fake)
    refused = free_port()  # nothing listens: the AMQP fallback is refused too
    path = _config(write_config, fake.port, refused, timeout=PROMPT)
    result, wall = _timed(run_cli, "metrics", "--format", "json", "--config", str(path))
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert wall < TIMEOUT + MARGIN
    line = _hole_error(result)
    assert said in line, line  # the management API's own error, before the fallback's
    assert "AMQP fallback" in line and "refused" in line.lower(), line
    brokers = _real_up(result)
    assert said in brokers["hole"]["error"]


def test_a_failed_poll_logs_one_mqtop_line_and_no_pika_errors(endpoints, write_config, tmp_path):
    """serve logs at INFO: each failed poll is one mqtop line, never pika's ERROR lines."""
    from tests.support.serve import Serve

    fake_500 = FakeManagement(
        queues=lambda h: send_json(h, b"{}", 500), overview=lambda h: send_json(h, b"{}", 500)
    )
    endpoints.append(fake_500)
    path = _config(write_config, fake_500.port, free_port(), "interval: 1s")
    serve = Serve(path, 0, tmp_path / "serve")
    try:
        serve.started()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            failures = [e for e in serve.logs() if "hole" in str(e.get("msg", ""))]
            if len(failures) >= 2:
                break
            time.sleep(0.2)
    finally:
        serve.stop()
    entries = serve.logs()
    assert not [e for e in entries if str(e.get("logger", e.get("name", ""))).startswith("pika")]
    text = serve.stderr_path.read_text()
    assert "pika" not in text.lower(), text[-3000:]
    hole = [e for e in entries if "hole" in str(e.get("msg", ""))]
    assert hole, entries
    said = json.dumps(hole)
    # the cause is named; on a loaded machine the engine's deadline may come first instead
    assert "HTTP 500 from /api/overview" in said or f"timed out after {TIMEOUT}s" in said, hole


# ---------------------------------------------------------------- size and pages


def _queue(name: str, **values: Any) -> dict[str, Any]:
    return {
        "name": name,
        "vhost": "/",
        "type": "classic",
        "messages": 5,
        "messages_ready": 4,
        "messages_unacknowledged": 1,
        "consumers": 0,
        **values,
    }


def _streamed(total: int) -> Route:
    """A chunked answer of ``total`` bytes: a queue list that never ends soon."""
    entry = json.dumps(_queue("q" * 200)).encode() + b","
    block = entry * (1024 * 1024 // len(entry))

    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        head = b'{"page_count":1,"filtered_count":1,"items":['
        sent = 0
        for chunk in (head, *([block] * (total // len(block)))):
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
        handler.wfile.write(b"0\r\n\r\n")

    return route


def _max_rss_mb(args: list[str], env_path: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run ``mqtop ARGS`` in a child of a fresh interpreter: the child's peak RSS in MB."""
    code = (
        "import resource, subprocess, sys\n"
        "r = subprocess.run([sys.executable, '-m', 'mqtop', *sys.argv[1:]], "
        "capture_output=True, text=True)\n"
        "sys.stdout.write(r.stdout); sys.stderr.write(r.stderr)\n"
        "print('RSS', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
        "sys.exit(r.returncode)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=200,
        cwd=env_path,
        check=False,
    )
    rss = [line for line in result.stderr.splitlines() if line.startswith("RSS ")]
    return result, int(rss[-1].split()[1]) / 1024


def test_a_200_mb_answer_is_refused_by_size(endpoints, write_config, tmp_path):
    fake = FakeManagement(queues=_streamed(200 * 1024 * 1024))
    endpoints.append(fake)
    path = _config(write_config, fake.port, free_port(), timeout=20)
    started = time.monotonic()
    result, rss = _max_rss_mb(["metrics", "--format", "json", "--config", str(path)], tmp_path)
    wall = time.monotonic() - started
    assert result.returncode == 3, result.stderr[-2000:]
    line = _hole_error(result)
    assert "response larger than 64 MB" in line, line
    # 64 MB read, never parsed (before: a multi-GB parse of 200 MB)
    assert rss < 400, f"peak RSS {rss:.0f} MB"
    assert wall < 20 + MARGIN
    _real_up(result)


def test_an_absurd_page_count_is_refused_without_a_request_per_page(
    endpoints, write_config, run_cli
):
    body = json.dumps(
        {"page_count": 100_000_000, "filtered_count": 3, "items": [_queue("a"), _queue("b")]}
    ).encode()
    fake = FakeManagement(queues=lambda h: send_json(h, body))
    endpoints.append(fake)
    path = _config(write_config, fake.port, free_port(), timeout=PROMPT)
    result, wall = _timed(run_cli, "metrics", "--format", "json", "--config", str(path))
    assert result.returncode == 3, (result.stdout, result.stderr)
    # refused at the first page, within the poll timeout; the rest is start-up under load
    assert wall < 2 * TIMEOUT + MARGIN, f"took {wall:.1f}s"
    line = _hole_error(result)
    assert "page_count 100000000 does not fit filtered_count 3" in line, line
    assert len([r for r in fake.requests if r.startswith("/api/queues")]) <= 2
    _real_up(result)


# ---------------------------------------------------------------- entries


def test_bad_entries_and_non_finite_counters_do_not_mark_the_broker_down(
    endpoints, write_config, run_cli
):
    items = ",".join(
        [
            json.dumps(_queue("good")),
            "42",
            '"a string"',
            "null",
            '{"name": 7, "vhost": "/"}',
            json.dumps(_queue("nan-ready")).replace('"messages_ready": 4', '"messages_ready": NaN'),
            json.dumps(_queue("inf-consumers")).replace('"consumers": 0', '"consumers": Infinity'),
            json.dumps(_queue("huge")).replace('"messages": 5', '"messages": 1e999'),
        ]
    )
    body = ('{"page_count": 1, "filtered_count": 8, "items": [' + items + "]}").encode()
    fake = FakeManagement(queues=lambda h: send_json(h, body))
    endpoints.append(fake)
    path = _config(write_config, fake.port, free_port(), timeout=PROMPT)
    result = run_cli("metrics", "--format", "json", "--config", str(path), timeout=120)
    assert "Traceback" not in result.stdout + result.stderr
    brokers = {b["name"]: b for b in json.loads(result.stdout)["brokers"]}
    assert brokers["hole"]["up"] is True, brokers
    assert brokers["real"]["up"] is True, brokers
    series = {
        s["queue"]: s["metrics"]
        for s in json.loads(result.stdout)["series"]
        if s["broker"] == "hole"
    }
    assert set(series) == {"good", "nan-ready", "inf-consumers", "huge"}, series
    assert series["good"]["queue_length"] == 4
    assert series["nan-ready"]["queue_length"] is None  # never 0, never NaN
    assert series["inf-consumers"]["consumers"] is None
    assert series["huge"]["queue_length"] == 4
    table = run_cli("metrics", "--config", str(path), timeout=120)
    assert "4 entries of the management API's queue list skipped" in table.stdout, table.stdout


# ---------------------------------------------------------------- memory and the event loop


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / (1024 * 1024)


def test_big_answers_are_parsed_off_the_loop_and_memory_stays_bounded(endpoints, monkeypatch):
    """25 polls of a 3 MB queue list: parsed in a worker thread, no response kept alive by a
    reference cycle (the cyclic collector stays off during the polls), RSS flat."""
    import asyncio
    import gc

    from collectors.rabbitmq import management
    from collectors.rabbitmq.collector import RabbitMQCollector, RabbitMQOptions

    body = json.dumps(
        {
            "page_count": 1,
            "filtered_count": 6000,
            "items": [_queue(f"q{i:05}") for i in range(6000)],
        }
    ).encode()
    assert len(body) > 2 * management.INLINE_PARSE_BYTES
    fake = FakeManagement(queues=lambda h: send_json(h, body))
    endpoints.append(fake)
    on_main: list[bool] = []
    decode = management.decode_json

    def spy(path: str, content: bytes) -> Any:
        if len(content) > management.INLINE_PARSE_BYTES:  # small answers are parsed inline
            on_main.append(threading.current_thread() is threading.main_thread())
        return decode(path, content)

    monkeypatch.setattr(management, "decode_json", spy)
    options = RabbitMQOptions(
        name="big",
        url=f"amqp://guest:guest@127.0.0.1:{free_port()}/",
        management_url=f"http://127.0.0.1:{fake.port}/",
        timeout=30,
    )

    async def polls() -> tuple[float, float, int]:
        collector = RabbitMQCollector(options)
        await collector.connect()
        try:
            first = 0.0
            for n in range(25):
                collected = await collector.collect()
                assert len(collected.series) == 6000
                del collected
                if n == 4:
                    first = _rss_mb()
            # objects that only a reference cycle keeps (the collector itself is alive)
            gc.set_debug(gc.DEBUG_SAVEALL)
            cyclic = gc.collect()
            gc.set_debug(0)
            return first, _rss_mb(), cyclic
        finally:
            await collector.close()

    gc.collect()
    gc.disable()
    try:
        first, last, cyclic = asyncio.run(polls())
        kept = [x for x in gc.garbage if isinstance(x, bytes | str | list | dict) and len(x) > 1000]
        gc.garbage.clear()
    finally:
        gc.enable()
    print(f"RSS after 5 polls {first:.0f} MB, after 25 {last:.0f} MB; {cyclic} cyclic objects")
    assert len(on_main) >= 25 and not any(on_main), "a big answer was parsed on the loop"
    assert not kept, f"{len(kept)} answers (or their decoded lists) kept alive by a cycle"
    assert cyclic < 5000, f"{cyclic} objects only a cycle kept alive after 25 polls"
    assert last - first < 40, f"RSS grew {last - first:.0f} MB over 20 polls"
