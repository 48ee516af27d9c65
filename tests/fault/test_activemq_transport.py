"""The Jolokia client's plain-HTTP connections (collectors/activemq/transport.py, asyncio
streams under httpx) against endpoints on loopback that misbehave: refused connections, a
listener that never answers, a server that closes kept-alive connections, a large chunked
answer in small pieces, and an answer that is not HTTP. Each ends in JolokiaUnavailable
with one clear line (never an exception from the transport itself), or in the right answer.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import pytest

from collectors.activemq.jolokia import Jolokia, JolokiaUnavailable
from collectors.activemq.options import ActiveMQOptions
from collectors.activemq.transport import AsyncioBackend
from tests.harness import free_port

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def client(port: int, timeout: float = 5.0) -> Jolokia:
    options = ActiveMQOptions.model_validate(
        {"name": "amq", "type": "activemq", "flavor": "artemis", "user": "u", "password": "p",
         "jolokia_url": f"http://127.0.0.1:{port}/console/jolokia", "http_timeout": timeout}
    )  # fmt: skip
    return Jolokia(options)


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return await reader.readexactly(length)


async def serving(handler: Handler, body: Callable[[Jolokia], Awaitable[None]]) -> None:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    jolokia = client(port)
    try:
        async with server:
            await body(jolokia)
    finally:
        await jolokia.close()


def answer(payload: object, close: bool = False, pieces: int = 1) -> Handler:
    data = json.dumps(payload).encode()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    await read_request(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                head += b"Connection: close\r\n" if close else b""
                writer.write(head + b"Transfer-Encoding: chunked\r\n\r\n")
                step = max(1, len(data) // pieces)
                for at in range(0, len(data), step):
                    chunk = data[at : at + step]
                    writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    await writer.drain()
                    await asyncio.sleep(0)
                writer.write(b"0\r\n\r\n")
                await writer.drain()
                if close:
                    return
        finally:
            writer.close()

    return handle


def test_a_large_chunked_answer_in_small_pieces_is_read_whole() -> None:
    payload = [{"status": 200, "value": {f"q{i}": {"MessageCount": i} for i in range(20_000)}}]

    async def body(jolokia: Jolokia) -> None:
        (got,) = await jolokia.bulk([{"type": "read", "mbean": "x:*"}])
        assert got == payload[0]
        (again,) = await jolokia.bulk([{"type": "read", "mbean": "x:*"}])  # kept alive
        assert again == payload[0]

    asyncio.run(serving(answer(payload, pieces=200), body))


def test_a_server_closing_each_connection_is_reconnected_to() -> None:
    async def body(jolokia: Jolokia) -> None:
        for _ in range(3):
            assert await jolokia.request({"type": "version"}) == {"agent": "2"}
            await asyncio.sleep(0.05)  # the server's close has arrived before the next POST

    asyncio.run(serving(answer({"status": 200, "value": {"agent": "2"}}, close=True), body))


def test_a_refused_connection_is_one_clear_line() -> None:
    async def body() -> None:
        jolokia = client(free_port())
        try:
            with pytest.raises(
                JolokiaUnavailable, match=r"127\.0\.0\.1:\d+/console/jolokia/: .*Connect"
            ):
                await jolokia.request({"type": "version"})
        finally:
            await jolokia.close()

    asyncio.run(body())


def test_an_endpoint_that_never_answers_times_out() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    async def body() -> None:
        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        jolokia = client(server.sockets[0].getsockname()[1], timeout=1.0)
        began = time.monotonic()
        try:
            with pytest.raises(JolokiaUnavailable):
                await jolokia.request({"type": "version"})
        finally:
            await jolokia.close()
            server.close()
        assert time.monotonic() - began < 10

    asyncio.run(body())


def test_an_answer_that_is_not_http_is_one_clear_line() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH\r\n\x00\xff garbage\r\n\r\n")
        await writer.drain()
        writer.close()

    async def body(jolokia: Jolokia) -> None:
        with pytest.raises(JolokiaUnavailable):
            await jolokia.request({"type": "version"})

    asyncio.run(serving(garbage, body))


def test_the_backend_maps_connect_failures_to_httpcore_errors() -> None:
    import httpcore

    async def body() -> None:
        with pytest.raises(httpcore.ConnectError):
            await AsyncioBackend().connect_tcp("127.0.0.1", free_port(), timeout=5)

    asyncio.run(body())
