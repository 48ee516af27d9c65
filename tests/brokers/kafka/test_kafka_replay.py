"""Kafka DLT actions against a real broker: peek, replay/move, options, safety rules."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.harness import KafkaBroker
from tests.support.kafka import KafkaTool, run_cli_async
from tests.support.reports import move_report

pytestmark = pytest.mark.broker


ESC = "\x1b[2J\x1b]0;pwned\x07"


def config(write_config, broker: KafkaBroker, readonly: bool = False) -> Path:
    return write_config(
        f"""
        brokers:
          - name: events
            type: kafka
            bootstrap_servers: "{broker.bootstrap}"
            readonly: {str(readonly).lower()}
        """,
        name="readonly.yaml" if readonly else "mqtop.yaml",
    )


def hdr(record: Any) -> dict[str, bytes]:
    return dict(record.headers)


async def dead_letters(kafka: KafkaTool, dlt: str, origin: str, count: int, partitions: int):
    """``count`` dead letters spread over partitions: keys, Spring-style headers, old times."""
    base = int(time.time() * 1000) - 3_600_000
    for i in range(count):
        await kafka.producer.send(
            dlt,
            json.dumps({"order": i, "kind": "a" if i % 3 else "b"}).encode(),
            key=f"order-{i}".encode(),
            partition=i % partitions,
            timestamp_ms=base + i,
            headers=[
                ("kafka_dlt-original-topic", origin.encode()),
                ("kafka_dlt-exception-message", b"boom " + ESC.encode()),
                ("kind", b"a" if i % 3 else b"b"),
                ("blob", bytes([0, 255, i % 256])),
            ],
        )
    await kafka.producer.flush()


async def test_peek_reads_records_without_joining_a_group(
    kafka, kafka_broker, write_config, run_cli, unique
):
    prefix = unique("peek") + "-"
    topic, dlt = prefix + "orders", prefix + "orders.DLT"
    await kafka.create({topic: 1, dlt: 2})
    await dead_letters(kafka, dlt, topic, 6, 2)
    groups_before = {g for g, _ in await kafka.admin.list_consumer_groups()}
    path = config(write_config, kafka_broker)

    result = await run_cli_async(
        run_cli, "dlq", "peek", "events", dlt, "-n", "4", "--format", "json", "--config", str(path)
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    records = sorted(await kafka.read_all(dlt), key=lambda r: r.timestamp)
    assert [m["id"] for m in doc] == [f"{r.partition}:{r.offset}" for r in records[:4]]
    first, raw = doc[0], records[0]
    assert first["body"] == raw.value.decode() and first["body_encoding"] == "utf8"
    assert first["properties"]["key"] == raw.key.decode()
    assert first["properties"]["partition"] == raw.partition
    assert first["properties"]["offset"] == raw.offset
    assert first["properties"]["timestamp"].startswith(
        time.strftime("%Y-%m-%dT%H:%M", time.gmtime(raw.timestamp / 1000))
    )
    assert first["headers"]["kind"] == hdr(raw)["kind"].decode()
    # binary values (and text holding control characters) are the base64 of their bytes,
    # named in header_encodings: every header value is a string here
    assert first["headers"]["blob"] == "AP8A"
    assert first["properties"]["header_encodings"] == {
        "blob": "base64",
        "kafka_dlt-exception-message": "base64",
    }
    assert first["headers"]["kafka_dlt-original-topic"] == topic
    assert first["death"] == {
        "reason": "boom " + ESC,
        "count": None,
        "original_queue": topic,
    }

    text = await run_cli_async(run_cli, "dlq", "peek", "events", dlt, "--config", str(path))
    assert text.returncode == 0, text.stderr
    assert "\x1b" not in text.stdout and "\x07" not in text.stdout
    assert "\\x1b" in text.stdout

    # nothing consumed, no group created, no offset committed anywhere
    groups_after = {g for g, _ in await kafka.admin.list_consumer_groups()}
    for group in groups_after - groups_before:
        assert not any(t == dlt for t, _ in await kafka.committed(group)), group


async def test_replay_preserves_key_value_headers_and_records_itself(
    kafka, kafka_broker, write_config, run_cli, unique, tmp_path
):
    from aiokafka.partitioner import murmur2

    prefix = unique("replay") + "-"
    topic, dlt, archive = prefix + "orders", prefix + "orders.DLT", prefix + "archive"
    await kafka.create({topic: 3, dlt: 2, archive: 2})
    await dead_letters(kafka, dlt, topic, 40, 2)
    path = config(write_config, kafka_broker)
    started = time.time()

    # target from the kafka_dlt-original-topic header; partition by key like Kafka's producers
    result = await run_cli_async(
        run_cli, "dlq", "replay", "events", dlt, "--yes", "--format", "json", "--config", str(path)
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["source"] == dlt and doc["destination"] == topic
    assert (doc["moved"], doc["failed"], doc["skipped"]) == (40, 0, 0)
    assert doc["dry_run"] is False and doc["duplicates_possible"] == 0

    originals = {(r.partition, r.offset): r for r in await kafka.read_all(dlt)}
    copies = await kafka.read_all(topic)
    assert len(copies) == 40
    for copy in copies:
        marker = hdr(copy)["x-mqtop-replay"].decode()
        src_topic, part, offset = marker.rsplit("/", 2)
        assert src_topic == dlt
        original = originals[(int(part), int(offset))]
        assert copy.key == original.key and copy.value == original.value
        assert list(copy.headers)[:-1] == list(original.headers)  # order kept, marker last
        assert copy.partition == (murmur2(copy.key) & 0x7FFFFFFF) % 3
        assert copy.timestamp / 1000 >= started - 1  # a replay is a new publish
    audit = (tmp_path / "state" / "mqtop" / "audit.jsonl").read_text().splitlines()
    entry = json.loads(audit[-1])
    assert (entry["action"], entry["source"], entry["destination"], entry["count"]) == (
        "replay",
        dlt,
        topic,
        40,
    )

    # --to with --keep-partition and --keep-timestamp
    result = await run_cli_async(
        run_cli, "dlq", "replay", "events", dlt, "--to", archive, "--keep-partition",
        "--keep-timestamp", "--yes", "--format", "json", "--config", str(path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["moved"] == 40
    for copy in await kafka.read_all(archive):
        _, part, offset = hdr(copy)["x-mqtop-replay"].decode().rsplit("/", 2)
        original = originals[(int(part), int(offset))]
        assert copy.partition == original.partition
        assert copy.timestamp == original.timestamp
        assert copy.key == original.key and copy.value == original.value


async def test_replay_options_dry_run_filter_limit_resume_readonly(
    kafka, kafka_broker, write_config, run_cli, unique
):
    prefix = unique("opts") + "-"
    topic, dlt = prefix + "orders", prefix + "orders-dlq"
    await kafka.create({topic: 1, dlt: 1})
    await dead_letters(kafka, dlt, topic, 30, 1)  # kinds: b for i % 3 == 0 (10 of them)
    path = config(write_config, kafka_broker)
    ro = config(write_config, kafka_broker, readonly=True)

    async def replay(*args: str, cfg: Path = path):
        return await run_cli_async(
            run_cli, "dlq", "replay", "events", dlt, "--to", topic, "--format", "json",
            "--config", str(cfg), *args,
        )  # fmt: skip

    refused = await replay("--yes", cfg=ro)
    assert refused.returncode == 2 and "readonly" in refused.stderr
    no_confirm = await replay()
    assert no_confirm.returncode == 2 and "--yes" in no_confirm.stderr

    dry = await replay("--dry-run", "--filter", "header.kind=b")
    assert dry.returncode == 0, dry.stderr
    dry_doc = json.loads(dry.stdout)
    assert (dry_doc["moved"], dry_doc["skipped"], dry_doc["dry_run"]) == (10, 20, True)
    assert (await kafka.offsets(topic))[1] == {0: 0}  # nothing written

    limited = json.loads(
        (await replay("--yes", "--limit", "4", "--filter", "header.kind=b")).stdout
    )
    assert limited["moved"] == 4
    rest = json.loads((await replay("--yes", "--filter", "header.kind=b")).stdout)
    assert rest["moved"] == 6  # resumed after the first four
    again = json.loads((await replay("--yes", "--filter", "header.kind=b")).stdout)
    assert again["moved"] == 0
    copies = await kafka.read_all(topic)
    assert sorted(json.loads(c.value)["order"] for c in copies) == list(range(0, 30, 3))

    # a different job (no filter) has its own progress; --from-offset starts where asked
    tail = move_report(await replay("--yes", "--from-offset", "25"))
    assert tail["moved"] == 5
    assert any("--from-offset" in n for n in tail["notes"])
    assert len(await kafka.read_all(topic)) == 15

    # --from-time: records stamped at or after the time (dead letter i is stamped base + i ms)
    first = min(await kafka.read_all(dlt), key=lambda r: r.offset)
    at = first.timestamp + 27  # dead letters 27, 28, 29
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at // 1000)) + f".{at % 1000:03d}Z"
    since = json.loads((await replay("--yes", "--from-time", iso)).stdout)
    assert since["moved"] == 3
    assert len(await kafka.read_all(topic)) == 18

    bad = await replay("--yes", "--rate", "10")
    assert bad.returncode == 2 and "--rate" in bad.stderr
    missing = await run_cli_async(
        run_cli, "dlq", "replay", "events", dlt, "--to", prefix + "nope", "--yes",
        "--config", str(path),
    )  # fmt: skip
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr + bad.stderr


async def test_replay_stops_at_the_end_offsets_seen_at_start(
    kafka, kafka_broker, unique, monkeypatch
):
    from collectors.base import MoveRequest
    from collectors.kafka.actions import KafkaActions
    from collectors.kafka.options import KafkaMoveOptions, KafkaOptions
    from collectors.kafka.wire import KafkaWire

    offset_fetches: list[Any] = []
    send = KafkaWire.send

    async def spy(self: KafkaWire, node: int, request: Any) -> Any:
        if type(request).__name__ == "OffsetFetchRequest":
            offset_fetches.append(request._partitions)
        return await send(self, node, request)

    monkeypatch.setattr(KafkaWire, "send", spy)

    prefix = unique("bound") + "-"
    topic, dlt = prefix + "orders", prefix + "orders.DLT"
    await kafka.create({topic: 1, dlt: 1})
    await dead_letters(kafka, dlt, topic, 200, 1)
    late = [f"late-{i}" for i in range(5)]
    produced_late = []

    async def produce_late() -> None:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
        await producer.start()
        try:
            for value in late:
                await producer.send_and_wait(dlt, value.encode(), partition=0)
        finally:
            await producer.stop()

    def on_progress(progress: Any) -> None:
        if not produced_late:  # new dead letters arrive while the replay runs
            # produced from another thread while the replay's loop waits: they are on the
            # broker before the replay reads its next batch
            writer = threading.Thread(target=lambda: asyncio.run(produce_late()))
            writer.start()
            writer.join(30)
            produced_late.append(time.monotonic())

    actions = KafkaActions(KafkaOptions(name="events", bootstrap_servers=kafka_broker.bootstrap))
    try:
        result = await actions.move(
            MoveRequest(dlt, topic, "replay", options=KafkaMoveOptions(batch=10)), on_progress
        )
    finally:
        await actions.close()
    assert produced_late
    assert result.moved == 200 and result.failed == 0
    assert (await kafka.offsets(dlt))[1] == {0: 205}
    copies = await kafka.read_all(topic)
    assert len(copies) == 200
    assert not any(c.value.startswith(b"late-") for c in copies)

    # the next replay takes exactly the late ones
    actions = KafkaActions(KafkaOptions(name="events", bootstrap_servers=kafka_broker.bootstrap))
    try:
        result = await actions.move(MoveRequest(dlt, topic, "replay"), lambda p: None)
    finally:
        await actions.close()
    assert result.moved == 5
    assert sorted(c.value.decode() for c in (await kafka.read_all(topic))[200:]) == late
    # the saved progress was read by naming the source's partitions (never "all offsets")
    assert offset_fetches == [[(dlt, [0])]] * 2


async def test_purge_deletes_up_to_the_end_and_count_follows(
    kafka, kafka_broker, write_config, run_cli, unique
):
    prefix = unique("purge") + "-"
    dlt = prefix + "jobs.DLT"
    await kafka.create({dlt: 2})
    await dead_letters(kafka, dlt, prefix + "jobs", 11, 2)
    path = config(write_config, kafka_broker)
    result = await run_cli_async(
        run_cli, "dlq", "purge", "events", dlt, "--yes", "--format", "json", "--config", str(path)
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"queue": dlt, "purged": 11}
    starts, ends = await kafka.offsets(dlt)
    assert starts == ends and sum(ends.values()) == 11
    assert await kafka.read_all(dlt) == []


def test_replay_group_names_are_per_job():
    from collectors.kafka.progress import replay_group
    from mqtop.kernel.filters import parse_filters

    plain = replay_group("orders.DLT", "orders", None)
    assert plain == "mqtop-replay.orders.DLT>orders"
    filtered = replay_group("orders.DLT", "orders", parse_filters(["header.kind=b"]))
    assert filtered.startswith(plain + "#") and filtered != plain
    assert replay_group("orders.DLT", "other", None) != plain


async def test_replay_skips_aborted_transactions(kafka, kafka_broker, unique):
    """DLT records written in transactions: committed ones are replayed, aborted ones never."""
    from aiokafka import AIOKafkaProducer

    from collectors.base import MoveRequest
    from collectors.kafka.actions import KafkaActions
    from collectors.kafka.options import KafkaMoveOptions, KafkaOptions

    prefix = unique("txn") + "-"
    topic, dlt = prefix + "orders", prefix + "orders.DLT"
    await kafka.create({topic: 2, dlt: 2})
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_broker.bootstrap, transactional_id=prefix + "writer"
    )
    await producer.start()
    try:
        expected = []
        for txn, commit in enumerate((True, False, True, False, True)):
            await producer.begin_transaction()
            for i in range(7):
                value = f"txn{txn}-{i}".encode()
                await producer.send(dlt, value, key=value, partition=i % 2)
            if commit:
                await producer.commit_transaction()
                expected += [f"txn{txn}-{i}".encode() for i in range(7)]
            else:
                await producer.abort_transaction()
    finally:
        await producer.stop()
    await kafka.produce(dlt, 0, 3, value=b"plain-")  # non-transactional records too
    expected += [b"plain-0", b"plain-1", b"plain-2"]

    actions = KafkaActions(KafkaOptions(name="events", bootstrap_servers=kafka_broker.bootstrap))
    try:
        result = await actions.move(
            MoveRequest(dlt, topic, "replay", options=KafkaMoveOptions(batch=4)), lambda p: None
        )
    finally:
        await actions.close()
    assert result.failed == 0 and result.moved == len(expected)
    copies = [c.value for c in await kafka.read_all(topic)]
    assert sorted(copies) == sorted(expected)


def test_murmur2_matches_the_java_client_hash():
    import random

    from aiokafka.partitioner import murmur2 as reference

    from collectors.kafka.partitioner import key_partition, murmur2

    rng = random.Random(7)
    for length in range(0, 70):
        for _ in range(25):
            data = bytes(rng.randrange(256) for _ in range(length))
            assert murmur2(data) == reference(data)
    # partitions the Java client's DefaultPartitioner picks among 1000 (kafka-python's
    # Java-compatibility vectors)
    keys = (b"", b"a", b"ab", b"abc", b"123456789", b"\x00 ")
    assert [key_partition(k, 1000) for k in keys] == [681, 524, 434, 107, 566, 742]


def test_murmur2_many_matches_one_by_one():
    """The batched hash (all keys of a step at once) equals the Java client's, key by key,
    whatever the mix of lengths (tails of 0-3 bytes, empty keys, keys longer than a lane)."""
    import random

    from aiokafka.partitioner import murmur2 as reference

    from collectors.kafka.partitioner import murmur2_many

    rng = random.Random(11)
    shapes = {
        "one length": lambda: 12,
        "mixed lengths": lambda: rng.randrange(0, 40),
        "tails": lambda: rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 8]),
        "some long": lambda: rng.choice([3, 9, 255, 256, 257, 1000]),
    }
    for name, length in shapes.items():
        for count in (1, 15, 16, 17, 500):
            keys = [bytes(rng.randrange(256) for _ in range(length())) for _ in range(count)]
            expected = [reference(k) & 0x7FFFFFFF for k in keys]
            assert murmur2_many(keys) == expected, (name, count)


async def test_records_deleted_before_replay_are_reported(kafka, kafka_broker, unique):
    from collectors.base import MoveRequest
    from collectors.kafka.actions import KafkaActions
    from collectors.kafka.options import KafkaOptions
    from tests.support.kafka import before as _before
    from tests.support.kafka import tp as _tp

    prefix = unique("gone") + "-"
    topic, dlt = prefix + "orders", prefix + "orders.DLT"
    await kafka.create({topic: 1, dlt: 1})
    await dead_letters(kafka, dlt, topic, 20, 1)

    async def replay(**extra: Any):
        actions = KafkaActions(
            KafkaOptions(name="events", bootstrap_servers=kafka_broker.bootstrap)
        )
        try:
            return await actions.move(MoveRequest(dlt, topic, "replay", **extra), lambda p: None)
        finally:
            await actions.close()

    assert (await replay(limit=5)).moved == 5
    await kafka.admin.delete_records({_tp(dlt, 0): _before(12)})  # retention took 5..11
    result = await replay()
    assert result.moved == 8  # 12..19
    assert any("7 record(s) were deleted" in note for note in result.notes), result.notes
    assert sorted(json.loads(c.value)["order"] for c in await kafka.read_all(topic)) == [
        *range(5),
        *range(12, 20),
    ]
