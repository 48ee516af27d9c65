"""Totals like htop's meters: backlog, in/s, out/s and dead letters, per broker and overall."""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial

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


_KNOWN = partial(operator.is_not, None)
_BACKLOG = operator.attrgetter("backlog")
_RATE_OUT = operator.attrgetter("rate_out")
_DLQ_KINDS = ("dlq", "dead-letter")


def _sum_known(values: Iterable[float | None]) -> float | None:
    """The sum of the known values, in order; None when none is known."""
    known: list[float] = list(filter(_KNOWN, values))  # type: ignore[arg-type]
    return sum(known) if known else None


def totals_by_broker(rows: Sequence[Row]) -> tuple[Totals, tuple[tuple[str, Totals], ...]]:
    """:func:`totals` of every row and of each broker's rows (sorted by broker)."""
    real = [r for r in rows if r.header is None]
    referenced = {(r.broker, r.dlq) for r in real if r.dlq}
    brokers: dict[str, list[Row]] = {}
    for r in real:
        each = brokers.get(r.broker)
        if each is None:
            each = brokers[r.broker] = []
        each.append(r)
    sums: dict[str, Totals] = {}
    for name, each in brokers.items():
        inflow: dict[str, float | None] = {}
        for r in each:
            if inflow.get(r.queue) is None:
                inflow[r.queue] = r.rate_in
        sums[name] = Totals(
            len(each),
            _sum_known(map(_BACKLOG, each)),
            _sum(inflow.values()),
            _sum_known(map(_RATE_OUT, each)),
            _sum_known(
                [
                    r.backlog
                    for r in each
                    if (name, r.queue) in referenced or r.kind in _DLQ_KINDS or _dlq_named(r.queue)
                ]
            ),
        )
    per = tuple((name, sums[name]) for name in sorted(sums))
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
