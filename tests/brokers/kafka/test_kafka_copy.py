"""Kafka replay's copying half: runs cut from batch headers, batched decoding, worker processes.

Pure logic on record batches built with aiokafka's own builder, then the worker-process path of
a replay against the real broker: contents, partitions, a worker that dies, and a SIGKILL of
the main process (nothing lost, no worker left behind).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.harness import KafkaBroker
from tests.support.kafka import KafkaTool, run_cli_async


def _batch(base: int, deltas: list[int], tag: str = "r") -> bytes:
    """A v2 record batch at ``base`` holding records at base + each delta (gaps allowed)."""
    import struct

    from aiokafka.record.default_records import DefaultRecordBatchBuilder

    builder = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, 0, 1 << 20)
    for delta in deltas:
        offset = base + delta
        key = None if offset % 5 == 0 else f"k{offset}".encode()
        value = None if offset % 7 == 0 else f"{tag}{offset}".encode()
        headers = [("h", str(offset).encode())]
        builder.append(delta, 1_700_000_000_000 + offset, key, value, headers)
    buf = builder.build()
    struct.pack_into(">q", buf, 0, base)  # the base offset is outside the CRC
    return bytes(buf)


def _offsets(records: list[Any]) -> list[int]:
    return [r.offset for r in records]


def test_scan_cuts_runs_from_headers_and_merges_adjacent_batches():
    from collectors.kafka.copying import scan

    raw = memoryview(_batch(0, list(range(10))) + _batch(10, list(range(5))))
    runs = scan(0, raw, 3, 100, None)
    assert len(runs) == 1  # adjacent, no gap: one run over both batches
    (run,) = runs
    assert (run.lo, run.hi, run.count) == (3, 15, 12)
    assert bytes(run.raw) == bytes(raw)

    stopped = scan(0, raw, 0, 12, None)  # the stop offset cuts the second batch
    assert [(r.lo, r.hi, r.count) for r in stopped] == [(0, 12, 12)]

    # a compacted batch (offset gaps): the count is unknown until decoded
    gappy = memoryview(_batch(20, [0, 2, 3, 9]))
    (run,) = scan(1, gappy, 21, 100, None)
    assert run.count is None and (run.lo, run.hi) == (21, 30)
    assert run.counted() == 3  # 22, 23, 29


def test_split_keeps_each_side_on_its_own_batches_and_counts_exactly():
    from collectors.kafka.copying import decode, scan

    raw = memoryview(_batch(0, list(range(10))) + _batch(10, list(range(10))))
    (run,) = scan(0, raw, 2, 20, None)
    rest = run.split(5)
    assert (run.lo, run.hi, run.count) == (2, 7, 5)
    assert (rest.lo, rest.hi, rest.count) == (7, 20, 13)
    assert len(run.raw) == len(_batch(0, list(range(10))))  # the second batch is not sent
    assert _offsets(decode(run.raw, run.lo, run.hi)) == list(range(2, 7))
    assert _offsets(decode(rest.raw, rest.lo, rest.hi)) == list(range(7, 20))

    gappy = memoryview(_batch(0, [0, 1, 4, 5, 8, 9, 12]))
    (run,) = scan(0, gappy, 0, 100, None)
    rest = run.split(4)
    assert (run.count, run.hi, rest.count, rest.lo) == (4, 8, 3, 8)
    assert _offsets(decode(run.raw, run.lo, run.hi)) == [0, 1, 4, 5]
    tail = rest.split(1)
    assert _offsets(decode(rest.raw, rest.lo, rest.hi)) == [8]
    assert _offsets(decode(tail.raw, tail.lo, tail.hi)) == [9, 12]


def test_decoder_reuses_a_cut_batch_and_checks_crcs():
    from collectors.kafka.copying import CorruptBatch, Decoder, decode

    raw = memoryview(_batch(100, list(range(50))))
    decoder = Decoder()
    first = decoder(0, raw, 100, 120)
    second = decoder(0, raw, 120, 150)  # the same batch, from where the first step stopped
    assert _offsets(first) + _offsets(second) == list(range(100, 150))
    assert [r.value for r in second] == [r.value for r in decode(raw, 120, 150)]
    assert decoder._cut == {}  # fully used: dropped

    bad = bytearray(raw)
    bad[-1] ^= 0xFF  # a flipped bit in the last record
    with pytest.raises(CorruptBatch):
        decode(memoryview(bad), 100, 150)
    with pytest.raises(CorruptBatch):
        Decoder()(0, memoryview(bad), 100, 150)


def test_transform_copies_every_record_to_its_key_partition():
    from aiokafka.partitioner import murmur2
    from aiokafka.record.default_records import DefaultRecordBatch

    from collectors.kafka.copying import REPLAY_HEADER, CopyPlan, decode, transform

    raws = [memoryview(_batch(0, list(range(40)))), memoryview(_batch(0, list(range(25)), "q"))]
    items = [(0, raws[0], 0, 40), (3, raws[1], 5, 25)]
    originals = {(0, r.offset): r for r in decode(raws[0], 0, 40)}
    originals.update({(3, r.offset): r for r in decode(raws[1], 5, 25)})
    for keep in (None, ((0, 1), (3, 2))):
        plan = CopyPlan("src%d", 3, keep, keep is not None, 1 << 20)
        copies = []
        for d, builder, count in transform(items, plan, 1_234, sticky=2):
            batch = list(DefaultRecordBatch(bytes(builder.build())))
            assert len(batch) == count
            copies += [(d, r) for r in batch]
        assert len(copies) == len(originals)
        for d, copy in copies:
            name, value = copy.headers[-1]
            assert name == REPLAY_HEADER
            _, part, offset = value.decode().rsplit("/", 2)
            original = originals[(int(part), int(offset))]
            assert value.startswith(b"src%d/")  # a % in the topic name is not a format
            assert (copy.key, copy.value) == (original.key, original.value)
            assert copy.headers[:-1] == [("h", str(original.offset).encode())]
            if keep is None:
                assert copy.timestamp == 1_234
                expected = 2 if copy.key is None else (murmur2(copy.key) & 0x7FFFFFFF) % 3
            else:
                assert copy.timestamp == original.timestamp
                expected = dict(keep)[int(part)]
            assert d == expected


def test_prebuilt_batch_takes_the_idempotent_producer_state():
    from aiokafka.record.default_records import DefaultRecordBatch

    from collectors.kafka.copying import CopyPlan, OutBatch, transform

    plan = CopyPlan("src", 1, None, False, 1 << 20)
    ((_, builder, count),) = transform([(0, memoryview(_batch(0, [0, 1, 2])), 0, 3)], plan, 1, 0)
    out = OutBatch(count, buffer=memoryview(bytearray(builder.build())))
    out._set_producer_state(4242, 7, 99)
    batch = DefaultRecordBatch(bytes(out._build()))
    assert batch.validate_crc()
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (4242, 7, 99)
    assert len(list(batch)) == out.record_count() == 3


def test_workers_only_for_large_unfiltered_replays_with_cpu_to_gain(monkeypatch):
    import collectors.kafka.copier as copier_module
    from collectors.base import MoveRequest
    from collectors.kafka.options import KafkaOptions
    from mqtop.kernel.filters import parse_filters

    def count(total: int, batch: int = 5000, cpus: int = 8, loaded: bool = False, **kw: Any):
        monkeypatch.setattr(copier_module, "usable_cpus", lambda: cpus)
        monkeypatch.setattr(copier_module, "busy", lambda n: loaded)
        request = MoveRequest("a.DLT", "a", "replay", **kw)
        copier = copier_module.Copier(
            options=KafkaOptions(name="events"), timeout=1.0, wire=None, request=request,
            group="g", parts=[0], begin={0: 0},
            stops={0: total}, dst_parts=[0], keep_partition=False, keep_timestamp=False,
            batch_size=batch, total=total, progress=lambda p: None,
        )  # fmt: skip
        return copier._worker_count()

    assert count(200_000) == 4
    assert count(200_000, cpus=4) == 3
    assert count(200_000, cpus=2) == 0  # the other CPU is the broker's
    assert count(200_000, cpus=2, loaded=True) == copier_module.BUSY_WORKERS
    assert count(200_000, cpus=1, loaded=True) == 0
    assert count(10_000) == 0  # too small to pay for the workers
    assert count(200_000, batch=20) == 0  # steps too small
    assert count(200_000, dry_run=True) == 0
    assert count(200_000, filter=parse_filters(["header.kind=b"])) == 0


# ---------------------------------------------------------------- replays with workers


@pytest.fixture
def workers_always(monkeypatch):
    """Use worker processes whatever the size of the replay; remember their pids."""
    import collectors.kafka.copier as copier_module
    from collectors.kafka.workers import CopyWorkers

    monkeypatch.setattr(copier_module, "WORKER_MIN_RECORDS", 0)
    monkeypatch.setattr(copier_module, "WORKER_MIN_STEP", 1)
    monkeypatch.setattr(copier_module, "usable_cpus", lambda: 3)
    monkeypatch.setattr(copier_module, "WORKER_MIN_CPUS", 3)
    pids: list[int] = []
    start = CopyWorkers.start

    def spy(self: CopyWorkers) -> None:
        start(self)
        pids.extend(w.pid for w in self.workers)

    monkeypatch.setattr(CopyWorkers, "start", spy)
    return pids


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


async def _dead_letters(kafka: KafkaTool, dlt: str, total: int) -> None:
    futures = []
    for i in range(total):
        futures.append(
            await kafka.producer.send(
                dlt,
                None if i % 97 == 1 and i % 11 else f"payload-{i}".encode() + bytes([i % 256]),
                key=None if i % 11 == 0 else f"key-{i:05d}".encode(),
                partition=i % 3,
                headers=[("id", str(i).encode()), ("bin", bytes([255, i % 256]))],
            )
        )
    await asyncio.gather(*futures)


async def _replay(broker: KafkaBroker, src: str, dst: str, **extra: Any) -> Any:
    from collectors.base import MoveRequest
    from collectors.kafka.actions import KafkaActions
    from collectors.kafka.options import KafkaMoveOptions, KafkaOptions

    actions = KafkaActions(KafkaOptions(name="events", bootstrap_servers=broker.bootstrap))
    request = MoveRequest(src, dst, "replay", options=KafkaMoveOptions(**extra))
    try:
        return await actions.move(request, lambda p: None)
    finally:
        await actions.close()


@pytest.mark.broker
async def test_replay_through_workers_copies_everything_once(
    kafka, kafka_broker, unique, workers_always
):
    from aiokafka.partitioner import murmur2

    prefix = unique("workers") + "-"
    dlt, topic, archive = prefix + "orders.DLT", prefix + "orders", prefix + "archive"
    total = 3000
    await kafka.create({dlt: 3, topic: 3, archive: 3})
    await _dead_letters(kafka, dlt, total)
    originals = {int(dict(r.headers)["id"]): r for r in await kafka.read_all(dlt)}

    result = await _replay(kafka_broker, dlt, topic, batch=400)
    assert (result.moved, result.failed, result.duplicates_possible) == (total, 0, 0)
    assert len(workers_always) == 2
    copies = await kafka.read_all(topic)
    assert Counter(int(dict(c.headers)["id"]) for c in copies) == Counter(range(total))
    for copy in copies:
        original = originals[int(dict(copy.headers)["id"])]
        assert (copy.key, copy.value) == (original.key, original.value)
        assert list(copy.headers)[:-1] == list(original.headers)
        assert dict(copy.headers)["x-mqtop-replay"] == (
            f"{dlt}/{original.partition}/{original.offset}".encode()
        )
        if copy.key is not None:
            assert copy.partition == (murmur2(copy.key) & 0x7FFFFFFF) % 3

    kept = await _replay(
        kafka_broker, dlt, archive, batch=400, keep_partition=True, keep_timestamp=True
    )
    assert kept.moved == total
    for copy in await kafka.read_all(archive):
        original = originals[int(dict(copy.headers)["id"])]
        assert (copy.partition, copy.timestamp) == (original.partition, original.timestamp)
    await asyncio.sleep(0)
    assert all(_gone(pid) for pid in workers_always)  # reaped when the replay ended


@pytest.mark.broker
async def test_a_worker_that_dies_is_replaced_by_the_main_process(
    kafka, kafka_broker, unique, workers_always, monkeypatch
):
    from collectors.kafka.workers import CopyWorkers

    prefix = unique("wdie") + "-"
    dlt, topic = prefix + "orders.DLT", prefix + "orders"
    total = 2000
    await kafka.create({dlt: 3, topic: 3})
    await _dead_letters(kafka, dlt, total)
    submit = CopyWorkers.submit
    jobs = []

    def killing(self: CopyWorkers, *args: Any) -> Any:
        future = submit(self, *args)
        jobs.append(future)
        if len(jobs) == 3:  # with jobs queued on every worker
            for worker in self.workers:
                os.kill(worker.pid, signal.SIGKILL)
        return future

    monkeypatch.setattr(CopyWorkers, "submit", killing)
    result = await _replay(kafka_broker, dlt, topic, batch=200)
    assert (result.moved, result.failed) == (total, 0)
    copies = await kafka.read_all(topic)
    assert Counter(int(dict(c.headers)["id"]) for c in copies) == Counter(range(total))
    assert len(jobs) >= 3


RUNNER = """
import sys
import collectors.kafka.copier as copier
from collectors.kafka.workers import CopyWorkers
copier.WORKER_MIN_RECORDS, copier.WORKER_MIN_STEP = 0, 1
copier.usable_cpus = lambda: 3
copier.WORKER_MIN_CPUS = 3
start = CopyWorkers.start
def spy(self):
    start(self)
    with open(sys.argv[1], "a") as out:
        out.write("".join(f"{w.pid}\\n" for w in self.workers))
