"""The alert state machine, built-in rules, functions and silences (pure logic over a real
TimeSeriesStore fed with snapshots at chosen times)."""

from __future__ import annotations

import json
import time

import pytest

from alerts.config import AlertingSettings
from alerts.evaluator import AlertEvaluator, render_summary
from alerts.model import AlertState
from alerts.silences import SilenceStore
from tests.support.alerts import CLOCK, World, kinds, rule

T0 = CLOCK.t0  # the test's "now" (reset before each test by the fixture below)


@pytest.fixture(autouse=True)
def _fresh_t0() -> None:
    """Each test starts at "now": silences are checked against the wall clock when created,
    so a T0 taken at import time would be minutes old by the time a long run reaches a test."""
    global T0
    T0 = CLOCK.reset()


def test_pending_then_firing_then_resolved():
    w = World()
    ev = AlertEvaluator([rule(**{"for": "2s"})], AlertingSettings(), builtin=False)
    w.poll(0, {("q", None): {"queue_length": 5}})
    assert w.eval(ev, 0) == [] and ev.alerts() == []
    w.poll(1, {("q", None): {"queue_length": 20}})
    assert w.eval(ev, 1) == []
    [alert] = ev.alerts()
    assert alert.state is AlertState.PENDING and alert.value == 20
    w.poll(2, {("q", None): {"queue_length": 30}})
    assert w.eval(ev, 2) == []  # only 1 s so far
    w.poll(3, {("q", None): {"queue_length": 40}})
    events = w.eval(ev, 3)
    assert kinds(events) == [("firing", "Backlog", "q")]
    firing = events[0].alert
    assert firing.state is AlertState.FIRING and firing.value == 40
    assert firing.active_since == T0 + 1 and firing.fired_at == T0 + 3
    assert firing.summary == "b/q: queue_length 40 > 10"
    w.poll(4, {("q", None): {"queue_length": 3}})
    events = w.eval(ev, 4)
    assert kinds(events) == [("resolved", "Backlog", "q")]
    assert events[0].alert.resolved_at == T0 + 4
    assert ev.alerts() == []
    assert [a.rule for a in ev.recent_resolved()] == ["Backlog"]


def test_condition_dropping_while_pending_returns_to_inactive_without_events():
    w = World()
    ev = AlertEvaluator([rule(**{"for": "5s"})], AlertingSettings(), builtin=False)
    w.poll(0, {("q", None): {"queue_length": 50}})
    w.eval(ev, 0)
    assert ev.alerts()[0].state is AlertState.PENDING
    w.poll(1, {("q", None): {"queue_length": 1}})
    assert w.eval(ev, 1) == []
    assert ev.alerts() == [] and ev.recent_resolved() == []


def test_null_value_never_fires_any_operator():
    w = World()
    rules = [
        rule(name=f"R{i}", op=op, threshold=0)
        for i, op in enumerate([">", ">=", "<", "<=", "==", "!="])
    ]
    ev = AlertEvaluator(rules, AlertingSettings(), builtin=False)
    w.poll(0, {("q", None): {"queue_length": None, "consumers": 1}})
    assert w.eval(ev, 0) == []
    assert ev.alerts() == []


def test_firing_alert_resolves_when_value_becomes_null():
    w = World()
    ev = AlertEvaluator([rule()], AlertingSettings(), builtin=False)
    w.poll(0, {("q", None): {"queue_length": 50}})
    assert kinds(w.eval(ev, 0)) == [("firing", "Backlog", "q")]
    w.poll(1, {("q", None): {"queue_length": None}})
    assert kinds(w.eval(ev, 1)) == [("resolved", "Backlog", "q")]


def test_for_is_backfilled_from_stored_history():
    """Points already in the store (e.g. loaded history) count towards `for`."""
    w = World()
    for t in range(0, 70, 5):
        w.poll(t, {("old", None): {"queue_length": 100}, ("new", None): {"queue_length": 5}})
    w.poll(70, {("old", None): {"queue_length": 100}, ("new", None): {"queue_length": 100}})
    ev = AlertEvaluator([rule(**{"for": "1m"})], AlertingSettings(), builtin=False)
    events = w.eval(ev, 70)
    # `old` has been above the threshold for 70 s of stored points: fires on the first look;
    # `new` only just crossed it: pending.
    assert kinds(events) == [("firing", "Backlog", "old")]
    assert events[0].alert.active_since == T0
    states = {a.queue: a.state for a in ev.alerts()}
    assert states == {"old": AlertState.FIRING, "new": AlertState.PENDING}


