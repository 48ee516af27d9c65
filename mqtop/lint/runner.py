"""Read each broker's topology and run the rules over it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from alerts.config import AlertRule
from collectors.base import BrokerOptions
from collectors.topology import Topology
from mqtop.kernel.errors import MqtopError, UsageError
from mqtop.kernel.secrets import redact
from mqtop.lint import coverage
from mqtop.lint.catalogue import CHECKS
from mqtop.lint.config import LintConfig
from mqtop.lint.model import SEVERITY_RANK, Finding
from mqtop.registry import get_plugin

READ_TIMEOUT = 60.0


@dataclass(slots=True)
class LintReport:
    """What one lint run found."""

    findings: list[Finding] = field(default_factory=list)
    suppressed: int = 0
    brokers: list[str] = field(default_factory=list)  # brokers whose topology was read
    queues: int = 0
    errors: list[str] = field(default_factory=list)  # brokers that could not be read
    notes: list[str] = field(default_factory=list)  # brokers without a topology, warnings

    def failing(self, fail_on: str) -> list[Finding]:
        """Findings at or above ``fail_on``."""
        rank = SEVERITY_RANK[fail_on]
        return [f for f in self.findings if SEVERITY_RANK[f.severity] >= rank]


def lint_topology(
    topology: Topology, rules: Sequence[AlertRule], config: LintConfig
) -> tuple[list[Finding], int]:
    """Findings of every rule over one topology (suppressions applied) and how many were
    suppressed. Pure: the unit tests call it with hand-made topologies."""
    found: list[Finding] = []
    check = CHECKS.get(topology.type)
    if check is not None:
        found.extend(check(topology))
    found.extend(coverage.check(topology, rules))
    kept = [f for f in found if not config.suppressed(f)]
    return kept, len(found) - len(kept)


async def _read(broker: BrokerOptions, seconds: float) -> Topology | None:
    plugin = get_plugin(broker.type)
    if plugin.topology is None:
        return None
    reader = plugin.topology(broker)
    try:
        return await asyncio.wait_for(reader.read(), seconds)
    finally:
        await reader.close()


async def run_lint(
    brokers: Sequence[BrokerOptions],
    rules: Sequence[AlertRule],
    config: LintConfig,
    seconds: float = READ_TIMEOUT,
) -> LintReport:
    """Lint every broker (read concurrently, each within ``seconds``); unreadable brokers go
    to ``errors``."""
    report = LintReport()
    results = await asyncio.gather(*(_read(b, seconds) for b in brokers), return_exceptions=True)
    for broker, result in zip(brokers, results, strict=True):
        if isinstance(result, UsageError):
            raise result
        if isinstance(result, BaseException):
            if not isinstance(result, Exception):
                raise result
            if isinstance(result, MqtopError):
                reason = result.message
            elif isinstance(result, TimeoutError):
                reason = f"no answer within {seconds:g}s"
            else:
                reason = f"{type(result).__name__}: {result}"
            report.errors.append(redact(f"broker {broker.name!r} could not be read: {reason}"))
            continue
        if result is None:
            report.notes.append(
                f"broker {broker.name!r} ({broker.type}): no lint rules for this broker type"
            )
            continue
        report.brokers.append(broker.name)
        report.queues += len(result.queues)
        report.notes.extend(f"broker {broker.name!r}: {w}" for w in result.warnings)
        findings, suppressed = lint_topology(result, rules, config)
        report.findings.extend(findings)
        report.suppressed += suppressed
    report.findings = sort_findings(report.findings)
    return report


def sort_findings(findings: Sequence[Finding]) -> list[Finding]:
    """By broker, most severe first, then queue and rule (the order every format shows)."""
    return sorted(findings, key=lambda f: (f.broker, -SEVERITY_RANK[f.severity], f.queue, f.rule))
