"""The RabbitMQ collector reuses the sample of a queue whose management item, DLQ and
dead-letter map did not change, and answers exactly as a rebuild would (pure logic: the
management API is replaced by the items it would list)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from collectors.rabbitmq.collector import RabbitMQCollector, RabbitMQOptions
from collectors.rabbitmq.deadletters import DeadLetterTarget


class _Api:
    """What ``_build`` asks of the management API: the dead-letter map and the rates mode."""

    def __init__(self) -> None:
        self.rates_mode = "basic"
        self.skipped_entries = 0
        self.topology = self

    async def refresh_topology(self, exchanges: object) -> list[str]:
        return []

    def resolve(self, vhost: str, name: str, target: DeadLetterTarget) -> list[str]:
        return [target.routing_key] if target.routing_key else []


def _collector() -> RabbitMQCollector:
    options = RabbitMQOptions.model_validate(
        {"name": "r", "type": "rabbitmq", "url": "amqp://localhost", "error_window": 30}
    )
    collector = RabbitMQCollector(options)
    collector.api = _Api()  # type: ignore[assignment]
    return collector


def _item(rng: random.Random, name: str, state: dict[str, Any], change: bool) -> dict[str, Any]:
    if change:
        state["ack"] += rng.randint(0, 20)
        state["deliver_get"] = state["ack"] + rng.randint(0, 5)
        state["ready"] = rng.choice([0, 0, 3])
        state["head"] = rng.choice([None, 1_699_999_000.0])
    item: dict[str, Any] = {
        "name": name,
        "vhost": "/",
        "type": "classic",
        "messages": state["ready"],
        "messages_ready": state["ready"],
        "messages_unacknowledged": 0,
        "consumers": 1,
        "head_message_timestamp": state["head"],
        "message_stats": {"ack": state["ack"], "deliver_get": state["deliver_get"], "publish": 7},
    }
    if not name.endswith(".dlq"):
        item["arguments"] = {
            "x-dead-letter-exchange": "dlx",
            "x-dead-letter-routing-key": name + ".dlq",
        }
    return item


def test_reused_samples_are_the_samples_a_rebuild_makes(monkeypatch):
    import collectors.rabbitmq.collector as module

    clock = [0.0]
    monkeypatch.setattr(module.time, "time", lambda: clock[0])  # both see the same poll time
    rng = random.Random(3)
    names = [f"q{i}" for i in range(12)] + [f"q{i}.dlq" for i in range(6)]
    states = {n: {"ack": 0, "deliver_get": 0, "ready": 0, "head": None} for n in names}
    kept, rebuilt = _collector(), _collector()
    reused = 0
    previous: dict[str, Any] = {}
    for poll in range(40):
        started = 1_700_000_000.0 + 5 * poll
        clock[0] = started + 0.5
        items = [_item(rng, n, states[n], rng.random() < 0.3) for n in names]
        if poll == 20:
            kept.api.rates_mode = rebuilt.api.rates_mode = "none"  # type: ignore[misc]
        if poll == 25:
            kept.api.rates_mode = rebuilt.api.rates_mode = "basic"  # type: ignore[misc]
        rebuilt._made.clear()  # every sample built afresh
        a = asyncio.run(kept._build([dict(i) for i in items], started))
        b = asyncio.run(rebuilt._build([dict(i) for i in items], started))
        for x, y in zip(a.series, b.series, strict=True):
            assert (x.key, x.kind, x.dlq) == (y.key, y.kind, y.dlq)
            assert dict(x.values) == dict(y.values), (poll, x.key)
            assert dict(x.info) == dict(y.info), (poll, x.key)
            reused += x is previous.get(x.key.queue)
        previous = {x.key.queue: x for x in a.series}
    assert reused > 100  # most queues are quiet most of the time: their samples were kept


def test_a_waiting_message_ages_so_its_queue_is_never_reused():
    collector = _collector()
    item = {
        "name": "busy",
        "vhost": "/",
        "type": "classic",
        "messages": 2,
        "messages_ready": 2,
        "messages_unacknowledged": 0,
        "consumers": 0,
        "head_message_timestamp": 1_700_000_000.0,
        "message_stats": {},
    }
    first = asyncio.run(collector._build([dict(item)], 1_700_000_010.0))
    second = asyncio.run(collector._build([dict(item)], 1_700_000_020.0))
    assert first.series[0] is not second.series[0]
    assert second.series[0].values["latency_seconds"] is not None
