"""``mqtop dlq peek|replay|move|purge|reclaim``: arguments -> request -> service -> print.

Every rule the brokers share (readonly refusal, an audit log that can be written, source
different from destination, the confirmation question, audit records) lives in the
dead-letter service (:mod:`mqtop.dlq`), which the dashboard uses too. This module reads the
command line, asks on the terminal, shows progress and prints the contract's shapes.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any, Literal

from collectors.base import MoveProgress, MoveResult, PeekedMessage, ReclaimRequest
from collectors.kit.options import DEST_PREFIX
from mqtop.commands.interrupt import MoveInterrupt
from mqtop.dlq import DeadLetterService, open_service
from mqtop.kernel.durations import humanize_seconds, parse_duration
from mqtop.kernel.errors import EXIT_OK, EXIT_UNREACHABLE, UsageError
from mqtop.kernel.filters import parse_filters
from mqtop.kernel.safe import body_preview, decode_body, dumps, json_safe, safe_text
from mqtop.runtime import config_from_args
from mqtop.runtime import run as run_async

Handler = Callable[[argparse.Namespace, DeadLetterService], Coroutine[Any, Any, int]]


def run(args: argparse.Namespace) -> int:
    """Dispatch a dlq sub-command."""
    config = config_from_args(args)
    broker = config.broker(args.broker)
    handler: Handler = {
        "peek": _peek,
        "replay": _move,
        "move": _move,
        "purge": _purge,
        "reclaim": _reclaim,
    }[args.dlq_command]

    async def main() -> int:
        async with open_service(config, broker) as service:
            return await handler(args, service)

    return run_async(main())


def confirm(question: str, assume_yes: bool) -> None:
    """Ask on the terminal; without a terminal, require --yes."""
    if assume_yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(f"{question} -- refusing without confirmation: pass --yes")
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        raise UsageError("cancelled")


# ---------------------------------------------------------------- peek


def _clip(value: Any, limit: int) -> tuple[Any, bool]:
    """Header/property values cut at ``limit`` bytes or characters (True when one was cut)."""
    if isinstance(value, bytes | str):
        return (value[:limit], True) if len(value) > limit else (value, False)
    if isinstance(value, dict):
        cut = False
        out: dict[Any, Any] = {}
        for key, item in value.items():
            out[key], clipped = _clip(item, limit)
            cut = cut or clipped
        return out, cut
    if isinstance(value, list | tuple):
        pairs = [_clip(item, limit) for item in value]
        return [item for item, _ in pairs], any(clipped for _, clipped in pairs)
    return value, False


def peek_json(message: PeekedMessage, max_body: int) -> dict[str, Any]:
    """One peeked message in the contract's JSON shape."""
    body = message.body
    truncated = len(body) > max_body
    shown = body[:max_body] if truncated else body
    text, encoding = decode_body(shown)
    # header values can be as big as a body (a Redis stream entry's fields): cut them too
    headers, headers_cut = _clip(dict(message.headers), max_body)
    properties, properties_cut = _clip(dict(message.properties), max_body)
    if encoding == "base64" and truncated:
        # a cut inside a UTF-8 sequence must not turn a text body into base64
        with contextlib.suppress(UnicodeDecodeError):
            body.decode("utf-8")
            text, encoding = shown.decode("utf-8", "ignore"), "utf8"
    out: dict[str, Any] = {
        "id": message.id,
        "body": text,
        "body_encoding": encoding,
        "size": len(body) if message.body_complete else message.body_size,
        "headers": json_safe(headers),
        "properties": json_safe(properties),
        "death": None
        if message.death is None
        else {
            "reason": message.death.reason,
            "count": message.death.count,
            "original_queue": message.death.original_queue,
        },
    }
    if truncated or not message.body_complete:
        out["truncated"] = True
    if headers_cut or properties_cut:
        out["headers_truncated"] = True
    return out


def _age(message: PeekedMessage, now: float) -> str:
    return "-" if message.timestamp is None else humanize_seconds(now - message.timestamp)


async def _peek(args: argparse.Namespace, service: DeadLetterService) -> int:
    if args.n < 1:
        raise UsageError("-n must be at least 1")
    warning = await service.peek_warning(args.queue)
    if warning:
        print(f"note: {safe_text(warning, 1000)}", file=sys.stderr)
    messages = (await service.peek(args.queue, args.n)).messages
    for m in messages:
        if m.note:
            print(f"note: message {safe_text(m.id, 80)}: {safe_text(m.note, 500)}", file=sys.stderr)
    if args.format == "json":
        print(dumps([peek_json(m, args.max_body) for m in messages]))
        return EXIT_OK
    from mqtop.output import render_table

    now = time.time()
    rows = []
    for m in messages:
        death = m.death
        reason = "-"
        if death is not None:
            reason = (
                f"{death.reason or '?'} x{death.count}" if death.count else (death.reason or "?")
            )
        rows.append(
            [
                safe_text(m.id, 40),
                _age(m, now),
                safe_text(reason, 30),
                safe_text(death.original_queue if death and death.original_queue else "-", 40),
                str(len(m.body)),
                body_preview(m.body, 80),
            ]
        )
    if not rows:
        print(f"(no messages in {safe_text(args.queue)})")
    else:
        print(render_table(rows, ["ID", "AGE", "DEATH", "ORIGINAL", "SIZE", "BODY"]))
    return EXIT_OK


# ---------------------------------------------------------------- replay / move


