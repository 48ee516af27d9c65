"""A replay/move's plan (:class:`MoveSpec`), its counters (:class:`MoveOutcome`) and the
journal file that marks a run in progress (left behind, an interrupted one)."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collectors.rabbitmq.messages import KEPT_HEADER, REPLAY_HEADER
from mqtop.kernel.procs import process_alive

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
class MoveOutcome:
    """Counters filled by the mover."""

    moved: int = 0
    failed: int = 0
    skipped: int = 0
    delivered: int = 0
    moved_redelivered: int = 0
    uncertain: int = 0  # published or confirmed when the connection broke
    stripped_user_id: int = 0
    stripped_cc: int = 0
    kept: int = 0  # held messages at their delivery limit, re-published to the source
    # the smallest window move_window_bytes imposed: (messages, average message bytes)
    narrowed: tuple[int, float] | None = None
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stopped_early: str | None = None


def journal_dir() -> Path:
    """Where running moves are recorded (to detect an interrupted earlier run)."""
    from mqtop.kernel.paths import default_state_dir

    return default_state_dir() / "rabbitmq-moves"


@dataclass
class Journal:
    """A file that exists while a move runs; left behind, it marks an interrupted run."""

    path: Path
    run: str
    previous: dict[str, Any] | None = None

    @classmethod
    def open(cls, broker: str, source: str, destination: str, run: str, window: int) -> Journal:
        key = hashlib.sha256(f"{broker}\0{source}\0{destination}".encode()).hexdigest()[:24]
        path = journal_dir() / f"{key}.json"
        previous = None
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(path.read_text())
            if isinstance(data, dict):
                previous = data
        record = {
            "run": run,
            "pid": os.getpid(),
            "started": time.time(),
            "window": window,
            "broker": broker,
            "source": source,
            "destination": destination,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        os.replace(tmp, path)
        return cls(path, run, previous)

    def interrupted(self) -> dict[str, Any] | None:
        """The earlier run of the same move if it died without finishing."""
        prev = self.previous
        if not prev or prev.get("run") == self.run:
            return None
        pid = prev.get("pid")
        if isinstance(pid, int) and pid != os.getpid() and process_alive(pid):
            return None  # still running (reported separately)
        return prev

    def concurrent(self) -> dict[str, Any] | None:
        """An earlier run of the same move that is still alive."""
        prev = self.previous
        if not prev:
            return None
        pid = prev.get("pid")
        if isinstance(pid, int) and pid != os.getpid() and process_alive(pid):
            return prev
        return None

    def close(self) -> None:
        """The run finished (completely or with a clean stop): forget it."""
        with contextlib.suppress(OSError):
            data = json.loads(self.path.read_text())
            if data.get("run") == self.run:
                self.path.unlink()


def journal_notes(
    journal: Journal, outcome: MoveOutcome, window: int, dst_label: str, notes: list[str]
) -> int:
    """Note an interrupted earlier run; forget this one when it finished cleanly. Returns
    how many moved messages may be duplicates because of the earlier run."""
    possible = 0
    previous = journal.interrupted()
    if previous is not None:
        prev_window = int(previous.get("window") or window)
        possible = min(prev_window, outcome.moved_redelivered)
        when = dt.datetime.fromtimestamp(float(previous.get("started") or 0), tz=dt.UTC)
        notes.append(
            f"an earlier run of this move (run {previous.get('run')}, started "
            f"{when:%Y-%m-%d %H:%M:%S}Z) was interrupted: {possible} of the messages "
            "moved now had been delivered before and may already be in "
            f"{dst_label} (at most one window of {prev_window})"
        )
    if not outcome.uncertain:
        journal.close()
    return possible


def outcome_notes(
    outcome: MoveOutcome, spec: MoveSpec, limit: int | None, window_bytes: int, window: int
) -> list[str]:
    """What the operator should know about a finished move, one note per fact."""
    src_label = spec.source_label
    notes: list[str] = []
    if outcome.stopped_early:
        notes.append(outcome.stopped_early)
    notes.extend(outcome.notes)
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
    if outcome.kept:
        notes.append(
            f"{outcome.kept} message(s) left in {src_label} had used up their delivery "
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
