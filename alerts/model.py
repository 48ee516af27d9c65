"""Alert values shared by the evaluator, notifiers, ``mqtop check`` and the dashboard."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from alerts.config import SEVERITY_ORDER


class AlertState(enum.StrEnum):
    """Lifecycle of one rule x series: inactive -> pending -> firing -> resolved."""

    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Alert:
    """The state of one rule for one series (or one broker, for built-in rules)."""

    rule: str
    severity: str
    state: AlertState
    broker: str | None
    queue: str | None
    group: str | None
    value: float | None
    threshold: float | None
    summary: str
    labels: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    active_since: float | None = None  # condition first true (pending started)
    fired_at: float | None = None
    resolved_at: float | None = None
    silenced: bool = False
    # firing while its condition is false (flap damping, resolve_after): when it will resolve
    # if the condition stays false
    held_until: float | None = None
    # resolved: why (condition_false, series_removed, rule_removed); held: flapping or
    # resolve_after; None while plainly pending or firing
    reason: str | None = None

    @property
    def severity_rank(self) -> int:
        """0 info, 1 warning, 2 critical."""
        return SEVERITY_ORDER.get(self.severity, 0)

    def identity(self) -> tuple[str, str | None, str | None, str | None]:
        """Stable identity: rule and series labels."""
        return (self.rule, self.broker, self.queue, self.group)

    def to_json(self) -> dict[str, Any]:
        """The contract's alert shape (``check --format json``)."""
        return {
            "rule": self.rule,
            "severity": self.severity,
            "state": self.state.value,
            "broker": self.broker,
            "queue": self.queue,
            "group": self.group,
            "value": self.value,
            "threshold": self.threshold,
            "summary": self.summary,
        }


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """A transition worth notifying: ``firing`` (also re-notifications), ``held`` (a flapping
    alert whose condition turned false stays firing until ``alert.held_until``) or
    ``resolved``."""

    kind: str  # "firing" | "held" | "resolved"
    alert: Alert
    time: float
    repeat: bool = False