def test_backfill_stops_at_a_false_point():
    w = World()
    values = [100, 100, 100, 1, 100, 100]  # dropped below at t=15
    for i, v in enumerate(values):
        w.poll(i * 5, {("q", None): {"queue_length": v}})
    ev = AlertEvaluator([rule(**{"for": "20s"})], AlertingSettings(), builtin=False)
    assert w.eval(ev, 25) == []
    [alert] = ev.alerts()
    assert alert.state is AlertState.PENDING and alert.active_since == T0 + 20


def test_repeat_interval_renotifies():
    w = World()
    ev = AlertEvaluator([rule()], AlertingSettings(repeat_interval="10s"), builtin=False)
    fired = []
    for t in range(0, 25):
        w.poll(t, {("q", None): {"queue_length": 50}})
        fired += [(t, e.repeat) for e in w.eval(ev, t)]
    assert fired == [(0, False), (10, True), (20, True)]


def test_resolve_after_damps_a_short_dip():
    w = World()
    ev = AlertEvaluator([rule()], AlertingSettings(resolve_after="3s"), builtin=False)
    seq = [50, 50, 1, 1, 50, 1, 1, 1, 1]
    out = []
    for t, v in enumerate(seq):
        w.poll(t, {("q", None): {"queue_length": v}})
        out += [(t, e.kind) for e in w.eval(ev, t)]
    # the dip at t=2..3 is shorter than 3 s: no resolve, no second firing
    assert out == [(0, "firing"), (8, "resolved")]


def test_flapping_alert_is_held_firing():
    w = World()
    settings = AlertingSettings(flap_threshold=3, flap_window="60s")
    ev = AlertEvaluator([rule()], settings, builtin=False)
    out = []
    seq = [50, 1, 50, 1, 50, 1, 50, 1, 1]
    for t, v in enumerate(seq):
        w.poll(t, {("q", None): {"queue_length": v}})
        out += [(t, e.kind) for e in w.eval(ev, t)]
    # two full cycles are notified; from the third firing it is flapping and held firing,
    # which is notified once (not at each dip)
    assert out == [
        (0, "firing"),
        (1, "resolved"),
        (2, "firing"),
        (3, "resolved"),
        (4, "firing"),
        (5, "held"),
    ]
    [alert] = ev.alerts()
    assert alert.state is AlertState.FIRING
    # it says it is held, why, with the value of now and when it clears (false since t=7)
    assert alert.held_until == T0 + 7 + 60 and alert.reason == "flapping"
    assert alert.value == 1
    assert alert.summary.startswith("b/q: queue_length 1 ≤ 10; held firing as flapping")
    assert "(fired 3 times in 1m)" in alert.summary
    # it resolves once the condition stayed false for the whole flap window
    for t in range(9, 70):
        w.poll(t, {("q", None): {"queue_length": 1}})
        out += [(t, e.kind) for e in w.eval(ev, t)]
    assert out[-1] == (67, "resolved")  # false since t=7


def test_match_globs_per_label():
    w = World()
    rules = [
        rule(name="Orders", match={"queue": "orders*"}),
        rule(name="GroupOnly", match={"group": "?*"}),
        rule(name="Streams", match={"kind": "stream"}),
        rule(name="OtherBroker", match={"broker": "x"}),
    ]
    ev = AlertEvaluator(rules, AlertingSettings(), builtin=False)
    w.poll(
        0,
        {
            ("orders.eu", None): {"queue_length": 50},
            ("payments", None): {"queue_length": 50},
            ("events", "billing"): {"queue_length": 50},
        },
    )
    w.eval(ev, 0)
    got = sorted((a.rule, a.queue, a.group) for a in ev.alerts())
    assert got == [
        ("GroupOnly", "events", "billing"),
        ("Orders", "orders.eu", None),
    ]


