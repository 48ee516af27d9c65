"""Replay and move results in words that are true for the broker."""

from __future__ import annotations

from collectors.base import MoveResult
from mqtop.dlq.wording import outcome, what_happens


def _result(**kw) -> MoveResult:
    base = {
        "source": "orders.dlq",
        "destination": "orders",
        "moved": 3,
        "failed": 0,
        "skipped": 0,
        "dry_run": False,
    }
    return MoveResult(**{**base, **kw})


def test_a_move_says_removed_and_a_copy_says_kept():
    moved = outcome("move", "replay", _result())
    assert (moved.symbol, moved.headline) == ("✓", "replayed 3 to orders")
    assert moved.lines == ("published, confirmed, then removed from orders.dlq",)
    copied = outcome("copy", "replay", _result())
    assert copied.headline == "copied 3 to orders"
    assert "keeps the original records (copies, not moves)" in copied.lines[0]
    assert "removed" in what_happens("move", "q") and "keeps the original" in what_happens(
        "copy", "q"
    )


def test_skipped_says_what_it_counted():
    filtered = outcome("move", "move", _result(skipped=4))
    assert any("skipped 4: looked at but not taken" in line for line in filtered.lines)
    reviewed = outcome("move", "replay", _result(moved=1, skipped=2), by_id=True)
    assert any("2 reviewed message(s) were not in orders.dlq any more" in x for x in reviewed.lines)


def test_nothing_left_is_already_replayed_not_a_check_mark():
    gone = outcome("move", "replay", _result(moved=0, skipped=2), by_id=True)
    assert (gone.symbol, gone.headline) == ("—", "already replayed: nothing left to replay")
    kafka = outcome(
        "copy",
        "replay",
        _result(moved=0, notes=("resumed from saved progress (3 record(s) already done)",)),
    )
    assert kafka.symbol == "—" and kafka.headline.startswith("already copied")
    empty_but_new = outcome("move", "replay", _result(moved=0))
    assert empty_but_new.symbol == "✓"  # an empty queue replayed is not "already replayed"


def test_failures_are_never_a_check_mark():
    part = outcome("move", "replay", _result(moved=2, failed=1))
    assert part.symbol == "▲" and not part.ok
    assert any("failed 1: they stay in orders.dlq" in line for line in part.lines)
    none = outcome("move", "replay", _result(moved=0, failed=3))
    assert none.symbol == "✖"
