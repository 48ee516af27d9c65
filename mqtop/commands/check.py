"""``mqtop check``: evaluate alert rules headless, for CI.

``--once`` (default) polls every broker twice, an interval apart (so rates exist), and
evaluates once. A rule with ``for:`` fires only if the stored points (including persisted
history when ``history.path`` is set) show its condition true for the whole duration.
``--for D`` keeps polling and evaluating for up to D and stops as soon as an alert at or above
``--fail-on`` fires.

Exit codes: 1 when an alert at or above ``--fail-on`` fires (this wins over an unreachable
broker, which is reported in ``errors``); else 3 when a broker could not be reached; else 0.
The built-in ``BrokerDown`` alert is reported but maps to exit 3, not 1. Silences are not
applied and no notifications are sent: a check only reports.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from alerts.evaluator import BROKER_DOWN, AlertEvaluator
from alerts.model import Alert, AlertState
from alerts.report import CheckReport, describe, render
from alerts.silences import SilenceStore
from mqtop.commands.metrics import backstop, two_polls, two_polls_deadline
from mqtop.config import Config
from mqtop.engine import Engine
from mqtop.kernel.durations import format_duration, parse_duration
from mqtop.kernel.errors import EXIT_FIRING, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE, UsageError
from mqtop.kernel.model import BrokerStatus
from mqtop.kernel.safe import safe_text
from mqtop.kernel.secrets import redact
from mqtop.runtime import config_from_args, deadline
from mqtop.runtime import run as run_async

MAX_WATCH = 7 * 86400.0
Identity = tuple[str, str | None, str | None, str | None]


def _watch_duration(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise UsageError(f"--for: {exc}") from None
    if seconds <= 0:
        raise UsageError("--for: the duration must be greater than 0")
    if seconds > MAX_WATCH:
        raise UsageError(f"--for: at most {format_duration(MAX_WATCH)}")
    return seconds


def _check_output_path(value: str | None) -> Path | None:
    if not value:
        return None
    path = Path(value).expanduser()
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise UsageError(f"--output {value}: is a directory")
    if not parent.is_dir():
        raise UsageError(f"--output {value}: directory {parent} does not exist")
    return path


def broker_errors(statuses: Mapping[str, BrokerStatus]) -> list[str]:
    """One line per broker that is not up."""
    out = []
    for status in statuses.values():
        if status.up:
            continue
        reason = status.error or "no answer"
        out.append(redact(f"broker {status.name!r} ({status.address}) unreachable: {reason}"))
    return out


def _note_transitions(seen: dict[Identity, str], alerts: list[Alert]) -> None:
    """In watch mode, say on stderr when an alert turns pending, firing or held (firing while
    its condition is false, until ``held_until``)."""
    current: dict[Identity, str] = {}
    for alert in alerts:
        key = alert.identity()
        word = "held" if alert.held_until is not None else alert.state.value
        current[key] = word
        if seen.get(key) == word:
            continue
        print(
            f"mqtop: {word} {alert.severity} {safe_text(alert.rule, 80)} "
            f"{describe(alert, time.time())}",
            file=sys.stderr,
            flush=True,
        )
    seen.clear()
    seen.update(current)


def _fails(alerts: list[Alert], rank: int) -> bool:
    return any(
        a.state is AlertState.FIRING and a.severity_rank >= rank and a.rule != BROKER_DOWN
        for a in alerts
    )


async def _evaluate(
    config: Config, watch: float | None, fail_rank: int, want_results: bool
) -> tuple[AlertEvaluator, Engine, float]:
    engine = Engine(config)
    evaluator = AlertEvaluator(config.alerts, config.alerting, silences=SilenceStore(None))
    started = time.monotonic()
    try:
        await engine.load_history()  # local disk: before the deadline starts
        engine.prepare()
        if watch is None:
            async with deadline(backstop(two_polls_deadline(config)), "check --once"):
                await two_polls(engine, config.interval)
            evaluator.evaluate(engine.store, engine.statuses, time.time())
        else:
            await _watch(engine, evaluator, config, watch, fail_rank)
    finally:
        await engine.stop()
    return evaluator, engine, time.monotonic() - started


async def _watch(
    engine: Engine, evaluator: AlertEvaluator, config: Config, watch: float, fail_rank: int
) -> None:
    wake = asyncio.Event()
    unsubscribe = engine.store.subscribe(lambda _snapshot: wake.set())
    deadline = time.monotonic() + watch
    tick = max(0.05, min(1.0, config.interval / 2))
    seen: dict[Identity, str] = {}
    engine.start()
    try:
        while True:
            remaining = deadline - time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), max(0.0, min(tick, remaining)))
            wake.clear()
            evaluator.evaluate(engine.store, engine.statuses, time.time())
            alerts = evaluator.alerts()
            _note_transitions(seen, alerts)
            if _fails(alerts, fail_rank) or time.monotonic() >= deadline:
                return
    finally:
        unsubscribe()


def run(args: argparse.Namespace) -> int:
    """Evaluate the alert rules once (or for a while) and report; exit 0, 1, 2 or 3."""
    watch = _watch_duration(getattr(args, "for_", None))
    output = _check_output_path(getattr(args, "output", None))
    fmt = getattr(args, "format", "text") or "text"
    fail_on = getattr(args, "fail_on", "warning") or "warning"
    config = config_from_args(args)
    if not config.brokers and not config.sources:
        where = config.source or "no config file; no broker detected on default local ports"
        raise UsageError(f"no brokers to check ({where}); see `mqtop init` or config.example.yaml")

    from alerts.config import SEVERITY_ORDER

    rank = SEVERITY_ORDER[fail_on]
    evaluator, engine, duration = run_async(_evaluate(config, watch, rank, fmt == "junit"))
    alerts = evaluator.alerts()
    errors = broker_errors(engine.statuses)
    notes = []
    if watch is None:
        waiting = [a for a in alerts if a.state is AlertState.PENDING]
        if waiting and config.history.path is None:
            notes.append(
                "pending alerts need their `for:` duration of stored history to fire "
                "(set history.path to keep history between runs, or use --for)"
            )
        elif waiting:
            notes.append("pending alerts fire once stored history covers their `for:`")
    report = CheckReport(
        alerts=alerts,
        fail_on=fail_on,
        time=time.time(),
        errors=errors,
        brokers=list(engine.statuses.values()),
        results=list(evaluator.results(engine.store)) if fmt == "junit" else [],
        rules=len(evaluator.rules),
        series=len(engine.store.views(include_stale=False)),
        duration=duration,
        defaults=config.alerts_from_defaults,
        notes=notes if fmt == "text" else [],
    )
    text = render(report, fmt)
    print(text)
    if fmt != "text":
        for error in errors:
            print(f"mqtop: {safe_text(error, 500)}", file=sys.stderr)
    if output is not None:
        try:
            output.write_text(text + "\n", encoding="utf-8")
        except OSError as exc:
            print(f"mqtop: --output {output}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_USAGE
    if _fails(alerts, rank):
        return EXIT_FIRING
    if errors or any(a.rule == BROKER_DOWN and a.state is AlertState.FIRING for a in alerts):
        return EXIT_UNREACHABLE
    return EXIT_OK
