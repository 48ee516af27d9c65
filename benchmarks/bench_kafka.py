"""Kafka: DLT replay throughput vs a ``kcat -C -e | kcat -P`` pipe, and the poll cycle cost.

Replay: the same records (keys, headers, ~100-byte values) are copied from one topic by mqtop's
replay (idempotent producer, acks=all, progress committed after acknowledgements) and by the
kcat pipe (librdkafka on both ends; values only, keys and headers are dropped), in the same run
on the same broker. Both copies are counted afterwards, so a lossy copy cannot win.

Poll: one collector cycle over 2,000 partitions (20 topics x 100) watched by 20 groups that
all lag (quick: 200 partitions x 5 groups): CPU seconds and wall time of steady-state cycles,
with the first (cold) cycle reported separately. The baseline in the same run is the plain
public-API approach (aiokafka admin: list, describe, one offsets call per group; a consumer's
end_offsets), which computes lag in messages only.

    python benchmarks/bench_kafka.py [--quick]
    python benchmarks/bench_kafka.py --scale   # poll only: 2,000 partitions x 50 groups
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


async def _create(bootstrap: str, topics: dict[str, int]) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=120_000)
    await admin.start()
    try:
        names = list(topics)
        for start in range(0, len(names), 10):
            chunk = names[start : start + 10]
            await admin.create_topics(
                [NewTopic(t, topics[t], 1) for t in chunk], timeout_ms=120_000
            )
    finally:
        await admin.close()


async def _delete(bootstrap: str, topics: list[str]) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=120_000)
    await admin.start()
    try:
        for start in range(0, len(topics), 20):
            await admin.delete_topics(topics[start : start + 20], timeout_ms=120_000)
    finally:
        await admin.close()


async def _wait_leaders(bootstrap: str, topics: dict[str, int]) -> None:
    from collectors.kafka.options import KafkaOptions
    from collectors.kafka.wire import KafkaWire

    wire = KafkaWire(KafkaOptions(name="bench", bootstrap_servers=bootstrap), 60)
    await wire.start()
    try:
        for _ in range(300):
            await wire.refresh_metadata()
            if all(
                len([p for p in wire.partitions.get(t, ()) if (t, p) in wire.leaders]) == n
                for t, n in topics.items()
            ):
                return
            await asyncio.sleep(0.2)
        raise RuntimeError("partitions did not get leaders in time")
    finally:
        await wire.close()


async def _fill(bootstrap: str, plan: list[tuple[str, int, int]], keyed: bool = True) -> None:
    """Produce ``count`` records to each (topic, partition) with the batch API."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, max_batch_size=512 * 1024, linger_ms=5, acks=1
    )
    await producer.start()
    try:
        futures = []
        base_ms = int(time.time() * 1000) - 600_000
        for topic, partition, count in plan:
            batch = producer.create_batch()
            for i in range(count):
                value = f'{{"order": {i}, "partition": {partition}, "pad": "{"x" * 60}"}}'.encode()
                key = f"key-{partition}-{i}".encode() if keyed else None
                headers = [("kafka_dlt-exception-message", b"timeout"), ("n", str(i).encode())]
                args: dict[str, Any] = {
                    "key": key,
                    "value": value,
                    "timestamp": base_ms + i,
                    "headers": headers,
                }
                if batch.append(**args) is None:
                    batch.close()
                    futures.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    batch.append(**args)
            batch.close()
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def _total(bootstrap: str, topic: str, partitions: int) -> int:
    from collectors.kafka.client import LATEST
    from collectors.kafka.options import KafkaOptions
    from collectors.kafka.wire import KafkaWire

    wire = KafkaWire(KafkaOptions(name="bench", bootstrap_servers=bootstrap), 60)
    await wire.start()
    try:
        offsets, failed = await wire.list_offsets([(topic, p) for p in range(partitions)], LATEST)
        if failed:
            raise RuntimeError(f"end offsets of {topic} unreadable")
        return sum(offsets.values())
    finally:
        await wire.close()


def _mqtop_replay(bootstrap: str, src: str, dst: str) -> tuple[float, int]:
    from collectors.base import MoveRequest
    from collectors.kafka.actions import KafkaActions
    from collectors.kafka.options import KafkaOptions

    async def go() -> tuple[float, int]:
        start = time.perf_counter()
        actions = KafkaActions(KafkaOptions(name="bench", bootstrap_servers=bootstrap))
        try:
            result = await actions.move(MoveRequest(src, dst, "replay"), lambda p: None)
        finally:
            await actions.close()
        elapsed = time.perf_counter() - start
        if result.failed:
            raise RuntimeError(f"mqtop replay failed: {result.errors}")
        return elapsed, result.moved

    return asyncio.run(go())


