"""Fault injection: brokers crash (SIGKILL) and come back under a running `mqtop serve` and
under the dashboard. The brokers are private (started by the test on free ports).

What is asserted, with polls counted as the engine's poll attempts:

* marked down within 2 polls of the crash (and, in time, within 2 poll intervals);
* recovered within 2 polls once the broker answers again. A failing broker is retried with
  capped exponential backoff (``mqtop.engine.BACKOFF_MAX_FACTOR`` = 2 intervals at most,
  jittered downwards), so in time recovery takes at most 2 intervals plus one poll; that
  bound is asserted too;
* the other broker keeps being polled while one is down; nothing crashes (no traceback, the
  daemon exits 0 on SIGTERM, the dashboard keeps running);
* history is kept: the points from before the outage are still in the store afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from typing import Any

import pika
import pytest
import redis

from mqtop.engine import BACKOFF_MAX_FACTOR
from mqtop.kernel.model import SeriesKey
from tests.harness import (
    BrokerUnavailable,
    RabbitBroker,
    RedisBroker,
    free_port,
    start_rabbitmq,
    start_redis,
)
from tests.support.serve import Serve, http_get, scrape

pytestmark = [pytest.mark.broker, pytest.mark.slow]

INTERVAL = 1.0
SLACK = 1.0  # scheduling slack on a loaded 2-core machine (scrapes every 0.1 s)
DOWN_WITHIN = 2 * INTERVAL + SLACK
UP_WITHIN = (BACKOFF_MAX_FACTOR + 1) * INTERVAL + SLACK


def crash(broker: RedisBroker | RabbitBroker) -> None:
    """SIGKILL the broker's whole process group (no clean shutdown) and wait for it."""
    managed = broker.managed
    assert managed is not None and managed.proc is not None
    with contextlib.suppress(ProcessLookupError):
        os.killpg(managed.proc.pid, signal.SIGKILL)
    managed.proc.wait(30)
    managed.stop()  # removes the work directory


