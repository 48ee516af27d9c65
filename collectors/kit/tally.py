"""One running count of a replay or move, and the one place it becomes a result."""

from __future__ import annotations

from dataclasses import dataclass, field

from collectors.base import MoveProgress, MoveResult

MAX_ERRORS = 20  # error texts kept per move; the count of the rest is reported


@dataclass
class Tally:
    """Counts of one replay/move as it runs.

    Safe to update from one worker thread while the event loop reads it (plain attribute
    writes). ``failed`` counts messages left in the source because of an error; an error that
    stops the move without a failed message still makes the result incomplete.
    """

    total: int | None = None  # the bound known at start (progress), None when unknown
    moved: int = 0
    failed: int = 0
    skipped: int = 0  # visited but not taken: filtered out, or held back on purpose
    duplicates: int = 0  # possibly delivered twice (an interrupted earlier run, a broken link)
    republished: int = 0  # written back to the source so as not to lose them
    errors: list[str] = field(default_factory=list)
    error_count: int = 0
    notes: list[str] = field(default_factory=list)

    def error(self, text: str) -> None:
        """Record an error (the first MAX_ERRORS texts are kept, the rest counted)."""
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(text)

    def fail(self, count: int, text: str | None = None) -> None:
        """``count`` messages stay in the source because of an error."""
        self.failed += count
        if text is not None:
            self.error(text)

    def note(self, text: str) -> None:
        """Add a note for the operator once (repeated notes are kept once)."""
        if text not in self.notes:
            self.notes.append(text)

    @property
    def stopped(self) -> bool:
        """An error was recorded: the move did not run to its end."""
        return self.error_count > 0

    def progress(self) -> MoveProgress:
        """The progress report of the counts so far."""
        return MoveProgress(self.moved, self.total, self.failed, self.skipped)

    def result(self, source: str, destination: str, dry_run: bool) -> MoveResult:
        """The contract's result of this move."""
        errors = list(self.errors)
        if self.error_count > len(errors):
            errors.append(f"... and {self.error_count - len(errors)} more error(s)")
        return MoveResult(
            source=source,
            destination=destination,
            moved=self.moved,
            failed=self.failed,
            skipped=self.skipped,
            dry_run=dry_run,
            duplicates_possible=self.duplicates,
            errors=tuple(errors),
            notes=tuple(self.notes),
            republished=self.republished,
        )
