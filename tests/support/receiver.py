"""A real local HTTP server that records what notifiers send (a helper, no tests here)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    time: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Records every request; answers with ``statuses`` in turn (then 200), after ``delay``."""

    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    requests: list[Request] = field(default_factory=list)
    attempts: int = 0
    _server: ThreadingHTTPServer | None = None
    _cond: threading.Condition = field(default_factory=threading.Condition)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._cond:
                    receiver.attempts += 1
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                if receiver.delay:
                    time.sleep(receiver.delay)
                if 200 <= status < 300:
                    with receiver._cond:
                        receiver.requests.append(
                            Request("POST", self.path, dict(self.headers), body, time.time())
                        )
                        receiver._cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                try:
                    self.wfile.write(b"ok")
                except OSError:
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def wait_for(
        self, predicate: Callable[[list[Request]], bool], timeout: float = 30.0
    ) -> list[Request]:
        """Block until ``predicate(requests)`` is true; return the requests."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.requests):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"receiver: condition not met in {timeout}s; got {len(self.requests)} "
                        f"request(s): {[r.body[:300] for r in self.requests]}"
                    )
                self._cond.wait(remaining)
            return list(self.requests)

    async def until(
        self, predicate: Callable[[list[Request]], bool], timeout: float = 30.0
    ) -> list[Request]:
        """Like :meth:`wait_for`, without blocking the event loop."""
        import asyncio

        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                if predicate(self.requests):
                    return list(self.requests)
            if time.monotonic() > deadline:
                raise AssertionError(f"receiver: condition not met in {timeout}s")
            await asyncio.sleep(0.02)
