"""Alert rules as a Prometheus rule file (``mqtop rules export --format prometheus``).

Each configured rule becomes one alerting rule over the series ``mqtop serve`` exports, so the
same thresholds run in Prometheus: ``match`` globs become label matchers (``kind`` through a
join with ``mqtop_queue_info``), ``function`` + ``window`` become ``*_over_time`` / ``delta``
expressions, ``labels`` become alert labels (named as the Alertmanager notifier names them),
``summary`` becomes an annotation in Prometheus' template language. The built-ins
``BrokerDown`` (``mqtop_up == 0``) and ``GroupStalled`` are added; ``SeriesStale`` is not:
Prometheus marks a series that stops being exported stale by itself.

Everything user-written is escaped twice over: as PromQL string literals inside expressions and
as literal text of Go templates (Prometheus expands labels and annotations as templates), so a
queue named ``{{ ... }}`` or ``"`` reaches Prometheus as plain text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from alerts.config import AlertRule
from alerts.evaluator import BROKER_DOWN, DEFAULT_SUMMARY, GROUP_STALLED, format_number
from alerts.notifiers import label_name
from alerts.rules import FUNCTION_SUMMARY

UP_METRIC = "mqtop_up"
INFO_METRIC = "mqtop_queue_info"
INFO_ONLY_LABELS = ("kind", "dlq")  # labels of the info series that value series do not carry
# labels an alert gets from its series (or from Prometheus): a rule label must not shadow them
_RESERVED = frozenset({"alertname", "broker", "queue", "group", "severity", "source"})
_REGEX_META = frozenset("\\.+*?()|[]{}^$")
_SPEC = re.compile(r"^\.(\d{1,2})([fFeEgG%])$|^([fFeEgGd])$")


# ---------------------------------------------------------------- escaping


def promql_string(value: str) -> str:
    """A PromQL double-quoted string literal holding ``value`` exactly."""
    out = ['"']
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def glob_to_regex(pattern: str) -> str:
    """An RE2 regular expression (anchored by Prometheus) matching what fnmatch matches."""
    out: list[str] = []
    dotted = False
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append(".*")
            dotted = True
        elif ch == "?":
            out.append(".")
            dotted = True
        elif ch == "[":
            j = i
            if j < n and pattern[j] == "!":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                out.append("\\[")  # no closing bracket: a literal '[', as fnmatch reads it
                continue
            stuff = pattern[i:j]
            i = j + 1
            negate = stuff.startswith("!")
            if negate:
                stuff = stuff[1:]
            body = "".join("\\" + c if c in "\\[]^" else c for c in stuff)
            out.append(f"[{'^' if negate else ''}{body}]")
            dotted = dotted or negate
        elif ch in _REGEX_META:
            out.append("\\" + ch)
        else:
            out.append(ch)
    regex = "".join(out)
    # fnmatch's '*' and '?' match newlines too (mqtop compiles with DOTALL)
    return f"(?s){regex}" if dotted else regex


def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def go_literal(text: str) -> str:
    """``text`` as literal output of a Go template (every ``{`` escaped, nothing expanded)."""
    if "{" not in text:
        return text
    return text.replace("{", '{{ "{" }}')


def prom_duration(seconds: float) -> str:
    """A Prometheus duration (``1h30m``, ``45s``, ``500ms``)."""
    ms = round(seconds * 1000)
    if ms <= 0:
        return "0s"
    out = []
    for unit, size in (("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000),
                       ("m", 60_000), ("s", 1000), ("ms", 1)):  # fmt: skip
        if ms >= size:
            out.append(f"{ms // size}{unit}")
            ms %= size
    return "".join(out)


def prom_number(value: float) -> str:
    """A PromQL number literal."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


# ---------------------------------------------------------------- expressions


def matchers(match: Mapping[str, str]) -> tuple[str, str]:
    """(selector of the value series, selector of mqtop_queue_info for ``kind``)."""
    series: list[str] = []
    info: list[str] = []
    for label in sorted(match):
        pattern = match[label]
        target = info if label in INFO_ONLY_LABELS else series
        if pattern == "*":
            continue  # matches every value, an absent (null) label included
        if _is_glob(pattern):
            target.append(f"{label}=~{promql_string(glob_to_regex(pattern))}")
        else:
            target.append(f"{label}={promql_string(pattern)}")
    return ",".join(series), ",".join(info)


def rule_expr(rule: AlertRule) -> str:
    """The PromQL expression of one configured rule."""
    series, info = matchers(rule.match)
    selector = f"mqtop_{rule.metric}{{{series}}}" if series else f"mqtop_{rule.metric}"
    if rule.function is not None and rule.window is not None:
        window = prom_duration(rule.window)
        # mqtop's metrics are gauges: delta() (not rate()/increase(), which read every fall as
        # a counter reset) is last minus first, extrapolated to the window's edges
        if rule.function == "avg":
            value = f"avg_over_time({selector}[{window}])"
        elif rule.function == "max":
            value = f"max_over_time({selector}[{window}])"
        elif rule.function == "increase":
            value = f"delta({selector}[{window}])"
        else:
            value = f"delta({selector}[{window}]) / {prom_number(rule.window)}"
    else:
        value = selector
    expr = f"{value} {rule.op} {prom_number(float(rule.threshold))}"
    if info:
        ignored = ", ".join(INFO_ONLY_LABELS)
        expr = f"({expr}) and ignoring({ignored}) {INFO_METRIC}{{{info}}}"
    return expr


# ---------------------------------------------------------------- templates

_SERIES = (
    "{{ $labels.broker }}/{{ $labels.queue }}{{ if $labels.group }} [{{ $labels.group }}]{{ end }}"
)
_LABEL_FIELDS = {
    "broker": "{{ $labels.broker }}",
    "queue": "{{ $labels.queue }}",
    "group": "{{ if $labels.group }}{{ $labels.group }}{{ else }}-{{ end }}",
}
_FIELD = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)(?::([^{}]*))?\}")


