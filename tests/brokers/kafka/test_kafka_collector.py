"""Kafka collector against a real Apache Kafka broker: lag, lag seconds, group status, DLT.

Every expected number is read back from Kafka itself with aiokafka's own clients (end and
beginning offsets, the admin client's committed offsets), never hard-coded.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import time
from typing import Any

import pytest

from tests.support.kafka import (
    before,
    collector_for,
    find,
    kafka_config,
    run_cli_async,
    tp,
)

pytestmark = pytest.mark.broker


# ---------------------------------------------------------------- lag in messages


async def test_lag_equals_end_minus_committed_for_several_groups(
    kafka, kafka_broker, write_config, run_cli, unique
):
    prefix = unique("lag") + "-"
    orders, payments, audit = prefix + "orders", prefix + "payments", prefix + "audit"
    await kafka.create({orders: 3, payments: 2, audit: 1})
    for partition, count in ((0, 10), (1, 20), (2, 5)):
        await kafka.produce(orders, partition, count)
    await kafka.produce(payments, 0, 7)
    await kafka.produce(audit, 0, 3)
    # records 0..4 of orders/1 are deleted: a group without a commit there counts from 5
    await kafka.admin.delete_records({tp(orders, 1): before(5)})

    g_full, g_partial, g_pay = prefix + "billing", prefix + "shipping", prefix + "ledger"
    await kafka.commit(g_full, {(orders, 0): 4, (orders, 1): 20, (orders, 2): 0, (payments, 0): 7})
    await kafka.commit(g_partial, {(orders, 0): 10})  # nothing committed on partitions 1, 2
    await kafka.commit(g_pay, {(payments, 0): 2, (payments, 1): 0})

    path = kafka_config(write_config, kafka_broker, prefix)
    result = await run_cli_async(run_cli, "metrics", "--config", str(path), "--format", "json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["brokers"] == [{"name": "events", "type": "kafka", "up": True, "error": None}]

    raw = {t: await kafka.offsets(t) for t in (orders, payments)}
    for group in (g_full, g_partial, g_pay):
        committed = await kafka.committed(group)
        for topic in (orders, payments):
            starts, ends = raw[topic]
            if not any(t == topic for t, _ in committed):
                assert not [s for s in doc["series"] if s["queue"] == topic and s["group"] == group]
                continue
            expected = sum(max(0, ends[p] - committed.get((topic, p), starts[p])) for p in ends)
            metrics = find(doc, topic, group)["metrics"]
            assert metrics["consumer_lag_messages"] == expected, (group, topic)
            assert metrics["queue_length"] == expected
            assert metrics["consumers"] == 0  # offsets only: no live member
            assert metrics["publish_rate"] == 0 and metrics["processing_rate"] == 0
    # the figures worked out by hand from what was produced and committed, as a sanity check
    assert find(doc, orders, g_full)["metrics"]["consumer_lag_messages"] == 6 + 0 + 5
    assert find(doc, orders, g_partial)["metrics"]["consumer_lag_messages"] == 0 + 15 + 5
    assert find(doc, payments, g_pay)["metrics"]["consumer_lag_messages"] == 5

    # a topic nobody consumes: one series with group null, lag unknown (null, not 0)
    lone = find(doc, audit, None)["metrics"]
    assert lone["queue_length"] is None and lone["consumer_lag_messages"] is None
    assert lone["publish_rate"] == 0
    assert not [s for s in doc["series"] if s["queue"] == orders and s["group"] is None]

    # partition detail for the dashboard, cross-checked partition by partition
    collector = collector_for(kafka_broker, prefix)
    await collector.connect()
    try:
        collected = await collector.collect()
    finally:
        await collector.close()
    by_key = {(s.key.queue, s.key.group): s for s in collected.series}
    for group in (g_full, g_partial):
        committed = await kafka.committed(group)
        starts, ends = raw[orders]
        table = by_key[(orders, group)].info["partitions"]
        assert [row["partition"] for row in table] == [0, 1, 2]
        for row in table:
            p = row["partition"]
            assert row["end_offset"] == ends[p]
            assert row["log_start"] == starts[p]
            assert row["committed"] == committed.get((orders, p))
            assert row["lag"] == ends[p] - committed.get((orders, p), starts[p])


# ---------------------------------------------------------------- lag in seconds


async def test_lag_seconds_from_timestamps_of_first_unconsumed_records(
    kafka, kafka_broker, write_config, run_cli, unique
):
    prefix = unique("lagsec") + "-"
    topic = prefix + "clicks"
    await kafka.create({topic: 2})
    now_ms = int(time.time() * 1000)
    ts0 = [now_ms - 600_000 + 10_000 * i for i in range(10)]  # 600 s .. 510 s old
    ts1 = [now_ms - 300_000 + 10_000 * i for i in range(10)]  # 300 s .. 210 s old
    await kafka.produce(topic, 0, 10, timestamps_ms=ts0)
    await kafka.produce(topic, 1, 10, timestamps_ms=ts1)
    slow, done = prefix + "slow", prefix + "done"
    await kafka.commit(slow, {(topic, 0): 3, (topic, 1): 7})
    await kafka.commit(done, {(topic, 0): 10, (topic, 1): 10})

    path = kafka_config(write_config, kafka_broker, prefix, interval="1s")
    before = time.time()
    result = await run_cli_async(run_cli, "metrics", "--config", str(path), "--format", "json")
    after = time.time()
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    lag_s = find(doc, topic, slow)["metrics"]["consumer_lag_seconds"]
    # the oldest first-unconsumed record is offset 3 of partition 0
    oldest = ts0[3] / 1000
    assert before - oldest - 1.0 <= lag_s <= after - oldest + 1.0
    assert find(doc, topic, slow)["metrics"]["latency_seconds"] == lag_s
    assert find(doc, topic, done)["metrics"]["consumer_lag_seconds"] == 0
    # a caught-up group is OK at once; the JSON series names the status too
    assert find(doc, topic, done)["metrics"]["group_status"] == 0
    assert find(doc, topic, done)["status"] == "OK"

    collector = collector_for(kafka_broker, prefix)
    await collector.connect()
    try:
        t0 = time.time()
        series = {(s.key.queue, s.key.group): s for s in (await collector.collect()).series}
        t1 = time.time()
    finally:
        await collector.close()
    rows = {r["partition"]: r for r in series[(topic, slow)].info["partitions"]}
    assert t0 - ts0[3] / 1000 - 0.5 <= rows[0]["lag_seconds"] <= t1 - ts0[3] / 1000 + 0.5
    assert t0 - ts1[7] / 1000 - 0.5 <= rows[1]["lag_seconds"] <= t1 - ts1[7] / 1000 + 0.5


async def test_lag_seconds_interpolated_when_records_are_not_read(kafka, kafka_broker, unique):
    """With no record-read budget the time comes from the end-offset history, or is null."""
    prefix = unique("interp") + "-"
    topic = prefix + "views"
    await kafka.create({topic: 1})
    await kafka.produce(topic, 0, 10)
    group = prefix + "readers"
    await kafka.commit(group, {(topic, 0): 15})  # beyond the end for now: fixed below
    await kafka.commit(group, {(topic, 0): 10})
    collector = collector_for(kafka_broker, prefix, lag_seconds_budget=0)
    await collector.connect()
    try:
        first = {s.key.group: s for s in (await collector.collect()).series}[group]
        assert first.values["consumer_lag_seconds"] == 0  # no lag: 0, not null
        t_before = time.time()
        await kafka.produce(topic, 0, 10)  # offsets 10..19 appended now
        await asyncio.sleep(0.3)
        second = {s.key.group: s for s in (await collector.collect()).series}[group]
        polled = time.time()
        # offset 10 was appended between the two polls: interpolated, never NaN
        lag_s = second.values["consumer_lag_seconds"]
        assert lag_s is not None
        assert lag_s <= polled - (t_before - 1.5)
        assert lag_s >= 0
        assert second.info["partitions"][0]["lag"] == 10
        assert "lag_seconds_lower_bound" not in second.info  # measured, not a bound
    finally:
        await collector.close()


async def test_lag_seconds_before_the_history_is_a_flagged_lower_bound(kafka, kafka_broker, unique):
    """A fresh collector that cannot read the records never extrapolates: the first poll says
    null, later polls the lower bound "at least since the first observation", flagged."""
    prefix = unique("bound") + "-"
    topic = prefix + "views"
    await kafka.create({topic: 1})
    old_ms = int(time.time() * 1000) - 600_000
    await kafka.produce(topic, 0, 10, timestamps_ms=[old_ms + i for i in range(10)])
    group = prefix + "readers"
    await kafka.commit(group, {(topic, 0): 4})

    fresh = collector_for(kafka_broker, prefix, lag_seconds_budget=0)
    await fresh.connect()
    try:
        t0 = time.time()
        sample = {s.key.group: s for s in (await fresh.collect()).series}[group]
        t1 = time.time()
        # no history before this poll: nothing is known about the time, so null
        assert sample.values["consumer_lag_seconds"] is None
        assert sample.values["consumer_lag_messages"] == 6
        # the end moves between polls: a rate exists, and extrapolating over it would be a guess
        await kafka.produce(topic, 0, 20)
        await asyncio.sleep(0.5)
        t2 = time.time()
        sample = {s.key.group: s for s in (await fresh.collect()).series}[group]
        t3 = time.time()
    finally:
        await fresh.close()
    lag_s = sample.values["consumer_lag_seconds"]
    assert lag_s is not None
    # offset 4 was appended before the first observation: lag >= now - that observation
    assert t2 - t1 - 0.01 <= lag_s <= t3 - t0 + 0.01
    assert lag_s < 600  # a lower bound of the true lag (the record is ten minutes old)
    assert sample.values["latency_seconds"] == lag_s
    assert sample.info["lag_seconds_lower_bound"] is True
    row = sample.info["partitions"][0]
    assert row["lag"] == 26 and row["lag_seconds_lower_bound"] is True
    assert row["lag_seconds"] == pytest.approx(lag_s, abs=0.001)

    # with the budget to read the record, the same fresh poll is exact and unflagged
    reader = collector_for(kafka_broker, prefix)
    await reader.connect()
    try:
        before = time.time()
        sample = {s.key.group: s for s in (await reader.collect()).series}[group]
        after = time.time()
    finally:
        await reader.close()
    exact = sample.values["consumer_lag_seconds"]
    assert before - (old_ms + 4) / 1000 - 0.01 <= exact <= after - (old_ms + 4) / 1000 + 0.01
    assert "lag_seconds_lower_bound" not in sample.info
    assert "lag_seconds_lower_bound" not in sample.info["partitions"][0]


# ---------------------------------------------------------------- group status


async def test_group_status_running_consumer_then_stop(kafka, kafka_broker, unique):
    from aiokafka import AIOKafkaConsumer

    prefix = unique("status") + "-"
    topic, group = prefix + "jobs", prefix + "workers"
    await kafka.create({topic: 2})
    stop_producing = asyncio.Event()

    async def produce() -> None:
        i = 0
        while not stop_producing.is_set():
            await kafka.produce(topic, i % 2, 1)
            i += 1
            await asyncio.sleep(0.05)

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_broker.bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
    )
    await consumer.start()
    consuming = True

    async def consume() -> None:
        while consuming:
            batch = await consumer.getmany(timeout_ms=100)
            if batch:
                await consumer.commit()

    producer_task = asyncio.create_task(produce())
    consumer_task = asyncio.create_task(consume())
    collector = collector_for(kafka_broker, prefix, group_status_window=3.0)
    await collector.connect()
    seen: list[str | None] = []

    async def status() -> tuple[str | None, Any]:
        for sample in (await collector.collect()).series:
            if sample.key.group == group:
                value = sample.values["group_status"]
                name = (
                    None if value is None else ["OK", "WARN", "STALL", "STOP", "ERROR"][int(value)]
                )
                return name, sample
        return None, None

    try:
        deadline = time.monotonic() + 30
        running_ok = 0
        while time.monotonic() < deadline and running_ok < 6:  # ~3 s of a healthy consumer
            name, sample = await status()
            seen.append(name)
            if name == "OK" and sample.values["consumers"] == 1:
                running_ok += 1
            await asyncio.sleep(0.5)
        assert running_ok >= 6, seen
        assert "STOP" not in seen and "STALL" not in seen

        consuming = False
        await consumer_task
        await consumer.stop()  # leaves the group: nobody commits from now on
        deadline = time.monotonic() + 30
        name, sample = None, None
        while time.monotonic() < deadline:
            name, sample = await status()
            seen.append(name)
            if name == "STOP":
                break
            await asyncio.sleep(0.5)
        assert name == "STOP", seen
        assert sample.values["consumers"] == 0
        assert sample.values["consumer_lag_messages"] > 0
        assert sample.info["state"] == "Empty"
        assert "no progress" in sample.info["status_reason"]
    finally:
        stop_producing.set()
        await producer_task
        consuming = False
        if not consumer_task.done():
            await consumer_task
        await consumer.stop()
        await collector.close()


# ---------------------------------------------------------------- DLT and error rate


async def test_kip848_group_members_come_from_consumer_group_describe(kafka, kafka_broker, unique):
    """A group of the new protocol (KIP-848) looks Dead with no member to the classic
    DescribeGroups: its members, state and assignment come from ConsumerGroupDescribe."""
    from tests import harness
    from tests.conftest import _obtain

    prefix = unique("kip848") + "-"
    topic, group = prefix + "jobs", prefix + "workers"
    await kafka.create({topic: 3})
    for partition in range(3):
        await kafka.produce(topic, partition, 10)
    proc = _obtain(  # fails in CI, skips loudly on a laptop without Java or Apache Kafka
        "a Java KIP-848 consumer on Apache Kafka",
        lambda: harness.kip848_consumer(kafka_broker, group, topic),
    )
    assert isinstance(proc, subprocess.Popen)
    collector = collector_for(kafka_broker, prefix)
    await collector.connect()

    async def sample() -> Any:
        for one in (await collector.collect()).series:
            if one.key.queue == topic and one.key.group == group:
                return one
        return None

    try:
        deadline = time.monotonic() + 30
        seen = None
        while time.monotonic() < deadline:
            seen = await sample()
            committed = await kafka.committed(group)
            lag = None if seen is None else seen.values["consumer_lag_messages"]
            if sum(committed.values()) == 30 and lag == 0:
                break
            await asyncio.sleep(0.3)
        assert seen is not None, "the group's series never appeared"
        assert seen.values["consumers"] == 1, seen.values
        assert seen.values["consumer_lag_messages"] == 0
        described = await collector.wire.describe_groups([group])
        info = described[group]
        assert (info.state, info.protocol_type, info.members) == ("Stable", "consumer", 1)
        assert info.assigned == {topic: {0, 1, 2}}

        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()  # the consumer leaves the group and exits
        assert proc.wait(timeout=30) == 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            seen = await sample()
            if seen is not None and seen.values["consumers"] == 0:
                break
            await asyncio.sleep(0.3)
        assert seen is not None and seen.values["consumers"] == 0, seen and seen.values
        assert (await collector.wire.describe_groups([group]))[group].state == "Empty"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        await collector.close()  # the group's offsets go with the topic (KafkaTool.stop)


async def test_dlt_inflow_gives_error_rate_and_dlq_length(
    kafka, kafka_broker, write_config, unique
):
    from mqtop.config import load_config_file
    from mqtop.engine import Engine
    from mqtop.kernel.model import SeriesKey

    prefix = unique("dlt") + "-"
    topic, dlt, group = prefix + "orders", prefix + "orders.DLT", prefix + "svc"
    await kafka.create({topic: 1, dlt: 1})
    await kafka.produce(topic, 0, 100)
    await kafka.produce(dlt, 0, 4)
    await kafka.commit(group, {(topic, 0): 20})
    config = load_config_file(kafka_config(write_config, kafka_broker, prefix))
    engine = Engine(config)
    try:
        await engine.poll_all()
        await kafka.commit(group, {(topic, 0): 50})  # 30 handled, committed past ...
        await kafka.produce(dlt, 0, 10)  # ... of which 10 were dead-lettered
        await asyncio.sleep(1.0)
        await engine.poll_all()
        view = engine.store.view(SeriesKey("events", topic, group))
        dlt_view = engine.store.view(SeriesKey("events", dlt, None))
    finally:
        await engine.close()
    assert view is not None and dlt_view is not None
    assert view.dlq == dlt
    _, dlt_ends = await kafka.offsets(dlt)
    assert view.metrics["dlq_length"] == dlt_ends[0] == 14  # nothing handled them yet
    assert view.metrics["error_rate"] == pytest.approx(10 / 30)
    assert view.metrics["processing_rate"] is not None and view.metrics["processing_rate"] > 0
    assert view.metrics["queue_length"] == 50
    assert dlt_view.metrics["publish_rate"] is not None and dlt_view.metrics["publish_rate"] > 0


def _spring(group: str, topic: str) -> list[tuple[str, bytes]]:
    return [
        ("kafka_dlt-original-topic", topic.encode()),
        ("kafka_dlt-original-consumer-group", group.encode()),
        ("kafka_dlt-exception-message", b"boom"),
    ]


def _plain(group: str) -> list[tuple[str, bytes]]:
    return [("x-original-consumer-group", group.encode())]


async def test_dlt_inflow_is_attributed_to_the_group_its_header_names(
    kafka, kafka_broker, write_config, unique
):
    """Two busy groups and a stalled one on one topic: each group's error_rate counts the dead
    letters that name it, and the stalled group does not show the others' failures."""
    from mqtop.config import load_config_file
    from mqtop.engine import Engine
    from mqtop.kernel.model import SeriesKey

    prefix = unique("attr") + "-"
    topic, dlt = prefix + "orders", prefix + "orders.DLT"
    busy, other, stalled = prefix + "billing", prefix + "shipping", prefix + "analytics"
    await kafka.create({topic: 1, dlt: 2})
    await kafka.produce(topic, 0, 100)
    await kafka.produce(dlt, 0, 4, headers=_spring(busy, topic))  # before mqtop: not counted
    await kafka.commit(busy, {(topic, 0): 20})
    await kafka.commit(other, {(topic, 0): 10})
    await kafka.commit(stalled, {(topic, 0): 5})
    engine = Engine(load_config_file(kafka_config(write_config, kafka_broker, prefix)))
    try:
        await engine.poll_all()
        await kafka.commit(busy, {(topic, 0): 50})  # 30 handled (failures committed past)
        await kafka.commit(other, {(topic, 0): 30})  # 20 handled
        await kafka.produce(dlt, 0, 6, headers=_spring(busy, topic))
        await kafka.produce(dlt, 1, 4, headers=_plain(busy))  # 10 dead letters of billing
        await kafka.produce(dlt, 1, 5, headers=_spring(other, topic))  # 5 of shipping
        await kafka.produce(dlt, 0, 3, headers=_spring("not-watched-group", topic))
        await kafka.produce(dlt, 0, 2, headers=_spring(busy, prefix + "payments"))
        await asyncio.sleep(1.0)
        await engine.poll_all()
        views = {
            g: engine.store.view(SeriesKey("events", topic, g)) for g in (busy, other, stalled)
        }
    finally:
        await engine.close()
    _, dlt_ends = await kafka.offsets(dlt)
    assert sum(dlt_ends.values()) == 4 + 6 + 4 + 5 + 3 + 2
    # the DLT records as Kafka holds them: the headers name the groups counted below
    named: dict[str, int] = {}
    for record in await kafka.read_all(dlt):
        headers = dict(record.headers)
        name = headers.get("kafka_dlt-original-consumer-group")
        name = name or headers.get("x-original-consumer-group")
        if headers.get("kafka_dlt-original-topic", topic.encode()) == topic.encode():
            named[name.decode()] = named.get(name.decode(), 0) + 1
    assert named[busy] == 4 + 10 and named[other] == 5
    counted = {g: views[g].info["dead_letters_counted"] for g in views}
    assert counted[busy] == named[busy] - 4  # what arrived while polled
    assert counted[other] == named[other]
    assert counted[stalled] == 0
    assert views[busy].metrics["error_rate"] == pytest.approx(10 / 30)
    assert views[other].metrics["error_rate"] == pytest.approx(5 / 20)
    # processed nothing, dead-lettered nothing: no ratio at all (never 100 %)
    assert views[stalled].metrics["error_rate"] is None
    assert views[stalled].info["dead_letters"] == "group header"
    for view in views.values():
        assert view.metrics["dlq_length"] == sum(dlt_ends.values())