def given_move_options(args: argparse.Namespace) -> dict[str, Any]:
    """The broker move options set on the command line (flags left out are not given)."""
    return {
        key[len(DEST_PREFIX) :]: value
        for key, value in vars(args).items()
        if key.startswith(DEST_PREFIX) and value is not None
    }


class ProgressPrinter:
    """A single updating progress line on a terminal (silent otherwise)."""

    def __init__(self, enabled: bool, label: str) -> None:
        self.enabled = enabled
        self.label = label
        self._last = 0.0

    def __call__(self, progress: MoveProgress) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.1 and progress.done != progress.total:
            return
        self._last = now
        total = f"/{progress.total}" if progress.total is not None else ""
        extra = f" failed {progress.failed}" if progress.failed else ""
        sys.stderr.write(f"\r{self.label}: {progress.done}{total}{extra}   ")
        sys.stderr.flush()

    def finish(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


def print_result(result: MoveResult, fmt: str, verb: str) -> None:
    """Print a move result as the contract's JSON or a short text summary.

    With ``--format json`` stdout holds exactly the contract's object; notes and errors go
    to stderr as ``note: …`` / ``error: …`` lines, as in the text format.
    """
    if fmt == "json":
        print(dumps(result.to_json()))
        sys.stdout.flush()
        for note in result.notes:
            print(f"note: {safe_text(note, 1000)}", file=sys.stderr)
        for error in result.errors[:20]:
            print(f"error: {safe_text(error, 1000)}", file=sys.stderr)
        return
    head = "dry run: would move" if result.dry_run else verb
    print(
        f"{head} {result.moved} message(s) from {safe_text(result.source)} to "
        f"{safe_text(result.destination)}; failed {result.failed}, skipped {result.skipped}"
    )
    if result.duplicates_possible:
        print(
            f"warning: up to {result.duplicates_possible} message(s) may have been delivered "
            "twice (an interrupted earlier run)"
        )
    for note in result.notes:
        print(f"note: {safe_text(note, 1000)}")
    for error in result.errors[:20]:
        print(f"error: {safe_text(error, 1000)}", file=sys.stderr)


async def _move(args: argparse.Namespace, service: DeadLetterService) -> int:
    mode: Literal["replay", "move"] = "replay" if args.dlq_command == "replay" else "move"
    if args.limit is not None and args.limit < 0:
        raise UsageError("--limit must not be negative")
    plan = await service.plan_move(
        mode,
        args.dlq if mode == "replay" else args.src,
        args.to if mode == "replay" else args.dst,
        limit=args.limit,
        msg_filter=parse_filters(args.filters),
        dry_run=args.dry_run,
        options=service.move_options(given_move_options(args)),
    )
    if not args.dry_run:
        confirm(plan.question, args.yes)
    # SIGINT/SIGTERM/SIGHUP: the broker stops between batches, then it is reported (interrupt.py)
    interrupt = MoveInterrupt(service.actions)
    plan = replace(plan, request=replace(plan.request, stop=interrupt.stop))
    printer = ProgressPrinter(sys.stderr.isatty() and args.format == "text", mode)
    with interrupt:
        try:
            result = await service.move(plan, printer)
        finally:
            printer.finish()
        print_result(result, args.format, "replayed" if mode == "replay" else "moved")
    if interrupt.exit_code is not None:
        print(f"mqtop: interrupted by {interrupt.name}", file=sys.stderr)
        return interrupt.exit_code
    # an error means the action stopped part-way, even when no message failed
    return EXIT_OK if result.complete else EXIT_UNREACHABLE


# ---------------------------------------------------------------- purge


async def _purge(args: argparse.Namespace, service: DeadLetterService) -> int:
    plan = await service.plan_purge(args.queue)
    confirm(plan.question, args.yes)
    purged = await service.purge(plan)
    if args.format == "json":
        print(dumps({"queue": args.queue, "purged": purged}))
    else:
        shown = "all" if purged is None else str(purged)
        print(f"purged {shown} message(s) from {safe_text(args.queue)}")
    return EXIT_OK


# ---------------------------------------------------------------- reclaim


async def _reclaim(args: argparse.Namespace, service: DeadLetterService) -> int:
    try:
        idle = parse_duration(args.idle)
    except ValueError as exc:
        raise UsageError(f"--idle: {exc}") from None
    plan = service.plan_reclaim(
        ReclaimRequest(
            stream=args.stream,
            group=args.group,
            idle=idle,
            to_stream=args.to,
            consumer=args.consumer,
            limit=args.limit,
            dry_run=args.dry_run,
        )
    )
    if plan.question is not None:
        confirm(plan.question, args.yes)
    report = await service.reclaim(plan)
    if args.format == "json":
        print(dumps(report))
    else:
        entries = report.get("entries", [])
        from mqtop.output import render_table

        rows = [
            [
                safe_text(e.get("id", ""), 30),
                safe_text(e.get("consumer", "-"), 30),
                humanize_seconds((e.get("idle_ms") or 0) / 1000),
                str(e.get("deliveries", "-")),
                safe_text(e.get("result", "-"), 20),
            ]
            for e in entries
        ]
        if rows:
            print(render_table(rows, ["ID", "CONSUMER", "IDLE", "DELIVERIES", "RESULT"]))
        summary = {k: v for k, v in report.items() if k != "entries"}
        print(safe_text(" ".join(f"{k}={v}" for k, v in summary.items())))
    return EXIT_OK if not report.get("failed") else EXIT_UNREACHABLE
