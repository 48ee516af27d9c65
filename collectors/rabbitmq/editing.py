"""The properties a moved message is published with: its own, with an ``x-mqtop-replay``
header (count, time, run) added, the broker's delivery headers dropped, and CC/BCC and a
foreign ``user_id`` moved into that header (the broker would route or refuse on them).
Edited in their encoded form when possible (:mod:`collectors.rabbitmq.protocol`)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from typing import Any

from collectors.rabbitmq.messages import REPLAY_HEADER, _text, strip_for_republish
from collectors.rabbitmq.movespec import MoveOutcome
from collectors.rabbitmq.protocol import (
    _DROPPED_KEYS,
    _SPECIAL,
    FLAG_HEADERS,
    FLAG_USER_ID,
    RawContent,
    _pika_data,
    table_entries,
)


class PropertyEditor:
    """Encodes the properties of each message a move publishes (one per move)."""

    def __init__(self, run: str, username: str | None, out: MoveOutcome) -> None:
        self.run = run
        self.username = username
        self.out = out  # stripped_cc / stripped_user_id are counted here
        self._entries: dict[int, bytes] = {}
        self._second = -1
        self._stamp: dt.datetime | None = None

    def stamp_now(self) -> dt.datetime:
        now = int(time.time())
        if now != self._second or self._stamp is None:
            self._second = now
            self._stamp = dt.datetime.fromtimestamp(now, tz=dt.UTC)
            self._entries.clear()
        return self._stamp

    def replay_entry(self, count: int, extra: Mapping[str, Any]) -> bytes:
        """The encoded ``x-mqtop-replay`` header entry (cached per second and count)."""
        data = _pika_data()
        stamp = self.stamp_now()
        if not extra:
            cached = self._entries.get(count)
            if cached is not None:
                return cached
        pieces: list[bytes] = []
        data.encode_table(pieces, {"count": count, "time": stamp, "run": self.run, **extra})
        key = REPLAY_HEADER.encode()
        entry = bytes([len(key)]) + key + b"F" + b"".join(pieces)
        if not extra:
            self._entries[count] = entry
        return entry

    def edit_raw(self, content: RawContent) -> bytes:
        """Encoded properties to publish: the delivery's, with the headers table edited."""
        import struct

        data = _pika_data()
        raw = content.raw
        spans = content.spans
        extra: dict[str, Any] = {}
        count = 1
        headers = spans.get("headers")
        if headers is not None:
            table = raw[headers[0] + 4 : headers[1]]
            if any(marker in table for marker in _SPECIAL):
                kept: list[bytes] = []
                for key, start, end, value_at in table_entries(raw, headers[0] + 4, headers[1]):
                    if key in _DROPPED_KEYS:
                        continue
                    if key == b"x-mqtop-replay":
                        previous = data.decode_value(raw, value_at)[0]
                        if isinstance(previous, Mapping) and isinstance(previous.get("count"), int):
                            count = int(previous["count"]) + 1
                        continue
                    if key in (b"CC", b"BCC"):
                        values = data.decode_value(raw, value_at)[0]
                        if not isinstance(values, list):
                            values = [values]
                        extra.setdefault("cc", []).extend(_text(v) for v in values)
                        continue
                    kept.append(raw[start:end])
                table = b"".join(kept)
                if "cc" in extra:
                    self.out.stripped_cc += 1
            insert_at, resume_at = headers
        else:
            table = b""
            before = spans.get("content_encoding") or spans.get("content_type")
            insert_at = resume_at = before[1] if before else 2
        flags = content.flags | FLAG_HEADERS
        tail = raw[resume_at:]
        user = spans.get("user_id")
        if user is not None:
            user_id = content.shortstr("user_id")
            if user_id != self.username:
                # the broker refuses a user_id that is not the publishing user's
                extra["user_id"] = user_id
                flags &= ~FLAG_USER_ID
                tail = raw[resume_at : user[0]] + raw[user[1] :]
                self.out.stripped_user_id += 1
        entry = self.replay_entry(count, extra)
        return b"".join(
            (
                struct.pack(">H", flags),
                raw[2:insert_at],
                struct.pack(">I", len(table) + len(entry)),
                table,
                entry,
                tail,
            )
        )

    def edit_decoded(self, properties: Any) -> bytes:
        """Encoded properties to publish, from decoded ones (the general path)."""
        headers = dict(properties.headers) if properties.headers else {}
        properties.user_id, taken = strip_for_republish(headers, properties.user_id, self.username)
        self.out.stripped_cc += "cc" in taken
        self.out.stripped_user_id += "user_id" in taken
        previous = headers.pop(REPLAY_HEADER, None)
        count = 1
        if isinstance(previous, Mapping) and isinstance(previous.get("count"), int):
            count = int(previous["count"]) + 1
        headers[REPLAY_HEADER] = {
            "count": count,
            "time": self.stamp_now(),
            "run": self.run,
            **taken,
        }
        properties.headers = headers
        return b"".join(properties.encode())
