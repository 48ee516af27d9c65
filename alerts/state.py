"""The state of one rule x series, what one evaluation cycle shares, and what is reported."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from alerts.config import SEVERITY_ORDER
from alerts.model import Alert, AlertEvent, AlertState
from alerts.rules import Identity
from mqtop.kernel.model import BrokerStatus, SeriesView
from mqtop.kernel.store import TimeSeriesStore


class RuleState:
    """Mutable state of one rule x identity (internal)."""

    __slots__ = (
        "active_since",
        "clear_since",
        "extra",
        "fired_at",
        "flapping",
        "held_notified",
        "held_until",
        "hold_reason",
        "last_notified",
        "notified",
        "rendered",
        "silenced",
        "state",
        "value",
    )

    def __init__(self, active_since: float) -> None:
        self.state = AlertState.PENDING
        self.value: float | None = None
        self.active_since = active_since
        self.fired_at: float | None = None
        self.clear_since: float | None = None
        self.last_notified: float | None = None
        self.notified = False  # receivers were told it is firing
        self.silenced = False
        self.flapping = False
        self.held_until: float | None = None  # condition false, still firing until then
        self.hold_reason: str | None = None
        self.held_notified = False  # a flapping hold was notified (once per episode)
        self.extra: dict[str, Any] | None = None
        # the alert last built from this state, its rule and extra: reused while they hold
        self.rendered: tuple[Alert, object, dict[str, Any] | None] | None = None

    def unhold(self) -> None:
        """The condition holds again: not held any more."""
        self.clear_since = None
        self.held_until = None
        self.hold_reason = None


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One rule x series as evaluated (for reports with one entry per pair)."""

    rule: str
    severity: str
    broker: str | None
    queue: str | None
    group: str | None
    value: float | None
    threshold: float | None
    state: AlertState
    alert: Alert | None


@dataclass(slots=True)
class Cycle:
    """What one evaluation cycle shares between rules (internal)."""

    store: TimeSeriesStore
    statuses: Mapping[str, BrokerStatus]
    now: float
    views: Sequence[SeriesView]
    down: set[str]
    stale: set[int]
    events: list[AlertEvent]
    has_silences: bool
    bases: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    # per metric: the positions whose value (or staleness) changed since the last cycle,
    # sorted, and their values (for the rules judged incrementally)
    changed_values: dict[str, tuple[list[int], list[float]]] = field(default_factory=dict)


class RuleTrack:
    """What an incremental cycle of one threshold rule builds on (internal): the positions
    whose condition holds, the states whose condition does not (held or frozen), the true
    states that are not simply firing and notified (pending, silenced, not yet notified), and
    the earliest time a notified one may be due for a repeat."""

    __slots__ = ("attention", "due", "false", "true")

    def __init__(
        self, true: set[int], false: set[Identity], attention: set[Identity], due: float
    ) -> None:
        self.true = true
        self.false = false
        self.attention = attention
        self.due = due


def alert_sort_key(alert: Alert) -> tuple[int, int, str, str, str, str]:
    """Most severe first, firing before pending, then by rule and labels."""
    state_rank = 0 if alert.state is AlertState.FIRING else 1
    return (
        -SEVERITY_ORDER.get(alert.severity, 0),
        state_rank,
        alert.rule,
        alert.broker or "",
        alert.queue or "",
        alert.group or "",
    )
