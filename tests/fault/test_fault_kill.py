"""Fault injection: `mqtop dlq replay|move` SIGKILLed at random points, on every broker.

Each broker gets three kill points drawn from a seeded generator (the seed is printed; set
MQTOP_FAULT_SEED to replay a failure). Each round fills a source, starts the CLI as a real
subprocess, watches the destination grow on the broker itself and SIGKILLs the process once
it passes the drawn point (plus a drawn few milliseconds, so the kill lands anywhere inside a
batch). Then, against the broker's own contents:

* nothing is lost: every message id is in the source or the destination;
* duplicates (ids in both places) are bounded by one window of the mover;
* the next run finishes the job and reports ``duplicates_possible`` covering them.

Volumes are small (thousands) so the whole file stays within about a minute and a half.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pika
import pytest
import redis

from tests.conftest import ROOT
from tests.harness import KafkaBroker, RabbitBroker, RedisBroker, SqsBroker, visible_bodies
from tests.support.rabbit import ready_ids
from tests.support.reports import move_report

pytestmark = [pytest.mark.broker, pytest.mark.slow]

SEED = int(os.environ.get("MQTOP_FAULT_SEED") or random.SystemRandom().randrange(2**32))
ROUNDS = 3


def rounds_for(broker: str, low: float = 0.05, high: float = 0.6) -> list[tuple[float, float]]:
    """Three (fraction of the volume, extra delay in seconds) kill points for one broker."""
    rng = random.Random(f"{SEED}:{broker}")
    points = [(rng.uniform(low, high), rng.uniform(0.0, 0.02)) for _ in range(ROUNDS)]
    print(
        f"fault seed {SEED} ({broker}; replay with MQTOP_FAULT_SEED={SEED}): kill points "
        + ", ".join(f"{f:.0%}+{d * 1000:.0f}ms" for f, d in points)
    )
    return points


class Cli:
    """`python -m mqtop` subprocesses sharing one state directory (journals, audit log)."""

    def __init__(self, tmp_path: Path) -> None:
        self.cwd = tmp_path
        self.env = {
            **os.environ,
            "XDG_STATE_HOME": str(tmp_path / "state"),
            "XDG_CONFIG_HOME": str(tmp_path / "config-home"),
            "PYTHONPATH": str(ROOT),
        }
        self.env.pop("MQTOP_CONFIG", None)

    def start(self, args: list[str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "mqtop", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env,
            cwd=self.cwd,
        )

    def finish(self, args: list[str], timeout: float = 180) -> dict[str, Any]:
        """Run to completion; the JSON report (exit 0 required)."""
        done = subprocess.run(
            [sys.executable, "-m", "mqtop", *args],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.cwd,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, f"seed {SEED}: rerun failed: {done.stderr[-2000:]}"
        assert "Traceback" not in done.stderr
        report: dict[str, Any] = move_report(done)
        return report


def kill_at(
    proc: subprocess.Popen[bytes],
    progress: Callable[[], int],
    target: int,
    delay: float,
    what: str,
    timeout: float = 120,
) -> int:
    """SIGKILL ``proc`` once ``progress()`` reaches ``target`` (then ``delay`` more seconds).

    Returns the progress seen right after the kill. Fails when the process ended first."""
    deadline = time.monotonic() + timeout
    try:
        while True:
            if progress() >= target:
                if delay:
                    time.sleep(delay)
                break
            if proc.poll() is not None:
                _, err = proc.communicate()
                pytest.fail(
                    f"seed {SEED}: {what}: the run ended (exit {proc.returncode}) before the "
                    f"kill point {target}: {err.decode(errors='replace')[-1000:]}"
                )
            assert time.monotonic() < deadline, f"seed {SEED}: {what}: never reached {target}"
            time.sleep(0.002)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert proc.returncode == -signal.SIGKILL, f"seed {SEED}: {what}: not killed mid-run"
    return progress()


# ---------------------------------------------------------------- Redis


def _redis_round(
    client: redis.Redis,
    cli: Cli,
    config: Path,
    prefix: str,
    kind: str,
    fraction: float,
    delay: float,
) -> str:
    total = 20_000 if kind == "list" else 10_000
    src, dst = prefix + ":dead", prefix + ":work"
    items = [f"{i:06d}".encode() + b"\x00\xff\x1b[2J" * (i % 3) for i in range(total)]
    pipe = client.pipeline(transaction=False)
    if kind == "list":  # producers LPUSH, consumers (and the mover) take from the right
        for at in range(0, total, 2000):
            pipe.lpush(src, *items[at : at + 2000])
    else:
        for item in items:
            pipe.xadd(src, {"body": item})
    pipe.execute()
    length = client.llen if kind == "list" else client.xlen
    args = ["dlq", "move", "cache", src, dst, "--yes", "--batch", "5", "--format", "json",
            "--config", str(config)]  # fmt: skip
    proc = cli.start(args)
    target = max(1, int(total * fraction))
    kill_at(proc, lambda: int(length(dst)), target, delay, f"redis {kind}")

    def contents(key: str) -> list[bytes]:
        """Oldest first."""
        if kind == "list":
            return list(client.lrange(key, 0, -1))[::-1]
        return [fields[b"body"] for _, fields in client.xrange(key)]

    in_src, in_dst = contents(src), contents(dst)
    assert 0 < len(in_dst) < total, f"seed {SEED}: redis {kind}: the kill did not land mid-move"
    # atomic per item (one script moves and removes): no loss and no duplicate at any instant
    assert Counter(in_src) + Counter(in_dst) == Counter(items), f"seed {SEED}: redis {kind}"
    assert in_dst + in_src == items, f"seed {SEED}: redis {kind}: order changed"

    report = cli.finish(args)
    assert report["moved"] == len(in_src) and report["failed"] == 0
    assert report["duplicates_possible"] == 0
    assert length(src) == 0 and contents(dst) == items
    client.delete(src, dst)
    return f"{kind}: killed at {len(in_dst)}/{total}, rerun moved {report['moved']}"


def test_redis_killed_at_random_points(redis_broker: RedisBroker, write_config, unique, tmp_path):
    client = redis.Redis(host=redis_broker.host, port=redis_broker.port)
    config = write_config(
        f"""
        brokers:
          - {{name: cache, type: redis, url: "{redis_broker.url}", lists: [], streams: []}}
        """
    )
    cli = Cli(tmp_path)
    notes = []
    prefixes = [unique(f"fk{n}") for n in range(ROUNDS)]
    try:
        for n, (fraction, delay) in enumerate(rounds_for("redis")):
            kind = "stream" if n == 1 else "list"
            notes.append(_redis_round(client, cli, config, prefixes[n], kind, fraction, delay))
    finally:
        for prefix in prefixes:
            client.delete(prefix + ":dead", prefix + ":work")
        client.close()
    print("; ".join(notes))


# ---------------------------------------------------------------- RabbitMQ

RABBIT_WINDOW = 150


def _rabbit_connect(broker: RabbitBroker) -> pika.BlockingConnection:
    return pika.BlockingConnection(
        pika.ConnectionParameters(
            host=broker.host,
            port=broker.amqp_port,
            credentials=pika.PlainCredentials(broker.user, broker.password),
        )
    )


def _rabbit_ids(broker: RabbitBroker, queue: str) -> list[str]:
    """message_id of every ready message, read without consuming (requeued on close)."""
    conn = _rabbit_connect(broker)
    try:
        return ready_ids(conn, queue)
    finally:
        conn.close()


def test_rabbitmq_killed_at_random_points(
    rabbitmq_broker: RabbitBroker, write_config, unique, tmp_path
):
    total = 8000
    broker = rabbitmq_broker
    config = write_config(
        f"""
        brokers:
          - name: rabbit
            type: rabbitmq
            url: "{broker.amqp_url}"
            management_url: "{broker.management_url}"
        """
    )
    cli = Cli(tmp_path)
    conn = _rabbit_connect(broker)
    channel = conn.channel()
    created: list[str] = []
    notes = []
    try:
        for n, (fraction, delay) in enumerate(rounds_for("rabbitmq")):
            src, dst = unique(f"fk{n}") + ".dlq", unique(f"fk{n}") + ".work"
            for queue in (src, dst):
                channel.queue_declare(queue, durable=True)
                created.append(queue)
            expected = {f"r{n}-{i:05d}" for i in range(total)}
            for ident in sorted(expected):
                channel.basic_publish(
                    "", src, b"m" * 256, pika.BasicProperties(message_id=ident, delivery_mode=2)
                )
            deadline = time.monotonic() + 60
            while channel.queue_declare(src, passive=True).method.message_count < total:
                assert time.monotonic() < deadline, "source not filled"
                time.sleep(0.05)

            args = ["dlq", "move", "rabbit", src, dst, "--yes", "--batch", str(RABBIT_WINDOW),
                    "--format", "json", "--config", str(config)]  # fmt: skip
            proc = cli.start(args)
            target = max(1, int(total * fraction))

            def moved(dst: str = dst) -> int:
                return int(channel.queue_declare(dst, passive=True).method.message_count)

            kill_at(proc, moved, target, delay, "rabbitmq")

            # the broker requeues what the killed mover had not acknowledged
            deadline = time.monotonic() + 30
            while True:
                state = channel.queue_declare(src, passive=True).method
                if state.consumer_count == 0 and state.message_count + moved() >= total:
                    break
                assert time.monotonic() < deadline, f"seed {SEED}: requeue after the kill"
                time.sleep(0.05)
            in_src, in_dst = _rabbit_ids(broker, src), _rabbit_ids(broker, dst)
            assert 0 < len(in_dst) < total, f"seed {SEED}: rabbitmq: kill did not land mid-move"
            assert set(in_src) | set(in_dst) == expected, f"seed {SEED}: rabbitmq: lost messages"
            duplicates = len(set(in_src) & set(in_dst))
            assert duplicates <= RABBIT_WINDOW, f"seed {SEED}: {duplicates} duplicates"
            assert len(in_src) == len(set(in_src)) and len(in_dst) == len(set(in_dst))

            report = cli.finish(args)
            assert report["moved"] == len(in_src) and report["failed"] == 0
            assert duplicates <= report["duplicates_possible"] <= RABBIT_WINDOW, (SEED, report)
            assert any("interrupted" in note for note in report.get("notes", [])), report
            assert channel.queue_declare(src, passive=True).method.message_count == 0
            final = Counter(_rabbit_ids(broker, dst))
            assert set(final) == expected and sum(final.values()) == total + duplicates
            notes.append(
                f"killed at {len(in_dst)}/{total} ({duplicates} in both), rerun moved "
                f"{report['moved']}, reported duplicates_possible {report['duplicates_possible']}"
            )
            for queue in (src, dst):
                channel.queue_delete(queue)
    finally:
        for queue in created:
            try:
                channel.queue_delete(queue)
            except Exception:
                channel = conn.channel()
        conn.close()
    print("; ".join(notes))


# ---------------------------------------------------------------- Kafka

KAFKA_BATCH = 20


async def test_kafka_killed_at_random_points(
    kafka_broker: KafkaBroker, write_config, unique, tmp_path
):
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from tests.support.kafka import KafkaTool

    total = 6000
    tool = KafkaTool(kafka_broker.bootstrap)
    await tool.start()
    prefix = unique("fk") + "-"
    dlt = prefix + "orders.DLT"
    destinations = [f"{prefix}orders-{n}" for n in range(ROUNDS)]
    watcher = AIOKafkaConsumer(bootstrap_servers=kafka_broker.bootstrap)
    notes = []
    try:
        await tool.create({dlt: 3, **dict.fromkeys(destinations, 3)})
        futures = [
            await tool.producer.send(
                dlt,
                f"payload-{i}".encode() + bytes([i % 256]),
                key=f"key-{i:05d}".encode(),
                partition=i % 3,
                headers=[("id", str(i).encode())],
            )
            for i in range(total)
        ]
        await asyncio.gather(*futures)
        config = write_config(
            f"""
            brokers:
              - {{name: events, type: kafka, bootstrap_servers: "{kafka_broker.bootstrap}"}}
            """
        )
        cli = Cli(tmp_path)
        await watcher.start()
        for dst, (fraction, delay) in zip(destinations, rounds_for("kafka"), strict=True):
            args = ["dlq", "replay", "events", dlt, "--to", dst, "--yes", "--batch",
                    str(KAFKA_BATCH), "--format", "json", "--config", str(config)]  # fmt: skip
            tps = [TopicPartition(dst, p) for p in range(3)]
            loop = asyncio.get_running_loop()

            def written(tps: list[TopicPartition] = tps) -> int:
                ends = asyncio.run_coroutine_threadsafe(watcher.end_offsets(tps), loop)
                return int(sum(ends.result(30).values()))

            proc = cli.start(args)
            target = max(1, int(total * fraction))
            await asyncio.to_thread(kill_at, proc, written, target, delay, "kafka")

            group = f"mqtop-replay.{dlt}>{dst}"
            progress = {p: o for (t, p), o in (await tool.committed(group)).items() if t == dlt}
            copied = await tool.read_all(dst)
            assert 0 < len(copied) < total, f"seed {SEED}: kafka: kill did not land mid-replay"
            copied_ids = Counter(int(dict(r.headers)["id"]) for r in copied)
            # everything before the saved progress is in the destination; the rest is still
            # in the DLT (a replay never deletes from it)
            for i in range(total):
                partition, offset = i % 3, i // 3
                if offset < progress.get(partition, 0):
                    assert copied_ids[i] >= 1, f"seed {SEED}: kafka: record {i} lost"

            report = await asyncio.to_thread(cli.finish, args)
            assert report["failed"] == 0
            assert report["moved"] == total - sum(progress.values())
            final = await tool.read_all(dst)
            counts = Counter(int(dict(r.headers)["id"]) for r in final)
            assert set(counts) == set(range(total)), f"seed {SEED}: kafka: a record is missing"
            duplicates = len(final) - total
            assert duplicates <= report["duplicates_possible"] <= KAFKA_BATCH, (SEED, report)
            notes.append(
                f"killed at {len(copied)}/{total} (progress {sum(progress.values())}), rerun "
                f"moved {report['moved']}, {duplicates} duplicate(s), reported "
                f"{report['duplicates_possible']}"
            )
    finally:
        await watcher.stop()
        await tool.stop()
    print("; ".join(notes))


# ---------------------------------------------------------------- SQS

SQS_IN_FLIGHT = 4 * 10  # move_workers (4) x batch (10): received and not yet deleted


def _sqs_bodies(client: Any, url: str) -> list[str]:
    """Every body of a queue, read without consuming (made visible again at the end)."""
    return visible_bodies(client, url, visibility=60, wait=0)


def _sqs_counts(client: Any, url: str) -> tuple[int, int]:
    raw = client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(raw["ApproximateNumberOfMessages"]), int(
        raw["ApproximateNumberOfMessagesNotVisible"]
    )


@pytest.fixture(scope="module")
def sqs_endpoint(sqs_broker: SqsBroker) -> Iterator[SqsBroker]:
    """The configured SQS endpoint, else a private moto with its slow clock helper replaced
    (see tests/brokers/sqs/test_sqs_kill.py: same SQS implementation, minutes faster at volume)."""
    if os.environ.get("MQTOP_TEST_SQS_ENDPOINT"):
        yield sqs_broker
        return
    from tests.support.sqs import start_fast_moto

    broker = start_fast_moto()
    yield broker
    broker.stop()


def test_sqs_killed_at_random_points(sqs_endpoint: SqsBroker, write_config, unique, tmp_path):
    total = 400
    visibility = 3
    client = sqs_endpoint.client()
    config = write_config(
        f"""
        brokers:
          - name: aws
            type: sqs
            region: us-east-1
            endpoint_url: "{sqs_endpoint.endpoint_url}"
            access_key_id: testing
            secret_access_key: testing
            native_move: false
            move_visibility_timeout: {visibility}s
        """
    )
    cli = Cli(tmp_path)
    urls: list[str] = []
    notes = []
    try:
        for n, (fraction, delay) in enumerate(rounds_for("sqs")):
            src_name, dst_name = unique(f"fk{n}") + "-dlq", unique(f"fk{n}") + "-work"
            src = client.create_queue(QueueName=src_name)["QueueUrl"]
            dst = client.create_queue(QueueName=dst_name)["QueueUrl"]
            urls += [src, dst]
            expected = [f"s{n}-{i:05d}:" + "p" * 100 for i in range(total)]
            for at in range(0, total, 10):
                client.send_message_batch(
                    QueueUrl=src,
                    Entries=[
                        {"Id": str(j), "MessageBody": body}
                        for j, body in enumerate(expected[at : at + 10])
                    ],
                )
            args = ["dlq", "move", "aws", src_name, dst_name, "--yes", "--format", "json",
                    "--config", str(config)]  # fmt: skip
            proc = cli.start(args)
            target = max(1, int(total * fraction))
            kill_at(proc, lambda dst=dst: _sqs_counts(client, dst)[0], target, delay, "sqs")

            # after the killed run's visibility timeout every message is visible somewhere
            deadline = time.monotonic() + visibility + 30
            time.sleep(visibility)
            while _sqs_counts(client, src)[1] or _sqs_counts(client, dst)[1]:
                assert time.monotonic() < deadline, f"seed {SEED}: sqs: messages stay invisible"
                time.sleep(0.2)
            in_src, in_dst = _sqs_bodies(client, src), _sqs_bodies(client, dst)
            assert 0 < len(in_dst) < total, f"seed {SEED}: sqs: the kill did not land mid-move"
            assert set(in_src) | set(in_dst) == set(expected), f"seed {SEED}: sqs: lost messages"
            duplicates = len(in_src) + len(in_dst) - total
            assert 0 <= duplicates <= SQS_IN_FLIGHT, f"seed {SEED}: {duplicates} duplicates"

            report = cli.finish(args)
            assert report["failed"] == 0 and report["moved"] == len(in_src)
            assert _sqs_counts(client, src) == (0, 0)
            final = _sqs_bodies(client, dst)
            assert set(final) == set(expected) and len(final) == total + duplicates
            assert duplicates <= report["duplicates_possible"] <= SQS_IN_FLIGHT, (SEED, report)
            notes.append(
                f"killed at {len(in_dst)}/{total} ({duplicates} in both), rerun moved "
                f"{report['moved']}, reported duplicates_possible {report['duplicates_possible']}"
            )
    finally:
        for url in urls:
            try:
                client.delete_queue(QueueUrl=url)
            except Exception:
                pass
    print("; ".join(notes))
