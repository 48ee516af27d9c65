"""Rendering untrusted text (payloads, queue names, headers) so nothing raw reaches a terminal.

Control characters, escape sequences, C1 controls and bidi overrides are shown as visible
escapes (``\\x1b``, ``\\u202e``); invalid UTF-8 is never decoded loosely; huge values are
truncated with their size.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Mapping
from typing import Any

# C0 (but not \t or \n when allowed), DEL, C1, bidi embeddings/overrides/isolates, BOM,
# line/paragraph separators: anything that can move the cursor, recolour or reorder text.
_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]"
)
_UNSAFE_STRICT = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]"
)
DEFAULT_PREVIEW = 4096


def _escape_char(match: re.Match[str]) -> str:
    ch = match.group(0)
    code = ord(ch)
    if ch == "\t":
        return "\\t"
    if ch == "\n":
        return "\\n"
    if ch == "\r":
        return "\\r"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def safe_text(value: object, max_len: int | None = None, multiline: bool = False) -> str:
    """Text safe to write to a terminal: every control/escape character made visible."""
    text = value if isinstance(value, str) else str(value)
    truncated = 0
    if max_len is not None and len(text) > max_len:
        truncated = len(text) - max_len
        text = text[:max_len]
    pattern = _UNSAFE if multiline else _UNSAFE_STRICT
    text = pattern.sub(_escape_char, text)
    if truncated:
        text += f"… [+{truncated} chars]"
    return text


_ESCAPED = re.compile(r"\\(?:x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|([tnr]))")
_NAMED = {"t": "\t", "n": "\n", "r": "\r"}


def _unescape_char(match: re.Match[str]) -> str:
    hex_code = match.group(1) or match.group(2)
    ch = _NAMED[match.group(3)] if hex_code is None else chr(int(hex_code, 16))
    # only what safe_text escapes is turned back: any other backslash text stays as typed
    return ch if _UNSAFE_STRICT.fullmatch(ch) else match.group(0)


def unescape_text(text: str) -> str:
    """The inverse of :func:`safe_text`'s escapes: a name as printed, typed back, names the same.

    ``\\x06``, ``\\u202e``, ``\\t``... become the characters safe_text would have escaped; any
    other backslash sequence is left as it is.
    """
    return _ESCAPED.sub(_unescape_char, text) if "\\" in text else text


def decode_body(body: bytes) -> tuple[str, str]:
    """Return (text, encoding): ``utf8`` when the body is valid UTF-8, else ``base64``."""
    try:
        return body.decode("utf-8"), "utf8"
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), "base64"


def is_binary(body: bytes) -> bool:
    """True when the body is not valid UTF-8 or is mostly control characters."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return True
    if not text:
        return False
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\t\n\r")
    return controls > len(text) * 0.1


def body_preview(body: bytes, max_len: int = 120) -> str:
    """One safe line previewing a body (escaped text, or a hex prefix for binary)."""
    if is_binary(body):
        head = body[: max_len // 3]
        more = f"… [{len(body)} bytes]" if len(body) > len(head) else ""
        return "hex:" + head.hex(" ") + more
    text = body.decode("utf-8")
    return safe_text(text, max_len=max_len)


def hexdump(body: bytes, limit: int = 4096) -> str:
    """Classic hex + ASCII dump (printable ASCII only on the right)."""
    lines = []
    for offset in range(0, min(len(body), limit), 16):
        chunk = body[offset : offset + 16]
        hexpart = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{offset:08x}  {hexpart:<47}  {text}")
    if len(body) > limit:
        lines.append(f"… [{len(body) - limit} more bytes]")
    return "\n".join(lines)


def pretty_body(body: bytes, limit: int = 64 * 1024) -> str:
    """Body for a viewer: pretty JSON when it parses, escaped text, or a hex dump."""
    if is_binary(body):
        return hexdump(body, limit)
    text = body.decode("utf-8")
    if len(text) <= limit:
        try:
            parsed = json.loads(text)
        except ValueError:
            pass
        else:
            return safe_text(json.dumps(parsed, indent=2, ensure_ascii=False), multiline=True)
    return safe_text(text, max_len=limit, multiline=True)


def json_safe(value: Any) -> Any:
    """Make header/property values JSON-serialisable (bytes -> utf8 or base64 marker)."""
    if isinstance(value, bytes):
        text, encoding = decode_body(value)
        return text if encoding == "utf8" else {"base64": text}
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def finite(data: Any) -> Any:
    """A copy of plain data with every NaN / Infinity replaced by None (mappings as dicts)."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, Mapping):
        return {k: finite(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [finite(v) for v in data]
    return data


def strict_json(data: Any, indent: int | None = None, **kwargs: Any) -> str:
    """Strict JSON (RFC 8259): ASCII-only, and a non-finite number is ``null``, never the
    bare ``NaN`` / ``Infinity`` tokens that strict parsers reject."""
    options: dict[str, Any] = {"indent": indent, "ensure_ascii": True, "default": str, **kwargs}
    try:
        return json.dumps(data, allow_nan=False, **options)
    except ValueError:  # a NaN or an infinity somewhere: the rare case pays for the copy
        return json.dumps(finite(data), allow_nan=False, **options)


def dumps(data: Any, indent: int | None = 2) -> str:
    """JSON for the terminal: strict, ASCII-only, so no control or C1 character is ever raw."""
    return strict_json(data, indent=indent)