def _kcat_pipe(bootstrap: str, src: str, dst: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        f"kcat -b {bootstrap} -C -e -q -t {src} | kcat -b {bootstrap} -P -t {dst}",
        shell=True,
        check=True,
        timeout=600,
    )
    return time.perf_counter() - start


def replay_benchmark(bootstrap: str, quick: bool) -> dict[str, float]:
    n = 40_000 if quick else 200_000
    rounds = 1 if quick else 3  # alternating runs; the median of each side is reported
    parts = 3
    token = uuid.uuid4().hex[:8]
    src = f"mqtop-bench-{token}-orders.DLT"
    outs_m = [f"mqtop-bench-{token}-mqtop-{i}" for i in range(rounds)]
    outs_k = [f"mqtop-bench-{token}-kcat-{i}" for i in range(rounds)]
    topics = dict.fromkeys([src, *outs_m, *outs_k], parts)
    asyncio.run(_create(bootstrap, topics))
    mqtop_rates: list[float] = []
    kcat_rates: list[float] = []
    try:
        asyncio.run(_wait_leaders(bootstrap, topics))
        per = n // parts
        asyncio.run(_fill(bootstrap, [(src, p, per + (p < n % parts)) for p in range(parts)]))
        for out_m, out_k in zip(outs_m, outs_k, strict=True):
            mqtop_s, moved = _mqtop_replay(bootstrap, src, out_m)
            kcat_s = _kcat_pipe(bootstrap, src, out_k)
            copied_m = asyncio.run(_total(bootstrap, out_m, parts))
            copied_k = asyncio.run(_total(bootstrap, out_k, parts))
            if moved != n or copied_m != n:
                raise RuntimeError(f"mqtop copied {copied_m} of {n} (reported {moved})")
            if copied_k != n:
                raise RuntimeError(f"kcat copied {copied_k} of {n}")
            mqtop_rates.append(n / mqtop_s)
            kcat_rates.append(n / kcat_s)
    finally:
        asyncio.run(_delete(bootstrap, list(topics)))
    mqtop_rate = statistics.median(mqtop_rates)
    kcat_rate = statistics.median(kcat_rates)
    return {
        "kafka_replay_vs_kcat": mqtop_rate / kcat_rate,
        "kafka_replay_msgs_per_s": mqtop_rate,
        "kafka_kcat_msgs_per_s": kcat_rate,
        "kafka_replay_records": float(n),
    }


async def _commit_groups(
    bootstrap: str, groups: list[str], topics: list[str], partitions: int, records: int
) -> None:
    from collectors.kafka.options import KafkaOptions
    from collectors.kafka.wire import KafkaWire

    wire = KafkaWire(KafkaOptions(name="bench", bootstrap_servers=bootstrap), 60)
    await wire.start()
    try:
        for g_index, group in enumerate(groups):
            offsets = {
                (t, p): ((g_index + p) % records, "") for t in topics for p in range(partitions)
            }
            await wire.offset_commit(group, offsets)
    finally:
        await wire.close()


async def _measure_polls(bootstrap: str, prefix: str, cycles: int) -> dict[str, Any]:
    from collectors.kafka.collector import KafkaCollector
    from collectors.kafka.options import KafkaOptions

    collector = KafkaCollector(
        KafkaOptions(
            name="bench",
            bootstrap_servers=bootstrap,
            topics=[prefix + "*"],
            groups=[prefix + "*"],
            timeout=60,
        )
    )
    await collector.connect()
    try:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        first = await collector.collect()
        cold_cpu, cold_wall = time.process_time() - cpu0, time.perf_counter() - wall0
        cpus, walls = [], []
        series = 0
        for _ in range(cycles):
            cpu0, wall0 = time.process_time(), time.perf_counter()
            collected = await collector.collect()
            cpus.append(time.process_time() - cpu0)
            walls.append(time.perf_counter() - wall0)
            series = len(collected.series)
        timed = sum(
            1
            for s in collected.series
            for row in s.info.get("partitions", ())
            if row.get("lag") and row.get("lag_seconds") is not None
        )
        return {
            "cold_cpu": cold_cpu,
            "cold_wall": cold_wall,
            "cpu": statistics.median(cpus),
            "wall": statistics.median(walls),
            "series": series,
            "first_series": len(first.series),
            "timed": timed,
        }
    finally:
        await collector.close()


