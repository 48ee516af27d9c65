"""What a replay or move does and did, in words true for the broker (moves, or copies)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from collectors.base import MoveResult

Semantics = Literal["move", "copy"]


def what_happens(semantics: Semantics, source: str) -> str:
    """One sentence for the confirmation dialog: what the broker does with each message."""
    if semantics == "copy":
        return (
            f"Each record is copied and the copy confirmed; {source!r} keeps the original "
            "(a topic is a log: retention deletes it, nothing here does). Progress is kept in "
            "a consumer group, so a second replay copies only records not replayed yet."
        )
    return "Each message is published and confirmed before it is removed from the source."


@dataclass(frozen=True, slots=True)
class Outcome:
    """A result in words: a symbol, a headline and the lines under it."""

    symbol: str  # ✓ done, — nothing to do, ▲ part of it, ✖ nothing done
    headline: str
    lines: tuple[str, ...]
    ok: bool


def outcome(semantics: Semantics, mode: str, result: MoveResult, *, by_id: bool = False) -> Outcome:
    """Say what a replay / move did: moved or copied, what ``skipped`` counted, and
    ``already replayed`` when there was nothing left to do."""
    verb = "copied" if semantics == "copy" else "replayed" if mode == "replay" else "moved"
    lines: list[str] = []
    if semantics == "copy":
        lines.append(f"{result.source} keeps the original records (copies, not moves)")
    elif result.moved:
        lines.append(f"published, confirmed, then removed from {result.source}")
    if result.skipped:
        if by_id:
            lines.append(
                f"{result.skipped} reviewed message(s) were not in {result.source} any more: "
                "already replayed, consumed or expired"
            )
        else:
            lines.append(
                f"skipped {result.skipped}: looked at but not taken (not in the selection or "
                f"filter); they stay in {result.source}"
            )
    if result.failed:
        lines.append(f"failed {result.failed}: they stay in {result.source}")
    if result.duplicates_possible:
        lines.append(
            f"up to {result.duplicates_possible} message(s) may have been delivered twice "
            "(an earlier run was interrupted)"
        )
    already = _already_done(result, by_id)
    if already:
        return Outcome("—", f"already {verb}: nothing left to {mode}", tuple(lines), True)
    headline = f"{verb} {result.moved} to {result.destination}"
    if not result.complete:
        symbol = "✖" if result.moved == 0 else "▲"
        return Outcome(symbol, headline, tuple(lines), False)
    return Outcome("✓", headline, tuple(lines), True)


def _already_done(result: MoveResult, by_id: bool) -> bool:
    if result.moved or result.failed or result.errors:
        return False
    if by_id and result.skipped:
        return True  # every reviewed message had left the source
    return any("already done" in note or "nothing to replay" in note for note in result.notes)
