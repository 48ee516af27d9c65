"""Alert summaries: templates with ``{name}`` / ``{name:spec}`` fields and the texts they
are made of (numbers, series labels, windows)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_FIELD = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)(?::([^{}]*))?\}")


def format_number(value: float | None) -> str:
    """Compact text for a metric value (``n/a`` when unknown)."""
    if value is None or value != value:
        return "n/a"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}"


def _format_field(name: str, value: Any, spec: str | None) -> str:
    if spec and isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return format(value, spec)
        except (ValueError, TypeError):
            pass
    if isinstance(value, float) or value is None:
        return format_number(value) if name in ("value", "threshold") else str(value or "-")
    return str(value)


class Template:
    """A summary template parsed once: ``{name}`` / ``{name:spec}`` fields, ``{{``/``}}``
    for literal braces; unknown names stay as written."""

    __slots__ = ("names", "parts")

    def __init__(self, text: str) -> None:
        parts: list[tuple[str, str | None, str | None, str]] = []
        literal = ""
        pos = 0
        for match in _FIELD.finditer(text):
            literal += text[pos : match.start()]
            pos = match.end()
            token = match.group(0)
            if token in ("{{", "}}"):
                literal += token[0]
                continue
            parts.append((literal, match.group(1), match.group(2), token))
            literal = ""
        literal += text[pos:]
        if literal:
            parts.append((literal, None, None, ""))
        self.parts = tuple(parts)
        self.names = frozenset(name for _, name, _, _ in parts if name)

    def render(self, fields: Mapping[str, Any]) -> str:
        """The text with every known field filled in."""
        out = []
        for literal, name, spec, raw in self.parts:
            out.append(literal)
            if name is None:
                continue
            if name in fields:
                out.append(_format_field(name, fields[name], spec))
            else:
                out.append(raw)
        return "".join(out)


_TEMPLATES: dict[str, Template] = {}


def render_summary(template: str, fields: Mapping[str, Any]) -> str:
    """Fill ``{name}`` / ``{name:spec}`` fields; unknown names stay as written."""
    compiled = _TEMPLATES.get(template)
    if compiled is None:
        if len(_TEMPLATES) > 1024:
            _TEMPLATES.clear()
        compiled = _TEMPLATES[template] = Template(template)
    return compiled.render(fields)


def consumer_of(key: tuple[str | None, str | None, str | None]) -> str:
    """What a health status judges: a consumer group, or a queue's consumers."""
    return "queue" if key[2] is None else f"consumer group {key[2]}"


def series_label(broker: str | None, queue: str | None, group: str | None) -> str:
    """``broker/queue`` or ``broker/queue [group]`` (``broker`` alone for broker alerts)."""
    if queue is None:
        return broker or "-"
    base = f"{broker}/{queue}"
    return f"{base} [{group}]" if group else base


def format_window(window: float | None) -> str:
    if window is None:
        return ""
    from mqtop.kernel.durations import format_duration

    return format_duration(window)
