"""The ActiveMQ collector against real brokers: its numbers are the broker's own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from collectors.activemq import PLUGIN, ActiveMQCollector
from mqtop.kernel.model import SeriesSample
from tests.support.activemq import ActiveMQBroker, wait_count

pytestmark = pytest.mark.broker


def options(broker: ActiveMQBroker, **extra: Any) -> Any:
    """Validated options for a broker under test."""
    return PLUGIN.options_model.model_validate(
        {
            "name": "amq",
            "type": "activemq",
            "jolokia_url": broker.jolokia_url,
            "user": broker.user,
            "password": broker.password,
            **extra,
        }
    )


@pytest.fixture
async def collector(amq: ActiveMQBroker) -> AsyncIterator[ActiveMQCollector]:
    c = PLUGIN.create(options(amq))
    assert isinstance(c, ActiveMQCollector)
    await c.connect()
    yield c
    await c.close()


def by_key(series: tuple[SeriesSample, ...]) -> dict[tuple[str, str | None], SeriesSample]:
    return {(s.key.queue, s.key.group): s for s in series}


def queue_name(amq: ActiveMQBroker, unique: Callable[[str], str], what: str) -> str:
    # Classic's test broker gives queues named ind.* their own DLQ.<queue>
    return unique(what) if amq.flavor == "artemis" else "ind." + unique(what)


async def test_flavor_detected(collector: ActiveMQCollector, amq: ActiveMQBroker) -> None:
    assert collector.options.flavor is None
    assert await collector.detect() == amq.flavor


async def test_metrics_equal_the_brokers_numbers(
    collector: ActiveMQCollector, amq: ActiveMQBroker, unique: Callable[[str], str]
) -> None:
    queue = queue_name(amq, unique, "metrics")
    amq.create_queue(queue)
    consumer = None
    try:
        amq.send(queue, [f"dead-{i}" for i in range(2)], {"kind": "bad"})
        assert wait_count(amq, queue, 2) == 2
        amq.dead_letter(queue, 2)
        amq.send(queue, [f"live-{i}" for i in range(5)])
        assert wait_count(amq, queue, 5) == 5
        consumer = amq.hold(queue, 1)
        dlq = amq.dlq_of(queue)
        assert wait_count(amq, dlq, 2) == 2

        result = await collector.collect()
        mine = amq.queue_attributes(queue)  # the broker's own numbers, read right after
        theirs_dlq = amq.queue_attributes(dlq)
        series = by_key(result.series)
        sample = series[(queue, None)]
        values = sample.values
        assert sample.kind == "queue"
        if amq.flavor == "artemis":
            assert sample.dlq == f"mqtop.DLA/{dlq}"
            waiting = mine["MessageCount"] - mine["DeliveringCount"]
            assert values["in_flight"] == mine["DeliveringCount"] == 1
            assert values["published_total"] == mine["MessagesAdded"] == 7
            assert values["processed_total"] == mine["MessagesAcknowledged"] == 0
            assert values["dead_lettered_total"] == mine["MessagesKilled"] == 2
            assert values["latency_seconds"] == pytest.approx(
                mine["FirstMessageAge"] / 1000, abs=2.0
            )
            assert values["latency_seconds"] is not None and values["latency_seconds"] >= 0
            assert values["dlq_length"] == theirs_dlq["MessageCount"] == 2
            assert series[(f"mqtop.DLA/{dlq}", None)].kind == "dlq"
        else:
            assert sample.dlq == dlq
            waiting = mine["QueueSize"] - mine["InFlightCount"]
            assert values["in_flight"] == mine["InFlightCount"] == 1
            assert values["published_total"] == mine["EnqueueCount"] == 7
            dead = amq.read(
                f"org.apache.activemq:type=Broker,brokerName=mqtop,destinationType=Topic,"
                f"destinationName=ActiveMQ.Advisory.MessageDLQd.Queue.{queue}",
                ["EnqueueCount"],
            )["EnqueueCount"]
            assert values["dead_lettered_total"] == dead == 2
            assert (
                values["processed_total"]
                == (mine["DequeueCount"] - mine["ExpiredCount"] - dead)
                == 0
            )
            assert values["latency_seconds"] is None  # Classic does not expose it
            assert values["dlq_length"] == theirs_dlq["QueueSize"] == 2
            assert series[(dlq, None)].kind == "dlq"
        assert values["queue_length"] == values["consumer_lag_messages"] == waiting == 4
        assert values["consumers"] == mine["ConsumerCount"] == 1
    finally:
        if consumer is not None:
            consumer.disconnect()
        amq.cleanup(queue)


async def test_classic_shared_dlq(
    activemq_classic_broker: ActiveMQBroker, unique: Callable[[str], str]
) -> None:
    amq = activemq_classic_broker
    queue = unique("shared")
    amq.create_queue(queue)
    c = PLUGIN.create(options(amq))
    try:
        amq.send(queue, ["x"])
        assert wait_count(amq, queue, 1) == 1
        amq.dead_letter(queue, 1)
        result = await c.collect()
        sample = by_key(result.series)[(queue, None)]
        assert sample.dlq == "ActiveMQ.DLQ"
        assert sample.info["dlq_source"] == "shared"
        shared = amq.queue_attributes("ActiveMQ.DLQ")["QueueSize"]
        assert sample.values["dlq_length"] == shared >= 1
        assert sample.values["dead_lettered_total"] == 1
    finally:
        await c.close()
        amq.cleanup(queue)


async def test_durable_subscriptions_are_groups(
    collector: ActiveMQCollector, amq: ActiveMQBroker, unique: Callable[[str], str]
) -> None:
    topic, client = unique("topic"), unique("client")
    amq.subscribe_durable(topic, client, "audit")
    try:
        amq.publish(topic, ["a", "b", "c"])
        group = f"{client}.audit"
        for _ in range(50):
            series = by_key((await collector.collect()).series)
            if series.get((topic, group)) and series[(topic, group)].values["queue_length"] == 3:
                break
        sample = series[(topic, group)]
        assert sample.kind == "subscription"
        assert sample.values["queue_length"] == 3
        assert sample.values["consumers"] == 0
        assert (topic, None) not in series
    finally:
        amq.drop_subscription(topic, client, "audit")


async def test_globs_internal_names_and_one_request_per_poll(
    amq: ActiveMQBroker, unique: Callable[[str], str]
) -> None:
    keep, drop = unique("keep"), unique("drop")
    for name in (keep, drop):
        amq.create_queue(name, dlq_per_queue=False)
    c = PLUGIN.create(options(amq, include=["mqtop-test-*"], exclude=["*-drop-*"]))
    try:
        await c.connect()
        await c.detect()
        posts = 0
        real = c.jolokia.post

        async def counting(body: Any) -> Any:
            nonlocal posts
            posts += 1
            return await real(body)

        c.jolokia.post = counting  # type: ignore[method-assign]
        names = {s.key.queue for s in (await c.collect()).series}
        assert posts == 1  # one bulk POST per poll, whatever the number of queues
        assert keep in names and drop not in names
        assert all(n.startswith("mqtop-test-") for n in names)

        everything = PLUGIN.create(options(amq))
        all_names = {s.key.queue for s in (await everything.collect()).series}
        await everything.close()
        assert keep in all_names and drop in all_names
        assert not any(n.startswith(("$sys.", "ActiveMQ.Advisory.")) for n in all_names)
    finally:
        await c.close()
        amq.cleanup(keep, drop)


def test_init_detection_finds_the_artemis_console(artemis_broker: ActiveMQBroker) -> None:
    """`mqtop init` probes 8161; the probe tells Artemis' /console/jolokia apart."""
    from urllib.parse import urlsplit

    from mqtop.detect import jolokia_path

    port = urlsplit(artemis_broker.jolokia_url).port
    assert port is not None
    assert jolokia_path("127.0.0.1", port) == "/console/jolokia"
    assert jolokia_path("127.0.0.1", 1) is None  # nothing listening
