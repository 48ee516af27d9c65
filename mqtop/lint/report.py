"""``mqtop lint`` reports: text (grouped by broker), strict JSON, JUnit XML, GitHub workflow
annotations and SARIF 2.1.0. Queue and broker names are untrusted: every format escapes
control characters (:func:`mqtop.kernel.safe.safe_text`); XML goes through ElementTree."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

from mqtop import __version__
from mqtop.kernel.safe import dumps, safe_text
from mqtop.kernel.secrets import redact
from mqtop.lint.catalogue import RULES
from mqtop.lint.model import SEVERITY_RANK, Finding, Rule
from mqtop.lint.runner import LintReport

FORMATS = ("text", "json", "junit", "github", "sarif")
INFO_URI = "https://github.com/mqtop/mqtop/blob/main/docs/lint.md"
_SARIF_LEVEL = {"critical": "error", "warning": "warning", "info": "note"}


def _s(text: object, limit: int = 500) -> str:
    return safe_text(redact(str(text)), limit)


def _status(report: LintReport, fail_on: str) -> str:
    return "failing" if report.failing(fail_on) else "ok"


def _summary(report: LintReport, fail_on: str) -> str:
    failing = len(report.failing(fail_on))
    counts = {s: sum(1 for f in report.findings if f.severity == s) for s in SEVERITY_RANK}
    parts = [f"{n} {s}" for s, n in sorted(counts.items(), key=lambda i: -SEVERITY_RANK[i[0]])]
    scope = f"{len(report.brokers)} broker(s), {report.queues} queue(s)"
    if report.suppressed:
        scope += f", {report.suppressed} suppressed"
    if failing:
        return f"status: failing ({failing} finding(s) at or above {fail_on}: " + (
            ", ".join(p for p in parts if not p.startswith("0 ")) + f"; {scope})"
        )
    return f"status: ok (nothing at or above {fail_on}; {len(report.findings)} finding(s); {scope})"


def render_text(report: LintReport, fail_on: str) -> str:
    """Findings grouped by broker, one line each with its fix below."""
    lines: list[str] = []
    current = None
    width = max([len(f.rule) for f in report.findings] + [10])
    for finding in report.findings:
        if finding.broker != current:
            current = finding.broker
            lines.append(f"{_s(current, 200)}:")
        lines.append(
            f"  {finding.severity.upper():<8} {finding.rule:<{width}}  "
            f"{_s(finding.queue, 200)}: {_s(finding.message)}"
        )
        lines.append(f"  {'':<8} {'':<{width}}  fix: {finding.fix}")
    for error in report.errors:
        lines.append(f"error: {_s(error)}")
    for note in report.notes:
        lines.append(f"note: {_s(note)}")
    lines.append(_summary(report, fail_on))
    return "\n".join(lines)


def render_json(report: LintReport, fail_on: str) -> str:
    """``{"status", "fail_on", "findings", "suppressed", "brokers", "errors", "notes"}``."""
    return dumps(
        {
            "status": _status(report, fail_on),
            "fail_on": fail_on,
            "findings": [f.to_json() for f in report.findings],
            "suppressed": report.suppressed,
            "brokers": report.brokers,
            "errors": [redact(e) for e in report.errors],
            "notes": [redact(n) for n in report.notes],
        }
    )


def render_junit(report: LintReport, fail_on: str) -> str:
    """A test suite per broker, a failing test case per finding at or above ``--fail-on``
    (others are passed cases with the finding in system-out), an error case per broker that
    could not be read."""
    root = ET.Element("testsuites", {"name": "mqtop lint"})
    rank = SEVERITY_RANK[fail_on]
    by_broker: dict[str, list[Finding]] = {b: [] for b in report.brokers}
    for finding in report.findings:
        by_broker.setdefault(finding.broker, []).append(finding)
    totals = {"tests": 0, "failures": 0, "errors": 0}
    for broker, findings in by_broker.items():
        suite = ET.SubElement(root, "testsuite", {"name": _s(f"mqtop.lint.{broker}")})
        failures = 0
        for finding in findings:
            case = ET.SubElement(
                suite,
                "testcase",
                {"classname": _s(f"mqtop.lint.{finding.rule}"), "name": _s(finding.queue)},
            )
            text = f"{finding.severity}: {finding.message} (fix: {finding.fix})"
            if SEVERITY_RANK[finding.severity] >= rank:
                failure = ET.SubElement(
                    case, "failure", {"type": finding.severity, "message": _s(finding.message)}
                )
                failure.text = _s(text, 2000)
                failures += 1
            else:
                ET.SubElement(case, "system-out").text = _s(text, 2000)
        if not findings:
            ET.SubElement(suite, "testcase", {"classname": "mqtop.lint", "name": "topology"})
        tests = max(1, len(findings))
        suite.attrib.update(tests=str(tests), failures=str(failures), errors="0", skipped="0")
        totals["tests"] += tests
        totals["failures"] += failures
    if report.errors:
        suite = ET.SubElement(root, "testsuite", {"name": "mqtop.lint.brokers"})
        for error in report.errors:
            case = ET.SubElement(suite, "testcase", {"classname": "mqtop.lint", "name": "read"})
            ET.SubElement(case, "error", {"message": _s(error)}).text = _s(error, 2000)
        count = str(len(report.errors))
        suite.attrib.update(tests=count, failures="0", errors=count, skipped="0")
        totals["tests"] += len(report.errors)
        totals["errors"] += len(report.errors)
    root.attrib.update({k: str(v) for k, v in totals.items()})
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


def _gh_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_prop(text: str) -> str:
    return _gh_data(text).replace(":", "%3A").replace(",", "%2C")


def render_github(report: LintReport, fail_on: str) -> str:
    """GitHub Actions annotations: ``::error`` for critical findings, ``::warning`` for
    warnings (``::notice`` below ``--fail-on``), one per unreadable broker."""
    rank = SEVERITY_RANK[fail_on]
    lines = []
    for f in report.findings:
        level = {"critical": "error", "warning": "warning"}.get(f.severity, "notice")
        if SEVERITY_RANK[f.severity] < rank:
            level = "notice"
        title = _gh_prop(f"mqtop lint {f.rule} ({f.severity})")
        message = f"{_s(f.broker, 200)}/{_s(f.queue, 200)}: {_s(f.message)} Fix: {f.fix}"
        lines.append(f"::{level} title={title}::{_gh_data(message)}")
    for error in report.errors:
        lines.append(f"::error title=mqtop lint broker unreadable::{_gh_data(_s(error))}")
    lines.append("mqtop lint: " + _summary(report, fail_on).removeprefix("status: "))
    return "\n".join(lines)


def _sarif_rule(rule: Rule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "name": rule.id,
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": f"{rule.title}. Source: {rule.source}"},
        "help": {"text": f"Fix: {rule.fix}"},
        "helpUri": f"{INFO_URI}#{rule.id}",
        "defaultConfiguration": {"level": _SARIF_LEVEL[rule.severity]},
        "properties": {"severity": rule.severity, "broker": rule.broker},
    }


def render_sarif(report: LintReport, fail_on: str, rules: Sequence[Rule] = RULES) -> str:
    """SARIF 2.1.0: one run, the rule catalogue in ``tool.driver.rules``, a result per
    finding located by a logical location (``broker/queue``)."""
    index = {rule.id: i for i, rule in enumerate(rules)}
    results = []
    for f in report.findings:
        results.append(
            {
                "ruleId": f.rule,
                "ruleIndex": index[f.rule],
                "level": _SARIF_LEVEL[f.severity],
                "message": {"text": f"{_s(f.queue, 200)}: {_s(f.message)} Fix: {f.fix}"},
                "locations": [
                    {
                        "logicalLocations": [
                            {
                                "name": _s(f.queue, 200),
                                "fullyQualifiedName": f"{_s(f.broker, 200)}/{_s(f.queue, 200)}",
                                "kind": "module",
                            }
                        ]
                    }
                ],
                "properties": {"broker": f.broker, "queue": f.queue, "severity": f.severity},
            }
        )
    notifications = [{"level": "error", "message": {"text": redact(e)}} for e in report.errors]
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "mqtop lint",
                "version": __version__,
                "informationUri": INFO_URI,
                "rules": [_sarif_rule(rule) for rule in rules],
            }
        },
        "results": results,
        "invocations": [
            {
                "executionSuccessful": not report.errors,
                "toolExecutionNotifications": notifications,
            }
        ],
    }
    return dumps(
        {
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "version": "2.1.0",
            "runs": [run],
        }
    )


def render(report: LintReport, fmt: str, fail_on: str) -> str:
    """Render in one of :data:`FORMATS`."""
    if fmt == "json":
        return render_json(report, fail_on)
    if fmt == "junit":
        return render_junit(report, fail_on)
    if fmt == "github":
        return render_github(report, fail_on)
    if fmt == "sarif":
        return render_sarif(report, fail_on)
    return render_text(report, fail_on)