def _value_action(spec: str | None) -> str:
    """``{value}`` / ``{value:SPEC}`` as a template action (unknown specs print plainly)."""
    found = _SPEC.match(spec) if spec else None
    if found is None:
        return "{{ $value }}"
    digits, kind, bare = found.groups()
    if kind == "%":
        return "{{ humanizePercentage $value }}"
    verb = f".{digits}{kind}" if digits else (".0f" if bare == "d" else bare)
    return f'{{{{ printf "%{verb}" $value }}}}'


def summary_template(rule: AlertRule, builtin: bool = False) -> str:
    """mqtop's ``summary`` template rewritten in Prometheus' template language."""
    text = rule.summary or (FUNCTION_SUMMARY if rule.function else DEFAULT_SUMMARY)
    constants: dict[str, str] = {
        "rule": rule.name,
        "metric": rule.metric,
        "op": rule.op,
        "severity": rule.severity,
        "function": rule.function or "",
        "window": prom_duration(rule.window) if rule.window is not None else "",
    }
    out: list[str] = []
    pos = 0
    for found in _FIELD.finditer(text):
        out.append(go_literal(text[pos : found.start()]))
        pos = found.end()
        token = found.group(0)
        name, spec = found.group(1), found.group(2)
        if token in ("{{", "}}"):
            out.append(go_literal(token[0]))
        elif name == "value":
            out.append(_value_action(spec))
        elif name == "threshold":
            threshold = float(rule.threshold)
            rendered = format_number(threshold)
            if spec:
                try:
                    rendered = format(threshold, spec)
                except (ValueError, TypeError):
                    pass
            out.append(go_literal(rendered))
        elif name == "series":
            out.append(_SERIES)
        elif name in _LABEL_FIELDS:
            out.append(_LABEL_FIELDS[name])
        elif name in constants:
            out.append(go_literal(constants[name]))
        else:
            out.append(go_literal(token))  # unknown names stay as written
    out.append(go_literal(text[pos:]))
    return "".join(out)


# ---------------------------------------------------------------- the file


def _labels(rule: AlertRule) -> dict[str, str]:
    labels: dict[str, str] = {}
    for key, value in rule.labels.items():
        name = label_name(key)
        if name not in _RESERVED:
            labels[name] = go_literal(str(value))
    labels["severity"] = rule.severity
    return labels


def export_rule(rule: AlertRule) -> dict[str, Any]:
    """One configured rule as a Prometheus alerting rule."""
    out: dict[str, Any] = {"alert": rule.name, "expr": rule_expr(rule)}
    if rule.for_ > 0:
        out["for"] = prom_duration(rule.for_)
    out["labels"] = _labels(rule)
    out["annotations"] = {
        "summary": summary_template(rule),
        "threshold": prom_number(float(rule.threshold)),
    }
    return out


def builtin_rules(configured: set[str]) -> list[dict[str, Any]]:
    """``BrokerDown`` and ``GroupStalled`` (unless a configured rule replaces them)."""
    out: list[dict[str, Any]] = []
    if BROKER_DOWN not in configured:
        out.append(
            {
                "alert": BROKER_DOWN,
                "expr": f"{UP_METRIC} == 0",
                "labels": {"severity": "critical"},
                "annotations": {
                    "summary": "broker {{ $labels.broker }} is unreachable "
                    "(the last poll by mqtop failed)"
                },
            }
        )
    if GROUP_STALLED not in configured:
        out.append(
            {
                "alert": GROUP_STALLED,
                # 2 STALL, 3 STOP (4 ERROR is the collector's own problem, not the group's)
                "expr": "mqtop_group_status == 2 or mqtop_group_status == 3",
                "labels": {"severity": "critical"},
                "annotations": {
                    "summary": _SERIES + ": {{ if $labels.group }}consumer group "
                    "{{ $labels.group }}{{ else }}queue{{ end }} is "
                    "{{ if eq $value 2.0 }}STALL{{ else }}STOP{{ end }}"
                },
            }
        )
    return out


def export_document(
    rules: Sequence[AlertRule], group: str = "mqtop", builtin: bool = True
) -> dict[str, Any]:
    """The rule file as data: one group with every rule."""
    exported = [export_rule(r) for r in rules]
    if builtin:
        exported += builtin_rules({r.name for r in rules})
    return {"groups": [{"name": group, "rules": exported}]}


def render(
    rules: Sequence[AlertRule], group: str = "mqtop", builtin: bool = True, source: str = ""
) -> str:
    """The rule file as YAML text, with a header saying where it came from."""
    import yaml

    header = "# Prometheus alerting rules written by `mqtop rules export --format prometheus`"
    if source:
        header += f"\n# from {source.replace(chr(10), ' ')}"
    body = yaml.safe_dump(
        export_document(rules, group, builtin),
        sort_keys=False,
        allow_unicode=False,  # escapes, never raw control characters, in the file
        width=1_000_000,  # one line per expression: easier to read and to diff
        default_flow_style=False,
    )
    return f"{header}\n{body}"