async def test_dlt_inflow_without_group_headers_is_null_with_several_groups(
    kafka, kafka_broker, unique
):
    prefix = unique("noattr") + "-"
    topic, dlt = prefix + "orders", prefix + "orders.DLT"
    first, second = prefix + "billing", prefix + "shipping"
    await kafka.create({topic: 1, dlt: 1})
    await kafka.produce(topic, 0, 20)
    await kafka.commit(first, {(topic, 0): 10})
    await kafka.commit(second, {(topic, 0): 10})
    collector = collector_for(kafka_broker, prefix)
    await collector.connect()

    async def poll() -> dict[str | None, Any]:
        return {s.key.group: s for s in (await collector.collect()).series if s.key.queue == topic}

    try:
        polled = await poll()
        assert polled[first].info["dead_letters_counted"] == 0  # nothing arrived: 0 is known
        assert polled[first].info["dead_letters"] == "none arrived yet"
        # Spring's header of the original topic, but no group: either group may have failed
        await kafka.produce(dlt, 0, 3, headers=[("kafka_dlt-original-topic", topic.encode())])
        polled = await poll()
        for group in (first, second):
            assert polled[group].info["dead_letters_counted"] is None
            assert polled[group].info["dead_letters"].startswith("unattributable")
            assert polled[group].values["dlq_length"] == 3  # the DLT's size is still known
        polled = await poll()  # nothing new: still unknown
        assert polled[first].info["dead_letters_counted"] is None
        # records naming their group again: the counts start over from zero ...
        await kafka.produce(dlt, 0, 2, headers=_plain(first))
        polled = await poll()
        assert polled[first].info["dead_letters_counted"] == 0
        assert polled[second].info["dead_letters_counted"] == 0
        # ... and count from there
        await kafka.produce(dlt, 0, 1, headers=_plain(first))
        await kafka.produce(dlt, 0, 4, headers=_plain(second))
        polled = await poll()
        assert polled[first].info["dead_letters_counted"] == 1
        assert polled[second].info["dead_letters_counted"] == 4
    finally:
        await collector.close()