def test_functions_over_a_window():
    w = World()
    rules = [
        rule(name="Growing", function="rate", window="10s", threshold=4),
        rule(name="Grew", function="increase", window="10s", threshold=30),
        rule(name="AvgHigh", function="avg", window="10s", threshold=40),
        rule(name="Peak", function="max", window="10s", threshold=99),
    ]
    ev = AlertEvaluator(rules, AlertingSettings(), builtin=False)
    for t in range(0, 11):
        w.poll(t, {("q", None): {"queue_length": 5.0 * t + (100 if t == 3 else 0)}})
    w.eval(ev, 10)
    by_rule = {a.rule: a.value for a in ev.alerts()}
    # 0,5,...,50 with a spike of +100 at t=3: rate 5/s, increase 50, avg 25+100/11, max 115
    assert by_rule["Growing"] == pytest.approx(5.0)
    assert by_rule["Grew"] == pytest.approx(50.0)
    assert "AvgHigh" not in by_rule  # 34.09 < 40
    assert by_rule["Peak"] == pytest.approx(115.0)
    assert ev.alerts()[0].summary.startswith("b/q: ")


def test_function_rule_for_is_backfilled_from_stored_history():
    """Stored points count towards `for` of a function rule: the function is evaluated on
    the window ending at each stored point, back until it first fails."""
    w = World(interval=5.0)
    # `steady` grows 10/s from t=0; `late` is flat until t=60, then grows 10/s
    for t in range(0, 95, 5):
        w.poll(
            t,
            {
                ("steady", None): {"queue_length": 10.0 * t},
                ("late", None): {"queue_length": 0.0 if t <= 60 else 10.0 * (t - 60)},
            },
        )
    growing = rule(name="Growing", function="rate", window="20s", threshold=5, **{"for": "1m"})
    ev = AlertEvaluator([growing], AlertingSettings(), builtin=False)
    events = w.eval(ev, 90)
    # steady: rate(20s) has held since the first point with two in its window (t=5), so
    # for 85 s of history: fires on the first look. late: rate(20s) > 5 from t=70 (the
    # window (50, 70] gains 100 over 20 s) only: 20 s, pending.
    assert kinds(events) == [("firing", "Growing", "steady")]
    assert events[0].alert.active_since == T0 + 5
    by_queue = {a.queue: a for a in ev.alerts()}
    assert by_queue["steady"].state is AlertState.FIRING
    assert by_queue["late"].state is AlertState.PENDING
    assert by_queue["late"].active_since == T0 + 70


def test_function_on_a_derived_rate():
    w = World()
    ev = AlertEvaluator(
        [rule(name="Busy", metric="publish_rate", function="avg", window="5s", threshold=9)],
        AlertingSettings(),
        builtin=False,
    )
    for t in range(0, 6):
        w.poll(t, {("q", None): {"queue_length": 1, "published_total": 10.0 * t}})
    w.eval(ev, 5)
    [alert] = ev.alerts()
    assert alert.value == pytest.approx(10.0)


def test_broker_down_builtin_and_frozen_series():
    w = World()
    ev = AlertEvaluator([rule()], AlertingSettings())
    w.poll(0, {("q", None): {"queue_length": 50}})
    assert kinds(w.eval(ev, 0)) == [("firing", "Backlog", "q")]
    w.poll(1, {}, up=False)
    events = w.eval(ev, 1)
    # the broker is down: its series alerts are frozen (no resolve), BrokerDown fires
    assert kinds(events) == [("firing", "BrokerDown", None)]
    down = events[0].alert
    assert down.severity == "critical" and down.broker == "b" and down.value is None
    assert "ConnectionError: refused" in down.summary
    assert {a.rule for a in ev.alerts()} == {"BrokerDown", "Backlog"}
    assert ev.alerts()[0].rule == "BrokerDown"  # most severe first
    w.poll(2, {("q", None): {"queue_length": 50}})
    assert kinds(w.eval(ev, 2)) == [("resolved", "BrokerDown", None)]


def test_group_stalled_builtin():
    w = World()
    ev = AlertEvaluator([], AlertingSettings())
    w.poll(
        0,
        {
            ("t", "ok"): {"queue_length": 0, "group_status": 0},
            ("t", "stall"): {"queue_length": 9, "group_status": 2},
            ("t", "stop"): {"queue_length": 9, "group_status": 3},
            ("t", "err"): {"queue_length": 9, "group_status": 4},
        },
        kind="stream",
    )
    events = w.eval(ev, 0)
    assert sorted(e.alert.group for e in events) == ["stall", "stop"]
    summaries = sorted(e.alert.summary for e in events)
    assert summaries == [
        "b/t [stall]: consumer group stall is STALL",
        "b/t [stop]: consumer group stop is STOP",
    ]


