"""Job-library lint rules: a Sidekiq dead set at or near the cap it silently trims to."""

from __future__ import annotations

from collections.abc import Iterator

from collectors.topology import Topology
from mqtop.lint.model import Finding, Rule

SIDEKIQ_DOCS = "https://github.com/sidekiq/sidekiq/wiki/Error-Handling"
NEAR_FULL = 0.9  # a dead set this full has little room left before it evicts

DEAD_SET_FULL = Rule(
    "sidekiq-dead-set-full",
    "warning",
    "sidekiq",
    "Sidekiq dead set at 90% or more of its cap (dead_max_jobs - 1): each new dead job "
    "silently evicts the oldest",
    "retry or delete the dead jobs (fix their cause first), or raise dead_max_jobs in Sidekiq "
    "and in mqtop's broker config",
    SIDEKIQ_DOCS,
)
RULES = (DEAD_SET_FULL,)


def check_sidekiq(topology: Topology) -> Iterator[Finding]:
    """The Sidekiq rules over one topology."""
    for queue in topology.queues:
        if queue.kind != "dead-set":
            continue
        size, cap = queue.messages, queue.max_length
        if size is None or cap is None or cap <= 0:
            continue
        if size >= NEAR_FULL * cap:
            state = "full: every new dead job evicts the oldest" if size >= cap else "near full"
            yield DEAD_SET_FULL.finding(
                topology.broker,
                queue.name,
                f"{size:,} dead jobs of a cap of {cap:,} ({size / cap:.0%}), {state}",
            )
