"""Job-library lint rules: a Sidekiq dead set or a BullMQ failed set at or near the cap it is
silently trimmed to; a BullMQ failed set nothing ever trims; RQ failed jobs that never expire."""

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
BULLMQ_DOCS = "https://docs.bullmq.io/guide/queues/auto-removal-of-jobs"
FAILED_EVICTING = Rule(
    "bullmq-failed-evicting",
    "warning",
    "bullmq",
    "BullMQ failed set at 90% or more of removeOnFail's count (or removeOnFail: true): each "
    "new failure silently deletes the oldest failed job (true: every failed job at once)",
    "retry or delete the failed jobs (fix their cause first), or raise removeOnFail's count "
    "(or use {age: seconds}) in the jobs' options",
    BULLMQ_DOCS,
)
FAILED_UNBOUNDED = Rule(
    "bullmq-failed-unbounded",
    "info",
    "bullmq",
    "BullMQ failed jobs kept forever (the newest failed job has no removeOnFail): the failed "
    "set and its job hashes grow in Redis memory without bound, unless the workers set "
    "removeOnFail in their own options (not stored in Redis, so not seen)",
    "set removeOnFail ({count: N} or {age: seconds}) in the queue's defaultJobOptions or each "
    "job's options, and retry or delete the failed jobs",
    BULLMQ_DOCS,
)
RQ_DOCS = "https://python-rq.org/docs/exceptions/"
RQ_NO_TTL = Rule(
    "rq-failed-no-ttl",
    "info",
    "rq",
    "RQ failed jobs that never expire (failure_ttl=-1): the failed registry's cleanup never "
    "removes them and they stay in Redis memory until deleted",
    "give jobs a failure_ttl (RQ's default is one year), and requeue or delete the failed jobs",
    RQ_DOCS,
)
RULES = (DEAD_SET_FULL, FAILED_EVICTING, FAILED_UNBOUNDED, RQ_NO_TTL)


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


def check_bullmq(topology: Topology) -> Iterator[Finding]:
    """The BullMQ rules over one topology (each queue's failed set)."""
    for queue in topology.queues:
        if queue.kind != "failed-set" or queue.messages is None:
            continue
        size, cap = queue.messages, queue.max_length
        if cap == 0:
            yield FAILED_EVICTING.finding(
                topology.broker,
                queue.name,
                "removeOnFail keeps none (true or count 0): failed jobs are deleted as they fail",
            )
        elif cap is not None and size >= NEAR_FULL * cap:
            state = "full: every new failure deletes the oldest" if size >= cap else "near full"
            yield FAILED_EVICTING.finding(
                topology.broker,
                queue.name,
                f"{size:,} failed jobs of removeOnFail's {cap:,} ({size / cap:.0%}), {state}",
            )
        elif queue.unbounded_retention and size > 0:
            yield FAILED_UNBOUNDED.finding(
                topology.broker,
                queue.name,
                f"{size:,} failed jobs and no removeOnFail on the newest: none is removed unless "
                "the workers' own options set removeOnFail",
            )


def check_rq(topology: Topology) -> Iterator[Finding]:
    """The RQ rules over one topology (each queue's failed registry)."""
    for queue in topology.queues:
        if queue.kind == "failed-registry" and queue.unbounded_retention and queue.messages:
            yield RQ_NO_TTL.finding(
                topology.broker,
                queue.name,
                f"{queue.messages:,} failed jobs, some with no expiry (failure_ttl -1)",
            )
