"""The dashboard's totals in one pass agree with the per-set definition (pure logic)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mqtop.kernel.model import SeriesKey
from mqtop.ui.rows import Row
from mqtop.ui.totals import totals, totals_by_broker

values = st.one_of(st.none(), st.integers(0, 10_000).map(float))
rows = st.lists(
    st.builds(
        lambda broker, queue, group, kind, backlog, rate_in, rate_out, dlq: Row(
            SeriesKey(broker, queue, group),
            kind,
            backlog=backlog,
            rate_in=rate_in,
            rate_out=rate_out,
            dlq=dlq,
        ),
        st.sampled_from(["a", "b", "c"]),
        st.sampled_from(["orders", "orders.dlq", "jobs:dead", "clicks", "x.DLT", "plain"]),
        st.sampled_from([None, "g1", "g2"]),
        st.sampled_from(["classic", "dlq", "dead-letter", "stream"]),
        values,
        values,
        values,
        st.sampled_from([None, "orders.dlq", "plain"]),
    ),
    max_size=30,
)


@given(rows)
@settings(max_examples=300, deadline=None)
def test_one_pass_totals_equal_the_per_set_totals(items: list[Row]) -> None:
    overall, per = totals_by_broker(items)
    assert overall == totals(items)
    assert [b for b, _ in per] == sorted({r.broker for r in items})
    for broker, each in per:
        assert each == totals([r for r in items if r.broker == broker])


def test_header_rows_are_skipped_and_unknown_stays_none() -> None:
    header = Row(SeriesKey("a", "", None), "", header="▾ a")
    unknown = Row(SeriesKey("a", "q", None), "classic")
    overall, per = totals_by_broker([header, unknown])
    assert overall.series == 1
    assert (overall.backlog, overall.rate_in, overall.rate_out, overall.dlq) == (None,) * 4
    assert per == (("a", overall),)