async def test_dlt_reads_are_budgeted_and_catch_up(kafka, kafka_broker, unique, monkeypatch):
    """A burst of dead letters larger than one poll's read budget is counted over the next
    polls, each record once."""
    import collectors.kafka.deadletters as kafka_module

    prefix = unique("budget") + "-"
    topic, dlt = prefix + "orders", prefix + "orders.DLT"
    first, second = prefix + "billing", prefix + "shipping"
    await kafka.create({topic: 1, dlt: 1})
    await kafka.commit(first, {(topic, 0): 0})
    await kafka.commit(second, {(topic, 0): 0})
    collector = collector_for(kafka_broker, prefix)
    await collector.connect()
    monkeypatch.setattr(kafka_module, "DLT_PARTITION_BYTES", 1024)
    fetches: list[int] = []
    original = collector.wire.fetch_dead_letters

    async def counting(wanted: Any) -> Any:
        fetches.append(len(wanted))
        return await original(wanted)

    collector.wire.fetch_dead_letters = counting  # type: ignore[method-assign]
    try:
        await collector.collect()
        for i in range(60):  # one batch per record, about 200 bytes each
            await kafka.producer.send_and_wait(
                dlt, b"x" * 100, partition=0, headers=_plain(first if i % 3 else second)
            )
        totals: list[tuple[float, float]] = []
        for _ in range(30):
            by_group = {
                s.key.group: s.info["dead_letters_counted"]
                for s in (await collector.collect()).series
                if s.key.queue == topic
            }
            totals.append((by_group[first], by_group[second]))
            if totals[-1] == (40, 20):
                break
    finally:
        await collector.close()
    assert totals[-1] == (40, 20)
    assert len(totals) >= 3  # it took several polls: 1 KiB a poll is a handful of records
    assert all(a[0] <= b[0] and a[1] <= b[1] for a, b in itertools.pairwise(totals))
    assert fetches and all(n == 1 for n in fetches)  # one partition per Fetch, one per poll


