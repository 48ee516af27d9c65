"""The RabbitMQ management HTTP API: one GET, bounded in time and size, parsed off the loop.

Every request has a total deadline (connect, headers and body together), never only a
per-read timeout: an API that trickles one byte every few seconds ends at the deadline like
one that never answers. An answer larger than ``max_response_mb`` is refused while it is being
read, and JSON larger than ``INLINE_PARSE_BYTES`` is parsed in a worker thread so a big
answer never stalls the event loop (the dashboard, other brokers' polls). Non-finite numbers
(``NaN``, ``Infinity``, ``1e999``) decode to ``None``: a metric the broker cannot state is null.

Polls go through a long-lived ``httpx.AsyncClient`` (connections are reused across pages); a
one-off call made before that (a message action on the command line) uses ``http.client`` in
a daemon thread, whose socket is shut when the deadline passes (nothing waits for it at exit).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.client
import json
import math
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlencode, urlsplit

if TYPE_CHECKING:
    import httpx

T = TypeVar("T")

DEFAULT_MAX_RESPONSE_MB = 64
INLINE_PARSE_BYTES = 256 * 1024  # smaller answers are parsed on the event loop
CHUNK_BYTES = 256 * 1024


class ManagementUnavailable(Exception):
    """The management API cannot be reached or answered nonsense (the collector falls back
    to AMQP and says why)."""


class ManagementRefused(Exception):
    """An answer a fallback would hide: 401/403, or a certificate that fails verification."""


def _finite_float(text: str) -> float | None:
    value = float(text)
    return value if math.isfinite(value) else None


def _no_constant(_name: str) -> None:
    return None  # NaN, Infinity, -Infinity


def decode_json(path: str, content: bytes) -> Any:
    """JSON with non-finite numbers as None; ManagementUnavailable when it is not JSON."""
    try:
        return json.loads(content, parse_float=_finite_float, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise ManagementUnavailable(f"/api/{path} did not answer JSON ({exc})") from None


def check_status(path: str, status: int) -> bool:
    """False for 404 (nothing there); raises for refusals and errors."""
    if status in (401, 403):
        raise ManagementRefused(
            f"management API refused the credentials (HTTP {status}): "
            "check the user in url/management_url and its management tag"
        )
    if status == 404:
        return False
    if status >= 400:
        raise ManagementUnavailable(f"HTTP {status} from /api/{path}")
    return True


def too_large(path: str, limit: int) -> ManagementUnavailable:
    return ManagementUnavailable(
        f"/api/{path}: response larger than {limit / (1024 * 1024):g} MB (max_response_mb); "
        "narrow vhosts/include or raise max_response_mb"
    )


async def in_daemon_thread(fn: Callable[[], T]) -> T:
    """Run ``fn`` in a daemon thread: never joined at exit, its result or error returned."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def deliver(ok: bool, value: Any) -> None:
        if future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def run() -> None:
        try:
            result: Any = fn()
        except BaseException as exc:  # handed to the awaiting coroutine
            with contextlib.suppress(RuntimeError):  # the loop is gone
                loop.call_soon_threadsafe(deliver, False, exc)
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(deliver, True, result)

    threading.Thread(target=run, name="mqtop-rabbitmq-http", daemon=True).start()
    return await future


async def parse(path: str, content: bytes) -> Any:
    """Decode an answer; a big one in a worker thread."""
    if len(content) <= INLINE_PARSE_BYTES:
        return decode_json(path, content)
    return await in_daemon_thread(lambda: decode_json(path, content))


