"""Incremental evaluation of threshold rules gives the answers of the full pass.

An evaluator judges again only the series whose values (or staleness) changed since its last
cycle; an evaluator with ``incremental = False`` judges every series at every cycle. Both are
fed the same random polls — quiet series, changing ones, nulls, series coming and going,
brokers listing only some of their series, brokers down, silences added and removed, holds
(``resolve_after``, flapping) and repeat notifications — and must tell the same events in
the same order and keep the same alerts.
"""

from __future__ import annotations

import random

import pytest

from alerts.config import AlertingSettings
from alerts.evaluator import AlertEvaluator, alert_sort_key
from alerts.model import Alert
from tests.support.alerts import CLOCK, World, rule

RULES = [
    rule(),
    rule(name="Huge", threshold=50, severity="critical", **{"for": "2s"}),
    # two rules on one metric and direction: the full pass shares one scan between them
    rule(name="Deep", metric="queue_length", op=">", threshold=30, severity="warning"),
    rule(name="NoConsumers", metric="consumers", op="==", threshold=0),
    rule(name="Changed", metric="consumers", op="!=", threshold=1, severity="info"),
    rule(name="Low", metric="queue_length", op="<", threshold=1, **{"for": "3s"}),
    rule(name="OrdersOnly", metric="queue_length", op=">=", threshold=20, match={"queue": "o*"}),
]
SETTINGS = AlertingSettings.model_validate(
    {"repeat_interval": "7s", "resolve_after": "2s", "flap_threshold": 2, "flap_window": "15s"}
)


def _values(rng: random.Random) -> dict[str, float | None]:
    return {
        "queue_length": rng.choice([None, 0.0, 5.0, 20.0, 40.0, 80.0]),
        "consumers": rng.choice([0.0, 1.0, 2.0, None]),
        "group_status": rng.choice([0.0, 1.0, 2.0, 3.0]),
    }


def _answers(ev: AlertEvaluator) -> list[tuple[object, ...]]:
    return [
        (
            a.rule,
            a.broker,
            a.queue,
            a.state,
            a.value,
            a.active_since,
            a.fired_at,
            a.held_until,
            a.silenced,
            a.summary,
        )
        for a in ev.alerts()
    ]


def _events(events) -> list[tuple[object, ...]]:
    return [
        (e.kind, e.repeat, e.alert.rule, e.alert.broker, e.alert.queue, e.alert.value)
        for e in events
    ]


def _every_alert(ev: AlertEvaluator) -> list[Alert]:
    """The evaluator's alerts built from its states afresh, in the order of alert_sort_key."""
    alerts = [
        ev._build_alert(ev._by_name[name], key, st)
        for name, states in ev._states.items()
        for key, st in states.items()
    ]
    return sorted(alerts, key=alert_sort_key)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_incremental_cycles_answer_as_full_passes(seed):
    CLOCK.reset()  # silences are checked against the wall clock: time zero is now
    rng = random.Random(seed)
    w = World()
    kept = AlertEvaluator(RULES, SETTINGS)
    full = AlertEvaluator(RULES, SETTINGS)
    full.incremental = False
    sparse = AlertEvaluator(RULES, SETTINGS)  # its alerts are read every third cycle only
    judged_again: list[int] = []
    incremental = kept._threshold_incremental

    def spy(rule, ctx, col, basis, **kw):
        judged_again.append(len(basis))
        incremental(rule, ctx, col, basis, **kw)

    kept._threshold_incremental = spy  # type: ignore[method-assign]
    names = [f"o{i}" for i in range(15)] + [f"q{i}" for i in range(25)]
    series = {
        broker: {n: _values(rng) for n in names[offset::2]}
        for offset, broker in enumerate(("a", "b"))
    }
    every = (kept, full, sparse)
    silences: list[tuple[AlertEvaluator, str]] = []
    every_event = 0
    seen: set[str] = set()
    for t in range(120):
        for broker, values in series.items():
            # a few series change each poll; now and then most of them do
            changing = len(values) if t % 29 == 28 else 3
            for name in rng.sample(sorted(values), changing):
                values[name] = _values(rng)
            if t % 23 == 22:  # a series goes, another comes
                values.pop(sorted(values)[0])
                values[f"n{t}"] = _values(rng)
            down = broker == "b" and 40 <= t < 46
            listed = dict(values)
            if broker == "a" and 60 <= t < 63:  # the broker lists only some of its series
                listed = {n: v for n, v in values.items() if not n.startswith("o")}
            w.poll(t, {(n, None): v for n, v in listed.items()}, broker=broker, up=not down)
        if t in (30, 80):
            until = CLOCK.t0 + t + 12
            silences = [(ev, ev.silence("Backlog", {"broker": "a"}, until).id) for ev in every]
        if t == 85:
            for ev, silence_id in silences:
                ev.unsilence(silence_id)
        a, b, c = w.eval(kept, t), w.eval(full, t), w.eval(sparse, t)
        assert _events(a) == _events(b) == _events(c), t
        assert _answers(kept) == _answers(full), t
        if t % 3 == 2:
            assert _answers(sparse) == _answers(full), t
            assert sparse.alerts() == _every_alert(sparse), t
        every_event += len(a)
        seen.update(e.kind + ("-repeat" if e.repeat else "") for e in a)
        seen.update("silenced" for x in kept.alerts() if x.silenced)
        seen.update("not listed" for v in w.store.views() if v.stale)
        seen.update("down" for x in kept.alerts() if x.rule == "BrokerDown")
    assert every_event > 100 and kept.alerts()  # the random polls did raise and resolve
    # and reached every path: holds, repeats, silences, a broker down, series not listed
    paths = {"firing", "firing-repeat", "resolved", "held", "silenced", "not listed", "down"}
    assert seen >= paths, seen
    # most cycles built on the last one, each judging again only what changed
    assert len(judged_again) > 60 * len(RULES) // 2
    assert sorted(judged_again)[len(judged_again) // 2] < 20