# ---------------------------------------------------------------- config, secrets, failures


def test_sasl_and_tls_options_validate_and_mask(run_cli, write_config):
    path = write_config(
        """
        brokers:
          - name: secure
            type: kafka
            bootstrap_servers: "kafka1:9093,kafka2:9093"
            security_protocol: SASL_SSL
            sasl_mechanism: SCRAM-SHA-512
            sasl_username: mqtop
            sasl_password: "Kafka-Canary-31337"
            ssl_cafile: /etc/ssl/ca.pem
        """
    )
    result = run_cli("config", "validate", str(path))
    assert result.returncode == 0, result.stderr
    shown = run_cli("config", "show", "--config", str(path))
    assert shown.returncode == 0, shown.stderr
    assert "Kafka-Canary-31337" not in shown.stdout + shown.stderr
    assert "SCRAM-SHA-512" in shown.stdout and "tls_verify" in shown.stdout

    bad = write_config(
        """
        brokers:
          - {name: k, type: kafka, bootstrap_servers: "localhost:9092",
             sasl_mechanism: PLAIN, sasl_username: u, sasl_password: "Other-Canary-4242"}
          - {name: k2, type: kafka, bootstrap_servers: "no-port-here"}
        """,
        name="bad.yaml",
    )
    result = run_cli("config", "validate", str(bad))
    assert result.returncode == 2
    assert "security_protocol" in result.stderr
    assert "host:port" in result.stderr
    assert "Other-Canary-4242" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_unreachable_kafka_exit_3_one_line_no_secret(run_cli, write_config):
    from tests.harness import free_port

    port = free_port()
    path = write_config(
        f"""
        interval: 200ms
        timeout: 3s
        brokers:
          - name: gone
            type: kafka
            bootstrap_servers: "127.0.0.1:{port}"
            security_protocol: SASL_PLAINTEXT
            sasl_mechanism: PLAIN
            sasl_username: svc
            sasl_password: "Unreachable-Canary-99"
        """
    )
    result = run_cli("metrics", "--config", str(path), "--format", "json", timeout=60)
    assert result.returncode == 3, result.stderr
    doc = json.loads(result.stdout)
    assert doc["brokers"][0]["up"] is False and doc["brokers"][0]["error"]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert f"127.0.0.1:{port}" in lines[0] and "connection refused" in lines[0]
    assert "Unreachable-Canary-99" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


