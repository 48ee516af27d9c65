"""The overview's row model: building, sorting, filtering, grouping, formatting (pure logic)."""

from __future__ import annotations

from alerts.model import Alert, AlertState
from collectors.base import PeekedMessage
from mqtop.kernel.model import BrokerStatus, SeriesKey, SeriesView
from mqtop.ui.dlq_rows import common_origin, message_row
from mqtop.ui.rows import (
    COLUMNS,
    RANK_CRITICAL,
    RANK_PENDING,
    RANK_SILENCED,
    RANK_WARNING,
    Row,
    alert_label,
    arrange,
    build_rows,
    cell_text,
    fmt_count,
    fmt_pct,
    fmt_rate,
    name_widths,
    row_filter,
    sort_rows,
    sparkline,
    visible_columns,
)


def _view(broker: str, queue: str, group: str | None = None, stale: bool = False, **metrics):
    return SeriesView(
        key=SeriesKey(broker, queue, group),
        kind="queue",
        dlq=None,
        metrics=metrics,
        info={},
        updated=100.0,
        stale=stale,
    )


def _alert(rule, severity, state, broker, queue, group=None, silenced=False):
    return Alert(
        rule=rule,
        severity=severity,
        state=state,
        broker=broker,
        queue=queue,
        group=group,
        value=1.0,
        threshold=0.0,
        summary="",
        silenced=silenced,
    )


def _status(name, up, last_success=100.0, interval=5.0):
    return BrokerStatus(
        name=name, type="redis", address=name, up=up, last_success=last_success, interval=interval
    )


def test_build_rows_maps_metrics_and_keeps_nulls():
    views = [
        _view("r", "jobs", queue_length=7.0, consumers=None),
        _view("k", "clicks", "g1", consumer_lag_seconds=12.0, latency_seconds=3.0),
        _view("k", "orders", latency_seconds=4.0),
    ]
    rows = build_rows(views, {"r": _status("r", True), "k": _status("k", True)}, [], now=101.0)
    by_queue = {(r.queue, r.group): r for r in rows}
    jobs = by_queue[("jobs", None)]
    assert jobs.backlog == 7.0
    assert jobs.consumers is None and jobs.rate_in is None
    assert cell_text(jobs, "consumers") == "-"  # null is shown as unknown, never 0
    # a group's age column shows its lag; a plain queue shows the oldest message age
    assert by_queue[("clicks", "g1")].age == 12.0
    assert by_queue[("orders", None)].age == 4.0


def test_rows_of_down_or_silent_broker_are_stale():
    views = [_view("a", "q1", queue_length=1.0), _view("b", "q2", queue_length=2.0)]
    statuses = {
        "a": _status("a", False, last_success=50.0),
        "b": _status("b", True, last_success=10.0, interval=5.0),  # 91 s without success
    }
    rows = {r.broker: r for r in build_rows(views, statuses, [], now=101.0)}
    assert rows["a"].down and rows["a"].stale
    assert alert_label(rows["a"]) == "✗ down"
    assert rows["b"].stale and not rows["b"].down
    assert alert_label(rows["b"]) == "◇ stale"
    # a series the broker stopped reporting is stale even when the broker is fine
    (row,) = build_rows([_view("c", "gone", stale=True)], {"c": _status("c", True)}, [], 101.0)
    assert row.stale


def test_worst_alert_wins_and_labels_have_symbols():
    views = [_view("r", "orders"), _view("r", "emails"), _view("r", "muted")]
    alerts = [
        _alert("Backlog", "warning", AlertState.PENDING, "r", "orders"),
        _alert("Errors", "critical", AlertState.FIRING, "r", "orders"),
        _alert("Backlog", "warning", AlertState.FIRING, "r", "emails"),
        _alert("Backlog", "warning", AlertState.FIRING, "r", "muted", silenced=True),
        _alert("Old", "critical", AlertState.RESOLVED, "r", "emails"),
    ]
    rows = {r.queue: r for r in build_rows(views, {}, alerts, now=0.0)}
    assert rows["orders"].alert_rank == RANK_CRITICAL
    assert rows["orders"].alert_rule == "Errors"
    assert rows["emails"].alert_rank == RANK_WARNING
    assert rows["muted"].alert_rank == RANK_SILENCED
    labels = {q: alert_label(r) for q, r in rows.items()}
    assert labels == {"orders": "✖ crit", "emails": "▲ warn", "muted": "⊘ muted"}
    pending = build_rows(views[:1], {}, alerts[:1], 0.0)[0]
    assert pending.alert_rank == RANK_PENDING and alert_label(pending) == "◔ pend"


