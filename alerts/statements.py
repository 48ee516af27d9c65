"""What an alert says once its condition no longer holds: resolutions and held alerts.

A firing alert's summary states its condition (``cache/jobs: queue_length 1500 > 1000``). Once
the condition is false that text would be a false statement, so resolutions and alerts held
firing (flap damping, ``resolve_after``) say what is true now (``queue_length 683 ≤ 1000``),
and why the alert is still firing or why it ended.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from types import MappingProxyType

# the operator that holds when a rule's own operator does not
NEGATED: Mapping[str, str] = MappingProxyType(
    {">": "≤", ">=": "<", "<": "≥", "<=": ">", "==": "≠", "!=": "="}
)

# why an alert resolved (``Alert.reason`` / the ``reason`` field of notifications)
CONDITION_FALSE = "condition_false"
SERIES_REMOVED = "series_removed"
RULE_REMOVED = "rule_removed"
# why a firing alert whose condition is false is still firing
HELD_FLAPPING = "flapping"
HELD_RESOLVE_AFTER = "resolve_after"


def clock(epoch: float) -> str:
    """``HH:MM:SSZ`` (UTC) of a time, for "held until" texts."""
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC).strftime("%H:%M:%SZ")


def expression(metric: str, function: str | None, window: str) -> str:
    """``queue_length`` or ``rate(queue_length[5m])``."""
    return f"{function}({metric}[{window}])" if function else metric


def below(series: str, expr: str, value_text: str | None, op: str, threshold_text: str) -> str:
    """The rule's condition stated as false: ``cache/jobs: queue_length 683 ≤ 1000``."""
    if value_text is None:
        return f"{series}: {expr} has no value"
    return f"{series}: {expr} {value_text} {NEGATED.get(op, 'not ' + op)} {threshold_text}"


def removed(series: str, polls: int) -> str:
    """A resolution because the broker stopped listing the series."""
    return f"{series}: no longer listed by the broker (removed after {polls} polls without it)"


def held(statement: str, reason: str, until: float, detail: str) -> str:
    """A firing alert whose condition is false, and until when it stays firing."""
    if reason == HELD_FLAPPING:
        why = f"held firing as flapping ({detail})"
    else:
        why = f"held firing for resolve_after {detail}"
    return f"{statement}; {why} until {clock(until)} if it stays so"
