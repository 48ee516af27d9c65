"""``mqtop lint`` on the real Kafka (single broker): each rule broken and satisfied where the
cluster can show it; topic configs from DescribeConfigs, groups from committed offsets."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.harness import KafkaBroker
from tests.support.kafka import KafkaTool, kafka_config, run_cli_async

pytestmark = pytest.mark.broker


async def _create(kafka: KafkaTool, name: str, **configs: str) -> str:
    from aiokafka.admin import NewTopic

    await kafka.admin.create_topics([NewTopic(name, 1, 1, topic_configs=configs)])
    kafka.topics.append(name)
    # a new topic's partitions reach the metadata a moment after CreateTopics returns
    for _ in range(100):
        described = await kafka.admin.describe_topics([name])
        if described and described[0]["partitions"]:
            return name
        await asyncio.sleep(0.1)
    raise AssertionError(f"{name}: no partition in the metadata 10 s after it was created")


async def _lint(run_cli, write_config, broker: KafkaBroker, prefix: str):
    path = kafka_config(write_config, broker, prefix)
    result = await run_cli_async(run_cli, "lint", "--config", str(path), "--format", "json")
    return result, json.loads(result.stdout)


def _found(data: dict) -> set[tuple[str, str]]:
    return {(f["rule"], f["queue"]) for f in data["findings"]}


async def test_dead_letter_topic_unbounded(
    kafka: KafkaTool, kafka_broker: KafkaBroker, unique, run_cli, write_config
):
    p = unique("lint-dlt")
    forever = await _create(kafka, p + "-a.DLT", **{"retention.ms": "-1"})
    consumed = await _create(kafka, p + "-b.DLT", **{"retention.ms": "-1"})
    bounded = await _create(kafka, p + "-c.DLT", **{"retention.ms": "86400000"})
    by_bytes = await _create(
        kafka, p + "-d.DLT", **{"retention.ms": "-1", "retention.bytes": "1048576"}
    )
    await kafka.produce(forever, 0, 2)
    await kafka.produce(consumed, 0, 2)
    await kafka.commit(p + "-readers", {(consumed, 0): 1})
    assert await kafka.committed(p + "-readers") == {(consumed, 0): 1}

    result, data = await _lint(run_cli, write_config, kafka_broker, p)
    assert result.returncode == 1, result.stderr
    assert _found(data) == {("kafka-dlt-unbounded", forever)}
    assert {consumed, bounded, by_bytes}.isdisjoint(f["queue"] for f in data["findings"])


async def test_min_insync_and_replication_on_one_broker(
    kafka: KafkaTool, kafka_broker: KafkaBroker, unique, run_cli, write_config
):
    p = unique("lint-isr")
    impossible = await _create(kafka, p + "-strict", **{"min.insync.replicas": "2"})
    fine = await _create(kafka, p + "-fine", **{"min.insync.replicas": "1"})
    described = await kafka.admin.describe_topics([fine])
    assert [len(part["replicas"]) for part in described[0]["partitions"]] == [1]

    result, data = await _lint(run_cli, write_config, kafka_broker, p)
    assert result.returncode == 1, result.stderr
    # replication factor 1 is all a single-broker cluster allows: kafka-replication is
    # silent; min.insync.replicas 2 > replication factor 1 is reported
    assert _found(data) == {("kafka-min-insync", impossible)}
    assert "min.insync.replicas 2 with replication factor 1" in data["findings"][0]["message"]