def _rows(*specs):
    return [Row(SeriesKey(b, q, g), "queue", backlog=v) for b, q, g, v in specs]


def test_sort_puts_unknown_values_last_in_both_directions():
    rows = _rows(("a", "x", None, 5.0), ("a", "y", None, None), ("a", "z", None, 9.0))
    assert [r.queue for r in sort_rows(rows, "backlog", True)] == ["z", "x", "y"]
    assert [r.queue for r in sort_rows(rows, "backlog", False)] == ["x", "z", "y"]
    assert [r.queue for r in sort_rows(rows, "queue", True)] == ["z", "y", "x"]


def test_filter_substring_and_glob():
    rows = _rows(
        ("rabbit", "orders", None, 1.0),
        ("rabbit", "orders.dlq", None, 1.0),
        ("kafka", "clicks", "Billing", 1.0),
    )

    def names(text):
        match = row_filter(text)
        return sorted(r.queue for r in rows if match is None or match(r))

    assert names("") == ["clicks", "orders", "orders.dlq"]
    assert names("ORD") == ["orders", "orders.dlq"]  # case-insensitive substring
    assert names("billing") == ["clicks"]  # groups are searched too
    assert names("kafka") == ["clicks"]  # and broker names
    assert names("*.dlq") == ["orders.dlq"]  # glob on the queue
    assert names("rabbit/orders.") == ["orders.dlq"]  # substring of broker/queue
    assert names("rabbit/ord*") == ["orders", "orders.dlq"]  # glob on broker/queue
    assert names("orders") == ["orders", "orders.dlq"]


def test_group_by_broker_adds_one_header_per_broker():
    rows = _rows(("b", "q1", None, 1.0), ("a", "q2", None, 5.0), ("b", "q3", None, 3.0))
    rows[0].alert_rank = RANK_WARNING
    out = arrange(
        rows,
        sort="backlog",
        descending=True,
        group_by_broker=True,
        statuses={"a": _status("a", True), "b": _status("b", False)},
    )
    assert [(r.is_header, r.broker, r.queue) for r in out] == [
        (True, "a", ""),
        (False, "a", "q2"),
        (True, "b", ""),
        (False, "b", "q3"),
        (False, "b", "q1"),
    ]
    assert "DOWN" in (out[2].header or "") and "2 series" in (out[2].header or "")
    assert out[2].alert_rank == RANK_WARNING


def test_formatting():
    assert fmt_count(None) == "-"
    assert fmt_count(0) == "0"
    assert fmt_count(9999) == "9999"
    assert fmt_count(12_345) == "12.3k"
    assert fmt_count(2_500_000) == "2.5M"
    assert fmt_rate(None) == "-"
    assert fmt_rate(0.25) == "0.2"
    assert fmt_rate(42.4) == "42"
    assert fmt_rate(1234) == "1.2k"
    assert fmt_pct(None) == "-"
    assert fmt_pct(0.071) == "7.1%"
    assert fmt_pct(0.5) == "50%"
    hostile = Row(SeriesKey("r", "evil\x1b[2Jname\u202e"), "list")
    assert cell_text(hostile, "queue") == "evil\\x1b[2Jname\\u202e"


def test_sparkline():
    assert sparkline([], 5) == ""
    assert sparkline([0, 0, 0], 3) == "▁▁▁"
    assert sparkline([5, 5], 2) == "▄▄"
    assert sparkline([0, None, 7], 3) == "▁ █"
    assert sparkline(list(range(20)), 4) == "▁▃▆█"  # only the last `width` values


def test_columns_fit_80_columns_and_keep_the_essentials():
    fitted = visible_columns(78, has_groups=False)
    keys = [c.key for c, _ in fitted]
    assert {"broker", "queue", "backlog", "alert", "age"} <= set(keys)
    assert sum(w for _, w in fitted) + len(fitted) - 1 == 78  # the queue fills the line
    # values are never cut, titles keep room for the sort arrow
    for column, width in fitted:
        if not column.name:
            assert width >= column.natural >= len(column.title) + 1, column.key
    wide = visible_columns(200, has_groups=True, has_stuck=True)
    assert [c.key for c, _ in wide] == [c.key for c in COLUMNS]
    # the Stuck column (Redis stream groups) only when some series has a stuck count
    assert "stuck" not in [c.key for c, _ in visible_columns(200, has_groups=True)]


