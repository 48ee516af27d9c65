"""The Jolokia client's plain-TCP connections on asyncio's own streams.

httpx's async client reaches the network through httpcore's anyio backend, which wraps every
read in a cancel scope and a timeout of its own: a poll's answer (about 1 MB at 2,000 Artemis
queues, arriving in some 30 pieces) cost 1.5-2 ms more CPU that way than through this backend
(asyncio ``StreamReader``, one ``asyncio.timeout`` per read). It is used for ``http://``
endpoints only: TLS (``https://``) keeps httpx's default backend. Failures are raised as
httpcore's exceptions, which httpx turns into its own (``httpx.ConnectError``,
``httpx.ReadTimeout``...) exactly as with its default backend.
"""

from __future__ import annotations

import asyncio
import select
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore

READ_LIMIT = 1 << 20  # the stream's buffer: large answers are read in large pieces


def _readable(sock: socket.socket | None) -> bool:
    """True when the socket has data or EOF waiting (an idle kept-alive connection that is
    readable was closed by the server, or holds garbage: it is not reused)."""
    if sock is None or sock.fileno() < 0:
        return True
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    return bool(poller.poll(0))


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One TCP connection: an asyncio StreamReader / StreamWriter pair."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        try:
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)
        except TimeoutError:
            raise httpcore.ReadTimeout("timed out reading the answer") from None
        except OSError as exc:
            raise httpcore.ReadError(str(exc) or type(exc).__name__) from None

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        if not buffer:
            return
        try:
            async with asyncio.timeout(timeout):
                self._writer.write(buffer)
                await self._writer.drain()
        except TimeoutError:
            raise httpcore.WriteTimeout("timed out sending the request") from None
        except OSError as exc:
            raise httpcore.WriteError(str(exc) or type(exc).__name__) from None

    async def aclose(self) -> None:
        self._writer.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("TLS is not used on this connection (an http:// endpoint)")

    def get_extra_info(self, info: str) -> Any:
        if info == "socket":
            return self._writer.get_extra_info("socket")
        if info == "is_readable":
            return self._reader.at_eof() or _readable(self._writer.get_extra_info("socket"))
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """Opens plain TCP connections with ``asyncio.open_connection``."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        local = (local_address, 0) if local_address else None
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    host, port, limit=READ_LIMIT, local_addr=local
                )
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"timed out connecting to {host}:{port}") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from None
        sock = writer.get_extra_info("socket")
        for option in socket_options or ():
            if sock is not None:
                sock.setsockopt(*option)
        return AsyncioStream(reader, writer)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def plain_transport() -> Any:
    """An httpx transport for an ``http://`` endpoint whose connections use AsyncioBackend
    (httpx's default settings otherwise); httpx's default transport if this httpx keeps its
    connection pool elsewhere."""
    import httpx

    transport = httpx.AsyncHTTPTransport(verify=False, trust_env=False)
    if isinstance(getattr(transport, "_pool", None), httpcore.AsyncConnectionPool):
        transport._pool = httpcore.AsyncConnectionPool(
            ssl_context=None,
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            http1=True,
            http2=False,
            network_backend=AsyncioBackend(),
        )
    return transport
