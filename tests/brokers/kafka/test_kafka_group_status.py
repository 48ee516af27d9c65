"""Group status on real Kafka for a consumer that assigns partitions itself and commits (no
group members): consuming steadily it is OK, even with a partition it never committed on."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.support.kafka import collector_for

pytestmark = [pytest.mark.broker, pytest.mark.timeout(60)]


async def test_self_assigning_committer_with_an_uncommitted_partition_is_ok(
    kafka, kafka_broker, unique
):
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.structs import OffsetAndMetadata

    prefix = unique("assign") + "-"
    topic, group = prefix + "jobs", prefix + "workers"
    await kafka.create({topic: 2})
    await kafka.produce(topic, 1, 20)  # history on partition 1, before the consumer started
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_broker.bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="latest",
    )
    await consumer.start()
    consumer.assign([tp0, tp1])  # no subscription: the group has no members
    await consumer.seek_to_end(tp0, tp1)
    running = True

    async def produce() -> None:
        i = 0
        while running:
            await kafka.produce(topic, 0, 1)  # new records only on partition 0
            i += 1
            await asyncio.sleep(0.1)

    async def consume() -> None:
        while running:
            batch = await consumer.getmany(timeout_ms=100)
            # commit where it consumed (partition 1 never gets a commit)
            offsets = {
                tp: OffsetAndMetadata(records[-1].offset + 1, "") for tp, records in batch.items()
            }
            if offsets:
                await consumer.commit(offsets)

    tasks = [asyncio.create_task(produce()), asyncio.create_task(consume())]
    collector = collector_for(kafka_broker, prefix, group_status_window=3.0)
    await collector.connect()
    seen: list[str | None] = []
    sample = None
    try:
        deadline = time.monotonic() + 9  # three windows
        while time.monotonic() < deadline:
            for s in (await collector.collect()).series:
                if s.key.group == group:
                    sample = s
                    value = s.values["group_status"]
                    seen.append(
                        None
                        if value is None
                        else ("OK", "WARN", "STALL", "STOP", "ERROR")[int(value)]
                    )
            await asyncio.sleep(0.5)
    finally:
        running = False
        await asyncio.gather(*tasks)
        await consumer.stop()
        await collector.close()
    assert sample is not None, seen
    assert "STOP" not in seen and "STALL" not in seen, seen
    assert seen[-1] == "OK" and seen.count("OK") >= 10, seen
    assert sample.values["consumers"] == 0  # no members: it assigns partitions itself
    rows = {row["partition"]: row for row in sample.info["partitions"]}
    assert rows[1]["committed"] is None and rows[1]["lag"] == 20 and rows[1]["status"] is None
    assert rows[0]["committed"] is not None and rows[0]["status"] == "OK"
    assert sample.values["queue_length"] >= 20  # the lag still counts the uncommitted history
