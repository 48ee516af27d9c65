"""``mqtop demo [--headless] [--duration D] [--config PATH] [--with-local-brokers]``.

Starts local protocol servers (SQS, Redis, Kafka) and an order-processing workload in a
backend process, writes an ordinary config naming them (plus, with ``--with-local-brokers``,
any broker already listening on a default local port, read-only), and runs the normal
pipeline on it: the dashboard, or with
``--headless`` one JSON line per poll (the ``metrics --format json`` document) and one per
alert or scenario event. Ctrl-C, SIGTERM or the end of ``--duration`` stops every server and
worker. ``--config PATH`` keeps the generated config at PATH (for other ``mqtop`` commands
while the demo runs) instead of a temporary file.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from types import FrameType

from mqtop.config import Config
from mqtop.demo import runner
from mqtop.demo.runner import DemoSession
from mqtop.kernel.durations import format_duration, parse_duration
from mqtop.kernel.errors import EXIT_OK, UsageError
from mqtop.runtime import until_signalled

MAX_DURATION = 7 * 86400.0


def parse_demo_duration(value: str | None) -> float | None:
    """``--duration`` in seconds (None: run until interrupted)."""
    if value is None:
        return None
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise UsageError(f"--duration: {exc}") from None
    if seconds <= 0:
        raise UsageError("--duration: the duration must be greater than 0")
    if seconds > MAX_DURATION:
        raise UsageError(f"--duration: at most {format_duration(MAX_DURATION)}")
    return seconds


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    """Run the demo until Ctrl-C / SIGTERM / ``--duration``; exit 0 (3 if the servers fail)."""
    duration = parse_demo_duration(getattr(args, "duration", None))
    headless = bool(getattr(args, "headless", False))
    missing = runner.missing_requirements()
    if missing:
        raise UsageError(
            f"mqtop demo needs the demo extra: {runner.demo_install_hint()} "
            f"(missing: {', '.join(missing)})"
        )
    target_text = getattr(args, "config", None)
    target = Path(target_text).expanduser() if target_text else None
    if target is not None:
        runner.check_config_target(target)
    if not headless and not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("the dashboard needs a terminal; use `mqtop demo --headless`")

    session = runner.DemoSession(target, local=bool(getattr(args, "with_local_brokers", False)))
    # until the event loop handles it, SIGTERM unwinds like Ctrl-C (the finally stops all)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        config = session.start()
        signal.signal(signal.SIGTERM, previous)
        for warning in session.warnings:
            print(f"mqtop demo: {warning}", file=sys.stderr)
        if headless:
            return _headless(config, session, duration)
        return asyncio.run(runner.run_dashboard(config, session.backend, duration))
    finally:
        signal.signal(signal.SIGTERM, previous)
        session.stop()


def _headless(config: Config, session: DemoSession, duration: float | None) -> int:
    """JSON lines until the duration ends or a signal arrives; then stop the servers."""
    info = session.info
    assert info is not None
    emit = runner.json_line(sys.stdout)
    emit(
        {
            "event": "demo_started",
            "config": str(session.path),
            "brokers": [b["name"] for b in session.brokers],
            "endpoints": info.endpoints,
            "ports": info.ports,
            "pids": info.pids,
            "warnings": session.warnings,
        }
    )
    backend = session.backend

    async def work(stop: asyncio.Event) -> tuple[int, str]:
        return await runner.run_headless(config, backend, duration, emit, stop)

    code, reason = asyncio.run(until_signalled(work))
    backend.stop()
    emit({"event": "demo_stopped", "reason": reason, "exit_code": code})
    if code != EXIT_OK:
        print(f"mqtop demo: {reason}{backend.log_tail()}", file=sys.stderr)
    return code
