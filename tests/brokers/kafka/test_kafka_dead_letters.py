"""Dead letters on a real Apache Kafka: error_rate of consumers that dead-letter a known share
and commit past it, the DLT's backlog after a replay, and how Spring Kafka's headers are shown.

The dead letters are written the way Spring Kafka's DeadLetterPublishingRecoverer writes them
(original partition as a big-endian int, offset and timestamp as longs, group and topic as
text) by real aiokafka consumers in a consumer group, which commit past every record they
handled, the failed ones included, as Spring's error handlers do.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import time
from pathlib import Path
from typing import Any

import pytest

from tests.harness import KafkaBroker
from tests.support.kafka import KafkaTool, run_cli_async

pytestmark = pytest.mark.broker


def spring_headers(record: Any, group: str) -> list[tuple[str, bytes]]:
    """The headers DeadLetterPublishingRecoverer adds to a failed record (Spring Kafka 2.8+)."""
    return [
        *(record.headers or ()),
        ("kafka_dlt-original-topic", record.topic.encode()),
        ("kafka_dlt-original-partition", struct.pack(">i", record.partition)),
        ("kafka_dlt-original-offset", struct.pack(">q", record.offset)),
        ("kafka_dlt-original-timestamp", struct.pack(">q", record.timestamp)),
        ("kafka_dlt-original-timestamp-type", b"CreateTime"),
        ("kafka_dlt-original-consumer-group", group.encode()),
        ("kafka_dlt-exception-fqcn", b"java.lang.IllegalStateException"),
        ("kafka_dlt-exception-message", b"cannot process " + record.key),
    ]


async def dead_lettering_consumer(
    bootstrap: str, topic: str, dlt: str, group: str, total: int
) -> int:
    """Consume ``total`` records in ``group``; dead-letter those whose value starts with
    ``fail`` (Spring-style headers), then commit past them all. Returns the dead letters."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await asyncio.gather(consumer.start(), producer.start())
    handled = dead = 0
    try:
        deadline = time.monotonic() + 60
        while handled < total and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=50)
            for records in batch.values():
                for record in records:
                    if record.value.startswith(b"fail"):
                        headers = spring_headers(record, group)
                        await producer.send_and_wait(
                            dlt, record.value, key=record.key, headers=headers
                        )
                        dead += 1
                    handled += 1
            if batch:
                await consumer.commit()  # past the dead-lettered records too
    finally:
        await asyncio.gather(consumer.stop(), producer.stop())
    assert handled == total, f"{group} handled {handled} of {total}"
    return dead


async def produce_orders(kafka: KafkaTool, topic: str, total: int, failing_every: int) -> None:
    futures = []
    for i in range(total):
        value = f"{'fail' if i % failing_every == 0 else 'ok'}-{i}".encode()
        key = f"order-{i}".encode()
        futures.append(await kafka.producer.send(topic, value, key=key, partition=i % 2))
    await asyncio.gather(*futures)


def write_kafka_config(path: Path, broker: KafkaBroker, prefix: str) -> Path:
    path.write_text(
        f"""
interval: 250ms
brokers:
  - name: events
    type: kafka
    bootstrap_servers: "{broker.bootstrap}"
    topics: ["{prefix}*"]
    groups: ["{prefix}*"]
alerts:
  - {{name: DeadLettersWaiting, metric: dlq_length, op: ">", threshold: 0, severity: critical}}
"""
    )
    return path