CopyWorkers.start = spy
from mqtop.cli import main
raise SystemExit(main(sys.argv[2:]))
"""


@pytest.mark.broker
@pytest.mark.slow
async def test_sigkill_mid_replay_with_workers_loses_nothing_and_leaves_no_worker(
    kafka, kafka_broker, write_config, run_cli, unique, tmp_path
):
    from aiokafka import AIOKafkaConsumer, TopicPartition

    prefix = unique("wkill") + "-"
    topic, dlt = prefix + "orders", prefix + "orders.DLT"
    total, batch = 30_000, 400
    await kafka.create({topic: 3, dlt: 3})
    await _dead_letters(kafka, dlt, total)
    path = write_config(
        f"""
        brokers:
          - {{name: events, type: kafka, bootstrap_servers: "{kafka_broker.bootstrap}"}}
        """
    )
    args = ["dlq", "replay", "events", dlt, "--yes", "--batch", str(batch), "--format", "json",
            "--config", str(path)]  # fmt: skip
    pid_file = tmp_path / "workers.txt"
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "PYTHONPATH": str(ROOT)}
    env.pop("MQTOP_CONFIG", None)
    watcher = AIOKafkaConsumer(bootstrap_servers=kafka_broker.bootstrap)
    await watcher.start()
    proc = subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(pid_file), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )
    try:
        tps = [TopicPartition(topic, p) for p in range(3)]
        deadline = time.monotonic() + 120
        while sum((await watcher.end_offsets(tps)).values()) < total // 4:
            if proc.poll() is not None:
                pytest.fail(f"the replay finished before it was killed: {proc.stderr.read()!r}")
            assert time.monotonic() < deadline, "the replay never started"
            await asyncio.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        await asyncio.to_thread(proc.wait, 10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        await watcher.stop()

    workers = [int(line) for line in pid_file.read_text().split()]
    assert len(workers) == 2
    deadline = time.monotonic() + 10
    while not all(_gone(pid) for pid in workers):  # they die with the main process
        assert time.monotonic() < deadline, "a copy worker outlived the killed replay"
        await asyncio.sleep(0.05)

    group = f"mqtop-replay.{dlt}>{topic}"
    progress = {p: o for (t, p), o in (await kafka.committed(group)).items() if t == dlt}
    originals = {int(dict(r.headers)["id"]): r for r in await kafka.read_all(dlt)}
    copied = Counter(int(dict(r.headers)["id"]) for r in await kafka.read_all(topic))
    assert 0 < sum(copied.values()) < total
    for i, original in originals.items():
        if original.offset < progress.get(original.partition, 0):
            assert copied[i] >= 1, f"record {i} lost"

    result = await run_cli_async(run_cli, *args)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["failed"] == 0 and doc["moved"] == total - sum(progress.values())
    final = await kafka.read_all(topic)
    counts = Counter(int(dict(r.headers)["id"]) for r in final)
    assert set(counts) == set(range(total)), "a record is missing"
    duplicates = len(final) - total
    assert duplicates <= doc["duplicates_possible"] <= batch


async def _in_big_batches(kafka: KafkaTool, dlt: str, total: int) -> None:
    """Dead letters written as a few large record batches (a step cuts through them)."""
    futures = []
    for p in range(3):
        batch = kafka.producer.create_batch()
        for i in range(p, total, 3):
            kind = b"b" if i % 3 == 0 or i % 7 == 0 else b"a"
            appended = batch.append(
                key=f"key-{i}".encode(),
                value=f"v{i}".encode(),
                timestamp=None,
                headers=[("id", str(i).encode()), ("kind", kind)],
            )
            if appended is None:
                batch.close()
                futures.append(await kafka.producer.send_batch(batch, dlt, partition=p))
                batch = kafka.producer.create_batch()
                batch.append(
                    key=f"key-{i}".encode(),
                    value=f"v{i}".encode(),
                    timestamp=None,
                    headers=[("id", str(i).encode()), ("kind", kind)],
                )
        batch.close()
        futures.append(await kafka.producer.send_batch(batch, dlt, partition=p))
    await asyncio.gather(*futures)


@pytest.mark.broker
async def test_small_steps_through_large_batches_with_filter_and_limit(kafka, kafka_broker, unique):
    """Steps of 25 records cut batches of hundreds: every record is copied once, the filter
    and the limit see each record once, and the progress resumes where the limit stopped."""
    from mqtop.kernel.filters import parse_filters

    prefix = unique("cut") + "-"
    dlt, topic, other = prefix + "orders.DLT", prefix + "orders", prefix + "other"
    total = 3000
    await kafka.create({dlt: 3, topic: 3, other: 2})
    await _in_big_batches(kafka, dlt, total)
    wanted = [i for i in range(total) if i % 3 == 0 or i % 7 == 0]

    result = await _replay(kafka_broker, dlt, topic, batch=50)
    assert (result.moved, result.failed, result.duplicates_possible) == (total, 0, 0)
    copies = await kafka.read_all(topic)
    assert Counter(int(dict(c.headers)["id"]) for c in copies) == Counter(range(total))

    from collectors.base import MoveRequest
    from collectors.kafka.actions import KafkaActions
    from collectors.kafka.options import KafkaMoveOptions, KafkaOptions

    kinds = parse_filters(["header.kind=b"])

    async def filtered(limit: int | None) -> Any:
        actions = KafkaActions(
            KafkaOptions(name="events", bootstrap_servers=kafka_broker.bootstrap)
        )
        try:
            request = MoveRequest(
                dlt, other, "replay", limit, kinds, options=KafkaMoveOptions(batch=50)
            )
            return await actions.move(request, lambda p: None)
        finally:
            await actions.close()

    first = await filtered(100)
    assert first.moved == 100
    rest = await filtered(None)
    assert rest.moved == len(wanted) - 100
    assert first.skipped + rest.skipped == total - len(wanted)
    copies = await kafka.read_all(other)
    assert sorted(int(dict(c.headers)["id"]) for c in copies) == wanted


@pytest.mark.broker
async def test_compressed_dead_letters_are_copied(kafka, kafka_broker, unique):
    """gzip batches: counted from their headers, cut by steps, decoded where they are copied."""
    from aiokafka import AIOKafkaProducer

    prefix = unique("gzip") + "-"
    dlt, topic = prefix + "orders.DLT", prefix + "orders"
    total = 1500
    await kafka.create({dlt: 2, topic: 2})
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_broker.bootstrap, compression_type="gzip", linger_ms=20
    )
    await producer.start()
    try:
        futures = [
            await producer.send(
                dlt, f"value-{i}".encode() * 3, key=f"k{i}".encode(), partition=i % 2,
                headers=[("id", str(i).encode())],
            )
            for i in range(total)
        ]  # fmt: skip
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    result = await _replay(kafka_broker, dlt, topic, batch=90)
    assert (result.moved, result.failed) == (total, 0)
    copies = await kafka.read_all(topic)
    assert Counter(int(dict(c.headers)["id"]) for c in copies) == Counter(range(total))
    for copy in copies:
        assert copy.value == f"value-{int(dict(copy.headers)['id'])}".encode() * 3
