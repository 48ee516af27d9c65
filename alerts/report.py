"""Reports of one ``mqtop check`` run: text, JSON (the contract's shape), JUnit XML and GitHub
workflow annotations. Every string from a broker (queue names, errors) is untrusted: text and
annotations escape control characters; XML is built by ElementTree after the same escaping
(XML 1.0 cannot carry most control characters at all)."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from alerts.config import SEVERITY_ORDER
from alerts.evaluator import BROKER_DOWN, CheckResult, format_number, series_label
from alerts.model import Alert, AlertState
from alerts.notifiers import iso
from mqtop.kernel.durations import humanize_seconds
from mqtop.kernel.model import BrokerStatus
from mqtop.kernel.safe import dumps, safe_text
from mqtop.kernel.secrets import redact

FORMATS = ("text", "json", "junit", "github")


@dataclass(frozen=True, slots=True)
class CheckReport:
    """Everything a check run found."""

    alerts: Sequence[Alert]  # pending and firing, most severe first
    fail_on: str
    time: float
    errors: Sequence[str] = ()
    brokers: Sequence[BrokerStatus] = ()
    results: Sequence[CheckResult] = ()
    rules: int = 0
    series: int = 0
    duration: float = 0.0
    defaults: bool = False  # the shipped default rules were used
    notes: Sequence[str] = field(default_factory=tuple)

    @property
    def fail_rank(self) -> int:
        """Rank of ``--fail-on``."""
        return SEVERITY_ORDER.get(self.fail_on, 1)

    def failing(self) -> list[Alert]:
        """Firing alerts at or above ``--fail-on``."""
        return [
            a
            for a in self.alerts
            if a.state is AlertState.FIRING and a.severity_rank >= self.fail_rank
        ]

    @property
    def status(self) -> str:
        """``firing`` when an alert at or above ``--fail-on`` fires, else ``ok``."""
        return "firing" if self.failing() else "ok"


def _num(value: float | None) -> float | int | None:
    if value is None or not math.isfinite(value):
        return None
    if float(value).is_integer() and abs(value) < 2**53:
        return int(value)
    return round(value, 6)


def alert_json(alert: Alert) -> dict[str, Any]:
    """One alert in the contract's shape, plus ``held_until``: when a firing alert whose
    condition is already false (flap damping, ``resolve_after``) resolves if it stays so."""
    out = alert.to_json()
    out["value"] = _num(alert.value)
    out["threshold"] = _num(alert.threshold)
    out["held_until"] = iso(alert.held_until)
    return out


def render_json(report: CheckReport) -> str:
    """``{"status", "alerts", "errors"}`` (SPEC §5); strict JSON (non-finite numbers are null)."""
    return dumps(
        {
            "status": report.status,
            "alerts": [alert_json(a) for a in report.alerts],
            "errors": [redact(e) for e in report.errors],
        }
    )


def describe(alert: Alert, now: float) -> str:
    """One line for an alert: its summary (with the series when the summary lacks it)."""
    label = series_label(alert.broker, alert.queue, alert.group)
    summary = safe_text(redact(alert.summary), 500)
    if label not in alert.summary:
        summary = f"{safe_text(label, 200)}: {summary}"
    if alert.state is AlertState.PENDING and alert.active_since is not None:
        since = humanize_seconds(max(0.0, now - alert.active_since))
        return f"{summary} (pending for {since})"
    return summary


def render_text(report: CheckReport) -> str:
    """Human report: one line per alert, errors, then a status line."""
    lines = []
    width = max([len(a.rule) for a in report.alerts] + [4])
    for alert in report.alerts:
        state = alert.state.value.upper()
        if alert.silenced:
            state += "*"
        lines.append(
            f"{state:<8} {alert.severity:<8} {safe_text(alert.rule, 80):<{width}}  "
            f"{describe(alert, report.time)}"
        )
    for error in report.errors:
        lines.append(f"error: {safe_text(redact(error), 500)}")
    for note in report.notes:
        lines.append(f"note: {safe_text(note, 500)}")
    failing = len(report.failing())
    scope = f"{report.rules} rules over {report.series} series"
    if report.defaults:
        scope += " (shipped default rules)"
    if failing:
        lines.append(f"status: firing ({failing} alert(s) at or above {report.fail_on}; {scope})")
    else:
        pending = sum(1 for a in report.alerts if a.state is AlertState.PENDING)
        extra = f", {pending} pending" if pending else ""
        lines.append(f"status: ok (nothing at or above {report.fail_on} firing{extra}; {scope})")
    return "\n".join(lines)


# ---------------------------------------------------------------- JUnit


def _x(text: object, limit: int = 2000) -> str:
    """Text safe for XML 1.0 attributes and bodies (controls made visible)."""
    return safe_text(redact(str(text)), limit)


def render_junit(report: CheckReport) -> str:
    """JUnit XML: a suite per rule, a test case per rule x series; firing alerts at or
    above ``--fail-on`` are failures, series without a value are skipped."""
    suites: dict[str, list[ET.Element]] = {}
    counts: dict[str, dict[str, int]] = {}

    def case(rule: str, name: str) -> ET.Element:
        element = ET.Element("testcase", {"classname": _x(f"mqtop.{rule}"), "name": _x(name)})
        element.set("time", "0")
        suites.setdefault(rule, []).append(element)
        counts.setdefault(rule, {"tests": 0, "failures": 0, "skipped": 0})["tests"] += 1
        return element

    results = [r for r in report.results if r.rule != BROKER_DOWN]
    for result in results:
        element = case(result.rule, series_label(result.broker, result.queue, result.group))
        alert = result.alert
        if result.value is None and alert is None:
            ET.SubElement(element, "skipped", {"message": "no value for this series"})
            counts[result.rule]["skipped"] += 1
            continue
        _alert_outcome(element, result.rule, alert, report, counts)
    # one case per broker for reachability
    down = {a.broker: a for a in report.alerts if a.rule == BROKER_DOWN}
    for status in report.brokers:
        element = case(BROKER_DOWN, status.name)
        _alert_outcome(element, BROKER_DOWN, down.get(status.name), report, counts)

    root = ET.Element("testsuites", {"name": "mqtop check"})
    total = {"tests": 0, "failures": 0, "skipped": 0}
    for rule, elements in suites.items():
        c = counts[rule]
        suite = ET.SubElement(
            root,
            "testsuite",
            {
                "name": _x(f"mqtop.{rule}"),
                "tests": str(c["tests"]),
                "failures": str(c["failures"]),
                "errors": "0",
                "skipped": str(c["skipped"]),
                "time": "0",
            },
        )
        suite.extend(elements)
        for k in total:
            total[k] += c[k]
    root.set("tests", str(total["tests"]))
    root.set("failures", str(total["failures"]))
    root.set("errors", "0")
    root.set("skipped", str(total["skipped"]))
    root.set("time", f"{report.duration:.3f}")
    for error in report.errors:
        out = ET.SubElement(root, "system-err")
        out.text = _x(error)
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body


def _alert_outcome(
    element: ET.Element,
    rule: str,
    alert: Alert | None,
    report: CheckReport,
    counts: dict[str, dict[str, int]],
) -> None:
    if alert is None:
        return
    detail = (
        f"{alert.state.value} {alert.severity}: {alert.summary} "
        f"(value {format_number(alert.value)}, threshold {format_number(alert.threshold)})"
    )
    if alert.state is AlertState.FIRING and alert.severity_rank >= report.fail_rank:
        failure = ET.SubElement(
            element, "failure", {"type": alert.severity, "message": _x(alert.summary, 500)}
        )
        failure.text = _x(detail)
        counts[rule]["failures"] += 1
    else:
        out = ET.SubElement(element, "system-out")
        out.text = _x(detail)


# ---------------------------------------------------------------- GitHub


def _gh_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_prop(text: str) -> str:
    return _gh_data(text).replace(":", "%3A").replace(",", "%2C")


_GH_LEVEL = {"critical": "error", "warning": "warning", "info": "notice"}


def render_github(report: CheckReport) -> str:
    """GitHub Actions workflow commands: one annotation per alert and per error."""
    lines = []
    for alert in report.alerts:
        if alert.state is AlertState.FIRING:
            level = _GH_LEVEL.get(alert.severity, "notice")
            if alert.severity_rank < report.fail_rank and level != "notice":
                level = "notice"
            title = f"mqtop {alert.rule} ({alert.severity})"
        else:
            level = "notice"
            title = f"mqtop {alert.rule} pending ({alert.severity})"
        message = describe(alert, report.time)
        lines.append(f"::{level} title={_gh_prop(safe_text(title, 200))}::{_gh_data(message)}")
    for error in report.errors:
        message = safe_text(redact(error), 500)
        lines.append(f"::error title=mqtop broker unreachable::{_gh_data(message)}")
    failing = len(report.failing())
    if failing:
        lines.append(f"mqtop check: firing ({failing} alert(s) at or above {report.fail_on})")
    else:
        lines.append(f"mqtop check: ok (nothing at or above {report.fail_on} firing)")
    return "\n".join(lines)


def render(report: CheckReport, fmt: str) -> str:
    """Render in one of :data:`FORMATS`."""
    if fmt == "json":
        return render_json(report)
    if fmt == "junit":
        return render_junit(report)
    if fmt == "github":
        return render_github(report)
    return render_text(report)