async def _baseline_poll(bootstrap: str, prefix: str, cycles: int) -> tuple[float, float]:
    """The public-API approach: admin list/describe/offsets per group + consumer end offsets."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=60_000)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=60_000)
    await admin.start()
    await consumer.start()
    try:
        cpus, walls = [], []
        for _ in range(cycles + 1):
            cpu0, wall0 = time.process_time(), time.perf_counter()
            groups = [g for g, _ in await admin.list_consumer_groups() if g.startswith(prefix)]
            for group in groups:  # aiokafka describes groups one request each anyway
                await admin.describe_consumer_groups([group])
            committed = {g: await admin.list_consumer_group_offsets(g) for g in groups}
            tps = sorted({tp for offsets in committed.values() for tp in offsets})
            ends = await consumer.end_offsets([TopicPartition(t, p) for t, p in tps])
            lag = {
                g: sum(max(0, ends[tp] - om.offset) for tp, om in offsets.items())
                for g, offsets in committed.items()
            }
            assert lag
            cpus.append(time.process_time() - cpu0)
            walls.append(time.perf_counter() - wall0)
        return statistics.median(cpus[1:]), statistics.median(walls[1:])
    finally:
        await consumer.stop()
        await admin.close()


def poll_benchmark(bootstrap: str, quick: bool, groups_each: int | None = None) -> dict[str, float]:
    n_topics, parts, n_groups = (10, 20, 5) if quick else (20, 100, 20)
    n_groups = groups_each or n_groups
    records = 20
    prefix = f"mqtop-bench-{uuid.uuid4().hex[:8]}-poll-"
    topics = [f"{prefix}{i:02d}" for i in range(n_topics)]
    groups = [f"{prefix}group-{i:02d}" for i in range(n_groups)]
    plan = {t: parts for t in topics}
    asyncio.run(_create(bootstrap, plan))
    try:
        asyncio.run(_wait_leaders(bootstrap, plan))
        asyncio.run(_fill(bootstrap, [(t, p, records) for t in topics for p in range(parts)]))
        asyncio.run(_commit_groups(bootstrap, groups, topics, parts, records))
        cycles = 3 if quick else 5
        m = asyncio.run(_measure_polls(bootstrap, prefix, cycles))
        base_cpu, base_wall = asyncio.run(_baseline_poll(bootstrap, prefix, cycles))
    finally:
        asyncio.run(_delete(bootstrap, topics))
    if m["series"] != n_topics * n_groups:
        raise RuntimeError(f"expected {n_topics * n_groups} series, got {m['series']}")
    return {
        "poll_cycle_cpu_s_2k_kafka_partitions": m["cpu"],
        "poll_cycle_wall_s_2k_kafka_partitions": m["wall"],
        "poll_cycle_cold_cpu_s_2k_kafka_partitions": m["cold_cpu"],
        "poll_cycle_cold_wall_s_2k_kafka_partitions": m["cold_wall"],
        "poll_kafka_partitions": float(n_topics * parts),
        "poll_kafka_group_partitions": float(n_topics * parts * n_groups),
        "poll_kafka_partitions_timed": float(m["timed"]),
        "poll_kafka_cpu_vs_admin_api": m["cpu"] / base_cpu if base_cpu else float("nan"),
        "poll_kafka_admin_api_cpu_s": base_cpu,
        "poll_kafka_admin_api_wall_s": base_wall,
    }


def run(quick: bool = False) -> dict[str, float]:
    from tests.harness import find_kafka

    broker = find_kafka()
    try:
        results = replay_benchmark(broker.bootstrap, quick)
        results.update(poll_benchmark(broker.bootstrap, quick))
        return results
    finally:
        broker.stop()


def run_scale() -> dict[str, float]:
    """The poll cycle alone at 2,000 partitions x 50 groups (100,000 group-partitions)."""
    from tests.harness import find_kafka

    broker = find_kafka()
    try:
        return poll_benchmark(broker.bootstrap, quick=False, groups_each=50)
    finally:
        broker.stop()


if __name__ == "__main__":
    if "--scale" in sys.argv:
        print(json.dumps(run_scale(), indent=2))
    else:
        print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
