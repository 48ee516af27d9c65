"""Totals like htop's meters: backlog, in/s, out/s and dead letters, per broker and overall."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

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
        or is_dlq_name(r.queue)
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
