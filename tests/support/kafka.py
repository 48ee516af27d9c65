"""Kafka test tools: a client wrapper reading offsets back from Kafka, config and CLI helpers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from tests.harness import KafkaBroker


class KafkaTool:
    """Test-side Kafka access through aiokafka's public clients."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.topics: list[str] = []
        self.admin: Any = None
        self.producer: Any = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer
        from aiokafka.admin import AIOKafkaAdminClient

        self.admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await self.admin.start()
        self.producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5)
        await self.producer.start()

    async def stop(self) -> None:
        try:
            if self.topics:
                await self.admin.delete_topics(self.topics)
        finally:
            await self.producer.stop()
            await self.admin.close()

    async def create(self, topics: dict[str, int]) -> None:
        from aiokafka.admin import NewTopic

        await self.admin.create_topics([NewTopic(t, n, 1) for t, n in topics.items()])
        self.topics += list(topics)
        for topic, count in topics.items():  # wait until the producer knows every partition
            for _ in range(100):
                parts = await self.producer.partitions_for(topic)
                if parts and len(parts) == count:
                    break
                await asyncio.sleep(0.1)

    async def produce(
        self,
        topic: str,
        partition: int,
        count: int,
        *,
        timestamps_ms: Sequence[int] | None = None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        value: bytes = b"x",
    ) -> None:
        futures = []
        for i in range(count):
            futures.append(
                await self.producer.send(
                    topic,
                    value + str(i).encode(),
                    key=key,
                    partition=partition,
                    timestamp_ms=None if timestamps_ms is None else timestamps_ms[i],
                    headers=headers,
                )
            )
        await asyncio.gather(*futures)

    async def commit(self, group: str, offsets: dict[tuple[str, int], int]) -> None:
        """Commit offsets the way a manually-assigned consumer does (public consumer API)."""
        from aiokafka import AIOKafkaConsumer, TopicPartition
        from aiokafka.structs import OffsetAndMetadata

        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            tps = {TopicPartition(t, p): o for (t, p), o in offsets.items()}
            consumer.assign(list(tps))
            await consumer.commit({tp: OffsetAndMetadata(o, "") for tp, o in tps.items()})
        finally:
            await consumer.stop()

    async def offsets(self, topic: str) -> tuple[dict[int, int], dict[int, int]]:
        """Raw (log start, end) offsets per partition, read by a plain consumer."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap)
        await consumer.start()
        try:
            parts = sorted(await self.producer.partitions_for(topic))
            tps = [TopicPartition(topic, p) for p in parts]
            starts = await consumer.beginning_offsets(tps)
            ends = await consumer.end_offsets(tps)
            return {tp.partition: starts[tp] for tp in tps}, {tp.partition: ends[tp] for tp in tps}
        finally:
            await consumer.stop()

    async def read_all(self, topic: str) -> list[Any]:
        """Every record of a topic (all partitions, up to the current end), without a group."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        starts, ends = await self.offsets(topic)
        records: list[Any] = []
        tps = [TopicPartition(topic, p) for p, end in ends.items() if end > starts[p]]
        if not tps:
            return records
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
        )
        await consumer.start()
        try:
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            left = {tp: ends[tp.partition] for tp in tps}
            deadline = time.monotonic() + 60
            while left and time.monotonic() < deadline:
                batch = await consumer.getmany(*left, timeout_ms=500)
                for tp, recs in batch.items():
                    records.extend(r for r in recs if r.offset < ends[tp.partition])
                    if recs and recs[-1].offset + 1 >= ends[tp.partition]:
                        left.pop(tp, None)
            assert not left, f"could not read {topic} to its end"
        finally:
            await consumer.stop()
        return records

    async def committed(self, group: str) -> dict[tuple[str, int], int]:
        raw = await self.admin.list_consumer_group_offsets(group)
        return {(tp.topic, tp.partition): om.offset for tp, om in raw.items() if om.offset >= 0}


def kafka_config(write_config, broker: KafkaBroker, prefix: str, extra: str = "", interval="1s"):
    return write_config(
        f"""
        interval: {interval}
        brokers:
          - name: events
            type: kafka
            bootstrap_servers: "{broker.bootstrap}"
            topics: ["{prefix}*"]
            groups: ["{prefix}*"]
            {extra}
        """
    )


def collector_for(broker: KafkaBroker, prefix: str, **options: Any):
    from collectors.kafka.collector import KafkaCollector
    from collectors.kafka.options import KafkaOptions

    opts = KafkaOptions(
        name="events",
        bootstrap_servers=broker.bootstrap,
        topics=[prefix + "*"],
        groups=[prefix + "*"],
        **options,
    )
    return KafkaCollector(opts)


def find(doc: dict, queue: str, group: str | None) -> dict:
    matches = [s for s in doc["series"] if s["queue"] == queue and s["group"] == group]
    assert len(matches) == 1, (queue, group, [(s["queue"], s["group"]) for s in doc["series"]])
    return matches[0]


async def run_cli_async(run_cli, *args: str) -> Any:
    return await asyncio.to_thread(run_cli, *args)


def tp(topic: str, partition: int):
    from aiokafka import TopicPartition

    return TopicPartition(topic, partition)


def before(offset: int):
    from aiokafka.admin.records_to_delete import RecordsToDelete

    return RecordsToDelete(before_offset=offset)
