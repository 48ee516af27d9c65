"""Export peeked messages as JSON lines, in the shape of ``mqtop dlq peek --format json``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from collectors.base import PeekedMessage
from mqtop.kernel.safe import decode_body, dumps, json_safe


def message_json(message: PeekedMessage) -> dict[str, Any]:
    """One message, its body as read (never cut here), as ``dlq peek --format json`` prints it:
    a body the broker showed only the start of is marked ``truncated`` with the broker's size."""
    text, encoding = decode_body(message.body)
    death = message.death
    out: dict[str, Any] = {
        "id": message.id,
        "body": text,
        "body_encoding": encoding,
        "size": len(message.body) if message.body_complete else message.body_size,
        "headers": json_safe(dict(message.headers)),
        "properties": json_safe(dict(message.properties)),
        "death": None
        if death is None
        else {
            "reason": death.reason,
            "count": death.count,
            "original_queue": death.original_queue,
        },
    }
    if not message.body_complete:
        out["truncated"] = True
    return out


def export_jsonl(messages: Sequence[PeekedMessage], path: Path) -> int:
    """Write one JSON object per line (strict JSON, owner-only file); returns how many."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        for message in messages:
            out.write(dumps(message_json(message), indent=None) + "\n")
    return len(messages)
