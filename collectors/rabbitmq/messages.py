"""What a RabbitMQ message looks like to mqtop: its id, its x-death history, the headers a
replay adds and the ones it drops, and the copy that keeps a message at its delivery limit."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from typing import Any

from collectors.base import Death, PeekedMessage
from collectors.rabbitmq.options import qualify

REPLAY_HEADER = "x-mqtop-replay"
PROPERTY_NAMES = (
    "content_type",
    "content_encoding",
    "delivery_mode",
    "priority",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_id",
    "timestamp",
    "type",
    "user_id",
    "app_id",
    "cluster_id",
)
# set by the broker on delivery, not part of the message: never copied to the destination
DELIVERY_HEADERS = ("x-delivery-count", "x-stream-offset")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def decode_death(headers: Mapping[str, Any], vhost: str) -> Death | None:
    """Why, how often and from where a message was dead-lettered (``x-death`` headers)."""
    raw = headers.get("x-death")
    entries = [e for e in raw if isinstance(e, Mapping)] if isinstance(raw, list) else []
    first_queue = _text(headers.get("x-first-death-queue"))
    first_reason = _text(headers.get("x-first-death-reason"))
    if not entries and first_queue is None and first_reason is None:
        return None
    reason = _text(entries[0].get("reason")) if entries else first_reason
    count: int | None = None
    if entries:
        total = 0
        for entry in entries:
            value = entry.get("count", 1)
            total += int(value) if isinstance(value, int) else 1
        count = total
    original = first_queue or (_text(entries[-1].get("queue")) if entries else None)
    return Death(
        reason=reason,
        count=count,
        original_queue=qualify(vhost, original) if original else None,
    )


def message_id(properties: Any, body: bytes) -> str:
    """The message's ``message_id``, else a digest of the body (stable across peeks)."""
    ident = getattr(properties, "message_id", None)
    if ident:
        return str(ident)
    return "sha256:" + hashlib.sha256(body).hexdigest()[:16]


def _plain(value: Any) -> Any:
    """Header values as plain data: AMQP timestamps as ISO 8601, decimals as text."""
    if isinstance(value, dt.datetime):
        when = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return when.isoformat().replace("+00:00", "Z")
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, int | float | str | bytes | bool) or value is None:
        return value
    return str(value)


def to_peeked(method: Any, properties: Any, body: bytes, vhost: str) -> PeekedMessage:
    """A delivered message as a PeekedMessage (header values as plain data)."""
    headers = _plain(dict(properties.headers or {}))
    props = {
        name: getattr(properties, name)
        for name in PROPERTY_NAMES
        if getattr(properties, name, None) is not None
    }
    timestamp = properties.timestamp
    return PeekedMessage(
        id=message_id(properties, body),
        body=bytes(body),
        headers=headers,
        properties=props,
        death=decode_death(headers, vhost),
        timestamp=float(timestamp) if isinstance(timestamp, int | float) else None,
        extra={
            "redelivered": bool(getattr(method, "redelivered", False)),
            "exchange": getattr(method, "exchange", None),
            "routing_key": getattr(method, "routing_key", None),
        },
    )


KEPT_HEADER = "x-mqtop-kept"


def delivery_count(properties: Any) -> int:
    """How many times a quorum queue has delivered and got back this message."""
    value = (getattr(properties, "headers", None) or {}).get("x-delivery-count")
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else 0


def strip_for_republish(
    headers: dict[str, Any], user_id: str | None, username: str | None
) -> tuple[str | None, dict[str, Any]]:
    """Edit ``headers`` (in place) for publishing a received message again.

    Removed: what the broker sets on delivery (``x-delivery-count``, ``x-stream-offset``);
    ``CC``/``BCC`` (sender-selected distribution would copy the message to the queues they
    name); a ``user_id`` other than the connecting user's (the broker refuses the publish).
    Returns the ``user_id`` to publish with and what was taken out (``cc``, ``user_id``).
    """
    for name in DELIVERY_HEADERS:
        headers.pop(name, None)
    taken: dict[str, Any] = {}
    if "CC" in headers or "BCC" in headers:
        taken["cc"] = [str(v) for k in ("CC", "BCC") for v in (headers.pop(k, None) or [])]
    if user_id and user_id != username:
        taken["user_id"] = user_id
        user_id = None
    return user_id, taken


def kept_copy(properties: Any, username: str | None, count: int, limit: int) -> Any:
    """Properties for re-publishing a message a requeue would drop (delivery limit reached).

    Everything is kept but what the broker sets on delivery (``x-delivery-count``), what it
    would refuse (a ``user_id`` not the connecting user's) and what would copy it elsewhere
    (``CC``/``BCC``): those go into an ``x-mqtop-kept`` table with why and when.
    """
    headers = dict(properties.headers or {})
    user_id, taken = strip_for_republish(headers, properties.user_id, username)
    headers[KEPT_HEADER] = {
        "reason": "delivery-limit",
        "delivery_count": count,
        "delivery_limit": limit,
        "time": dt.datetime.now(tz=dt.UTC).replace(microsecond=0, tzinfo=None),
        **taken,
    }
    return copied_properties(properties, headers, user_id)


def copied_properties(properties: Any, headers: dict[str, Any], user_id: str | None) -> Any:
    """Every property of a received message as it came, but ``headers`` and ``user_id``."""
    from pika import spec

    values = {name: getattr(properties, name, None) for name in PROPERTY_NAMES}
    values.update(headers=headers, user_id=user_id)
    return spec.BasicProperties(**values)