def _private(start: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return start(*args, **kwargs)
    except BrokerUnavailable as exc:  # the binaries are part of the CI image
        pytest.fail(f"cannot start a private broker: {exc}")


def _rabbit_fill(broker: RabbitBroker, queue: str, count: int) -> None:
    conn = pika.BlockingConnection(
        pika.ConnectionParameters(host=broker.host, port=broker.amqp_port)
    )
    try:
        channel = conn.channel()
        channel.queue_declare(queue, durable=True)
        for i in range(count):
            channel.basic_publish("", queue, f"m{i}".encode())
    finally:
        conn.close()


# ---------------------------------------------------------------- serve


def _value(samples: dict[str, list], name: str, **labels: str) -> float | None:
    for sample in samples.get(name, []):
        if all(sample.labels.get(k) == v for k, v in labels.items()):
            return float(sample.value)
    return None


class Watch:
    """Scrapes /metrics every 0.1 s until a condition holds; remembers what it saw."""

    def __init__(self, port: int) -> None:
        self.port = port

    def until(self, check: Any, timeout: float, what: str) -> tuple[float, list[dict]]:
        seen: list[dict] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                samples = scrape(self.port)
            except OSError:  # not listening yet
                time.sleep(0.1)
                continue
            seen.append(samples)
            if check(samples):
                return time.monotonic(), seen
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")


def _outage(
    watch: Watch,
    name: str,
    other: str,
    kill: Any,
    restart: Any,
    check_back: Any,
) -> dict[str, float]:
    """Crash broker ``name``, bring it back; timings and failed attempts after it was back."""
    before = scrape(watch.port)
    assert _value(before, "mqtop_broker_up", broker=name) == 1.0
    kill()
    gone = time.monotonic()
    marked, seen = watch.until(
        lambda s: _value(s, "mqtop_broker_up", broker=name) == 0.0,
        DOWN_WITHIN + 10,
        f"{name} marked down",
    )
    # a down broker never stops the other one from being polled
    assert all(_value(s, "mqtop_broker_up", broker=other) == 1.0 for s in seen)
    other_last = _value(seen[-1], "mqtop_broker_last_success_timestamp_seconds", broker=other)
    time.sleep(3 * INTERVAL)  # a few failed attempts: the retry delay grows
    samples = scrape(watch.port)
    assert _value(samples, "mqtop_broker_up", broker=name) == 0.0
    assert (_value(samples, "mqtop_broker_consecutive_failures", broker=name) or 0) >= 2
    assert (_value(samples, "mqtop_broker_last_success_timestamp_seconds", broker=other) or 0) > (
        other_last or 0
    ), f"{other} stopped being polled while {name} was down"
    assert _value(samples, "mqtop_broker_stale", broker=name) == 1.0

    restart()
    back = time.monotonic()
    failures_at_back = _value(scrape(watch.port), "mqtop_broker_consecutive_failures", broker=name)
    recovered, seen = watch.until(check_back, UP_WITHIN + 15, f"{name} recovered")
    failures = [_value(s, "mqtop_broker_consecutive_failures", broker=name) or 0 for s in seen]
    failed_after_back = max(failures) - (failures_at_back or 0)
    return {
        "down_s": marked - gone,
        "up_s": recovered - back,
        "failed_attempts_after_back": failed_after_back,
    }


def test_serve_survives_redis_and_rabbitmq_crashes(write_config, unique, tmp_path):
    """`mqtop serve` watching a private Redis and a private RabbitMQ; each crashes once."""
    redis_b = _private(start_redis)
    rabbit_b = _private(start_rabbitmq)
    rport, aport, mport = redis_b.port, rabbit_b.amqp_port, rabbit_b.management_port
    jobs, orders = unique("fo") + ":jobs", unique("fo") + ".orders"
    client = redis.Redis(port=rport)
    client.rpush(jobs, *range(7))
    _rabbit_fill(rabbit_b, orders, 5)
    history = tmp_path / "history.db"
    config = write_config(
        f"""
        interval: {INTERVAL:g}s
        timeout: 2s
        history: {{path: "{history}"}}
        brokers:
          - {{name: cache, type: redis, url: "{redis_b.url}", lists: ["{jobs}"], streams: []}}
          - name: rabbit
            type: rabbitmq
            url: "{rabbit_b.amqp_url}"
            management_url: "{rabbit_b.management_url}"
            include: ["{orders}"]
        alerts: []
        """
    )
    port = free_port()
    serve = Serve(config, port, tmp_path / "state")
    brokers: list[Any] = [redis_b, rabbit_b]
    figures: dict[str, dict[str, float]] = {}
    started = time.time()
    try:
        watch = Watch(port)
        watch.until(
            lambda s: (
                _value(s, "mqtop_queue_length", queue=jobs) == 7.0
                and _value(s, "mqtop_queue_length", queue=orders) == 5.0
            ),
            60,
            "both brokers' numbers in /metrics",
        )
        time.sleep(3 * INTERVAL)  # pre-outage history
        crashed_redis = time.time()

        def redis_back() -> None:
            brokers[0] = _private(start_redis, rport)
            client.rpush(jobs, *range(11))

        figures["redis"] = _outage(
            watch,
            "cache",
            "rabbit",
            lambda: crash(redis_b),
            redis_back,
            lambda s: (
                _value(s, "mqtop_broker_up", broker="cache") == 1.0
                and _value(s, "mqtop_queue_length", queue=jobs) == 11.0
            ),
        )
        recovered_redis = time.time()
        status, body = http_get(f"http://127.0.0.1:{port}/healthz")
        assert status == 200 and json.loads(body)["brokers"]["cache"]["up"] is True

        def rabbit_back() -> None:
            brokers[1] = _private(start_rabbitmq, aport, mport)
            _rabbit_fill(brokers[1], orders, 3)

        figures["rabbitmq"] = _outage(
            watch,
            "rabbit",
            "cache",
            lambda: crash(rabbit_b),
            rabbit_back,
            lambda s: _value(s, "mqtop_broker_up", broker="rabbit") == 1.0,
        )
        # the restarted node's numbers show up (its stats refresh every 5 s)
        watch.until(
            lambda s: _value(s, "mqtop_queue_length", queue=orders) == 3.0,
            30,
            "the restarted RabbitMQ's queue",
        )
        status, body = http_get(f"http://127.0.0.1:{port}/healthz")
        health = json.loads(body)
        assert status == 200 and health["status"] == "ok", body
        assert {n: b["up"] for n, b in health["brokers"].items()} == {
            "cache": True,
            "rabbit": True,
        }
        assert serve.proc.poll() is None, "serve died"
    finally:
        code = serve.stop()
        for broker in brokers:
            broker.stop()
        client.close()
    print(f"outage figures (interval {INTERVAL:g}s): {figures}")
    assert code == 0
    err = serve.stderr_path.read_text()
    assert "Traceback" not in err
    logs = serve.logs()  # every line is a JSON object
    unreachable = [
        line["msg"].split()[1]
        for line in logs
        if line.get("logger") == "mqtop.engine" and "is unreachable" in line.get("msg", "")
    ]
    assert set(unreachable) == {"cache", "rabbit"}, unreachable

    for name, figure in figures.items():
        assert figure["down_s"] <= DOWN_WITHIN, (name, figure)
        assert figure["up_s"] <= UP_WITHIN, (name, figure)
        assert figure["failed_attempts_after_back"] <= 1, (name, figure)

    # history kept: the persisted store has the points from before, during and after
    from mqtop.kernel.store import TimeSeriesStore
    from mqtop.persist import HistoryDB

    store = TimeSeriesStore(interval=INTERVAL, recent=900.0, retention=3600.0)
    db = HistoryDB(history, store)
    try:
        db.load()
    finally:
        db.close()
    # the raw points (poll resolution): a rollup bucket of the range would average 7 and 11
    points = store.window_values(SeriesKey("cache", jobs), "queue_length", time.time() - started)
    before = [v for t, v in points if started <= t < crashed_redis]
    after = [v for t, v in points if t > recovered_redis - UP_WITHIN]
    assert len(before) >= 3 and set(before) == {7.0}, points
    assert 11.0 in after, points
    rabbit_points = store.range(SeriesKey("rabbit", orders), "queue_length", started)
    assert len([v for _, v in rabbit_points if v == 5.0]) >= 3, rabbit_points


# ---------------------------------------------------------------- dashboard


async def test_dashboard_survives_a_redis_crash(write_config, unique, tmp_path):
    from mqtop.config import load_config
    from mqtop.engine import Engine
    from mqtop.ui.app import MqtopApp
    from mqtop.ui.overview import OverviewScreen
    from mqtop.ui.vtable import SeriesTable

    broker = await asyncio.to_thread(_private, start_redis)
    port = broker.port
    jobs = unique("fo") + ":jobs"
    client = redis.Redis(port=port)
    client.rpush(jobs, *range(7))
    path = write_config(
        f"""
        interval: {INTERVAL:g}s
        timeout: 2s
        audit_log: "{tmp_path / "audit.jsonl"}"
        brokers:
          - {{name: cache, type: redis, url: "{broker.url}", lists: ["{jobs}"], streams: []}}
        """
    )
    engine = Engine(load_config(str(path)))
    polls: list[tuple[float, bool]] = []  # every poll attempt: (monotonic time, up)
    engine.on_status(lambda status: polls.append((time.monotonic(), bool(status.up))))
    app = MqtopApp(engine)
    key = SeriesKey("cache", jobs)
    restarted: list[RedisBroker] = []

    def row() -> Any:
        if not isinstance(app.screen, OverviewScreen):
            return None
        return next((r for r in app.screen.query_one(SeriesTable).rows if r.key == key), None)

    async def until(check: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await pilot.pause(0.05)

    started = time.time()
    try:
        async with app.run_test(size=(140, 30)) as pilot:
            await until(lambda: (r := row()) is not None and r.backlog == 7.0, 30, "the row")
            await until(lambda: len(polls) >= 4, 30, "pre-outage polls")
            crashed = time.time()
            await asyncio.to_thread(crash, broker)
            n0, gone = len(polls), time.monotonic()
            await until(lambda: "cache DOWN" in app.screen_text(), DOWN_WITHIN + 10, "DOWN")
            down_polls = len(polls) - n0  # attempts since the crash when the UI said DOWN
            down_s = time.monotonic() - gone
            assert polls[-1][1] is False
            await until(lambda: (r := row()) is not None and r.stale, 10, "stale row")
            await until(lambda: len(polls) - n0 >= 3, 30, "failed attempts")  # backoff grows

            restarted.append(await asyncio.to_thread(_private, start_redis, port))
            client.rpush(jobs, *range(11))
            n1, back = len(polls), time.monotonic()
            await until(
                lambda: (r := row()) is not None and r.backlog == 11.0 and not r.stale,
                UP_WITHIN + 15,
                "recovered row",
            )
            up_polls = next(i for i, (_, up) in enumerate(polls[n1:], 1) if up)
            up_s = time.monotonic() - back
            assert "cache up" in app.screen_text()
            assert isinstance(app.screen, OverviewScreen) and app.is_running

            # history kept: the pre-crash points are still in the dashboard's store
            points = app.engine.store.window_values(key, "queue_length", time.time() - started)
            before = [v for t, v in points if started <= t < crashed]
            assert len(before) >= 3 and set(before) == {7.0}, points
            assert points[-1][1] == 11.0
            await app.stop_engine()
    finally:
        for b in (broker, *restarted):
            b.stop()
        client.close()
    print(
        f"dashboard: DOWN after {down_polls} poll(s) / {down_s:.2f}s, recovered after "
        f"{up_polls} poll(s) / {up_s:.2f}s (interval {INTERVAL:g}s)"
    )
    assert 1 <= down_polls <= 2 and down_s <= DOWN_WITHIN
    assert up_polls <= 2 and up_s <= UP_WITHIN
