"""``mqtop metrics`` and ``mqtop queues``: one-shot reads through the polling engine."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import time

from mqtop.config import Config
from mqtop.engine import Engine, longest_timeout
from mqtop.exposition import exposition_text
from mqtop.kernel.errors import EXIT_OK, EXIT_UNREACHABLE, UsageError
from mqtop.kernel.model import BrokerStatus, SeriesKey, SeriesView
from mqtop.kernel.safe import dumps, safe_text
from mqtop.kernel.secrets import redact
from mqtop.output import metrics_json, metrics_table, render_table
from mqtop.runtime import config_from_args, deadline, run


def select_brokers(config: Config, names: list[str] | None) -> Config:
    """The config restricted to the named brokers (all when ``names`` is empty)."""
    if not names:
        return config
    chosen = [config.broker(n) for n in names]
    return config.model_copy(update={"brokers": chosen, "sources": []})


def report_warnings(statuses: list[BrokerStatus]) -> None:
    """Print each broker's warnings to stderr (formats whose stdout cannot hold them)."""
    for status in statuses:
        for warning in status.warnings:
            text = redact(f"broker {status.name!r}: {warning}")
            print(f"mqtop: warning: {safe_text(text, 500)}", file=sys.stderr)


def report_down(statuses: list[BrokerStatus]) -> bool:
    """Print one line per unreachable broker to stderr; True when any is down."""
    down = [s for s in statuses if not s.up]
    for status in down:
        message = f"broker {status.name!r} ({status.address}) unreachable: {status.error}"
        print(f"mqtop: {safe_text(redact(message), 500)}", file=sys.stderr)
    return bool(down)


# the second a stated deadline adds to its polls: the engine's CLOSE_GRACE to close
# connections, the rest for the scheduling of a loaded machine
CLOSING = 1.0


def backstop(stated: float) -> float:
    """When a command still running is stopped with "gave up at its deadline" (exit 3): at
    twice its stated deadline. The engine ends every poll at its timeout, so only a bug, or a
    machine too loaded to run the event loop (a client library imported on it), gets there;
    a late report is better than none until then."""
    return 2 * stated


def two_polls_deadline(config: Config) -> float:
    """The stated total of ``metrics`` and ``check --once``: ``interval + 2 x timeout`` for
    the two polls (the longest broker's timeout), plus ``CLOSING``."""
    return config.interval + 2 * longest_timeout(config) + CLOSING


def one_poll_deadline(config: Config) -> float:
    """The stated total of ``queues``: one poll's timeout plus ``CLOSING``."""
    return longest_timeout(config) + CLOSING


async def two_polls(engine: Engine, interval: float) -> None:
    """Poll everything, wait one interval, poll the brokers that answered again (for rates).

    Each poll ends at its broker's timeout, so this takes at most ``max(interval, timeout) +
    timeout``; a broker that does not answer is not waited for."""
    started = time.monotonic()
    first = await engine.poll_all()
    up = [s.broker for s in first if s.up]
    if up:
        await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))
        await engine.poll_all(up)


def _visible(view: SeriesView) -> SeriesView:
    """The view with control characters in its labels shown as escapes."""
    key = view.key
    safe = SeriesKey(
        safe_text(key.broker),
        safe_text(key.queue),
        None if key.group is None else safe_text(key.group),
    )
    return view if safe == key else dataclasses.replace(view, key=safe)


def _require_brokers(config: Config) -> None:
    if not config.brokers and not config.sources:
        where = config.source or "no config file; no broker detected on default local ports"
        raise UsageError(f"no brokers to read ({where}); see `mqtop init` or config.example.yaml")


def run_metrics(args: argparse.Namespace) -> int:
    """One snapshot of every metric (two polls, an interval apart, so rates exist)."""
    config = select_brokers(config_from_args(args), args.broker)
    _require_brokers(config)

    async def main() -> tuple[list[BrokerStatus], Engine]:
        engine = Engine(config)
        engine.prepare()
        async with deadline(backstop(two_polls_deadline(config)), "metrics"):
            try:
                await two_polls(engine, config.interval)
            finally:
                await engine.close()
        return list(engine.statuses.values()), engine

    statuses, engine = run(main())
    views = engine.store.views(include_stale=False)
    if args.format == "json":
        print(dumps(metrics_json(statuses, views, time.time())))
        report_warnings(statuses)  # SPEC §5 fixes the document's keys: warnings go to stderr
    elif args.format == "prometheus":
        # the exposition format cannot escape control characters, so label values are made
        # visible as in the table (`serve` keeps them exact: /metrics is not a terminal)
        visible = [_visible(v) for v in views]
        sys.stdout.write(exposition_text(statuses, visible, config.labels, config.exporter))
        report_warnings(statuses)
    else:
        print(metrics_table(statuses, views))
    return EXIT_UNREACHABLE if report_down(statuses) else EXIT_OK


def run_queues(args: argparse.Namespace) -> int:
    """Discovered queues with their kind and DLQ mapping (one poll)."""
    config = select_brokers(config_from_args(args), [args.broker] if args.broker else None)
    _require_brokers(config)

    async def main() -> Engine:
        engine = Engine(config)
        engine.prepare()
        async with deadline(backstop(one_poll_deadline(config)), "queues"):
            try:
                await engine.poll_all()
            finally:
                await engine.close()
        return engine

    engine = run(main())
    statuses = list(engine.statuses.values())
    views = engine.store.views(include_stale=False)
    if args.format == "json":
        rows = [
            {
                "broker": v.key.broker,
                "queue": v.key.queue,
                "group": v.key.group,
                "kind": v.kind,
                "dlq": v.dlq,
            }
            for v in views
        ]
        print(dumps(rows))
        report_warnings(statuses)  # the list of queues has no place for them
    else:
        table = [
            [
                safe_text(v.key.broker, 24),
                safe_text(v.key.queue, 64),
                safe_text(v.key.group or "-", 32),
                v.kind,
                safe_text(v.dlq or "-", 64),
            ]
            for v in views
        ]
        print(
            render_table(table, ["BROKER", "QUEUE", "GROUP", "KIND", "DLQ"])
            if table
            else "(no queues found)"
        )
        report_warnings(statuses)
    return EXIT_UNREACHABLE if report_down(statuses) else EXIT_OK