async def test_error_rate_is_the_share_of_records_dead_lettered_by_real_consumers(
    kafka, kafka_broker, tmp_path, unique
):
    """One consumer fails 20 % of its records, another all of them; both commit past the
    failures. error_rate is 0.2 and 1.0 (dead letters / records handled), not 0.2 / 1.2 and
    0.5 (dead letters / (handled + dead letters))."""
    from mqtop.config import load_config_file
    from mqtop.engine import Engine
    from mqtop.kernel.model import SeriesKey

    prefix = unique("erate") + "-"
    some, every = prefix + "orders", prefix + "payments"
    some_dlt, every_dlt = some + ".DLT", every + ".DLT"
    g_some, g_every = prefix + "billing", prefix + "ledger"
    await kafka.create({some: 2, every: 2, some_dlt: 1, every_dlt: 1})
    await produce_orders(kafka, some, 200, failing_every=5)  # 40 of 200 fail
    await produce_orders(kafka, every, 60, failing_every=1)  # all 60 fail
    # the groups exist (nothing consumed) when mqtop first looks
    await kafka.commit(g_some, {(some, 0): 0, (some, 1): 0})
    await kafka.commit(g_every, {(every, 0): 0, (every, 1): 0})
    engine = Engine(load_config_file(write_kafka_config(tmp_path / "m.yaml", kafka_broker, prefix)))
    try:
        await engine.poll_all()
        dead = await asyncio.gather(
            dead_lettering_consumer(kafka_broker.bootstrap, some, some_dlt, g_some, 200),
            dead_lettering_consumer(kafka_broker.bootstrap, every, every_dlt, g_every, 60),
        )
        await engine.poll_all()
        views = {
            g: engine.store.view(SeriesKey("events", t, g))
            for g, t in ((g_some, some), (g_every, every))
        }
    finally:
        await engine.close()
    assert dead == [40, 60]
    # what Kafka holds: the DLTs got exactly those records, the groups committed everything
    assert sum((await kafka.offsets(some_dlt))[1].values()) == 40
    assert sum((await kafka.committed(g_some)).values()) == 200
    assert sum((await kafka.committed(g_every)).values()) == 60
    some_view, every_view = views[g_some], views[g_every]
    assert some_view is not None and every_view is not None
    assert some_view.metrics["error_rate"] == pytest.approx(40 / 200)
    assert every_view.metrics["error_rate"] == pytest.approx(1.0)
    assert some_view.info["dead_letters_counted"] == 40
    assert every_view.info["dead_letters_counted"] == 60
    # the consumption rate still counts every record handled, the failed ones included
    assert some_view.metrics["processing_rate"] is not None
    assert some_view.metrics["processing_rate"] > 0


async def test_dlq_length_counts_dead_letters_not_yet_replayed(
    kafka, kafka_broker, tmp_path, run_cli, unique
):
    """A "no dead letters waiting" gate: red while the DLT holds unhandled records, green once
    mqtop replayed them, although Kafka still retains every record of the DLT."""
    prefix = unique("backlog") + "-"
    topic, dlt, group = prefix + "orders", prefix + "orders.DLT", prefix + "billing"
    await kafka.create({topic: 2, dlt: 2})
    await produce_orders(kafka, topic, 24, failing_every=2)
    await kafka.commit(group, {(topic, 0): 0, (topic, 1): 0})
    assert await dead_lettering_consumer(kafka_broker.bootstrap, topic, dlt, group, 24) == 12
    config = write_kafka_config(tmp_path / "m.yaml", kafka_broker, prefix)

    async def metrics() -> dict[tuple[str, str | None], dict[str, Any]]:
        result = await run_cli_async(
            run_cli, "metrics", "--config", str(config), "--format", "json"
        )
        assert result.returncode == 0, result.stderr
        return {(s["queue"], s["group"]): s["metrics"] for s in json.loads(result.stdout)["series"]}

    before = await metrics()
    assert before[(topic, group)]["dlq_length"] == 12
    gate = await run_cli_async(run_cli, "check", "--once", "--config", str(config))
    assert gate.returncode == 1, gate.stdout + gate.stderr

    replay = await run_cli_async(
        run_cli,
        "dlq",
        "replay",
        "events",
        dlt,
        "--yes",
        "--format",
        "json",
        "--config",
        str(config),
    )
    assert replay.returncode == 0, replay.stderr
    assert json.loads(replay.stdout)["moved"] == 12
    starts, ends = await kafka.offsets(dlt)
    assert sum(ends.values()) - sum(starts.values()) == 12  # Kafka keeps them all

    after = await metrics()
    assert after[(topic, group)]["dlq_length"] == 0
    assert before[(dlt, None)]["queue_length"] == 12  # the DLT's own row: 12 not yet handled
    assert after[(dlt, None)]["queue_length"] == 0
    gate = await run_cli_async(run_cli, "check", "--once", "--config", str(config))
    assert gate.returncode == 0, gate.stdout + gate.stderr

    # the DLT's row says what is retained next to what is pending, and who handled it
    from collectors.kafka.collector import KafkaCollector
    from collectors.kafka.options import KafkaOptions

    collector = KafkaCollector(
        KafkaOptions(
            name="events",
            bootstrap_servers=kafka_broker.bootstrap,
            topics=[prefix + "*"],
            groups=[prefix + "*"],
        )
    )
    await collector.connect()
    try:
        rows = {(s.key.queue, s.key.group): s for s in (await collector.collect()).series}
    finally:
        await collector.close()
    own = rows[(dlt, None)]
    assert own.values["queue_length"] == 0
    assert own.info["dead_letters_pending"] == 0
    assert own.info["dead_letters_retained"] == 12
    assert own.info["handled_by"] == f"mqtop-replay.{dlt}>{topic}"
    assert [row["lag"] for row in own.info["partitions"]] == [0, 0]
    assert [row["committed"] for row in own.info["partitions"]] == [ends[0], ends[1]]
    assert rows[(topic, group)].info["dlq_retained"] == 12