class ManagementHttp:
    """GET requests on one management API, each with a total deadline and a size cap."""

    def __init__(
        self,
        base: str,
        auth: tuple[str, str],
        context: Callable[[], ssl.SSLContext],
        max_bytes: int,
    ) -> None:
        self.base = base
        self.auth = auth
        self._context = context  # built when first needed (https only)
        self.max_bytes = max_bytes
        self._client: httpx.AsyncClient | None = None

    @property
    def https(self) -> bool:
        return self.base.lower().startswith("https://")

    def open(self, max_connections: int, read_timeout: float) -> None:
        """Open the long-lived client used by polls (idempotent)."""
        if self._client is not None:
            return
        import httpx

        # a plain-HTTP API never uses TLS (redirects are not followed): no CA bundle to load,
        # which costs 0.1-0.4 s of CPU per client on a busy machine
        self._client = httpx.AsyncClient(
            base_url=self.base,
            auth=self.auth,
            verify=self._context() if self.https else False,
            timeout=httpx.Timeout(read_timeout),  # each request also has a total deadline
            limits=httpx.Limits(max_connections=max_connections),
            headers={"Accept": "application/json"},
            trust_env=False,
        )

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()

    async def get(self, path: str, params: Mapping[str, str | int] | None, seconds: float) -> Any:
        """``/api/{path}`` as JSON, None for 404, within ``seconds`` in all."""
        if seconds <= 0:
            raise ManagementUnavailable(f"/api/{path}: no time left in this poll's budget")
        try:
            async with asyncio.timeout(seconds):
                if self._client is not None:
                    status, content = await self._get_async(path, params)
                else:
                    status, content = await self._get_blocking(path, params, seconds)
        except TimeoutError:
            raise ManagementUnavailable(
                f"/api/{path}: no complete answer within {seconds:.3g}s"
            ) from None
        if not check_status(path, status):
            return None
        return await parse(path, content)

    async def _get_async(
        self, path: str, params: Mapping[str, str | int] | None
    ) -> tuple[int, bytes]:
        assert self._client is not None
        async with self._client.stream("GET", f"/api/{path}", params=params) as response:
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.max_bytes:
                raise too_large(path, self.max_bytes)
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes(CHUNK_BYTES):
                size += len(chunk)
                if size > self.max_bytes:
                    raise too_large(path, self.max_bytes)
                chunks.append(chunk)
            return response.status_code, b"".join(chunks)

    async def _get_blocking(
        self, path: str, params: Mapping[str, str | int] | None, seconds: float
    ) -> tuple[int, bytes]:
        deadline = time.monotonic() + seconds
        held: list[http.client.HTTPConnection] = []
        try:
            return await in_daemon_thread(lambda: self._fetch(path, params, deadline, held))
        finally:
            for conn in held:  # wakes a thread still blocked on the socket
                sock = conn.sock
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)

    def _fetch(
        self,
        path: str,
        params: Mapping[str, str | int] | None,
        deadline: float,
        held: list[http.client.HTTPConnection],
    ) -> tuple[int, bytes]:
        parts = urlsplit(self.base)
        left = max(0.01, deadline - time.monotonic())
        conn: http.client.HTTPConnection
        if self.https:
            conn = http.client.HTTPSConnection(
                parts.hostname or "localhost", parts.port, timeout=left, context=self._context()
            )
        else:
            conn = http.client.HTTPConnection(
                parts.hostname or "localhost", parts.port, timeout=left
            )
        held.append(conn)
        token = base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
        target = f"{parts.path}/api/{path}" + (f"?{urlencode(params)}" if params else "")
        headers = {"Accept": "application/json", "Authorization": f"Basic {token}"}
        try:
            conn.request("GET", target, headers=headers)
            response = conn.getresponse()
            if (response.length or 0) > self.max_bytes:
                raise too_large(path, self.max_bytes)
            chunks: list[bytes] = []
            size = 0
            while True:
                if time.monotonic() > deadline:
                    raise TimeoutError
                chunk = response.read1(CHUNK_BYTES)
                if not chunk:
                    break
                size += len(chunk)
                if size > self.max_bytes:
                    raise too_large(path, self.max_bytes)
                chunks.append(chunk)
            return response.status, b"".join(chunks)
        finally:
            conn.close()
