"""Alert states an operator can trust: deleted queues, staleness, held and resolved alerts
(pure logic over a real TimeSeriesStore, and the real Engine with in-process collectors)."""

from __future__ import annotations

import asyncio
import time

import pytest

from alerts.config import AlertingSettings
from alerts.evaluator import AlertEvaluator
from alerts.model import AlertState
from collectors.base import BrokerOptions, Collected, MessageActions
from mqtop.config import Config
from mqtop.engine import Engine
from mqtop.kernel.model import SeriesKey, SeriesSample
from tests.support.alerts import CLOCK, World, kinds, rule

T0 = CLOCK.t0


@pytest.fixture(autouse=True)
def _fresh_t0() -> None:
    """Each test starts at "now" (see tests/support/alerts.py)."""
    global T0
    T0 = CLOCK.reset()


REMOVE_AFTER_POLLS = 3  # the documented grace period (mqtop.kernel.store.REMOVE_AFTER_POLLS)


def test_a_queue_the_broker_stops_listing_is_removed_and_its_alerts_resolve_with_that_reason():
    w = World()
    ev = AlertEvaluator([rule()], AlertingSettings())
    w.poll(0, {("a", None): {"queue_length": 1}, ("gone", None): {"queue_length": 50}})
    assert kinds(w.eval(ev, 0)) == [("firing", "Backlog", "gone")]
    gone = SeriesKey("b", "gone", None)
    for t in range(1, REMOVE_AFTER_POLLS):
        w.poll(t, {("a", None): {"queue_length": 1}})
        # the grace period: no SeriesStale, no false resolution, the alert is kept as it was
        assert w.eval(ev, t) == [], t
        view = w.store.view(gone)
        assert view is not None and view.stale
        [alert] = ev.alerts()
        assert alert.state is AlertState.FIRING and alert.value == 50
    w.poll(REMOVE_AFTER_POLLS, {("a", None): {"queue_length": 1}})
    events = w.eval(ev, REMOVE_AFTER_POLLS)
    assert kinds(events) == [("resolved", "Backlog", "gone")]
    resolved = events[0].alert
    assert resolved.reason == "series_removed" and resolved.value is None
    assert resolved.summary == (
        f"b/gone: no longer listed by the broker (removed after {REMOVE_AFTER_POLLS} polls "
        "without it)"
    )
    assert w.store.view(gone) is None
    assert [v.key.queue for v in w.store.views()] == ["a"]
    assert ev.alerts() == []
    # nothing else fired on the way, however many polls follow
    for t in range(REMOVE_AFTER_POLLS + 1, 20):
        w.poll(t, {("a", None): {"queue_length": 1}})
        assert w.eval(ev, t) == []


def test_a_queue_that_comes_back_within_the_grace_period_keeps_its_alert():
    w = World()
    ev = AlertEvaluator([rule()], AlertingSettings())
    w.poll(0, {("q", None): {"queue_length": 50}})
    assert kinds(w.eval(ev, 0)) == [("firing", "Backlog", "q")]
    w.poll(1, {})
    assert w.eval(ev, 1) == []
    w.poll(2, {("q", None): {"queue_length": 60}})
    assert w.eval(ev, 2) == []
    [alert] = ev.alerts()
    assert alert.fired_at == T0 and alert.value == 60


def test_resolutions_state_what_is_true_now():
    w = World()
    rules = [
        rule(),
        rule(name="Growing", function="increase", window="3s", threshold=10),
        rule(name="Consumers", metric="consumers", op="<", threshold=1),
    ]
    ev = AlertEvaluator(rules, AlertingSettings(), builtin=False)
    w.poll(0, {("q", None): {"queue_length": 0, "consumers": 0}})
    w.eval(ev, 0)
    w.poll(1, {("q", None): {"queue_length": 1500, "consumers": 0}})
    firing = {e.alert.rule: e.alert.summary for e in w.eval(ev, 1)}
    assert firing["Backlog"] == "b/q: queue_length 1500 > 10"
    w.poll(2, {("q", None): {"queue_length": 1500, "consumers": None}})
    events = w.eval(ev, 2)
    assert [e.alert.summary for e in events] == ["b/q: consumers has no value"]
    w.poll(3, {("q", None): {"queue_length": 7, "consumers": 2}})
    summaries = {e.alert.rule: e.alert.summary for e in w.eval(ev, 3) if e.kind == "resolved"}
    assert summaries == {
        "Backlog": "b/q: queue_length 7 ≤ 10",
        "Growing": "b/q: increase(queue_length[3s]) 7 ≤ 10",
    }
    assert {a.reason for a in ev.recent_resolved()} == {"condition_false"}