async def test_poll_sends_batched_requests_never_one_per_partition(kafka, kafka_broker, unique):
    """40 partitions x 3 groups: the request count depends on leaders and groups only."""
    prefix = unique("batch") + "-"
    topics = {prefix + "a": 24, prefix + "b": 16}
    await kafka.create(topics)
    groups = [prefix + f"g{i}" for i in range(3)]
    for i, group in enumerate(groups):
        await kafka.commit(group, {(t, p): 0 for t, n in topics.items() for p in range(n)})
        await kafka.produce(prefix + "a", i, 3)
    collector = collector_for(kafka_broker, prefix)
    await collector.connect()
    sent: list[str] = []
    wire = collector.wire
    original = wire.send

    async def counting(node: int, request: Any) -> Any:
        sent.append(type(request).__name__)
        return await original(node, request)

    wire.send = counting  # type: ignore[method-assign]
    try:
        await collector.collect()  # first poll: coordinators are looked up, records are read
        sent.clear()
        collected = await collector.collect()
        brokers = len(wire.brokers())
        leaders = len({wire.leaders[(t, p)] for t, n in topics.items() for p in range(n)})
    finally:
        await collector.close()
    counts = {name: sent.count(name) for name in set(sent)}
    assert counts.pop("OffsetRequest") == 2 * leaders  # latest and earliest
    assert counts.pop("ListGroupsRequest") == brokers
    assert counts.pop("DescribeGroupsV2") <= brokers  # one per coordinator
    assert counts.pop("OffsetFetchRequest") == len(groups)
    assert counts == {}, counts  # timestamps were cached by the first poll: no Fetch
    assert len([s for s in collected.series if s.key.group in groups]) == 2 * len(groups)


