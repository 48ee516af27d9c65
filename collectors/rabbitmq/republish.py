"""One reviewed message, as given or edited, to another queue; then the original acknowledged.

RabbitMQ has no access by id: the source is read with basic.get (unacknowledged) until the
message with the reviewed id and body comes; every other message read goes back with
basic.nack(requeue) exactly as a peek puts them back. The copy is published with publisher
confirms on the destination; only when the broker confirmed it is the original acknowledged.
A failure before the confirmation puts the original back too: nothing is lost.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from collectors.base import RepublishRequest, RepublishResult
from collectors.rabbitmq.amqp import close_quietly
from collectors.rabbitmq.messages import (
    REPLAY_HEADER,
    copied_properties,
    message_id,
    strip_for_republish,
)
from mqtop.kernel.errors import ActionFailed

SEARCH_LIMIT = 5100  # messages read at most to find one (the DLQ browser peeks up to 5,000)
MISSING = "not in the source any more: already replayed, consumed or expired"


def republish_one(
    connect: Callable[[str], Any],
    source: tuple[str, str],
    destination: tuple[str, str],
    request: RepublishRequest,
    username: str | None,
) -> RepublishResult:
    """Find, publish (confirmed), acknowledge; blocking (run it in a thread)."""
    import pika.exceptions

    original = request.original
    conn = connect(source[0])
    publisher_conn = conn
    try:
        channel = conn.channel()
        found: tuple[Any, Any] | None = None
        for _ in range(SEARCH_LIMIT):
            method, properties, body = channel.basic_get(source[1], auto_ack=False)
            if method is None:
                break
            if body == original.body and message_id(properties, body) == original.id:
                found = (method, properties)
                break
        if found is None:
            channel.basic_nack(delivery_tag=0, multiple=True, requeue=True)
            return RepublishResult(False, False, MISSING)
        method, properties = found
        if destination[0] != source[0]:
            publisher_conn = connect(destination[0])
        publisher = publisher_conn.channel()
        publisher.confirm_delivery()
        outgoing = _properties(properties, request, username)
        try:
            publisher.basic_publish("", destination[1], request.body, outgoing, mandatory=True)
        except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as exc:
            channel.basic_nack(delivery_tag=0, multiple=True, requeue=True)
            raise ActionFailed(
                f"the broker refused the copy of {original.id} for {destination[1]!r} "
                f"({type(exc).__name__}): the original stays in {source[1]!r}"
            ) from None
        channel.basic_ack(method.delivery_tag)  # only now: the copy is confirmed
        channel.basic_nack(delivery_tag=0, multiple=True, requeue=True)  # the others back
        return RepublishResult(True, True)
    finally:
        for each in {id(publisher_conn): publisher_conn, id(conn): conn}.values():
            close_quietly(each)


def _properties(properties: Any, request: RepublishRequest, username: str | None) -> Any:
    """Every property kept; the headers as received unless the operator edited them; what
    the broker sets on delivery taken out; a replay header saying it was edited."""
    received = dict(properties.headers or {})
    edited = request.headers is not request.original.headers and _changed(request)
    headers = dict(request.headers) if edited else received
    user_id, taken = strip_for_republish(headers, properties.user_id, username)
    previous = headers.pop(REPLAY_HEADER, None)
    count = previous.get("count", 0) + 1 if isinstance(previous, Mapping) else 1
    stamp = dt.datetime.now(tz=dt.UTC).replace(microsecond=0, tzinfo=None)
    entry: dict[str, Any] = {"count": count, "time": stamp, **taken}
    if request.body != request.original.body or edited:
        entry["edited"] = True
    if request.mode == "replay":
        headers[REPLAY_HEADER] = entry
    return copied_properties(properties, headers, user_id)


def _changed(request: RepublishRequest) -> bool:
    return dict(request.headers) != dict(request.original.headers)
