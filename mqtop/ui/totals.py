"""Totals like htop's meters: backlog, in/s, out/s and dead letters, per broker and overall."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from rich.text import Text

from collectors.base import is_dlq_name
from mqtop.ui.formats import fmt_count, fmt_rate
from mqtop.ui.rows import Row


@dataclass(frozen=True, slots=True)
class Totals:
    """Sums over some rows; None where no row knows the value (never a made-up 0)."""

    series: int
    backlog: float | None
    rate_in: float | None
    rate_out: float | None
    dlq: float | None  # messages waiting in dead-letter queues


def _sum(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


# the same names come back every refresh: the naming-convention test runs once per name
_dlq_named = lru_cache(maxsize=1 << 18)(is_dlq_name)


def totals(rows: Sequence[Row]) -> Totals:
    """Totals of ``rows`` (group separator rows skipped). A DLQ is a queue named like one,
    of a dead-letter kind, or named as the DLQ of another series."""
    real = [r for r in rows if r.header is None]
    referenced = {(r.broker, r.dlq) for r in real if r.dlq}
    dead = [
        r.backlog
        for r in real
        if (r.broker, r.queue) in referenced
        or r.kind in ("dlq", "dead-letter")
        or _dlq_named(r.queue)
    ]
    # a topic read by two groups is published to once: its in/s counts once
    inflow: dict[tuple[str, str], float | None] = {}
    for r in real:
        if inflow.get((r.broker, r.queue)) is None:
            inflow[(r.broker, r.queue)] = r.rate_in
    return Totals(
        series=len(real),
        backlog=_sum(r.backlog for r in real),  # each group's lag is waiting for that group
        rate_in=_sum(inflow.values()),
        rate_out=_sum(r.rate_out for r in real),
        dlq=_sum(dead),
    )


class _Sums:
    """Running sums of one broker's rows (None while no row knows the value)."""

    __slots__ = ("backlog", "dlq", "inflow", "rate_out", "series")

    def __init__(self) -> None:
        self.series = 0
        self.backlog: float | None = None
        self.rate_out: float | None = None
        self.dlq: float | None = None
        self.inflow: dict[str, float | None] = {}

    def totals(self) -> Totals:
        return Totals(
            self.series, self.backlog, _sum(self.inflow.values()), self.rate_out, self.dlq
        )


def _add(a: float | None, b: float | None) -> float | None:
    return a if b is None else b if a is None else a + b


def totals_by_broker(rows: Sequence[Row]) -> tuple[Totals, tuple[tuple[str, Totals], ...]]:
    """:func:`totals` of every row and of each broker's rows (sorted by broker), in one pass."""
    real = [r for r in rows if r.header is None]
    referenced = {(r.broker, r.dlq) for r in real if r.dlq}
    sums: dict[str, _Sums] = {}
    for r in real:
        each = sums.get(r.broker)
        if each is None:
            each = sums[r.broker] = _Sums()
        each.series += 1
        each.backlog = _add(each.backlog, r.backlog)
        each.rate_out = _add(each.rate_out, r.rate_out)
        if (
            (r.broker, r.queue) in referenced
            or r.kind in ("dlq", "dead-letter")
            or _dlq_named(r.queue)
        ):
            each.dlq = _add(each.dlq, r.backlog)
        if each.inflow.get(r.queue) is None:
            each.inflow[r.queue] = r.rate_in
    per = tuple((name, sums[name].totals()) for name in sorted(sums))
    overall = Totals(
        series=len(real),
        backlog=_sum(t.backlog for _, t in per),
        rate_in=_sum(t.rate_in for _, t in per),
        rate_out=_sum(t.rate_out for _, t in per),
        dlq=_sum(t.dlq for _, t in per),
    )
    return overall, per


def totals_words(t: Totals) -> str:
    """``backlog 5.9k · in 128/s · out 119/s · DLQ 66``."""
    return (
        f"backlog {fmt_count(t.backlog)} · in {fmt_rate(t.rate_in)}/s · "
        f"out {fmt_rate(t.rate_out)}/s · DLQ {fmt_count(t.dlq)}"
    )


def totals_line(overall: Totals, brokers: Sequence[tuple[str, Totals]], width: int) -> Text:
    """The totals line under the broker health: everything shown, then each broker while
    the line has room."""
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(" Σ ", "bold reverse")
    text.append(f" {overall.series} shown: ", "bold")
    text.append(totals_words(overall))
    for name, each in brokers:
        part = f"  │ {name}: {fmt_count(each.backlog)} · {fmt_rate(each.rate_in)}/s in"
        if text.cell_len + len(part) > width:
            break
        text.append(part, "dim")
    return text
