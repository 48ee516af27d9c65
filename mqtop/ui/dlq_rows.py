"""The DLQ browser's rows: one peeked message as safe cells (no Textual here)."""

from __future__ import annotations

from collections.abc import Iterable
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
        size=fmt_size(len(message.body)),
        preview=body_preview(message.body, preview_width),
    )


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
