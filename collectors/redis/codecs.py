"""What Redis returns, as mqtop shows it: key names, entry IDs, stream entries and markers.

Key names are bytes. A name that is valid UTF-8 is shown as it is (the terminal layer escapes
control characters); a name that is not is shown with each invalid byte as ``\\xNN``. Both
forms, typed back on the command line, name the same key (:func:`key_candidates`).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
from collections.abc import Mapping
from typing import Any

from collectors.base import MessageFilter
from mqtop.kernel.safe import unescape_text

# Fields mqtop adds to stream entries (JSON values). Fields with this prefix are left out of
# the canonical body used by --filter and peek.
MARKER_PREFIX = b"mqtop-"
REPLAY_FIELD = "mqtop-replay"  # added by `dlq replay`: {"from", "id", "at"}
DEAD_FIELD = "mqtop-dead-letter"  # added by `dlq reclaim --to`: {"stream", "group", ...}

# \x80-\xff: the escapes "backslashreplace" writes for bytes that are not valid UTF-8
_RAW_BYTE = re.compile(r"\\x([89a-fA-F][0-9a-fA-F])")
MAX_AMBIGUOUS = 4  # \x80-\x9f escapes read both ways (a C1 character, or a raw byte)


def text(raw: bytes | str) -> str:
    """A name or value as text: UTF-8, invalid bytes as ``\\xNN`` (never dropped)."""
    return raw if isinstance(raw, str) else raw.decode("utf-8", "backslashreplace")


def is_utf8(raw: bytes) -> bool:
    """True when ``raw`` decodes as UTF-8."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _encode(name: str) -> bytes:
    # command-line arguments carry undecodable bytes as surrogates (PEP 383)
    return name.encode("utf-8", "surrogateescape")


def key_candidates(name: str) -> list[bytes]:
    """The keys a typed name may mean, most literal first.

    The name as typed; with mqtop's printed escapes (``\\x06``, ``\\u202e``) read back as the
    characters they stand for; and with ``\\x80``-``\\xff`` read as raw bytes (a key that is not
    valid UTF-8, as mqtop prints it). ``\\x80``-``\\x9f`` may also be a C1 control character:
    names with a few of those are tried both ways. Redis decides: the first that exists is meant.
    """
    out = [_encode(name)]
    if "\\" not in name:
        return out
    out.append(_encode(unescape_text(name)))
    parts = _RAW_BYTE.split(name)  # text, escape, text, escape, ..., text
    texts = [_encode(unescape_text(part)) for part in parts[::2]]
    codes = [int(code, 16) for code in parts[1::2]]
    ways = [[bytes([c])] if c >= 0xA0 else [bytes([c]), chr(c).encode("utf-8")] for c in codes]
    if sum(len(w) > 1 for w in ways) > MAX_AMBIGUOUS:
        ways = [w[:1] for w in ways]  # raw bytes only (the text reading is already there)
    readings = [tuple(w[0] for w in ways), *itertools.product(*ways)]  # all raw bytes first
    for chosen in readings:
        out.append(b"".join(t + c for t, c in zip(texts, [*chosen, b""], strict=True)))
    return list(dict.fromkeys(out))


def id_ms(entry_id: bytes | str | None) -> int | None:
    """The millisecond time in a stream entry ID."""
    if entry_id is None:
        return None
    head = text(entry_id).split("-", 1)[0]
    return int(head) if head.isdigit() else None


def int_or_none(value: Any) -> int | None:
    """An integer reply, or None when Redis answered nil or something else."""
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def now_iso() -> str:
    """The current UTC time, ISO 8601 with milliseconds."""
    return dt.datetime.now(tz=dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def entry_body(fields: Mapping[bytes, bytes]) -> bytes:
    """Canonical body of a stream entry for peek and --filter.

    The value itself when the entry has a single field (ignoring ``mqtop-*`` fields), else
    the fields as a compact JSON object (values decoded as UTF-8, invalid bytes escaped).
    """
    data = [(k, v) for k, v in fields.items() if not k.startswith(MARKER_PREFIX)]
    if not data:
        data = list(fields.items())
    if len(data) == 1:
        return data[0][1]
    obj = {text(k): text(v) for k, v in data}
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def entry_headers(fields: Mapping[bytes, bytes]) -> dict[str, Any]:
    """Every field of a stream entry, named as text; values stay bytes unless valid UTF-8."""
    out: dict[str, Any] = {}
    for k, v in fields.items():
        try:
            out[text(k)] = v.decode("utf-8")
        except UnicodeDecodeError:
            out[text(k)] = v
    return out


def marker(fields: Mapping[bytes, bytes], name: str) -> dict[str, Any] | None:
    """The JSON object in an ``mqtop-*`` field of an entry, when there is a valid one."""
    raw = fields.get(name.encode())
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def matches(msg_filter: MessageFilter | None, body: bytes, headers: Mapping[str, Any]) -> bool:
    """True when there is no filter or the message passes it."""
    return msg_filter is None or msg_filter.matches(body, headers)


__all__ = [
    "DEAD_FIELD",
    "MARKER_PREFIX",
    "REPLAY_FIELD",
    "entry_body",
    "entry_headers",
    "id_ms",
    "int_or_none",
    "is_utf8",
    "key_candidates",
    "marker",
    "matches",
    "now_iso",
    "text",
]