async def test_dlq_groups_and_filtered_replays_decide_what_is_handled(kafka, kafka_broker, unique):
    """A configured DLT consumer group's position counts as handled; a filtered replay's does
    not (its position passes the records its filter skipped)."""
    from collectors.base import MoveRequest
    from collectors.kafka.actions import KafkaActions
    from collectors.kafka.collector import KafkaCollector
    from collectors.kafka.options import KafkaOptions
    from mqtop.kernel.filters import parse_filters

    prefix = unique("handlers") + "-"
    topic, dlt, group = prefix + "orders", prefix + "orders.DLT", prefix + "billing"
    await kafka.create({topic: 1, dlt: 1})
    await kafka.commit(group, {(topic, 0): 0})
    await kafka.produce(dlt, 0, 10, headers=[("kind", b"a")])
    options = KafkaOptions(
        name="events",
        bootstrap_servers=kafka_broker.bootstrap,
        topics=[prefix + "*"],
        groups=[prefix + "*"],
    )
    actions = KafkaActions(options)
    try:
        filtered = MoveRequest(dlt, topic, "replay", filter=parse_filters(["header.kind=b"]))
        result = await actions.move(filtered, lambda p: None)
    finally:
        await actions.close()
    assert (result.moved, result.skipped) == (0, 10)

    async def pending(opts: KafkaOptions) -> tuple[float | None, float | None]:
        collector = KafkaCollector(opts)
        await collector.connect()
        try:
            rows = {(s.key.queue, s.key.group): s for s in (await collector.collect()).series}
        finally:
            await collector.close()
        return rows[(topic, group)].values["dlq_length"], rows[(dlt, None)].values["queue_length"]

    assert await pending(options) == (10, 10)  # the filtered job copied nothing
    await kafka.commit(prefix + "dlt-archiver", {(dlt, 0): 6})
    assert await pending(options) == (10, 10)  # not a configured handler
    handled = options.model_copy(update={"dlq_groups": ["*-dlt-archiver"]})
    assert await pending(handled) == (4, 4)


