"""Queue health (group_status / JSON status) and dead-letter inflow on real RabbitMQ, driven by
real pika consumers that work, stall, stop and catch up; the engine polls every half second
with a short status window. RabbitMQ refreshes its counters and consumer counts every 5 s, so
the window is 6 s."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pika
import pytest

from tests.support.health import watcher
from tests.support.rabbit import Rabbit, broker_config, rabbit_session

pytestmark = [pytest.mark.broker, pytest.mark.timeout(60)]

STATUS = ("OK", "WARN", "STALL", "STOP", "ERROR")


@pytest.fixture
def rabbit(rabbitmq_broker, unique):
    yield from rabbit_session(rabbitmq_broker, unique)


class Worker(threading.Thread):
    """A pika consumer (prefetch 1) in its own thread: acks, holds its message (stall),
    rejects to the dead-letter exchange, or publishes at a steady pace."""

    def __init__(self, rabbit: Rabbit, queue: str, mode: str = "ack", rate: float = 0.0) -> None:
        super().__init__(daemon=True)
        self.rabbit, self.queue, self.mode, self.rate = rabbit, queue, mode, rate
        self.stop = threading.Event()
        self.handled = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            conn = pika.BlockingConnection(pika.URLParameters(self.rabbit.broker.amqp_url))
            try:
                self._loop(conn.channel(), conn)
            finally:
                conn.close()
        except BaseException as exc:  # reported by the test
            self.error = exc

    def _loop(self, channel: Any, conn: pika.BlockingConnection) -> None:
        if self.mode == "publish":
            while not self.stop.is_set():
                channel.basic_publish("", self.queue, b"job")
                conn.process_data_events(time_limit=1.0 / self.rate)
            return
        held: list[int] = []

        def on_message(ch: Any, method: Any, _props: Any, _body: bytes) -> None:
            if self.mode == "stall":
                held.append(method.delivery_tag)  # never acked: the consumer is stuck
            elif self.mode == "reject":
                ch.basic_reject(method.delivery_tag, requeue=False)
                self.handled += 1
            else:
                ch.basic_ack(method.delivery_tag)
                self.handled += 1

        channel.basic_qos(prefetch_count=1)
        channel.basic_consume(self.queue, on_message)
        while not self.stop.is_set():
            if self.mode == "ack" and held:
                for tag in held:
                    channel.basic_ack(tag)
                held.clear()
            conn.process_data_events(time_limit=0.05)


def engine_for(rabbit: Rabbit, write_config: Callable[..., Any], queues: list[str], extra: str):
    from mqtop.config import load_config_file
    from mqtop.engine import Engine

    text = broker_config(rabbit.broker, queues, extra)
    return Engine(load_config_file(write_config(text)))


watch = watcher("rabbit")


def test_consumer_works_stalls_then_catches_up(rabbit, write_config):
    queue = rabbit.queue(rabbit.unique("hq"))
    producer = Worker(rabbit, queue, "publish", rate=10.0)
    consumer = Worker(rabbit, queue, "ack")
    extra = "    group_status_window: 6s\n"
    engine = engine_for(rabbit, write_config, [queue], extra)
    producer.start()
    consumer.start()

    async def scenario() -> dict[str, list[str | None]]:
        phases: dict[str, list[str | None]] = {}
        try:
            phases["working"] = await watch(engine, queue, lambda s, v: s == "OK", 10)
            consumer.mode = "stall"  # keeps its channel and its one unacked message
            phases["stalled"] = await watch(engine, queue, lambda s, v: s == "STALL", 20)
            stalled_view = engine.store.view(phases_key(queue))
            phases["reason"] = [stalled_view.info["status_reason"]]
            consumer.mode = "ack"  # catches up
            phases["catch-up"] = await watch(engine, queue, lambda s, v: s == "OK", 12)
        finally:
            await engine.close()
        return phases

    try:
        phases = asyncio.run(scenario())
    finally:
        producer.stop.set()
        consumer.stop.set()
        producer.join(5)
        consumer.join(5)
    assert producer.error is None and consumer.error is None
    assert "STALL" not in phases["working"] and "STOP" not in phases["working"], phases
    # no verdict from one sample: the stall shows only after a whole window
    assert phases["stalled"].count("STALL") == 1 and len(phases["stalled"]) >= 10, phases
    assert "STOP" not in phases["stalled"], phases  # the consumer stayed attached
    assert "1 consumer(s) attached" in phases["reason"][0]
    assert phases["catch-up"][-1] == "OK" and "STOP" not in phases["catch-up"], phases
    assert consumer.handled > 0


def phases_key(queue: str) -> Any:
    from mqtop.kernel.model import SeriesKey

    return SeriesKey("rabbit", queue, None)


def test_no_consumer_is_stop_and_a_restart_catches_up_without_stall(rabbit, write_config):
    queue = rabbit.queue(rabbit.unique("hq"))
    conn = rabbit.connect()
    channel = conn.channel()
    for _ in range(200):
        channel.basic_publish("", queue, b"job")
    conn.close()
    engine = engine_for(rabbit, write_config, [queue], "    group_status_window: 6s\n")
    consumer = Worker(rabbit, queue, "ack")

    async def scenario() -> tuple[list[str | None], list[str | None]]:
        try:
            stopped = await watch(engine, queue, lambda s, v: s == "STOP", 15)
            consumer.start()  # the consumer comes back and works the backlog off
            caught = await watch(
                engine, queue, lambda s, v: s == "OK" and v.metrics["queue_length"] == 0, 14
            )
        finally:
            await engine.close()
        return stopped, caught

    try:
        stopped, caught = asyncio.run(scenario())
    finally:
        consumer.stop.set()
        consumer.join(5)
    assert consumer.error is None and consumer.handled == 200
    assert stopped[0] is None and "STALL" not in stopped, stopped  # not judged before a window
    # STOP until the management stats (5 s refresh) show the consumer; then never STALL while
    # its first acks are not in the stats yet, and never back to STOP
    assert "STALL" not in caught, caught
    moved = next(i for i, s in enumerate(caught) if s != "STOP")
    assert "STOP" not in caught[moved:] and caught[-1] == "OK", caught


def test_dead_letter_inflow_fires_while_a_consumer_keeps_the_dlq_empty(rabbit, write_config):
    from alerts.config import AlertingSettings, default_rules
    from alerts.evaluator import AlertEvaluator
    from mqtop.kernel.model import SeriesKey

    dlx = rabbit.exchange(rabbit.unique("hdlx"))
    dlq = rabbit.queue(rabbit.unique("hq") + ".dlq")
    rabbit.bind(dlx, dlq, "dead")
    source = rabbit.queue(
        rabbit.unique("hq"),
        arguments={"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "dead"},
    )
    producer = Worker(rabbit, source, "publish", rate=10.0)
    rejecter = Worker(rabbit, source, "reject")
    archiver = Worker(rabbit, dlq, "ack")  # keeps the DLQ empty
    extra = "    error_window: 6s\n"
    engine = engine_for(rabbit, write_config, [source, dlq], extra)
    rules = [r for r in default_rules() if r.name == "DeadLettersArriving"]
    assert rules and rules[0].severity == "warning"
    evaluator = AlertEvaluator(rules, AlertingSettings(), builtin=False)
    for worker in (archiver, rejecter, producer):
        worker.start()

    async def scenario() -> tuple[Any, list[Any], list[float | None]]:
        lengths: list[float | None] = []
        try:
            deadline = time.monotonic() + 25
            while time.monotonic() < deadline:
                await engine.poll_all()
                view = engine.store.view(SeriesKey("rabbit", source, None))
                lengths.append(view.metrics["dlq_length"] if view else None)
                evaluator.evaluate(engine.store, engine.statuses, time.time())
                firing = [a for a in evaluator.alerts() if a.state.value == "firing"]
                if firing:
                    return view, firing, lengths
                await asyncio.sleep(1.0)
            return None, [], lengths
        finally:
            await engine.close()

    try:
        view, firing, lengths = asyncio.run(scenario())
    finally:
        for worker in (producer, rejecter, archiver):
            worker.stop.set()
            worker.join(5)
    assert producer.error is None and rejecter.error is None and archiver.error is None
    assert firing, lengths
    alert = firing[0]
    assert (alert.rule, alert.broker, alert.queue) == ("DeadLettersArriving", "rabbit", source)
    assert view.dlq == dlq
    # dead letters arrive (about 10 a second; RabbitMQ's 5 s stats steps make a first figure
    # over a short span burstier), while the DLQ holds (almost) nothing
    assert 0 < view.metrics["dlq_inflow_rate"] <= 100.0, view.metrics
    assert alert.value is not None and alert.value > 0
    assert archiver.handled > 0 and max(v or 0 for v in lengths) <= 5, lengths