def test_group_stalled_builtin_on_queues_speaks_of_the_queue():
    w = World()
    ev = AlertEvaluator([], AlertingSettings())
    w.poll(
        0,
        {
            ("orders", None): {"queue_length": 9, "group_status": 3},
            ("emails", None): {"queue_length": 9, "group_status": 2},
            ("idle", None): {"queue_length": 0, "group_status": 0},
            ("unknown", None): {"queue_length": 4, "group_status": None},
        },
    )
    events = w.eval(ev, 0)
    assert sorted(e.alert.summary for e in events) == [
        "b/emails: queue is STALL",
        "b/orders: queue is STOP",
    ]
    w.poll(1, {("orders", None): {"queue_length": 0, "group_status": 0}})
    resolved = [e for e in w.eval(ev, 1) if e.kind == "resolved"]
    assert [e.alert.summary for e in resolved if e.alert.queue == "orders"] == [
        "b/orders: queue is OK"
    ]


def test_series_stale_builtin_is_one_alert_per_broker_whose_polls_stopped_storing_data():
    w = World()
    ev = AlertEvaluator([], AlertingSettings())
    w.poll(0, {("a", None): {"queue_length": 1}, ("gone", None): {"queue_length": 1}})
    assert w.eval(ev, 0) == []
    for t in range(1, 6):
        # a queue the broker stopped listing is not "stale": it is removed after 3 polls
        w.poll(t, {("a", None): {"queue_length": 1}})
        assert w.eval(ev, t) == [], t
    # no poll stores data any more while the broker is not known to be down (a poll hangs)
    assert w.eval(ev, 8) == []  # 3 s: not more than 3 intervals yet
    [event] = w.eval(ev, 9)
    stale = event.alert
    assert (stale.rule, stale.broker, stale.queue, stale.severity) == (
        "SeriesStale",
        "b",
        None,
        "info",
    )
    assert (stale.value, stale.threshold) == (4.0, 3.0)


def test_update_rules_keeps_state_and_resolves_removed_rules():
    w = World()
    ev = AlertEvaluator([rule(name="A"), rule(name="B", **{"for": "5s"})], AlertingSettings())
    w.poll(0, {("q", None): {"queue_length": 50}})
    assert kinds(w.eval(ev, 0)) == [("firing", "A", "q")]
    w.poll(1, {("q", None): {"queue_length": 50}})
    w.eval(ev, 1)
    ev.update_rules([rule(name="B", **{"for": "5s"}), rule(name="C")], AlertingSettings())
    w.poll(2, {("q", None): {"queue_length": 50}})
    events = w.eval(ev, 2)
    assert sorted(kinds(events)) == [("firing", "C", "q"), ("resolved", "A", "q")]
    pending_b = next(a for a in ev.alerts() if a.rule == "B")
    assert pending_b.active_since == T0  # state kept across the reload
    w.poll(5, {("q", None): {"queue_length": 50}})
    assert kinds(w.eval(ev, 5)) == [("firing", "B", "q")]


def test_configured_rule_replaces_builtin_of_same_name():
    ev = AlertEvaluator([rule(name="SeriesStale")], AlertingSettings())
    names = [r.name for r in ev.rules]
    assert names.count("SeriesStale") == 1 and "BrokerDown" in names


def test_silences_mute_persist_and_expire(tmp_path):
    path = tmp_path / "silences.json"
    w = World()
    ev = AlertEvaluator([rule()], AlertingSettings(), silences=SilenceStore(path), builtin=False)
    now = T0
    silence = ev.silence("Backlog", {"queue": "orders*"}, until=now + 10, comment="deploy")
    assert json.loads(path.read_text())["silences"][0]["comment"] == "deploy"
    # a second store (another process) sees it
    assert [s.id for s in SilenceStore(path).active(now)] == [silence.id]
    w.poll(0, {("orders", None): {"queue_length": 50}, ("other", None): {"queue_length": 50}})
    events = w.eval(ev, 0)
    assert kinds(events) == [("firing", "Backlog", "other")]
    muted = next(a for a in ev.alerts() if a.queue == "orders")
    assert muted.state is AlertState.FIRING and muted.silenced
    # when the silence expires the still-firing alert is notified
    w.poll(11, {("orders", None): {"queue_length": 50}, ("other", None): {"queue_length": 50}})
    assert kinds(w.eval(ev, 11)) == [("firing", "Backlog", "orders")]


