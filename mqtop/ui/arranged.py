"""The overview's rows made ready to show: filtered, sorted, grouped, indexed and summed.

Pure Python (no Textual). The data build arranges the rows in its worker thread for the
overview's current sort, filter and grouping (:class:`Arrangement`), so a refresh at 50,000 rows
costs the UI thread a list assignment and the visible rows' rendering, not a sort and several
scans of every row. The overview arranges on the UI thread only when the operator changed the
arrangement since the build started (a new sort or filter is shown at once).
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mqtop.kernel.model import BrokerStatus, SeriesKey
from mqtop.ui.rows import Row, arrange, name_widths
from mqtop.ui.totals import Totals, totals, totals_by_broker, totals_words

_KEY = operator.attrgetter("key")
_GROUP = operator.attrgetter("group")
_STUCK = operator.attrgetter("stuck")


@dataclass(frozen=True, slots=True)
class Arrangement:
    """How the overview shows its rows: sort column and direction, filter, grouping."""

    sort: str = "backlog"
    descending: bool = True
    filter_text: str = ""
    group_by_broker: bool = False


@dataclass(frozen=True, slots=True)
class Arranged:
    """Rows in display order with what the table and the totals line need of all of them."""

    arrangement: Arrangement
    rows: list[Row]
    positions: Mapping[SeriesKey, int]  # display index of each series (keeps the cursor)
    names: Mapping[str, int]  # name column widths (see rows.name_widths)
    has_groups: bool  # some row has a consumer group
    has_stuck: bool  # some row has a stuck count (Redis stream groups)
    shown: int  # series rows (group separator rows left out)
    totals: Totals  # of the rows shown
    broker_totals: tuple[tuple[str, Totals], ...]  # of the rows shown, per broker


def prepare(
    rows: Sequence[Row],
    arrangement: Arrangement,
    statuses: Mapping[str, BrokerStatus],
    *,
    every: tuple[Totals, tuple[tuple[str, Totals], ...], Mapping[str, int]] | None = None,
) -> Arranged:
    """Arrange ``rows``; ``every``: (totals, per-broker totals, name widths) of all the rows,
    used as they are when no filter hides any row."""
    shown_rows = arrange(
        rows,
        sort=arrangement.sort,
        descending=arrangement.descending,
        filter_text=arrangement.filter_text,
        group_by_broker=arrangement.group_by_broker,
        statuses=statuses,
        describe=lambda members: totals_words(totals(members)),
    )
    if every is not None and not arrangement.filter_text:
        overall, each, names = every
    else:
        overall, each = totals_by_broker(shown_rows)
        names = name_widths(shown_rows)
    # a series key appears once; a separator row's key (queue "") is overwritten by a series
    # of that broker named "" if there is one, so the cursor finds the series
    positions = dict(zip(map(_KEY, shown_rows), range(len(shown_rows)), strict=True))
    return Arranged(
        arrangement=arrangement,
        rows=shown_rows,
        positions=positions,
        names=dict(names),
        has_groups=any(map(_GROUP, shown_rows)),
        has_stuck=any(s is not None for s in map(_STUCK, shown_rows)),
        shown=overall.series,
        totals=overall,
        broker_totals=each,
    )
