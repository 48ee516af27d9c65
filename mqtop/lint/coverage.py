"""The rule for every broker: a queue that no alert rule watches."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from fnmatch import fnmatchcase

from alerts.config import AlertRule
from collectors.topology import QueueTopology, Topology
from mqtop.lint.model import Finding, Rule

UNCOVERED = Rule(
    "alert-uncovered",
    "warning",
    "*",
    "queue that no alert rule covers: a backlog or failures there alert nobody",
    "add an alert rule whose match (broker, queue, kind, group) covers the queue, or drop "
    "the match that leaves it out",
    "docs/alerts.md",
)
RULES = (UNCOVERED,)


def covers(rule: AlertRule, broker: str, queue: QueueTopology) -> bool:
    """True when the rule's match globs can select a series of this queue."""
    for label, pattern in rule.match.items():
        if label == "broker":
            values: Sequence[str] = (broker,)
        elif label == "queue":
            values = (queue.name,)
        elif label == "group":
            values = ("", *(queue.consumer_groups or ()))
        else:
            continue  # kind: series kinds are the collectors'; do not guess
        if not any(fnmatchcase(v, pattern) for v in values):
            return False
    return True


def check(topology: Topology, rules: Sequence[AlertRule]) -> Iterator[Finding]:
    """A finding per queue no rule covers."""
    for queue in topology.queues:
        if not any(covers(rule, topology.broker, queue) for rule in rules):
            count = len(rules)
            yield UNCOVERED.finding(
                topology.broker,
                queue.name,
                f"none of the {count} alert rule(s) matches this queue",
            )