def test_names_get_the_room_their_content_asks_for():
    rows = build_rows(
        [
            _view("local-rabbit", "email-notifications"),
            _view("local-redis", "email-notifications-dlq"),
            _view("events", "clicks", "analytics"),
        ],
        {},
        [],
        100.0,
    )
    names = name_widths(rows)
    assert names["broker"] == len("local-rabbit") and names["group"] == len("analytics")
    fitted = dict((c.key, w) for c, w in visible_columns(160, True, False, names))
    assert fitted["broker"] >= len("local-rabbit")  # never "local-r…" when there is room
    assert fitted["queue"] >= len("email-notifications-dlq")
    # at 80 columns a name shrinks before any value, and the group folds into the queue
    narrow = visible_columns(80, True, False, names)
    assert "group" not in [c.key for c, _ in narrow]
    assert all(w >= c.natural for c, w in narrow if not c.name)


def test_stuck_count_comes_from_the_series_info():
    stream = SeriesView(
        key=SeriesKey("cache", "events", "workers"),
        kind="stream",
        dlq=None,
        metrics={"queue_length": 0.0},
        info={"stuck": 3, "stuck_capped": False},
        updated=100.0,
    )
    plain = SeriesView(
        key=SeriesKey("cache", "jobs", None),
        kind="list",
        dlq=None,
        metrics={},
        info={},
        updated=100.0,
    )
    rows = build_rows([stream, plain], {}, [], 100.0)
    assert [r.stuck for r in rows] == [3.0, None]
    assert [cell_text(r, "stuck") for r in rows] == ["3", "-"]


def test_message_row_is_safe_and_complete():
    from collectors.base import Death

    message = PeekedMessage(
        id="id\x1b]0;x\x07",
        body=b"\x1b[31mred\x1b[0m",
        death=Death(reason="rejected\x1b[2J", count=3, original_queue="orders"),
        timestamp=40.0,
    )
    row = message_row(message, now=100.0)
    assert "\x1b" not in "".join(
        [row.id, row.age, row.reason, row.count, row.original, row.size, row.preview]
    )
    assert row.count == "3" and row.original == "orders" and row.age == "1m00s"
    assert common_origin([message, message]) == "orders"
    assert common_origin([message, PeekedMessage(id="2", body=b"")]) is None


def test_rows_of_unchanged_series_are_reused_and_changes_are_never_missed():
    """With a cache, a series whose view metrics, info and worst alert are the same objects
    keeps its row; a new value, a new alert or a broker going down builds a new row."""
    from mqtop.ui.rows import RowCache

    cache = RowCache()
    quiet, busy = _view("r", "quiet", queue_length=1.0), _view("r", "busy", queue_length=5.0)
    up = {"r": _status("r", True)}
    first = build_rows([quiet, busy], up, [], 101.0, cache)
    busy2 = _view("r", "busy", queue_length=6.0)
    second = build_rows([quiet, busy2], up, [], 101.0, cache)
    assert second[0] is first[0]
    assert second[1] is not first[1] and second[1].backlog == 6.0
    alert = _alert("Backlog", "critical", AlertState.FIRING, "r", "quiet")
    third = build_rows([quiet, busy2], up, [alert], 101.0, cache)
    assert third[0] is not second[0] and third[0].alert_rank == RANK_CRITICAL
    assert third[1] is second[1]
    down = build_rows([quiet, busy2], {"r": _status("r", False)}, [alert], 101.0, cache)
    assert all(r.down and r.stale for r in down)
    again = build_rows([quiet, busy2], {"r": _status("r", False)}, [alert], 101.0, cache)
    assert [a is b for a, b in zip(again, down, strict=True)] == [True, True]
    # the same answers as a build without a cache
    plain = build_rows([quiet, busy2], {"r": _status("r", False)}, [alert], 101.0)
    fields = ("backlog", "stale", "down", "alert_rank", "alert_rule", "kind", "dlq")
    assert [[getattr(r, f) for f in fields] for r in again] == [
        [getattr(r, f) for f in fields] for r in plain
    ]
