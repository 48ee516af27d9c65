"""Browsing an ActiveMQ Classic queue over STOMP for whole message bodies.

Classic's STOMP connector makes a subscription with the header ``browser: true`` a queue
browser: it sends the queue's messages without delivering them (nothing acknowledged, no
redelivery count), then a ``MESSAGE`` frame with ``browser: end``. A ``selector`` on
``JMSMessageID`` restricts it to the messages wanted; each frame's ``message-id`` header is
the JMSMessageID, so bodies are matched exactly. A small asyncio STOMP 1.2 client: connect,
subscribe, read frames until the end marker, disconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Iterable
from urllib.parse import urlsplit

from collectors.activemq.jolokia import ssl_context
from collectors.activemq.options import ActiveMQOptions

# Classic reads these in a destination name as composite / wildcard destinations
UNSAFE_NAME = (",", "*", ">")
SELECTOR_IDS = 200  # ids per browser subscription (one selector)
ESCAPES = {"\\": "\\\\", ":": "\\c", "\n": "\\n", "\r": "\\r"}
UNESCAPES = {"\\\\": "\\", "\\c": ":", "\\n": "\n", "\\r": "\r"}


class StompFailed(Exception):
    """The STOMP browse could not be done (connection, credentials, an ERROR frame...)."""


def escape(value: str) -> str:
    """A STOMP 1.2 header value, escaped."""
    return "".join(ESCAPES.get(ch, ch) for ch in value)


def unescape(value: str) -> str:
    """A STOMP 1.2 header value, unescaped (an unknown escape is kept as it is)."""
    out: list[str] = []
    i = 0
    while i < len(value):
        pair = value[i : i + 2]
        if pair in UNESCAPES:
            out.append(UNESCAPES[pair])
            i += 2
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def frame(command: str, headers: dict[str, str], escaped: bool = True) -> bytes:
    """One frame without a body (CONNECT headers are not escaped in STOMP 1.2)."""
    lines = [command]
    lines += [f"{k}:{escape(v) if escaped else v}" for k, v in headers.items()]
    return ("\n".join(lines) + "\n\n").encode("utf-8") + b"\0"


def selector(ids: Iterable[str]) -> str:
    """A JMS selector choosing messages by JMSMessageID."""
    quoted = ", ".join("'" + i.replace("'", "''") + "'" for i in ids)
    return f"JMSMessageID IN ({quoted})"


async def read_frame(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes]:
    """(command, headers, body) of the next frame; heart-beat end-of-lines are skipped."""
    line = b""
    while not line.strip():
        line = await reader.readline()
        if not line:
            raise StompFailed("the connection closed")
    command = line.decode("utf-8", "replace").strip()
    headers: dict[str, str] = {}
    while True:
        raw = (await reader.readline()).decode("utf-8", "replace").rstrip("\r\n")
        if not raw:
            break
        key, _, value = raw.partition(":")
        headers.setdefault(unescape(key), unescape(value))  # the first one counts (1.2)
    length = headers.get("content-length")
    if length is not None and length.isdigit():
        body = await reader.readexactly(int(length))
        await reader.readuntil(b"\0")
    else:
        body = (await reader.readuntil(b"\0"))[:-1]
    return command, headers, body


async def browse(options: ActiveMQOptions, queue: str, ids: list[str]) -> dict[str, bytes]:
    """Whole bodies of the messages ``ids`` of ``queue``, by JMSMessageID."""
    if any(ch in queue for ch in UNSAFE_NAME):
        raise StompFailed(f"queue name {queue!r} would be a composite or wildcard destination")
    assert options.browse_url is not None
    parts = urlsplit(options.browse_url.get_secret_value())
    context: ssl.SSLContext | None = None
    if parts.scheme.lower() == "stomp+ssl":
        context = ssl_context(options)
    try:
        async with asyncio.timeout(options.http_timeout):
            reader, writer = await asyncio.open_connection(
                parts.hostname, parts.port, ssl=context, limit=1 << 20
            )
            try:
                return await _session(options, reader, writer, queue, ids)
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
    except TimeoutError:
        raise StompFailed(f"no answer within {options.http_timeout:g}s") from None
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        raise StompFailed(str(exc) or type(exc).__name__) from None


async def _session(
    options: ActiveMQOptions,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    queue: str,
    ids: list[str],
) -> dict[str, bytes]:
    assert options.browse_url is not None
    host = urlsplit(options.browse_url.get_secret_value()).hostname or ""
    headers = {"accept-version": "1.2", "host": host, "heart-beat": "0,0"}
    credentials = options.browse_credentials()
    if credentials is not None:
        headers.update(login=credentials[0], passcode=credentials[1])
    writer.write(frame("CONNECT", headers, escaped=False))
    command, answer, body = await read_frame(reader)
    if command != "CONNECTED":
        raise StompFailed(_error(answer, body))
    found: dict[str, bytes] = {}
    for at in range(0, len(ids), SELECTOR_IDS):
        chunk = ids[at : at + SELECTOR_IDS]
        sub = f"mqtop-browse-{at}"
        writer.write(frame("SUBSCRIBE", {"id": sub, "destination": f"/queue/{queue}",
                                         "ack": "auto", "browser": "true",
                                         "selector": selector(chunk)}))  # fmt: skip
        await writer.drain()
        while True:
            command, answer, body = await read_frame(reader)
            if command == "ERROR":
                raise StompFailed(_error(answer, body))
            if command != "MESSAGE" or answer.get("subscription") != sub:
                continue
            if answer.get("browser") == "end":
                break
            found[answer.get("message-id", "")] = body
        writer.write(frame("UNSUBSCRIBE", {"id": sub}))
    writer.write(frame("DISCONNECT", {}))
    await writer.drain()
    return found


def _error(headers: dict[str, str], body: bytes) -> str:
    text = headers.get("message") or body.decode("utf-8", "replace").strip() or "refused"
    return text[:300]
