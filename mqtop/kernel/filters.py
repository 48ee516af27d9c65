"""``--filter`` expressions, shared by every broker's replay and move.

Forms (several ``--filter`` flags must all match):
* ``body:TEXT``          body contains TEXT (UTF-8)
* ``body~REGEX``         body matches REGEX (Python syntax, searched anywhere)
* ``header.NAME=VALUE``  header / attribute NAME equals VALUE (compared as text)
* ``json.PATH=VALUE``    body parsed as JSON; dotted PATH (``a.b.0.c``) equals VALUE
  (VALUE parsed as JSON when it can be: ``json.retries=3``, ``json.ok=true``)
* ``age>DURATION`` / ``age<DURATION``  the message's time (a dead job's failure time) is older
  / younger than DURATION (``age>1h``); a message whose broker gives no time never matches
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mqtop.kernel.errors import UsageError

_MISSING = object()


@dataclass(frozen=True)
class Condition:
    """One parsed filter condition."""

    kind: str  # body_contains | body_regex | header | json | age
    target: str
    value: Any
    pattern: re.Pattern[bytes] | None = None

    def matches(
        self,
        body: bytes,
        headers: Mapping[str, Any],
        parsed: Any,
        timestamp: float | None = None,
    ) -> bool:
        """Evaluate against one message (``parsed`` is the body as JSON or _MISSING)."""
        if self.kind == "age":
            if timestamp is None:
                return False
            age = time.time() - timestamp
            return bool(age > self.value if self.target == ">" else age < self.value)
        if self.kind == "body_contains":
            return bool(self.value) and bool(self.value in body)
        if self.kind == "body_regex":
            assert self.pattern is not None
            return self.pattern.search(body) is not None
        if self.kind == "header":
            if self.target not in headers:
                return False
            actual = headers[self.target]
            if isinstance(actual, bytes):
                actual = actual.decode("utf-8", "replace")
            return bool(str(actual) == self.value)
        if parsed is _MISSING:
            return False
        return bool(_lookup(parsed, self.target) == self.value)


def _lookup(data: Any, path: str) -> Any:
    current = data
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.lstrip("-").isdigit():
            index = int(part)
            if -len(current) <= index < len(current):
                current = current[index]
            else:
                return _MISSING
        else:
            return _MISSING
    return current


@dataclass(frozen=True)
class Filter:
    """All conditions must match."""

    conditions: tuple[Condition, ...]
    source: tuple[str, ...]

    def matches(
        self, body: bytes, headers: Mapping[str, Any], timestamp: float | None = None
    ) -> bool:
        """True when every condition matches the message (``timestamp``: its epoch time)."""
        parsed: Any = _MISSING
        if any(c.kind == "json" for c in self.conditions):
            try:
                parsed = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                parsed = _MISSING
        return all(c.matches(body, headers, parsed, timestamp) for c in self.conditions)

    def __str__(self) -> str:
        return " AND ".join(self.source)


def parse_condition(expr: str) -> Condition:
    """Parse one expression or raise a UsageError explaining the forms."""
    if expr.startswith("body:"):
        return Condition("body_contains", "body", expr[5:].encode("utf-8"))
    if expr.startswith("body~"):
        try:
            pattern = re.compile(expr[5:].encode("utf-8"))
        except re.error as exc:
            raise UsageError(f"--filter {expr!r}: invalid regular expression: {exc}") from None
        return Condition("body_regex", "body", expr[5:], pattern)
    if expr.startswith("header.") and "=" in expr:
        name, _, value = expr[7:].partition("=")
        if not name:
            raise UsageError(f"--filter {expr!r}: header name is empty")
        return Condition("header", name, value)
    if expr.startswith("json.") and "=" in expr:
        path, _, raw = expr[5:].partition("=")
        if not path:
            raise UsageError(f"--filter {expr!r}: JSON path is empty")
        try:
            expected: Any = json.loads(raw)
        except ValueError:
            expected = raw
        return Condition("json", path, expected)
    if expr.startswith(("age>", "age<")):
        from mqtop.kernel.durations import parse_duration

        try:
            seconds = parse_duration(expr[4:])
        except ValueError as exc:
            raise UsageError(f"--filter {expr!r}: {exc}") from None
        return Condition("age", expr[3], seconds)
    raise UsageError(
        f"--filter {expr!r}: use body:TEXT, body~REGEX, header.NAME=VALUE, json.PATH=VALUE "
        "or age>DURATION / age<DURATION"
    )


def parse_filters(exprs: Sequence[str] | None) -> Filter | None:
    """Compile ``--filter`` flags (None when there are none)."""
    if not exprs:
        return None
    return Filter(tuple(parse_condition(e) for e in exprs), tuple(exprs))
