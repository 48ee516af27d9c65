"""SIGKILL in the middle of a Kafka DLT replay: nothing is lost, duplicates are bounded and
reported, and a rerun finishes the job.

The CLI runs as a real subprocess; the test watches the destination's end offsets and kills the
process part-way, then checks every record against Kafka's own contents.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.support.kafka import run_cli_async
from tests.support.reports import move_report

pytestmark = [pytest.mark.broker, pytest.mark.slow]

TOTAL = 10_000
BATCH = 20


def _start(args: list[str], tmp_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "PYTHONPATH": str(ROOT)}
    env.pop("MQTOP_CONFIG", None)
    return subprocess.Popen(
        [sys.executable, "-m", "mqtop", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )


async def test_sigkill_mid_replay_of_10000_records(
    kafka, kafka_broker, write_config, run_cli, unique, tmp_path
):
    from aiokafka import AIOKafkaConsumer, TopicPartition

    prefix = unique("kill") + "-"
    topic, dlt = prefix + "orders", prefix + "orders.DLT"
    await kafka.create({topic: 3, dlt: 3})
    for i in range(TOTAL):
        await kafka.producer.send(
            dlt,
            f"payload-{i}".encode() + bytes([i % 256]),
            key=f"key-{i:05d}".encode(),
            partition=i % 3,
            headers=[
                ("kafka_dlt-original-topic", topic.encode()),
                ("id", str(i).encode()),
                ("bin", bytes([255, i % 256])),
            ],
        )
    await kafka.producer.flush()
    path = write_config(
        f"""
        brokers:
          - {{name: events, type: kafka, bootstrap_servers: "{kafka_broker.bootstrap}"}}
        """
    )
    args = ["dlq", "replay", "events", dlt, "--yes", "--batch", str(BATCH), "--format", "json",
            "--config", str(path)]  # fmt: skip

    watcher = AIOKafkaConsumer(bootstrap_servers=kafka_broker.bootstrap)
    await watcher.start()
    proc = _start(args, tmp_path)
    try:
        tps = [TopicPartition(topic, p) for p in range(3)]
        deadline = time.monotonic() + 120
        while True:
            written = sum((await watcher.end_offsets(tps)).values())
            if written >= 1500:
                os.kill(proc.pid, signal.SIGKILL)
                break
            if proc.poll() is not None:
                pytest.fail(f"the replay finished before it was killed: {proc.stderr.read()!r}")
            assert time.monotonic() < deadline, "the replay never started"
            await asyncio.sleep(0.005)
        await asyncio.to_thread(proc.wait, 10)
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        await watcher.stop()

    # at the crash: every record before the saved progress is in the destination
    group = f"mqtop-replay.{dlt}>{topic}"
    progress = {p: o for (t, p), o in (await kafka.committed(group)).items() if t == dlt}
    originals = {int(dict(r.headers)["id"]): r for r in await kafka.read_all(dlt)}
    assert len(originals) == TOTAL
    copied = await kafka.read_all(topic)
    assert 0 < len(copied) < TOTAL
    copied_ids = Counter(int(dict(r.headers)["id"]) for r in copied)
    for i, original in originals.items():
        if original.offset < progress.get(original.partition, 0):
            assert copied_ids[i] >= 1, f"record {i} lost"

    result = await run_cli_async(run_cli, *args)
    assert result.returncode == 0, result.stderr
    doc = move_report(result)
    assert doc["failed"] == 0
    assert doc["moved"] == TOTAL - sum(progress.values())
    assert any("may be delivered twice" in n for n in doc.get("notes", [])) == (
        doc["duplicates_possible"] > 0
    )

    final = await kafka.read_all(topic)
    counts = Counter(int(dict(r.headers)["id"]) for r in final)
    assert set(counts) == set(range(TOTAL)), "a record is missing"
    duplicates = len(final) - TOTAL
    assert duplicates == sum(n - 1 for n in counts.values())
    assert duplicates <= doc["duplicates_possible"] <= BATCH
    for record in final:
        original = originals[int(dict(record.headers)["id"])]
        assert record.key == original.key and record.value == original.value
        assert list(record.headers)[:-1] == list(original.headers)
        assert dict(record.headers)["x-mqtop-replay"] == (
            f"{dlt}/{original.partition}/{original.offset}".encode()
        )
