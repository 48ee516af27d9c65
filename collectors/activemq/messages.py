"""Decoding browsed messages (Jolokia's view of JMX CompositeData) into PeekedMessages.

Both flavors show a message as a map with typed property maps (``StringProperties``,
``IntProperties``...) and a body the broker may cut for management views:
* Artemis cuts text and bytes at the address' ``management-message-attribute-size-limit``
  (256 by default): a text ends in ``, + N more`` (N characters), bytes stop at the limit,
  a large message shows no body; the body's size is not reported.
* Classic shows a text message's whole ``Text``; other bodies as 255 bytes of
  ``BodyPreview`` next to the whole ``BodyLength``.
A cut body is ``body_complete=False`` (bodies.py reads the whole body when it can).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from collectors.base import Death, PeekedMessage
from mqtop.kernel.durations import iso_epoch

TYPED_MAPS = (
    "StringProperties",
    "IntProperties",
    "LongProperties",
    "ShortProperties",
    "ByteProperties",
    "BooleanProperties",
    "DoubleProperties",
    "FloatProperties",
)
ARTEMIS_PREVIEW_LIMIT = 256  # Artemis' default management-message-attribute-size-limit
ARTEMIS_MORE = re.compile(r", \+ (\d+) more")  # what Artemis appends to a cut text
ARTEMIS_TYPES = {0: "default", 2: "object", 3: "text", 4: "bytes", 5: "map", 6: "stream"}
ARTEMIS_FIELDS = (
    "messageID",
    "userID",
    "priority",
    "durable",
    "timestamp",
    "expiration",
    "address",
    "protocol",
    "redelivered",
    "largeMessage",
)
CLASSIC_FIELDS = (
    "JMSMessageID",
    "JMSCorrelationID",
    "JMSType",
    "JMSDeliveryMode",
    "JMSPriority",
    "JMSTimestamp",
    "JMSExpiration",
    "JMSRedelivered",
    "JMSXGroupID",
    "JMSXGroupSeq",
    "JMSXUserID",
    "JMSReplyTo",
    "JMSDestination",
    "OriginalDestination",
)


def typed_properties(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Every message property from the typed maps, values as the broker typed them."""
    out: dict[str, Any] = {}
    for key in TYPED_MAPS:
        values = raw.get(key)
        if isinstance(values, dict):
            out.update({str(k): v for k, v in values.items()})
    return out


def preview_bytes(value: Any) -> bytes:
    """A body preview (a list of signed bytes in JSON) as bytes."""
    if isinstance(value, list):
        return bytes(int(b) & 0xFF for b in value if isinstance(b, int))
    if isinstance(value, str):
        return value.encode("utf-8")
    return b""


def queue_of(destination: Any) -> str | None:
    """``queue://orders`` -> ``orders`` (Classic destinations); None when absent."""
    if not isinstance(destination, str) or not destination:
        return None
    for prefix in ("queue://", "topic://"):
        if destination.startswith(prefix):
            return destination[len(prefix) :]
    return destination


def artemis_body(raw: Mapping[str, Any], limit: int) -> tuple[bytes, bool]:
    """(body, complete) of a browsed Artemis message, ``limit`` its address' preview limit."""
    text = raw.get("text")
    if isinstance(text, str):
        if len(text) > limit and ARTEMIS_MORE.fullmatch(text, limit):
            return text[:limit].encode("utf-8"), False
        return text.encode("utf-8"), raw.get("largeMessage") is not True
    body = preview_bytes(raw.get("BodyPreview"))
    # a preview as long as the limit may be cut: Artemis does not tell the body's size
    return body, len(body) < limit and raw.get("largeMessage") is not True


def artemis_message(raw: Mapping[str, Any], limit: int = ARTEMIS_PREVIEW_LIMIT) -> PeekedMessage:
    """One browsed Artemis message."""
    props = typed_properties(raw)
    body, complete = artemis_body(raw, limit)
    headers = {k: v for k, v in props.items() if not k.startswith("_AMQ_")}
    properties: dict[str, Any] = {k: raw[k] for k in ARTEMIS_FIELDS if k in raw}
    kind = raw.get("type")
    properties["type"] = ARTEMIS_TYPES.get(kind, kind) if isinstance(kind, int) else kind
    internal = {k: v for k, v in props.items() if k.startswith("_AMQ_")}
    if internal:
        properties["broker_properties"] = internal
    origin = props.get("_AMQ_ORIG_QUEUE") or props.get("_AMQ_ORIG_ADDRESS")
    death = None
    if isinstance(origin, str) and origin:
        death = Death(reason=None, count=None, original_queue=origin)
    stamp = raw.get("timestamp")
    return PeekedMessage(
        id=str(raw.get("messageID", "")),
        body=body,
        headers=headers,
        properties=properties,
        death=death,
        timestamp=stamp / 1000 if isinstance(stamp, int | float) and stamp > 0 else None,
        body_complete=complete,
    )


def classic_message(raw: Mapping[str, Any]) -> PeekedMessage:
    """One browsed Classic message."""
    props = typed_properties(raw)
    text = raw.get("Text")
    body = text.encode("utf-8") if isinstance(text, str) else preview_bytes(raw.get("BodyPreview"))
    length = raw.get("BodyLength")
    cut = isinstance(length, int) and length > len(body)
    properties: dict[str, Any] = {k: raw[k] for k in CLASSIC_FIELDS if raw.get(k) is not None}
    origin = queue_of(raw.get("OriginalDestination"))
    death = None
    if origin is not None:
        cause = props.get("dlqDeliveryFailureCause")
        death = Death(reason=str(cause) if cause else None, count=None, original_queue=origin)
    return PeekedMessage(
        id=str(raw.get("JMSMessageID", "")),
        body=body,
        headers=props,
        properties=properties,
        death=death,
        timestamp=_iso_seconds(raw.get("JMSTimestamp")),
        body_complete=not cut,
        body_size=length if cut else None,
    )


def _iso_seconds(value: Any) -> float | None:
    if isinstance(value, int | float):
        return value / 1000 if value > 0 else None
    if not isinstance(value, str) or not value:
        return None
    return iso_epoch(value)
