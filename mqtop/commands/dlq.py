"""``mqtop dlq peek|replay|move|purge|reclaim``: the broker-independent part.

Brokers supply :class:`collectors.base.MessageActions`; this module handles what every broker
shares: readonly refusal, side-effect notices, confirmation, progress, the audit log, the
contract's JSON shapes and exit codes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

from collectors.base import (
    BrokerOptions,
    MessageActions,
    MoveProgress,
    MoveRequest,
    MoveResult,
    PeekedMessage,
    ReclaimRequest,
    StreamReclaim,
)
from collectors.kit.options import DEST_PREFIX, build_move_options
from mqtop.audit import audit
from mqtop.config import Config
from mqtop.engine import describe_error
from mqtop.kernel.durations import humanize_seconds, parse_duration
from mqtop.kernel.errors import (
    EXIT_OK,
    EXIT_UNREACHABLE,
    ActionFailed,
    MqtopError,
    ReadOnlyBroker,
    UnsupportedAction,
    UsageError,
)
from mqtop.kernel.filters import parse_filters
from mqtop.kernel.safe import body_preview, decode_body, dumps, json_safe, safe_text
from mqtop.registry import get_plugin
from mqtop.runtime import config_from_args


def run(args: argparse.Namespace) -> int:
    """Dispatch a dlq sub-command."""
    config = config_from_args(args)
    broker = config.broker(args.broker)
    handler: Callable[[argparse.Namespace, Config, BrokerOptions, MessageActions], Any] = {
        "peek": _peek,
        "replay": _move,
        "move": _move,
        "purge": _purge,
        "reclaim": _reclaim,
    }[args.dlq_command]
    return asyncio.run(_with_actions(args, config, broker, handler))


async def _with_actions(
    args: argparse.Namespace,
    config: Config,
    broker: BrokerOptions,
    handler: Callable[[argparse.Namespace, Config, BrokerOptions, MessageActions], Any],
) -> int:
    collector = get_plugin(broker.type).create(broker)
    actions = collector.actions()
    if actions is None:
        raise UnsupportedAction(
            f"broker {broker.name!r} ({broker.type}) has no message actions in this version"
        )
    try:
        code: int = await handler(args, config, broker, actions)
        return code
    except MqtopError:
        raise
    except Exception as exc:
        # client libraries raise their own types for auth, TLS and protocol failures
        # (pika's ProbableAuthenticationError, botocore's ClientError...): one line, exit 3
        if os.environ.get("MQTOP_DEBUG"):
            raise
        raise ActionFailed(
            f"broker {broker.name!r} ({broker.address()}): {describe_error(exc)}"
        ) from None
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(actions.close(), 10)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(collector.close(), 10)


def record_kept(
    config: Config,
    broker: BrokerOptions,
    queue: str,
    messages: Sequence[PeekedMessage],
    via: str | None = None,
) -> int:
    """Audit the writes a peek had to make (messages re-published so as not to lose them);
    returns how many."""
    kept = [m.id for m in messages if m.note]
    if kept:
        details: dict[str, Any] = {"republished": kept[:100], "reason": "delivery limit reached"}
        if via:
            details["via"] = via
        audit(
            config.audit_path(),
            broker=broker.name,
            action="peek",
            source=queue,
            destination=queue,
            count=len(kept),
            result="ok",
            details=details,
        )
    return len(kept)


def audit_move(
    config: Config,
    broker: BrokerOptions,
    request: MoveRequest,
    result: MoveResult,
    via: str | None = None,
) -> None:
    """The audit record of a finished replay/move (a dry run only when it had to write)."""
    if request.dry_run and not result.republished:
        return
    details: dict[str, Any] = {
        "failed": result.failed,
        "skipped": result.skipped,
        "filter": str(request.filter) if request.filter else None,
        "duplicates_possible": result.duplicates_possible,
    }
    if result.republished:  # written back to the source so as not to lose them
        details["republished_to_source"] = result.republished
    if via:
        details["via"] = via
    audit(
        config.audit_path(),
        broker=broker.name,
        action=request.mode,
        source=request.source,
        destination=request.destination,
        count=0 if request.dry_run else result.moved,
        result="dry run" if request.dry_run else "ok" if result.complete else "partial",
        details=details,
    )


def refuse_if_readonly(broker: BrokerOptions, action: str) -> None:
    """Raise ReadOnlyBroker for writes on a ``readonly: true`` broker."""
    if broker.readonly:
        raise ReadOnlyBroker(
            f"broker {broker.name!r} is configured readonly: {action} refused "
            "(set readonly: false in the config to allow writes)"
        )


def require_audit_log(config: Config) -> None:
    """Refuse a write that could not be audited (every write is appended to the audit log)."""
    path = config.audit_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    except OSError as exc:
        raise UsageError(
            f"audit log {path} cannot be written ({exc.strerror or exc}): nothing was changed"
        ) from None


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
        "size": len(body),
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
    if truncated:
        out["truncated"] = True
    if headers_cut or properties_cut:
        out["headers_truncated"] = True
    return out


def _age(message: PeekedMessage, now: float) -> str:
    return "-" if message.timestamp is None else humanize_seconds(now - message.timestamp)


async def _peek(
    args: argparse.Namespace, config: Config, broker: BrokerOptions, actions: MessageActions
) -> int:
    if args.n < 1:
        raise UsageError("-n must be at least 1")
    warning = await actions.peek_warning(args.queue)
    if warning:
        print(f"note: {safe_text(warning, 1000)}", file=sys.stderr)
    messages = await actions.peek(args.queue, args.n)
    record_kept(config, broker, args.queue, messages)
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


async def _move(
    args: argparse.Namespace, config: Config, broker: BrokerOptions, actions: MessageActions
) -> int:
    mode: Literal["replay", "move"] = "replay" if args.dlq_command == "replay" else "move"
    source = args.dlq if mode == "replay" else args.src
    if args.limit is not None and args.limit < 0:
        raise UsageError("--limit must not be negative")
    msg_filter = parse_filters(args.filters)
    options = build_move_options(
        get_plugin(broker.type).move_options, given_move_options(args), broker.type
    )
    if not args.dry_run:
        refuse_if_readonly(broker, mode)
        require_audit_log(config)
    if mode == "replay":
        destination = args.to or await actions.replay_target(source)
        if not destination:
            raise UsageError(
                f"cannot tell which queue the messages in {source!r} came from: use --to QUEUE"
            )
    else:
        destination = args.dst
    if destination == source:
        raise UsageError("source and destination are the same queue")
    request = MoveRequest(
        source=source,
        destination=destination,
        mode=mode,
        limit=args.limit,
        filter=msg_filter,
        dry_run=args.dry_run,
        options=options,
    )
    if not args.dry_run:
        count = await actions.count(source)
        bound = count if args.limit is None or count is None else min(count, args.limit)
        how_many = "all" if bound is None else f"up to {bound}"
        filtered = f" matching {msg_filter}" if msg_filter else ""
        confirm(
            f"{mode} {how_many} message(s){filtered} from {source!r} to {destination!r} "
            f"on broker {broker.name!r}?",
            args.yes,
        )
    printer = ProgressPrinter(sys.stderr.isatty() and args.format == "text", mode)
    try:
        result = await actions.move(request, printer)
    except MqtopError:
        printer.finish()
        raise
    except Exception as exc:
        printer.finish()
        if not args.dry_run:
            audit(
                config.audit_path(),
                broker=broker.name,
                action=mode,
                source=source,
                destination=destination,
                count=None,
                result=f"error: {describe_error(exc)}",
            )
        raise ActionFailed(f"{mode} failed: {describe_error(exc)}") from None
    printer.finish()
    audit_move(config, broker, request, result)
    print_result(result, args.format, "replayed" if mode == "replay" else "moved")
    # an error means the action stopped part-way, even when no message failed
    return EXIT_OK if result.complete else EXIT_UNREACHABLE


# ---------------------------------------------------------------- purge


async def _purge(
    args: argparse.Namespace, config: Config, broker: BrokerOptions, actions: MessageActions
) -> int:
    refuse_if_readonly(broker, "purge")
    require_audit_log(config)
    count = await actions.count(args.queue)
    how_many = "all" if count is None else str(count)
    confirm(
        f"purge {how_many} message(s) from {args.queue!r} on broker {broker.name!r}? "
        "This cannot be undone.",
        args.yes,
    )
    try:
        purged = await actions.purge(args.queue)
    except MqtopError:
        raise
    except Exception as exc:
        audit(
            config.audit_path(),
            broker=broker.name,
            action="purge",
            source=args.queue,
            destination=None,
            count=None,
            result=f"error: {describe_error(exc)}",
        )
        raise ActionFailed(f"purge failed: {describe_error(exc)}") from None
    audit(
        config.audit_path(),
        broker=broker.name,
        action="purge",
        source=args.queue,
        destination=None,
        count=purged,
        result="ok",
    )
    if args.format == "json":
        print(dumps({"queue": args.queue, "purged": purged}))
    else:
        shown = "all" if purged is None else str(purged)
        print(f"purged {shown} message(s) from {safe_text(args.queue)}")
    return EXIT_OK


# ---------------------------------------------------------------- reclaim


async def _reclaim(
    args: argparse.Namespace, config: Config, broker: BrokerOptions, actions: MessageActions
) -> int:
    if not isinstance(actions, StreamReclaim):
        raise UnsupportedAction(
            f"reclaim is for Redis streams; broker {broker.name!r} is {broker.type}"
        )
    try:
        idle = parse_duration(args.idle)
    except ValueError as exc:
        raise UsageError(f"--idle: {exc}") from None
    if not args.dry_run:
        if args.to or args.consumer:  # listing stuck entries (XPENDING) writes nothing
            refuse_if_readonly(broker, "reclaim")
        target = (
            f"to stream {args.to!r}"
            if args.to
            else (f"to consumer {args.consumer!r}" if args.consumer else "(list only)")
        )
        if args.to or args.consumer:
            require_audit_log(config)
            confirm(
                f"reclaim entries of {args.stream!r} group {args.group!r} idle > {args.idle} "
                f"{target}?",
                args.yes,
            )
    request = ReclaimRequest(
        stream=args.stream,
        group=args.group,
        idle=idle,
        to_stream=args.to,
        consumer=args.consumer,
        limit=args.limit,
        dry_run=args.dry_run,
    )
    report = await actions.reclaim(request)
    if not args.dry_run and (args.to or args.consumer):
        audit(
            config.audit_path(),
            broker=broker.name,
            action="reclaim",
            source=args.stream,
            destination=args.to or f"consumer:{args.consumer}",
            count=int(report.get("moved", report.get("claimed", 0)) or 0),
            result="ok" if not report.get("failed") else "partial",
        )
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
