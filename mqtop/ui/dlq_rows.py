"""The DLQ browser's rows, search and groups: pure Python over peeked messages (no Textual)."""

from __future__ import annotations

import json
import shlex
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from collectors.base import PeekedMessage
from mqtop.kernel.durations import humanize_seconds
from mqtop.kernel.safe import body_preview, safe_text


@dataclass(frozen=True, slots=True)
class MessageRow:
    """One peeked message as the DLQ browser lists it (all text already made safe)."""

    id: str
    age: str
    reason: str
    count: str
    original: str
    size: str
    preview: str


def message_row(message: PeekedMessage, now: float, preview_width: int = 60) -> MessageRow:
    """Cells of one message: id, age, death reason and count, origin, size, body preview."""
    death = message.death
    age = "-" if message.timestamp is None else humanize_seconds(now - message.timestamp)
    return MessageRow(
        id=safe_text(message.id, 40),
        age=age,
        reason=safe_text(death.reason, 30) if death and death.reason else "-",
        count=str(death.count) if death and death.count is not None else "-",
        original=safe_text(death.original_queue, 40) if death and death.original_queue else "-",
        size=size_cell(message),
        preview=body_preview(message.body, preview_width),
    )


def size_cell(message: PeekedMessage) -> str:
    """The whole body's size; when the broker showed only its start, its reported size, else
    at least what was shown."""
    if message.body_complete:
        return fmt_size(len(message.body))
    if message.body_size is not None:
        return fmt_size(message.body_size)
    return "≥" + fmt_size(len(message.body))


def fmt_size(size: int) -> str:
    """Bytes as ``512 B``, ``1.5 KiB``, ``2.0 MiB``."""
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / (1024 * 1024):.1f} MiB"


def common_origin(messages: Iterable[PeekedMessage]) -> str | None:
    """The original queue shared by every message's death record (None when mixed/unknown)."""
    origins = {m.death.original_queue if m.death else None for m in messages}
    if len(origins) == 1:
        (only,) = origins
        return only
    return None


# ---------------------------------------------------------------- triage: search and groups

GROUPINGS: tuple[tuple[str, str], ...] = (
    ("reason", "death reason"),
    ("class", "error class"),
    ("origin", "original queue"),
)
GROUPING_TITLES = dict(GROUPINGS)
# where frameworks put the error's class (Spring Kafka, Sidekiq, Celery, custom consumers)
ERROR_HEADERS = (
    "x-exception-fqcn",
    "kafka_dlt-exception-fqcn",
    "x-error-class",
    "error_class",
    "error-class",
    "exception",
    "x-exception",
    "exc_type",
)
ERROR_BODY_KEYS = ("error_class", "exception_class", "errorClass", "exc_type", "exception")
UNKNOWN = "(unknown)"


def _text_of(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def error_class(message: PeekedMessage) -> str | None:
    """The error class a consumer recorded on the message (header, else top-level JSON key)."""
    lowered = {str(k).lower(): v for k, v in message.headers.items()}
    for name in ERROR_HEADERS:
        if lowered.get(name) not in (None, ""):
            return _text_of(lowered[name])
    if message.body[:1] == b"{" and len(message.body) <= 1024 * 1024:
        try:
            data = json.loads(message.body)
        except ValueError:
            return None
        if isinstance(data, dict):
            for name in ERROR_BODY_KEYS:
                value = data.get(name)
                if isinstance(value, str) and value:
                    return value
    return None


def group_value(message: PeekedMessage, grouping: str) -> str:
    """The group a message falls in under ``grouping`` (``reason``, ``class``, ``origin``)."""
    death = message.death
    if grouping == "reason":
        value = death.reason if death else None
    elif grouping == "origin":
        value = death.original_queue if death else None
    else:
        value = error_class(message)
    return value if value else UNKNOWN


def group_counts(messages: Sequence[PeekedMessage], grouping: str) -> list[tuple[str, int]]:
    """Groups with their message counts, largest first (ties by name)."""
    counts = Counter(group_value(m, grouping) for m in messages)
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


@dataclass(frozen=True, slots=True)
class Search:
    """The browser's search: bare words look everywhere; ``reason:``, ``class:``,
    ``origin:``, ``body:``, ``header:`` (any header value) and ``header.NAME:`` look in one
    place. Case-insensitive substrings; every term must match."""

    terms: tuple[tuple[str, str, str], ...]  # (field, header name, needle)

    @classmethod
    def parse(cls, text: str) -> Search:
        """Compile the search box's text."""
        terms: list[tuple[str, str, str]] = []
        for word in shlex_split(text):
            field, sep, needle = word.partition(":")
            field = field.lower()
            if sep and (field in SEARCH_FIELDS or field.startswith("header.")):
                name = field[len("header.") :] if field.startswith("header.") else ""
                kind = "header" if field.startswith("header") else field
                terms.append((kind, name, needle.lower()))
            else:
                terms.append(("any", "", word.lower()))
        return cls(tuple(terms))

    def __bool__(self) -> bool:
        return bool(self.terms)

    def matches(self, message: PeekedMessage) -> bool:
        """True when every term is found in its place."""
        return all(_term_matches(message, *term) for term in self.terms)


SEARCH_FIELDS = frozenset({"reason", "class", "origin", "body", "header", "id"})


def shlex_split(text: str) -> list[str]:
    """Words of the search box; quotes keep spaces (``reason:"max retries"``)."""
    try:
        return shlex.split(text)
    except ValueError:  # an unclosed quote while typing: split on spaces
        return text.split()


def _headers_text(message: PeekedMessage, name: str) -> list[str]:
    out = []
    for key, value in message.headers.items():
        if not name or str(key).lower() == name:
            out.append(_text_of(value).lower())
    return out


def _term_matches(message: PeekedMessage, kind: str, name: str, needle: str) -> bool:
    death = message.death
    if kind in ("reason", "any") and death and death.reason and needle in death.reason.lower():
        return True
    origin = death.original_queue if death else None
    if kind in ("origin", "any") and origin and needle in origin.lower():
        return True
    if kind in ("class", "any") and needle in (error_class(message) or "").lower():
        return True
    if kind in ("id", "any") and needle in message.id.lower():
        return True
    if kind in ("header", "any") and any(needle in v for v in _headers_text(message, name)):
        return True
    if kind in ("body", "any"):
        return needle in message.body.decode("utf-8", "replace").lower()
    return False


def visible(
    messages: Sequence[PeekedMessage],
    search: Search,
    grouping: str | None = None,
    group: str | None = None,
) -> list[int]:
    """Indices of the messages the list shows: in the opened group, matching the search."""
    out = []
    for index, message in enumerate(messages):
        if grouping and group is not None and group_value(message, grouping) != group:
            continue
        if search and not search.matches(message):
            continue
        out.append(index)
    return out