async def test_offsets_asked_by_partition_give_the_same_lag(kafka, kafka_broker, unique):
    """The fallback for brokers that cannot list all of a group's offsets at once."""
    prefix = unique("explicit") + "-"
    topic, group = prefix + "t", prefix + "g"
    await kafka.create({topic: 3})
    for p in range(3):
        await kafka.produce(topic, p, 4 + p)
    await kafka.commit(group, {(topic, 0): 1, (topic, 2): 6})  # partition 1: no commit

    async def lag(explicit: bool) -> tuple[float | None, list[Any]]:
        collector = collector_for(kafka_broker, prefix)
        await collector.connect()
        try:
            collector.wire.explicit_offsets = explicit
            sample = {s.key.group: s for s in (await collector.collect()).series}[group]
            return sample.values["consumer_lag_messages"], list(sample.info["partitions"])
        finally:
            await collector.close()

    by_group, by_partition = await lag(False), await lag(True)
    assert by_group[0] == by_partition[0] == (4 - 1) + (5 - 0) + 0
    assert [r["committed"] for r in by_partition[1]] == [1, None, 6]
    assert [r["lag"] for r in by_group[1]] == [r["lag"] for r in by_partition[1]]


async def test_coordinator_lookup_waits_while_a_fresh_cluster_loads_offsets():
    """A fresh cluster answers FindCoordinator with 'not available' / 'loading' until
    __consumer_offsets exists: the lookup retries those (and only those) errors."""
    from types import SimpleNamespace

    from collectors.kafka.client import KafkaProtocolError
    from collectors.kafka.options import KafkaOptions
    from collectors.kafka.wire import KafkaWire

    wire = KafkaWire(KafkaOptions(name="k", bootstrap_servers="127.0.0.1:1"))
    answers = [15, 14, 15, 0]
    sent = []

    async def send(node, request):
        sent.append(request)
        code = answers.pop(0)
        return SimpleNamespace(error_code=code, coordinator_id=7)

    wire.send = send  # type: ignore[method-assign]
    wire.any_node = lambda: 1  # type: ignore[method-assign]
    assert await wire.coordinator("g") == 7
    assert len(sent) == 4

    answers[:] = [41]  # a non-retriable error is raised at once
    wire.forget_coordinator("g")
    with pytest.raises(KafkaProtocolError):
        await wire.coordinator("g")