def test_unsilence_notifies_at_next_evaluation(tmp_path):
    w = World()
    ev = AlertEvaluator(
        [rule()], AlertingSettings(), silences=SilenceStore(tmp_path / "s.json"), builtin=False
    )
    silence = ev.silence("*", {}, until=time.time() + 3600)
    w.poll(0, {("q", None): {"queue_length": 50}})
    assert w.eval(ev, 0) == []
    assert [s.id for s in ev.silences()] == [silence.id]
    ev.unsilence(silence.id)
    assert ev.silences() == []
    w.poll(1, {("q", None): {"queue_length": 50}})
    assert kinds(w.eval(ev, 1)) == [("firing", "Backlog", "q")]
    with pytest.raises(KeyError):
        ev.unsilence("nope")


def test_resolved_after_silenced_firing_is_not_notified(tmp_path):
    w = World()
    ev = AlertEvaluator([rule()], AlertingSettings(), builtin=False)
    ev.silence("Backlog", {}, until=T0 + 100)
    w.poll(0, {("q", None): {"queue_length": 50}})
    assert w.eval(ev, 0) == []
    w.poll(1, {("q", None): {"queue_length": 1}})
    assert w.eval(ev, 1) == []  # receivers never heard of it


def test_summary_template():
    w = World()
    template = "{rule} {severity}: {broker}/{queue} [{group}] at {value:.1f} > {threshold} {nope}"
    ev = AlertEvaluator([rule(summary=template)], AlertingSettings(), builtin=False)
    w.poll(0, {("q", None): {"queue_length": 50}})
    [event] = w.eval(ev, 0)
    assert event.alert.summary == "Backlog warning: b/q [-] at 50.0 > 10 {nope}"
    assert render_summary("{{literal}} {value}", {"value": 0.25}) == "{literal} 0.25"


def test_alerts_are_sorted_most_severe_first():
    w = World()
    rules = [
        rule(name="Info", severity="info"),
        rule(name="Crit", severity="critical"),
        rule(name="WarnPending", severity="warning", **{"for": "1h"}),
        rule(name="Warn", severity="warning"),
    ]
    ev = AlertEvaluator(rules, AlertingSettings(), builtin=False)
    w.poll(0, {("q", None): {"queue_length": 50}})
    w.eval(ev, 0)
    assert [a.rule for a in ev.alerts()] == ["Crit", "Warn", "WarnPending", "Info"]


def test_rules_sharing_a_metric_match_brute_force():
    """Rules over one metric with different thresholds/globs share one scan; results must
    equal a rule-by-rule brute force over the same values."""
    import fnmatch
    import operator
    import random

    rng = random.Random(3)
    ops = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
    rules = []
    for i in range(24):
        op = rng.choice(list(ops))
        match = {"queue": rng.choice(["q1*", "*7", "q*"])} if i % 3 == 0 else {}
        rules.append(rule(name=f"R{i}", op=op, threshold=rng.randint(0, 100), match=match))
    w = World()
    values = {
        (f"q{i}", None): {"queue_length": None if i % 11 == 0 else float(rng.randint(0, 100))}
        for i in range(300)
    }
    w.poll(0, values)
    ev = AlertEvaluator(rules, AlertingSettings(), builtin=False)
    w.eval(ev, 0)
    got = sorted((a.rule, a.queue) for a in ev.alerts())
    expected = sorted(
        (r.name, q)
        for r in rules
        for (q, _), v in values.items()
        if v["queue_length"] is not None
        and ops[r.op](v["queue_length"], r.threshold)
        and all(fnmatch.fnmatchcase(q, g) for g in r.match.values())
    )
    assert got == expected and len(expected) > 100


def test_empty_store_and_unknown_broker_statuses():
    """No series at all (every broker down from the start): only BrokerDown fires."""
    w = World()
    w.poll(0, {}, up=False)
    ev = AlertEvaluator([rule(), rule(name="Fn", function="avg", window="1m")], AlertingSettings())
    events = w.eval(ev, 0)
    assert kinds(events) == [("firing", "BrokerDown", None)]
    assert w.eval(ev, 1) == []


