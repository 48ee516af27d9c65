"""Record headers: dead-letter details, and one JSON shape for showing header values.

Kafka header values are bytes. Most are UTF-8 text; Spring Kafka writes some as big-endian
binary numbers (its ``DeadLetterPublishingRecoverer``: ``kafka_dlt-original-partition`` an
int, ``kafka_dlt-original-offset`` and ``kafka_dlt-original-timestamp`` longs; its retry topics:
``retry_topic-attempts`` and the ``retry_topic-*-timestamp`` headers as Java BigInteger bytes).
A peeked record shows every header value as one of: a string (the text), an integer (a known
binary number, decoded), or null (a null value); a value that is neither text nor a known
number is shown as the base64 text of its bytes. ``header_encodings`` (in the record's
properties) names every header whose shown value is not its text: ``base64``, or ``int32``,
``int64`` ... (a big-endian signed integer of that many bits).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from typing import Any

from collectors.base import Death

ORIGINAL_TOPIC_HEADERS = ("kafka_dlt-original-topic", "x-original-topic")
REASON_HEADERS = (
    "kafka_dlt-exception-message",
    "x-exception-message",
    "kafka_dlt-exception-fqcn",
    "x-exception-fqcn",
)
COUNT_HEADERS = ("retry_topic-attempts", "x-retry-count", "x-delivery-count")
_ANY_WIDTH = tuple(range(1, 9))  # BigInteger.toByteArray(): as few bytes as the value needs
# header name -> byte lengths it is decoded from as a big-endian signed integer
BINARY_NUMBERS: Mapping[str, tuple[int, ...]] = {
    "kafka_dlt-original-partition": (4,),
    "kafka_dlt-original-offset": (8,),
    "kafka_dlt-original-timestamp": (8,),
    "retry_topic-attempts": _ANY_WIDTH,
    "retry_topic-original-timestamp": _ANY_WIDTH,
    "retry_topic-backoff-timestamp": _ANY_WIDTH,  # text (a date) in Spring Kafka 2.7.0
}
# control characters other than tab, newline and carriage return: not text
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")

HeaderValue = str | int | None


def header_map(headers: Sequence[tuple[str, bytes | None]]) -> dict[str, Any]:
    """Headers as a mapping of raw values; a repeated name keeps all its values in a list."""
    out: dict[str, Any] = {}
    for name, value in headers:
        if name in out:
            prior = out[name]
            out[name] = [*prior, value] if isinstance(prior, list) else [prior, value]
        else:
            out[name] = value
    return out


def _text(value: bytes | None) -> str | None:
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _first(headers: Mapping[str, Any], names: Sequence[str]) -> tuple[str, bytes] | None:
    for name in names:
        value = headers.get(name)
        if isinstance(value, list):
            value = value[-1]
        if isinstance(value, bytes):
            return name, value
    return None


def binary_number(name: str, raw: bytes) -> int | None:
    """The value of a header Spring Kafka writes as a binary number, else None."""
    widths = BINARY_NUMBERS.get(name)
    if widths is None or len(raw) not in widths:
        return None
    return int.from_bytes(raw, "big", signed=True)


def _count(found: tuple[str, bytes] | None) -> int | None:
    if found is None:
        return None
    name, raw = found
    number = binary_number(name, raw)
    if number is not None:
        return number
    text = _text(raw)
    if text is not None and text.strip().isdigit():
        return int(text.strip())
    if len(raw) in (4, 8):
        return int.from_bytes(raw, "big", signed=True)
    return None


def death_of(headers: Mapping[str, Any]) -> Death | None:
    """Dead-letter details from Spring Kafka (``kafka_dlt-*``) or ``x-*`` headers."""
    original = _first(headers, ORIGINAL_TOPIC_HEADERS)
    reason = _first(headers, REASON_HEADERS)
    count = _count(_first(headers, COUNT_HEADERS))
    if original is None and reason is None and count is None:
        return None
    return Death(
        reason=None if reason is None else _text(reason[1]),
        count=count,
        original_queue=None if original is None else _text(original[1]),
    )


def is_text(raw: bytes) -> bool:
    """UTF-8 without control characters (tab, newline and carriage return allowed)."""
    text = _text(raw)
    return text is not None and not _CONTROL.search(text)


def _encoding(name: str, values: Sequence[bytes | None]) -> str | None:
    """How every value of one header name is shown: None (as text), ``int<bits>``, ``base64``."""
    present = [v for v in values if v is not None]
    widths = {len(v) for v in present}
    if present and len(widths) == 1 and all(binary_number(name, v) is not None for v in present):
        return f"int{8 * widths.pop()}"
    if all(is_text(v) for v in present):
        return None
    return "base64"


def _shown(raw: bytes | None, encoding: str | None) -> HeaderValue:
    if raw is None:
        return None
    if encoding is None:
        return raw.decode("utf-8")
    if encoding == "base64":
        return base64.b64encode(raw).decode("ascii")
    return int.from_bytes(raw, "big", signed=True)


def shown_headers(
    headers: Sequence[tuple[str, bytes | None]],
) -> tuple[dict[str, HeaderValue | list[HeaderValue]], dict[str, str]]:
    """(header values as shown, ``header_encodings``): see the module docstring.

    Every value of one name is shown the same way (a name whose values are partly text and
    partly binary is base64 throughout), so the shape of a header never depends on its bytes.
    """
    grouped: dict[str, list[bytes | None]] = {}
    for name, value in headers:
        grouped.setdefault(name, []).append(None if value is None else bytes(value))
    shown: dict[str, HeaderValue | list[HeaderValue]] = {}
    encodings: dict[str, str] = {}
    for name, values in grouped.items():
        encoding = _encoding(name, values)
        if encoding is not None:
            encodings[name] = encoding
        out = [_shown(v, encoding) for v in values]
        shown[name] = out if len(out) > 1 else out[0]
    return shown, encodings
