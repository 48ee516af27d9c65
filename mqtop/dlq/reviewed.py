"""Acting on reviewed messages: a selection replayed by id, and a message edited before replay.

A selection of peeked messages is what the operator reviewed. Where the broker can find a
message by its id (:class:`collectors.base.MessageRepublish`), exactly those messages are
published (confirmed) and only then removed, one by one: a message that is no longer in the
source is reported as such ("already replayed, consumed or expired"), never replaced by another
with the same body. Elsewhere the selection falls back to matching bodies
(:class:`mqtop.dlq.selection.SelectionFilter`), and the plan says so.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from collectors.base import (
    MessageActions,
    MessageRepublish,
    MoveProgress,
    MoveResult,
    PeekedMessage,
    ProgressCallback,
    RepublishRequest,
    RepublishResult,
)
from mqtop.kernel.safe import dumps, json_safe

Mode = Literal["replay", "move"]
MISSING = "not in the source any more: already replayed, consumed or expired"


def message_digest(body: bytes, headers: Mapping[str, Any]) -> str:
    """SHA-256 of a message's body and headers (the audit log's before / after of an edit)."""
    canonical = dumps(
        {"body": base64.b64encode(body).decode("ascii"), "headers": json_safe(dict(headers))},
        indent=None,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def selection_fingerprint(messages: Sequence[PeekedMessage]) -> str:
    """A short fingerprint of a set of messages (their ids and bodies), shown when confirming
    and recorded in the audit log: the same reviewed set always gives the same fingerprint."""
    parts = sorted(
        m.id.encode("utf-8", "surrogateescape") + b"\0" + hashlib.sha256(m.body).digest()
        for m in messages
    )
    return hashlib.sha256(b"\n".join(parts)).hexdigest()[:12]


def by_id(actions: MessageActions) -> bool:
    """True when the broker can act on one given message by its id."""
    return isinstance(actions, MessageRepublish)


@dataclass(frozen=True, slots=True)
class SelectionPlan:
    """A replay or move of reviewed messages that passed pre-flight."""

    mode: Mode
    source: str
    destination: str
    messages: tuple[PeekedMessage, ...]
    fingerprint: str
    by_id: bool  # False: the broker matches bodies (byte-identical bodies interchangeable)
    question: str

    @property
    def taken(self) -> str:
        """``3 reviewed message(s) #1a2b3c4d5e6f``."""
        return f"{len(self.messages)} reviewed message(s) #{self.fingerprint}"


@dataclass(frozen=True, slots=True)
class EditPlan:
    """One message edited before replay, with the hashes the audit log records."""

    source: str
    destination: str
    original: PeekedMessage
    body: bytes
    headers: Mapping[str, Any]
    before: str  # sha256 of the original body and headers
    after: str  # sha256 of the edited body and headers
    question: str

    @property
    def changed(self) -> bool:
        """False when the edit changed nothing."""
        return self.before != self.after


async def republish_each(
    actions: MessageRepublish,
    plan: SelectionPlan,
    progress: ProgressCallback,
) -> tuple[MoveResult, list[str]]:
    """Publish, confirm, then remove each reviewed message; returns the result and the ids of
    the messages that were no longer in the source."""
    moved = failed = duplicates = 0
    missing: list[str] = []
    errors: list[str] = []
    total = len(plan.messages)
    for message in plan.messages:
        request = RepublishRequest(
            plan.source, plan.destination, message, message.body, message.headers, plan.mode
        )
        try:
            outcome: RepublishResult = await actions.republish(request)
        except Exception as exc:
            # one failure stops here: what was done is counted, the rest stays in the source
            failed += 1
            errors.append(f"{message.id}: {type(exc).__name__}: {exc}")
            break
        if outcome.published and outcome.removed:
            moved += 1
        elif not outcome.published:
            missing.append(message.id)
        else:  # the copy is in the destination and the original still in the source
            failed += 1
            duplicates += 1
            errors.append(f"{message.id}: {outcome.note or 'published but not removed'}")
        progress(MoveProgress(moved, total, failed, len(missing)))
    notes: list[str] = []
    if missing:
        notes.append(f"{len(missing)} reviewed message(s) {MISSING}")
    result = MoveResult(
        source=plan.source,
        destination=plan.destination,
        moved=moved,
        failed=failed,
        skipped=len(missing),
        dry_run=False,
        duplicates_possible=duplicates,
        errors=tuple(errors),
        notes=tuple(notes),
    )
    return result, missing