async def test_spring_binary_headers_are_decoded_and_values_have_one_shape(
    kafka, kafka_broker, tmp_path, run_cli, unique
):
    """Peek JSON and the dashboard's message viewer show Spring Kafka's binary DLT headers as
    numbers, and any other binary value as base64 text whether or not its bytes happen to be
    valid UTF-8."""
    from collectors.kafka.actions import KafkaActions
    from collectors.kafka.options import KafkaOptions
    from mqtop.ui.dlq import message_text

    prefix = unique("hdrs") + "-"
    topic, dlt, group = prefix + "orders", prefix + "orders.DLT", prefix + "billing"
    await kafka.create({topic: 2, dlt: 1})
    for i in range(4):
        # "trace": 4 bytes that are valid UTF-8 (control characters) in one record, invalid
        # UTF-8 in the other; an int 3 and an offset of 200 encode the same way
        trace = struct.pack(">i", 3) if i % 2 else b"\xff\x00\xc8\x01"
        await kafka.producer.send_and_wait(
            topic,
            f"fail-{i}".encode(),
            key=f"k{i}".encode(),
            partition=1,
            headers=[("trace", trace)],
        )
    await kafka.commit(group, {(topic, 1): 0})
    assert await dead_lettering_consumer(kafka_broker.bootstrap, topic, dlt, group, 4) == 4
    originals = sorted(await kafka.read_all(topic), key=lambda r: r.offset)
    config = write_kafka_config(tmp_path / "m.yaml", kafka_broker, prefix)

    result = await run_cli_async(
        run_cli,
        "dlq",
        "peek",
        "events",
        dlt,
        "-n",
        "4",
        "--format",
        "json",
        "--config",
        str(config),
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert len(doc) == 4
    for message, original in zip(doc, originals, strict=True):
        headers, encodings = message["headers"], message["properties"]["header_encodings"]
        assert headers["kafka_dlt-original-partition"] == original.partition == 1
        assert headers["kafka_dlt-original-offset"] == original.offset
        assert headers["kafka_dlt-original-timestamp"] == original.timestamp
        assert headers["kafka_dlt-original-topic"] == topic
        assert headers["kafka_dlt-original-timestamp-type"] == "CreateTime"
        trace = dict(original.headers)["trace"]
        assert headers["trace"] == base64.b64encode(trace).decode()
        assert encodings == {
            "kafka_dlt-original-partition": "int32",
            "kafka_dlt-original-offset": "int64",
            "kafka_dlt-original-timestamp": "int64",
            "trace": "base64",
        }
        assert message["death"]["original_queue"] == topic

    actions = KafkaActions(KafkaOptions(name="events", bootstrap_servers=kafka_broker.bootstrap))
    try:
        peeked = await actions.peek(dlt, 1)
    finally:
        await actions.close()
    shown = message_text(peeked[0], time.time()).plain
    assert f"kafka_dlt-original-offset = {originals[0].offset}" in shown
    assert "kafka_dlt-original-partition = 1" in shown
    assert f"trace = {base64.b64encode(dict(originals[0].headers)['trace']).decode()}" in shown
    assert "\\x00" not in shown and "base64" in shown  # named in header_encodings


# ---------------------------------------------------------------- pure logic (no broker)


def test_error_window_by_pattern_over_its_window():
    from collectors.kafka.errorrate import ErrorWindow

    committed = ErrorWindow(60.0, failures_committed=True)
    assert committed.ratio("k", 0.0, 0.0, 0.0) is None  # one point: no increase yet
    assert committed.ratio("k", 10.0, 100.0, 20.0) == pytest.approx(0.2)
    # 90 s later the first points left the window: 100 more handled, no dead letter
    assert committed.ratio("k", 100.0, 200.0, 20.0) == 0.0
    # dead letters counted before the commit that passes them
    assert committed.ratio("j", 0.0, 50.0, 0.0) is None
    assert committed.ratio("j", 5.0, 50.0, 3.0) == 1.0
    assert committed.ratio("j", 6.0, 50.0, None) is None  # unattributable: starts over
    assert committed.ratio("j", 7.0, 60.0, 0.0) is None
    assert committed.ratio("j", 8.0, 70.0, 0.0) == 0.0

    separate = ErrorWindow(60.0, failures_committed=False)
    separate.ratio("k", 0.0, 0.0, 0.0)
    assert separate.ratio("k", 10.0, 100.0, 20.0) == pytest.approx(20 / 120)


def test_header_values_shown_by_name_not_by_bytes():
    from collectors.kafka.headers import death_of, header_map, shown_headers

    raw = [
        ("retry_topic-attempts", b"\x03"),  # Spring's BigInteger bytes
        ("retry_topic-backoff-timestamp", b"2021-05-01T10:00:00"),  # Spring 2.7.0: text
        ("kafka_dlt-original-partition", b"\x00\x01\x02"),  # not an int32: not decoded
        ("kafka_dlt-original-offset", (-1).to_bytes(8, "big", signed=True)),
        ("mixed", b"text"),
        ("mixed", b"\x00\x01"),
        ("empty", None),
        ("trace", b"stack\n\tat x"),
    ]
    shown, encodings = shown_headers(raw)
    assert shown == {
        "retry_topic-attempts": 3,
        "retry_topic-backoff-timestamp": "2021-05-01T10:00:00",
        "kafka_dlt-original-partition": "AAEC",
        "kafka_dlt-original-offset": -1,
        "mixed": ["dGV4dA==", "AAE="],  # one name, one shape: base64 throughout
        "empty": None,
        "trace": "stack\n\tat x",
    }
    assert encodings == {
        "retry_topic-attempts": "int8",
        "kafka_dlt-original-partition": "base64",
        "kafka_dlt-original-offset": "int64",
        "mixed": "base64",
    }
    death = death_of(header_map(raw))
    assert death is not None and death.count == 3
