"""Every lint rule, by broker type."""

from __future__ import annotations

from fnmatch import fnmatchcase

from mqtop.lint import activemq, coverage, jobs, kafka, rabbitmq, sqs
from mqtop.lint.model import Check, Rule

RULES: tuple[Rule, ...] = (
    *rabbitmq.RULES,
    *sqs.RULES,
    *kafka.RULES,
    *activemq.RULES,
    *jobs.RULES,
    *coverage.RULES,
)
BY_ID: dict[str, Rule] = {rule.id: rule for rule in RULES}
# broker type -> the checks over its topology (the coverage rule is run for every broker)
CHECKS: dict[str, Check] = {
    "rabbitmq": rabbitmq.check,
    "sqs": sqs.check,
    "kafka": kafka.check,
    "activemq": activemq.check,
    "sidekiq": jobs.check_sidekiq,
    "bullmq": jobs.check_bullmq,
    "rq": jobs.check_rq,
}


def rule_ids_matching(pattern: str) -> list[str]:
    """The rule ids a suppression pattern (an id or a glob) names."""
    return [rule.id for rule in RULES if fnmatchcase(rule.id, pattern)]
