"""Lint rules and findings."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from collectors.topology import Topology

Severity = Literal["info", "warning", "critical"]
SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}
DOCS = "docs/lint.md"


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule broken by one queue."""

    rule: str
    severity: Severity
    broker: str
    queue: str
    message: str
    fix: str

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--format json``."""
        return {
            "rule": self.rule,
            "severity": self.severity,
            "broker": self.broker,
            "queue": self.queue,
            "message": self.message,
            "fix": self.fix,
        }


Check = Callable[[Topology], Iterable[Finding]]


@dataclass(frozen=True, slots=True)
class Rule:
    """A lint rule: stable id, severity, what it checks, the fix and its source."""

    id: str
    severity: Severity
    broker: str  # broker type it applies to, or "*" for every broker
    title: str
    fix: str
    source: str  # the broker documentation the reason comes from

    def finding(self, broker: str, queue: str, message: str) -> Finding:
        """A finding of this rule."""
        return Finding(self.id, self.severity, broker, queue, message, self.fix)

    @property
    def help_uri(self) -> str:
        """Where the rule is documented (docs/lint.md anchor)."""
        return f"{DOCS}#{self.id}"
