"""Queue health (group_status / JSON status) of Redis lists, driven by real redis-py producers
and consumers that work, stop, stall, fall behind and catch up. Lists keep no counters and
Redis does not tell who consumes a list: the health reads the length and a fingerprint of the
head message, so a consumer that stalls is told apart from none only by what it consumes."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from tests.harness import RedisBroker
from tests.support.health import watcher

pytestmark = [pytest.mark.broker, pytest.mark.timeout(60)]


class Worker(threading.Thread):
    """LPUSH at ``rate``/s (producer), or BRPOP at up to ``rate``/s (consumer; 0 = stop)."""

    def __init__(self, broker: RedisBroker, key: str, role: str, rate: float) -> None:
        super().__init__(daemon=True)
        self.client = redis.Redis(host=broker.host, port=broker.port)
        self.key, self.role, self.rate = key, role, rate
        self.stop = threading.Event()
        self.done = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                rate = self.rate  # read once: the test changes it from another thread
                if rate <= 0:
                    time.sleep(0.05)  # connected, takes nothing: stalled
                    continue
                if self.role == "producer":
                    self.client.lpush(self.key, f"job-{self.done}")
                    self.done += 1
                elif self.client.brpop([self.key], timeout=0.2) is not None:
                    self.done += 1
                time.sleep(1.0 / rate)
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.client.close()


watch = watcher("cache")


def test_list_consumer_works_stalls_falls_behind_and_catches_up(
    redis_broker: RedisBroker, write_config, unique
):
    from mqtop.config import load_config_file
    from mqtop.engine import Engine

    key = unique("health") + ":jobs"
    path = write_config(
        f"""
        interval: 0.5s
        brokers:
          - name: cache
            type: redis
            url: "{redis_broker.url}"
            lists: ["{key}"]
            group_status_window: 3s
        """
    )
    engine = Engine(load_config_file(path))
    producer = Worker(redis_broker, key, "producer", 10.0)
    consumer = Worker(redis_broker, key, "consumer", 50.0)
    producer.start()
    consumer.start()
    reasons: dict[str, str] = {}

    def status_is(wanted: str) -> Callable[[str | None, Any], bool]:
        def check(status: str | None, view: Any) -> bool:
            if status == wanted:
                reasons[wanted] = view.info["status_reason"]
            return status == wanted

        return check

    async def scenario() -> dict[str, list[str | None]]:
        phases: dict[str, list[str | None]] = {}
        try:
            phases["working"] = await watch(engine, key, status_is("OK"), 6)
            consumer.rate = 0  # still connected, pops nothing
            phases["stalled"] = await watch(engine, key, status_is("STOP"), 10)
            consumer.rate = 4  # back, but slower than the producer (10/s)
            phases["behind"] = await watch(engine, key, status_is("WARN"), 10)
            consumer.rate = 100  # catches up
            phases["catch-up"] = await watch(
                engine, key, lambda s, v: s == "OK" and v.metrics["queue_length"] == 0, 10
            )
        finally:
            await engine.close()
        return phases

    client = redis.Redis(host=redis_broker.host, port=redis_broker.port)
    try:
        phases = asyncio.run(scenario())
    finally:
        producer.stop.set()
        consumer.stop.set()
        producer.join(5)
        consumer.join(5)
        client.delete(key)
        client.close()
    assert producer.error is None and consumer.error is None
    assert "STOP" not in phases["working"] and "STALL" not in phases["working"], phases
    # judged over the whole window, not one sample: 3 s at 0.5 s polls
    assert len(phases["stalled"]) >= 6, phases
    assert "does not tell consumers" in reasons["STOP"]
    # the length only grows while the slow consumer works, but its head moves: WARN, not STOP
    assert "STOP" not in phases["behind"][2:], phases
    assert "falling behind" in reasons["WARN"]
    assert phases["catch-up"][-1] == "OK" and "STOP" not in phases["catch-up"], phases
