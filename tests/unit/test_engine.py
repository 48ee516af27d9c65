"""Polling engine behaviour with scripted in-process collectors (pure logic, no broker)."""

from __future__ import annotations

import asyncio
import random

from collectors.base import BrokerOptions, Collected, MessageActions
from mqtop.config import Config
from mqtop.engine import BACKOFF_MAX_FACTOR, Engine, backoff_delay
from mqtop.kernel.model import SeriesKey, SeriesSample


class Scripted:
    """A collector whose behaviour per poll is scripted: 'ok', 'fail' or 'hang'."""

    def __init__(self, name: str, script: list[str]) -> None:
        self._options = BrokerOptions(name=name, type="scripted")
        self.script = list(script)
        self.connects = 0
        self.closes = 0
        self.polls = 0

    @property
    def options(self) -> BrokerOptions:
        return self._options

    async def connect(self) -> None:
        self.connects += 1

    async def collect(self) -> Collected:
        step = self.script.pop(0) if self.script else "ok"
        self.polls += 1
        if step == "fail":
            raise ConnectionError("connection refused by amqp://u:pw-secret-1@h:1")
        if step == "hang":
            await asyncio.sleep(3600)
        key = SeriesKey(self._options.name, "q", None)
        return Collected(
            (SeriesSample(key=key, kind="queue", values={"queue_length": self.polls}),)
        )

    async def close(self) -> None:
        self.closes += 1

    def actions(self) -> MessageActions | None:
        return None


def make_engine(*collectors: Scripted, interval: float = 0.05, timeout: float = 0.2) -> Engine:
    config = Config(interval=interval, timeout=timeout, brokers=[c.options for c in collectors])
    return Engine(config, collectors={c.options.name: c for c in collectors})


def test_backoff_grows_and_caps():
    rng = random.Random(1)
    delays = [backoff_delay(1.0, n, rng) for n in range(1, 10)]
    assert 0.8 <= delays[0] <= 1.0  # first retry after about one interval
    assert delays[2] > 0.8 * BACKOFF_MAX_FACTOR  # grown to the cap
    assert max(delays) <= BACKOFF_MAX_FACTOR  # never longer: a broker back is seen in time
    assert len({round(d, 6) for d in delays}) == len(delays)  # jittered


async def test_timeout_marks_down_and_recovery_marks_up():
    c = Scripted("a", ["hang", "ok"])
    engine = make_engine(c)
    snap = await engine.poll("a")
    assert not snap.up
    assert snap.error == "timed out after 0.2s"
    status = engine.statuses["a"]
    assert status.up is False and status.consecutive_failures == 1
    snap = await engine.poll("a")
    assert snap.up
    assert engine.statuses["a"].up is True
    assert engine.statuses["a"].consecutive_failures == 0
    await engine.close()


async def test_one_long_lived_client_reconnects_only_after_failure():
    c = Scripted("a", ["ok", "ok", "ok", "fail", "ok", "ok"])
    engine = make_engine(c)
    for _ in range(6):
        await engine.poll("a")
    assert c.connects == 2  # once at start, once after the failure
    assert c.closes == 1  # the failed client was closed
    await engine.close()
    assert c.closes == 2


async def test_errors_are_one_line_and_masked():
    c = Scripted("a", ["fail"])
    engine = make_engine(c)
    snap = await engine.poll("a")
    assert snap.error is not None
    assert "pw-secret-1" not in snap.error
    assert "\n" not in snap.error
    await engine.close()


async def test_slow_broker_does_not_stall_others_and_stop_is_clean():
    slow = Scripted("slow", ["hang"] * 100)
    fast = Scripted("fast", [])
    engine = make_engine(slow, fast, interval=0.02, timeout=0.3)
    seen: list[str] = []
    engine.store.subscribe(lambda s: seen.append(s.broker))
    engine.start()
    await asyncio.sleep(0.5)
    await engine.stop()
    assert seen.count("fast") >= 5
    assert engine.statuses["slow"].up is False
    view = engine.store.view(SeriesKey("fast", "q", None))
    assert view is not None and view.metrics["queue_length"] == fast.polls
    assert fast.closes == 1 and slow.closes >= 1
    leftover = [t for t in asyncio.all_tasks() if t.get_name().startswith("mqtop-poll-")]
    assert leftover == []


async def test_down_broker_series_become_stale_not_frozen():
    c = Scripted("a", ["ok", "fail"])
    engine = make_engine(c)
    await engine.poll("a")
    view = engine.store.view(SeriesKey("a", "q", None))
    assert view is not None and not view.stale
    await engine.poll("a")
    view = engine.store.view(SeriesKey("a", "q", None))
    assert view is not None and view.stale
    await engine.close()


def test_describe_error_looks_inside_silent_wrappers():
    """Client libraries wrap the cause in exceptions that print nothing (pika does)."""
    from mqtop.engine import describe_error

    class Connector(Exception):
        def __init__(self, exception: BaseException) -> None:
            super().__init__()
            self.exception = exception

    class Outer(Exception):
        pass

    refused = ConnectionRefusedError(111, "Connection refused")
    text = describe_error(Outer(Connector(refused)))
    assert text == "Outer: Connector: ConnectionRefusedError: [Errno 111] Connection refused"
    assert describe_error(Outer()) == "Outer"
    assert describe_error(ValueError("first\nsecond")) == "ValueError: first"
    secret = Outer(Connector(ValueError("amqp://u:Hunter2-Secret@h/ refused")))
    assert "Hunter2-Secret" not in describe_error(secret)
