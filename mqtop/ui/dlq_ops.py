"""Dead-letter actions as the dashboard runs them: readonly refusal, audit, selection.

The same rules as ``mqtop dlq``: writes on a ``readonly`` broker are refused, every write is
appended to the audit log (success, partial and error alike), and brokers only implement
:class:`collectors.base.MessageActions`. No Textual here: the screens call these in workers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from collectors.base import (
    BrokerOptions,
    MessageActions,
    MoveRequest,
    MoveResult,
    PeekedMessage,
    ProgressCallback,
)
from mqtop.audit import audit
from mqtop.commands.dlq import audit_move, refuse_if_readonly
from mqtop.config import Config
from mqtop.engine import describe_error
from mqtop.kernel.durations import humanize_seconds
from mqtop.kernel.errors import ActionFailed, MqtopError
from mqtop.kernel.safe import body_preview, safe_text


class SelectionFilter:
    """Matches the messages an operator selected, by the SHA-256 of their body.

    Brokers apply ``MoveRequest.filter`` to every message they visit, so a selection works on
    every broker without broker-specific support. Messages with byte-identical bodies are
    interchangeable: the move is also limited to the number selected.
    """

    def __init__(self, messages: Iterable[PeekedMessage]) -> None:
        chosen = list(messages)
        self.count = len(chosen)
        self.digests = frozenset(hashlib.sha256(m.body).digest() for m in chosen)
        # brokers may key resumable jobs on str(filter): two selections must never look alike
        self.fingerprint = hashlib.sha256(b"".join(sorted(self.digests))).hexdigest()[:12]

    def matches(self, body: bytes, headers: Mapping[str, Any]) -> bool:
        """True when the body is one of the selected ones."""
        return hashlib.sha256(body).digest() in self.digests

    def __str__(self) -> str:
        return f"{self.count} selected message(s) #{self.fingerprint}"


def selection_request(
    source: str,
    destination: str,
    mode: Literal["replay", "move"],
    selected: list[PeekedMessage] | None,
) -> MoveRequest:
    """A move of the selected messages (or of the whole queue when nothing is selected)."""
    if not selected:
        return MoveRequest(source=source, destination=destination, mode=mode)
    return MoveRequest(
        source=source,
        destination=destination,
        mode=mode,
        limit=len(selected),
        filter=SelectionFilter(selected),
    )


async def run_move(
    config: Config,
    broker: BrokerOptions,
    actions: MessageActions,
    request: MoveRequest,
    progress: ProgressCallback,
) -> MoveResult:
    """Replay or move with the CLI's rules: readonly refusal, then the audit record."""
    if not request.dry_run:
        refuse_if_readonly(broker, request.mode)
    if request.source == request.destination:
        raise ActionFailed("source and destination are the same queue")
    try:
        result = await actions.move(request, progress)
    except Exception as exc:
        if not request.dry_run:
            audit(
                config.audit_path(),
                broker=broker.name,
                action=request.mode,
                source=request.source,
                destination=request.destination,
                count=None,
                result=f"error: {describe_error(exc)}",
                details={"via": "dashboard"},
            )
        if isinstance(exc, MqtopError):
            raise
        raise ActionFailed(f"{request.mode} failed: {describe_error(exc)}") from None
    audit_move(config, broker, request, result, via="dashboard")
    return result


async def run_purge(
    config: Config, broker: BrokerOptions, actions: MessageActions, queue: str
) -> int | None:
    """Purge with readonly refusal and an audit record."""
    refuse_if_readonly(broker, "purge")
    try:
        purged = await actions.purge(queue)
    except Exception as exc:
        audit(
            config.audit_path(),
            broker=broker.name,
            action="purge",
            source=queue,
            destination=None,
            count=None,
            result=f"error: {describe_error(exc)}",
            details={"via": "dashboard"},
        )
        if isinstance(exc, MqtopError):
            raise
        raise ActionFailed(f"purge failed: {describe_error(exc)}") from None
    audit(
        config.audit_path(),
        broker=broker.name,
        action="purge",
        source=queue,
        destination=None,
        count=purged,
        result="ok",
        details={"via": "dashboard"},
    )
    return purged


@dataclass(frozen=True, slots=True)
class MessageRow:
    """One peeked message as the DLQ browser lists it (all text already made safe)."""

    id: str
    age: str
    reason: str
    count: str
    original: str
    size: str
    preview: str


def message_row(message: PeekedMessage, now: float, preview_width: int = 60) -> MessageRow:
    """Cells of one message: id, age, death reason and count, origin, size, body preview."""
    death = message.death
    age = "-" if message.timestamp is None else humanize_seconds(now - message.timestamp)
    return MessageRow(
        id=safe_text(message.id, 40),
        age=age,
        reason=safe_text(death.reason, 30) if death and death.reason else "-",
        count=str(death.count) if death and death.count is not None else "-",
        original=safe_text(death.original_queue, 40) if death and death.original_queue else "-",
        size=fmt_size(len(message.body)),
        preview=body_preview(message.body, preview_width),
    )


def fmt_size(size: int) -> str:
    """Bytes as ``512 B``, ``1.5 KiB``, ``2.0 MiB``."""
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / (1024 * 1024):.1f} MiB"


def common_origin(messages: Iterable[PeekedMessage]) -> str | None:
    """The original queue shared by every message's death record (None when mixed/unknown)."""
    origins = {m.death.original_queue if m.death else None for m in messages}
    if len(origins) == 1:
        (only,) = origins
        return only
    return None
