"""``mqtop serve``: lint findings as ``mqtop_lint_findings{rule,severity,broker,queue} 1``.

The daemon lints its brokers at start and every :data:`LINT_EVERY` seconds, in its own task
(a topology read is a few management / admin calls per broker, far rarer than a poll). A
broker that cannot be read keeps the findings of its last good read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from alerts.config import AlertRule
from collectors.base import BrokerOptions
from mqtop.exposition import CachedFamilies
from mqtop.kernel.errors import UsageError
from mqtop.lint.config import LintConfig
from mqtop.lint.model import Finding
from mqtop.lint.runner import run_lint
from mqtop.registry import get_plugin

LINT_EVERY = 300.0
METRIC = "mqtop_lint_findings"
log = logging.getLogger("mqtop.lint")


def lintable(brokers: Iterable[BrokerOptions]) -> list[BrokerOptions]:
    """The brokers whose plugin reads a topology."""
    out = []
    for broker in brokers:
        try:
            if get_plugin(broker.type).topology is not None:
                out.append(broker)
        except UsageError:
            continue
    return out


class LintExporter:
    """Keeps the latest findings; a prometheus_client-style collector over them."""

    def __init__(
        self,
        brokers: Sequence[BrokerOptions],
        rules: Sequence[AlertRule],
        config: LintConfig,
        every: float = LINT_EVERY,
    ) -> None:
        self.every = every
        self.configure(brokers, rules, config)
        self._findings: dict[str, list[Finding]] = {}
        self._lock = threading.Lock()
        self._task: asyncio.Task[None] | None = None
        self.runs = 0

    def configure(
        self, brokers: Sequence[BrokerOptions], rules: Sequence[AlertRule], config: LintConfig
    ) -> None:
        """New brokers, alert rules or suppressions (a config reload); used from the next run."""
        self._brokers = lintable(brokers)
        self._rules = list(rules)
        self._config = config

    async def run_once(self) -> None:
        """Lint every broker once and keep what was found."""
        brokers = self._brokers
        report = await run_lint(brokers, self._rules, self._config)
        unreadable = {b.name for b in brokers} - set(report.brokers)
        fresh: dict[str, list[Finding]] = {name: [] for name in report.brokers}
        for finding in report.findings:
            fresh.setdefault(finding.broker, []).append(finding)
        with self._lock:
            kept = {k: v for k, v in self._findings.items() if k in unreadable}
            self._findings = {**kept, **fresh}
            self.runs += 1
        for error in report.errors:
            log.warning("lint: %s", error)

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception as exc:  # a bug in one run must not stop the daemon
                log.error("lint run failed: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(self.every)

    def start(self) -> None:
        """Lint now and then every ``every`` seconds (nothing when no broker has rules)."""
        if self._brokers and self._task is None:
            self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        """Stop the periodic runs."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def findings(self) -> list[Finding]:
        """The latest findings of every broker."""
        with self._lock:
            return [f for found in self._findings.values() for f in found]

    def collect(self) -> Iterable[Any]:
        """One gauge family: 1 per finding."""
        return _families(self.findings())

    def families(self) -> CachedFamilies:
        """The findings for the exposition, rendered once per lint run (not per scrape)."""
        with self._lock:
            found = self._findings  # replaced, never changed in place, by each run
        return CachedFamilies(
            "lint", found, lambda: _families([f for fs in found.values() for f in fs])
        )


def _families(findings: Iterable[Finding]) -> Iterable[Any]:
    from prometheus_client.core import GaugeMetricFamily

    family = GaugeMetricFamily(
        METRIC,
        "1 for every mqtop lint finding (rule ids in docs/lint.md).",
        labels=["rule", "severity", "broker", "queue"],
    )
    for f in findings:
        family.add_metric([f.rule, f.severity, f.broker, f.queue], 1.0)
    yield family
