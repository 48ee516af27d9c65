"""A replay/move's plan (:class:`MoveSpec`), its count (:class:`MoveOutcome`, the kit's
:class:`~collectors.kit.tally.Tally` plus what only a RabbitMQ move counts) and the notes made
of them, among them the note on an interrupted earlier run found in the kit's
:class:`~collectors.kit.journal.MoveJournal`.

The journal records ``window`` (the earlier run's confirm window, the bound on what it may
have left in both queues) besides the kit's run, pid and start, and the broker, source and
destination: the same file, under the same name, that RabbitMQ moves always wrote, so a
journal left by an earlier version is read as it was.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from collectors.kit.journal import MoveJournal
from collectors.kit.tally import Tally
from collectors.rabbitmq.messages import KEPT_HEADER, REPLAY_HEADER

# the prefetch until message sizes are known (no management API): then fitted to the window
UNKNOWN_SIZE_PREFETCH = 64


@dataclass
class MoveSpec:
    """Everything the mover thread needs (resolved names, bounds)."""

    source: tuple[str, str]  # (vhost, queue)
    destination: tuple[str, str]
    source_label: str
    destination_label: str
    mode: str
    window: int
    bound: int  # messages in the source when the move started (deliveries taken at most)
    limit: int | None
    filter: Any
    dry_run: bool
    run: str
    username: str | None  # the authenticated user; None when unknown
    window_bytes: int = 32 * 1024 * 1024  # bodies in flight at most (the window shrinks)
    average_bytes: float | None = None  # mean ready message size at start, when known
    delivery_limit: int | None = None  # quorum source: returns allowed before a drop

    def fit(self, average: float | None) -> int:
        """The prefetch for messages of ``average`` bytes: the window, or less to fit."""
        if average is None:
            return min(self.window, UNKNOWN_SIZE_PREFETCH)
        return max(1, min(self.window, int(self.window_bytes // max(average, 1.0))))


@dataclass
class MoveOutcome(Tally):
    """The kit's count of a move (moved, failed, skipped, errors, notes; ``republished`` the
    messages at their delivery limit written back to the source) plus RabbitMQ's own."""

    delivered: int = 0
    moved_redelivered: int = 0
    uncertain: int = 0  # published or confirmed when the connection broke
    stripped_user_id: int = 0
    stripped_cc: int = 0
    # the smallest window move_window_bytes imposed: (messages, average message bytes)
    narrowed: tuple[int, float] | None = None
    stopped_early: str | None = None


def open_journal(broker: str, source: str, destination: str, window: int) -> MoveJournal:
    """The journal of a move about to start, written before the first message is taken."""
    journal = MoveJournal("rabbitmq", broker, source, destination)
    journal.write(window=window, broker=broker, source=source, destination=destination)
    return journal


def journal_notes(
    journal: MoveJournal, outcome: MoveOutcome, window: int, dst_label: str, notes: list[str]
) -> int:
    """Note an interrupted earlier run; forget this one when it finished cleanly. Returns
    how many moved messages may be duplicates because of the earlier run."""
    possible = 0
    previous = journal.interrupted()
    if previous is not None:
        prev_window = _whole(previous.get("window")) or window
        possible = min(prev_window, outcome.moved_redelivered)
        when = dt.datetime.fromtimestamp(_seconds(previous.get("started")), tz=dt.UTC)
        notes.append(
            f"an earlier run of this move (run {previous.get('run')}, started "
            f"{when:%Y-%m-%d %H:%M:%S}Z) was interrupted: {possible} of the messages "
            "moved now had been delivered before and may already be in "
            f"{dst_label} (at most one window of {prev_window})"
        )
    if not outcome.uncertain:
        journal.close()
    return possible


def _whole(value: Any) -> int:
    """A positive whole number read from a journal (0 for anything else)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _seconds(value: Any) -> float:
    """A time read from a journal (0 for anything else)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok and 0 <= value < 1e11 else 0.0


def finish_notes(outcome: MoveOutcome, spec: MoveSpec, before: list[str]) -> None:
    """The outcome's notes in the order the operator reads them: ``before`` (other runs of
    the move), then what this run found (:func:`outcome_notes`)."""
    during = list(outcome.notes)
    outcome.notes = []
    for text in (*before, *outcome_notes(outcome, spec, during)):
        outcome.note(text)


def outcome_notes(outcome: MoveOutcome, spec: MoveSpec, during: list[str]) -> list[str]:
    """What the operator should know about a finished move, one note per fact (``during``:
    the notes the mover made as it ran)."""
    src_label = spec.source_label
    limit, window, window_bytes = spec.delivery_limit, spec.window, spec.window_bytes
    notes: list[str] = []
    if outcome.stopped_early:
        notes.append(outcome.stopped_early)
    notes.extend(during)
    if outcome.skipped:
        notes.append(
            f"{outcome.skipped} message(s) did not match the filter and were returned to "
            f"{src_label} (marked redelivered; on quorum queues their delivery count rose)"
        )
    if spec.dry_run:
        notes.append(
            f"dry run: the {outcome.delivered} message(s) read were returned to "
            f"{src_label} marked redelivered"
        )
    if outcome.narrowed is not None:
        size, average = outcome.narrowed
        notes.append(
            f"messages average {average / 1024:.0f} KiB: at most {size} were in flight at "
            f"a time (move_window_bytes {window_bytes // 1024} KiB; "
            f"move_window {window})"
        )
    if outcome.republished:
        notes.append(
            f"{outcome.republished} message(s) left in {src_label} had used up their delivery "
            f"limit ({limit}): putting them back would have dropped them, so they were "
            f"re-published to the back of {src_label} ({KEPT_HEADER} header)"
        )
    if outcome.stripped_user_id:
        notes.append(
            f"{outcome.stripped_user_id} message(s) carried a user_id other than the "
            f"connecting user's; it was moved into the {REPLAY_HEADER} header (RabbitMQ "
            "refuses a foreign user_id)"
        )
    if outcome.stripped_cc:
        notes.append(
            f"{outcome.stripped_cc} message(s) had CC/BCC headers; they were moved into "
            f"the {REPLAY_HEADER} header so the message is not copied to other queues"
        )
    if outcome.uncertain:
        notes.append(
            f"the connection broke with {outcome.uncertain} message(s) published but not "
            "yet acknowledged in the source: they may now be in both queues"
        )
    return notes
