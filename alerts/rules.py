"""Alert rules prepared for evaluation: the comparison, label globs, summary template; the
built-in rules (BrokerDown, GroupStalled, SeriesStale)."""

from __future__ import annotations

import fnmatch
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from alerts.config import AlertRule
from alerts.summaries import Template, format_number, format_window
from mqtop.kernel.model import SeriesView

BROKER_DOWN = "BrokerDown"
GROUP_STALLED = "GroupStalled"
SERIES_STALE = "SeriesStale"
BUILTIN_RULES: tuple[str, ...] = (BROKER_DOWN, GROUP_STALLED, SERIES_STALE)
STALE_POLLS = 3.0  # default stale_after, in poll intervals
BACKFILL_GAP = 300.0  # a longer gap between stored points breaks a `for:` chain

Identity = tuple[str | None, str | None, str | None]  # broker, queue, group


OPS: Mapping[str, Callable[[Any, Any], bool]] = MappingProxyType(
    {
        ">": operator.gt,
        ">=": operator.ge,
        "<": operator.lt,
        "<=": operator.le,
        "==": operator.eq,
        "!=": operator.ne,
    }
)

DEFAULT_SUMMARY = "{series}: {metric} {value} {op} {threshold}"
FUNCTION_SUMMARY = "{series}: {function}({metric}[{window}]) {value} {op} {threshold}"
BUILTIN_SUMMARY = {
    BROKER_DOWN: "broker {broker} is unreachable: {error}",
    GROUP_STALLED: "{series}: {consumer} is {status}",
    SERIES_STALE: "broker {broker}: no poll has stored data for {value}s (stale after "
    "{threshold}s); its numbers are that old",
}
BUILTIN_RESOLVED = {
    BROKER_DOWN: "broker {broker} is reachable again",
    SERIES_STALE: "broker {broker}: polled again",
}


class CompiledRule:
    """A rule prepared for fast evaluation."""

    __slots__ = (
        "builtin",
        "for_",
        "function",
        "kind_match",
        "labels",
        "match",
        "metric",
        "name",
        "op",
        "opfn",
        "plain_summary",
        "predicate",
        "rule",
        "severity",
        "summary",
        "template",
        "threshold",
        "threshold_text",
        "window",
        "window_text",
    )

    def __init__(self, rule: AlertRule, builtin: bool = False) -> None:
        self.rule = rule
        self.name = rule.name
        self.metric = rule.metric
        self.op = rule.op
        self.opfn = OPS[rule.op]
        self.threshold = float(rule.threshold)
        self.for_ = float(rule.for_)
        self.severity = rule.severity
        self.function = rule.function
        self.window = rule.window
        self.builtin = builtin
        self.predicate: Callable[[float], bool] | None = None
        self.match: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
            (label, re.compile(fnmatch.translate(pattern), re.DOTALL))
            for label, pattern in sorted(rule.match.items())
        )
        self.kind_match = any(label == "kind" for label, _ in self.match)
        if rule.summary:
            self.summary = rule.summary
        elif builtin:
            self.summary = BUILTIN_SUMMARY.get(rule.name, DEFAULT_SUMMARY)
        else:
            self.summary = FUNCTION_SUMMARY if rule.function else DEFAULT_SUMMARY
        self.template = Template(self.summary)
        # the default summary of a configured threshold rule, rendered without the template
        self.plain_summary = (
            not builtin and rule.function is None and self.summary == DEFAULT_SUMMARY
        )
        self.threshold_text = format_number(self.threshold)
        self.labels: Mapping[str, str] = MappingProxyType(dict(rule.labels))
        self.window_text = format_window(rule.window)

    def matches(self, view: SeriesView) -> bool:
        """True when every label glob matches the series (a null label matches as empty)."""
        key = view.key
        for label, pattern in self.match:
            if label == "broker":
                text = key.broker
            elif label == "queue":
                text = key.queue
            elif label == "group":
                text = key.group or ""
            else:
                text = view.kind or ""
            if not pattern.match(text):
                return False
        return True

    def holds(self, value: float | None) -> bool:
        """The condition for one value (null never holds)."""
        if value is None or value != value:
            return False
        if self.predicate is not None:
            return self.predicate(value)
        return self.opfn(value, self.threshold)


def builtin_rules() -> list[CompiledRule]:
    down = CompiledRule(
        AlertRule.model_validate(
            {"name": BROKER_DOWN, "metric": "queue_length", "threshold": 0, "severity": "critical"}
        ),
        builtin=True,
    )
    stalled = CompiledRule(
        AlertRule.model_validate(
            {
                "name": GROUP_STALLED,
                "metric": "group_status",
                "op": ">=",
                "threshold": 2,
                "severity": "critical",
            }
        ),
        builtin=True,
    )
    stalled.predicate = lambda v: v in (2.0, 3.0)  # STALL or STOP
    stale = CompiledRule(
        AlertRule.model_validate(
            {"name": SERIES_STALE, "metric": "queue_length", "threshold": 0, "severity": "info"}
        ),
        builtin=True,
    )
    return [down, stalled, stale]


def loosest_thresholds(rules: Sequence[CompiledRule]) -> dict[tuple[str, str], float]:
    """Per (metric, direction) shared by several threshold rules: the threshold whose
    true set contains every other's (lowest for > and >=, highest for < and <=)."""
    groups: dict[tuple[str, str], list[float]] = {}
    for rule in rules:
        plain = rule.function is None and rule.predicate is None and not rule.builtin
        if plain and rule.op in (">", ">=", "<", "<="):
            groups.setdefault((rule.metric, rule.op), []).append(rule.threshold)
    out = {}
    for (metric, op), thresholds in groups.items():
        if len(thresholds) > 1:
            out[(metric, op)] = min(thresholds) if op in (">", ">=") else max(thresholds)
    return out