def test_resolve_after_hold_says_why_and_until_when():
    w = World()
    ev = AlertEvaluator([rule()], AlertingSettings(resolve_after="30s"), builtin=False)
    w.poll(0, {("q", None): {"queue_length": 50}})
    w.eval(ev, 0)
    w.poll(1, {("q", None): {"queue_length": 0}})
    assert w.eval(ev, 1) == []  # not flapping: a resolve_after hold is not notified
    [alert] = ev.alerts()
    assert alert.state is AlertState.FIRING and alert.value == 0
    assert alert.held_until == T0 + 31 and alert.reason == "resolve_after"
    assert alert.summary.startswith("b/q: queue_length 0 ≤ 10; held firing for resolve_after 30s")
    w.poll(2, {("q", None): {"queue_length": 80}})
    w.eval(ev, 2)
    [alert] = ev.alerts()
    assert alert.held_until is None and alert.summary == "b/q: queue_length 80 > 10"


def test_demo_like_cycle_is_not_flapping_with_the_demo_settings(tmp_path):
    """An alert that fires once per demo cycle resolves every cycle (it is not flapping)."""
    from mqtop.demo.runner import config_document, write_config
    from mqtop.demo.workload import Scenario

    config = write_config(tmp_path / "demo.yaml", config_document([]))
    backlog = next(r for r in config.alerts if r.name == "QueueBacklog")
    ev = AlertEvaluator([backlog], config.alerting, builtin=False)
    w = World()
    cycle = int(Scenario().cycle)
    out = []
    for t in range(0, 4 * cycle):
        depth = 1500 if t % cycle < 25 else 300  # a batch, drained in ~25 s
        w.poll(t, {("jobs:invoices", None): {"queue_length": depth}})
        out += [(e.kind, t % cycle) for e in w.eval(ev, t)]
    assert [kind for kind, _ in out] == ["firing", "resolved"] * 4
    assert {at for kind, at in out if kind == "resolved"} == {25}


class Slow:
    """A collector whose polls take ``delays[i]`` seconds, reporting ``count`` queues."""

    def __init__(self, name: str, delays: list[float], count: int = 1) -> None:
        self._options = BrokerOptions(name=name, type="slow")
        self.delays = list(delays)
        self.count = count

    @property
    def options(self) -> BrokerOptions:
        return self._options

    async def connect(self) -> None:
        pass

    async def collect(self) -> Collected:
        await asyncio.sleep(self.delays.pop(0) if self.delays else 0.0)
        return Collected(
            tuple(
                SeriesSample(
                    SeriesKey(self._options.name, f"q{i}", None), "queue", {"queue_length": 1}
                )
                for i in range(self.count)
            )
        )

    async def close(self) -> None:
        pass

    def actions(self) -> MessageActions | None:
        return None


async def test_slow_polls_on_a_busy_machine_are_not_stale():
    """Polls every 0.3 s that take 1 s each: the data is as fresh as the last poll."""
    slow = Slow("slow", [1.0, 1.0])
    config = Config(interval=0.3, brokers=[slow.options])
    engine = Engine(config, collectors={"slow": slow})
    ev = AlertEvaluator([], config.alerting)
    ev.evaluate(engine.store, engine.statuses, time.time())
    for _ in range(2):
        await engine.poll("slow")
        await asyncio.sleep(0.05)
        assert ev.evaluate(engine.store, engine.statuses, time.time()) == []
    assert ev.alerts() == []
    await engine.close()


async def test_a_poll_that_stops_storing_data_raises_one_stale_alert_per_broker():
    slow = Slow("slow", [0.0, 1.6], count=30)
    config = Config(
        interval=0.2, timeout=5.0, brokers=[slow.options], alerting={"stale_after": "0.6s"}
    )
    engine = Engine(config, collectors={"slow": slow})
    ev = AlertEvaluator([], config.alerting)
    await engine.poll("slow")
    hung = asyncio.create_task(engine.poll("slow"))
    await asyncio.sleep(1.1)
    events = ev.evaluate(engine.store, engine.statuses, time.time())
    [event] = events
    alert = event.alert
    assert (event.kind, alert.rule, alert.broker, alert.queue) == (
        "firing",
        "SeriesStale",
        "slow",
        None,
    )
    assert alert.severity == "info" and alert.threshold == 0.6 and alert.value == 1
    assert alert.summary.startswith("broker slow: no poll has stored data for 1s")
    await hung
    [resolved] = ev.evaluate(engine.store, engine.statuses, time.time())
    assert resolved.kind == "resolved" and resolved.alert.summary == "broker slow: polled again"
    await engine.close()
