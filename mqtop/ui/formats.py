"""How numbers and words look on every screen (one formatter per kind of value; no Textual)."""

from __future__ import annotations

import math
from collections.abc import Mapping

from mqtop.kernel.durations import humanize_seconds
from mqtop.kernel.model import group_status_name

# one symbol per severity, everywhere (the overview, the alerts screen, the detail, the header)
# the information sign (U+2139) for info is meant, not the letter i
SEVERITY_SYMBOL: Mapping[str, str] = {"critical": "✖", "warning": "▲", "info": "ℹ"}  # noqa: RUF001
SECONDS_METRICS = frozenset({"latency_seconds", "consumer_lag_seconds"})
RATE_METRICS = frozenset({"publish_rate", "processing_rate", "dlq_inflow_rate"})


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 silence``, ``2 silences``, ``0 silences`` (``many`` for irregular plurals)."""
    return f"{count} {word if count == 1 else many or word + 's'}"


def fmt_count(value: float | None) -> str:
    """Compact message count: ``987``, ``12.3k``, ``4.5M``; ``-`` when unknown."""
    if value is None:
        return "-"
    v = abs(value)
    if v < 10_000:
        return f"{value:.0f}"
    if v < 1_000_000:
        return f"{value / 1e3:.1f}k" if v < 100_000 else f"{value / 1e3:.0f}k"
    if v < 1_000_000_000:
        return f"{value / 1e6:.1f}M"
    return f"{value / 1e9:.1f}G"


def fmt_rate(value: float | None) -> str:
    """Messages per second: ``0.5``, ``42``, ``1.2k``; ``-`` when unknown."""
    if value is None:
        return "-"
    if value >= 1_000_000:
        return f"{value / 1e6:.1f}M"
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    if value >= 10:
        return f"{value:.0f}"
    return f"{value:.1f}"


def fmt_pct(value: float | None) -> str:
    """A ratio as a percentage; ``-`` when unknown."""
    if value is None:
        return "-"
    pct = value * 100
    return f"{pct:.0f}%" if pct >= 10 else f"{pct:.1f}%"


def metric_text(name: str | None, value: float | None) -> str:
    """A metric's value as every screen shows it: lag and ages as durations (``1m33s``),
    group status as its word (``STALL``), rates per second, ratios in percent, counts whole."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if name in RATE_METRICS:
        return f"{fmt_rate(value)}/s"
    if name == "error_rate":
        return fmt_pct(value)
    if name in SECONDS_METRICS:
        return humanize_seconds(value)
    if name == "group_status":
        return group_status_name(value) or fmt_count(value)
    if name is None:
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return fmt_count(value)


def count_ticks(low: float, high: float, most: int = 5) -> list[int]:
    """Whole-number axis ticks between ``low`` and ``high`` (message counts are never 1706.7)."""
    low, high = math.floor(min(low, high)), math.ceil(max(low, high))
    span = max(1, high - low)
    raw = span / max(1, most - 1)
    magnitude = 10 ** max(0, math.floor(math.log10(raw))) if raw >= 1 else 1
    step = next((m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw), 10 * magnitude)
    step = max(1, int(step))
    first = math.floor(low / step) * step
    return list(range(first, high + 1, step)) or [low]


def fold_group(queue: str, group: str, width: int) -> str:
    """``queue [group]`` in ``width`` characters: the queue kept whole when it can be, the
    group cut in the middle first."""
    full = f"{queue} [{group}]"
    if len(full) <= width:
        return full
    room = width - 3  # the brackets and the space
    keep = min(len(queue), max(room - min(len(group), 6), room // 2))
    return f"{truncate_middle(queue, keep)} [{truncate_middle(group, room - keep)}]"


def truncate_middle(text: str, width: int) -> str:
    """Cut ``text`` to ``width`` characters in the middle, so both ends stay readable
    (``email-not…ns-dlq``: a queue and its ``-dlq`` stay apart)."""
    if len(text) <= width:
        return text
    if width <= 1:
        return text[:width]
    tail = (width - 1) // 2
    head = width - 1 - tail
    return text[:head] + "…" + (text[-tail:] if tail else "")