def test_alerts_stay_sorted_when_reused_and_follow_every_change():
    """alerts() reuses its sorted answer while no alert changed; a caller's copy is its own,
    and a new value or a new alert shows at once, in severity order."""
    w = World()
    rules = [rule(), rule(name="Huge", threshold=100, severity="critical")]
    ev = AlertEvaluator(rules, AlertingSettings(), builtin=False)
    w.poll(0, {("a", None): {"queue_length": 20}, ("b", None): {"queue_length": 30}})
    w.eval(ev, 0)
    first = ev.alerts()
    assert [(a.rule, a.queue) for a in first] == [("Backlog", "a"), ("Backlog", "b")]
    first.clear()
    w.poll(1, {("a", None): {"queue_length": 20}, ("b", None): {"queue_length": 30}})
    w.eval(ev, 1)
    again = ev.alerts()
    assert [(a.rule, a.queue) for a in again] == [("Backlog", "a"), ("Backlog", "b")]
    w.poll(2, {("a", None): {"queue_length": 500}, ("b", None): {"queue_length": 30}})
    w.eval(ev, 2)
    changed = ev.alerts()
    assert [(a.rule, a.queue) for a in changed] == [
        ("Huge", "a"),
        ("Backlog", "a"),
        ("Backlog", "b"),
    ]
    assert next(a for a in changed if a.rule == "Backlog" and a.queue == "a").value == 500


def test_columns_kept_between_cycles_give_the_answers_of_columns_built_afresh():
    """Random polls (quiet series, changing ones, nulls, series coming and going): an
    evaluator that re-reads only changed series answers as one that rebuilds every column."""
    import random

    rng = random.Random(5)
    w = World()
    rules = [
        rule(),
        rule(name="Huge", threshold=50, severity="critical", **{"for": "2s"}),
        rule(name="NoConsumers", metric="consumers", op="==", threshold=0),
        rule(name="Errors", metric="error_rate", op=">", threshold=0.1),
    ]
    kept = AlertEvaluator(rules, AlertingSettings(), builtin=False)
    fresh = AlertEvaluator(rules, AlertingSettings(), builtin=False)
    values = {f"q{i}": {"queue_length": 5.0, "consumers": 1.0} for i in range(40)}
    for t in range(60):
        for name in rng.sample(sorted(values), 6):  # a few series change each poll
            values[name] = {
                "queue_length": rng.choice([None, 0.0, 20.0, 80.0]),
                "consumers": rng.choice([0.0, 1.0, None]),
                "processed_total": float(t * rng.randint(0, 3)),
                "dead_lettered_total": float(t),
            }
        if t % 17 == 16:  # a series goes, another comes
            values.pop(sorted(values)[0])
            values[f"new{t}"] = {"queue_length": 99.0, "consumers": 0.0}
        w.poll(t, {(q, None): v for q, v in values.items()})
        fresh._columns_memo = ([], [], {}, [])  # every column read again
        a, b = w.eval(kept, t), w.eval(fresh, t)
        assert [(e.kind, e.alert.rule, e.alert.queue) for e in a] == kinds(b)
        assert [(x.rule, x.queue, x.state, x.value) for x in kept.alerts()] == [
            (x.rule, x.queue, x.state, x.value) for x in fresh.alerts()
        ]
    assert kept.alerts()  # the random polls did raise alerts


def test_the_default_summary_without_the_template_is_the_templates_text():
    """A configured threshold rule's default summary is rendered without the template's
    field dictionary: the text is the template's, for any value and series."""
    from alerts.rules import CompiledRule
    from alerts.state import RuleState
    from alerts.summaries import series_label

    ev = AlertEvaluator([], AlertingSettings(), builtin=False)
    for threshold in (10, 0.125, 1e16, -3):
        compiled = CompiledRule(rule(threshold=threshold, op="<="))
        assert compiled.plain_summary
        for value in (None, 0.0, 1.5, 1e20, -3.25, 123456789.0, float("nan"), 7):
            for key in (("b", "q", None), ("b", "q.x", "g1"), ("b", None, None)):
                st = RuleState(T0)
                st.value = value
                fields = {
                    "series": series_label(*key),
                    "metric": compiled.metric,
                    "value": value,
                    "op": compiled.op,
                    "threshold": compiled.threshold,
                }
                text = compiled.template.render(fields)
                assert ev._build_alert(compiled, key, st).summary == text, (value, key)
