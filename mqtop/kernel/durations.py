"""Parse and format durations such as ``500ms``, ``5s``, ``1m30s``, ``1h``, ``2d``; read the
ISO 8601 timestamps brokers report."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

from pydantic import BeforeValidator

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(value: object) -> float:
    """Return seconds for a duration string or number; raise ValueError when invalid."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 500ms, 5s, 1m, 1h")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("duration must not be negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError("expected a duration like 500ms, 5s, 1m, 1h")
    text = value.strip().lower()
    if not text:
        raise ValueError("empty duration")
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if seconds < 0:
            raise ValueError("duration must not be negative")
        return seconds
    pos = 0
    total = 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or pos == 0:
        raise ValueError(f"invalid duration {value!r}: use forms like 500ms, 5s, 1m, 1h, 1m30s")
    return total


def format_duration(seconds: float) -> str:
    """Format seconds compactly for config echo (``90`` → ``1m30s``)."""
    if seconds < 1 and seconds > 0:
        return f"{round(seconds * 1000)}ms"
    rest = round(seconds)
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(out) or "0s"


def humanize_seconds(seconds: float | None) -> str:
    """Short human form for tables: ``42s``, ``3m05s``, ``2h10m``, ``3d4h``; ``-`` for None."""
    if seconds is None:
        return "-"
    if seconds < 0:
        seconds = 0.0
    if seconds < 10:
        return f"{seconds:.1f}s"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600}h"


# ---------------------------------------------------------------- pydantic types


class DurationMarker:
    """Annotated metadata marking a float field as a duration (for display and docs)."""

    def __repr__(self) -> str:
        return "duration"


def _parse_positive_or_zero(value: object) -> float:
    return parse_duration(value)


DURATION = DurationMarker()
Duration = Annotated[float, BeforeValidator(_parse_positive_or_zero), DURATION]
"""A duration in seconds, written in config as ``500ms``, ``5s``, ``1m``, ``1h`` or a number."""


def _parse_optional(value: object) -> float | None:
    return None if value is None else parse_duration(value)


OptionalDuration = Annotated[float | None, BeforeValidator(_parse_optional), DURATION]
"""An optional duration (None when unset)."""


def is_duration_field(metadata: list[object]) -> bool:
    """True when a pydantic field's metadata marks it as a duration."""
    return any(isinstance(m, DurationMarker) for m in metadata)


def iso_epoch(value: str) -> float | None:
    """Epoch seconds of an ISO 8601 timestamp (``Z`` allowed; no zone means UTC); None when
    it is not one."""
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()
