"""The ``lint:`` section of the config: suppressions per rule, broker and queue glob."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mqtop.lint.catalogue import RULES, rule_ids_matching
from mqtop.lint.model import Finding


class LintIgnore(BaseModel):
    """One suppression: findings of ``rule`` on queues matching ``queue`` (and ``broker``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: str = Field(description="Rule id (docs/lint.md) or a glob of ids, e.g. `rabbitmq-*`.")
    queue: str = Field("*", description="Glob of queue names the suppression applies to.")
    broker: str = Field("*", description="Glob of broker names the suppression applies to.")

    @field_validator("rule")
    @classmethod
    def _known_rule(cls, value: str) -> str:
        if not rule_ids_matching(value):
            known = ", ".join(rule.id for rule in RULES)
            raise ValueError(f"no lint rule matches {value!r} (rules: {known})")
        return value

    def suppresses(self, finding: Finding) -> bool:
        """True when this entry hides ``finding``."""
        return (
            fnmatchcase(finding.rule, self.rule)
            and fnmatchcase(finding.queue, self.queue)
            and fnmatchcase(finding.broker, self.broker)
        )


class LintConfig(BaseModel):
    """``lint: {ignore: [...]}``: findings the operator has accepted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ignore: list[LintIgnore] = Field(
        default_factory=list,
        description="Suppressed findings: a rule id (every queue) or "
        "`{rule: ID, queue: GLOB, broker: GLOB}` (see docs/lint.md).",
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("ignore"), list):
            data = {
                **data,
                "ignore": [{"rule": e} if isinstance(e, str) else e for e in data["ignore"]],
            }
        return data

    def suppressed(self, finding: Finding) -> bool:
        """True when an entry of ``ignore`` hides ``finding``."""
        return any(entry.suppresses(finding) for entry in self.ignore)
