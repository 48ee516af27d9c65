"""Black-box contract audit: the real CLI against every kind of real broker (Redis, RabbitMQ,
Kafka, SQS, ActiveMQ Artemis and Classic), checked against
SPEC.md to the letter (command names, JSON keys, metric names, Prometheus names and labels,
exit codes, readonly refusal, confirmation, audit log).

One config holds the six brokers. Every expected number is read back from the broker itself
(LLEN, passive queue.declare, end offsets, GetQueueAttributes), never hard-coded. Commands
that do not depend on each other run concurrently (each CLI run mostly waits on a poll
interval), which keeps the module well under a minute on two cores.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import os
import pty
import re
import select
import subprocess
import sys
import textwrap
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.harness import KafkaBroker, RabbitBroker, RedisBroker, SqsBroker, free_port
from tests.support.activemq import ActiveMQBroker, wait_count
from tests.support.reports import move_report

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[2]

# SPEC §3 (metric names), §5 (JSON keys), §7 (audit log fields): the contract, spelled out
METRICS = {
    "queue_length",
    "in_flight",
    "publish_rate",
    "processing_rate",
    "error_rate",
    "latency_seconds",
    "consumer_lag_messages",
    "consumer_lag_seconds",
    "consumers",
    "dlq_length",
    "group_status",
    "dlq_inflow_rate",
}
BROKER_KEYS = {"name", "type", "up", "error"}
SERIES_KEYS = {"broker", "queue", "group", "kind", "dlq", "metrics"}
STATUS_NAMES = ["OK", "WARN", "STALL", "STOP", "ERROR"]
CHECK_KEYS = {"status", "alerts", "errors"}
ALERT_KEYS = {
    "rule",
    "severity",
    "state",
    "broker",
    "queue",
    "group",
    "value",
    "threshold",
    "summary",
}
# added to SPEC §5's alert: when a firing alert whose condition is false resolves (null unless
# held by flap damping or resolve_after)
ALERT_EXTRA = {"held_until"}
PEEK_KEYS = {"id", "body", "body_encoding", "size", "headers", "properties", "death"}
PEEK_OPTIONAL = {"truncated", "headers_truncated"}  # only when --max-body cut something
DEATH_KEYS = {"reason", "count", "original_queue"}
MOVE_KEYS = {
    "source",
    "destination",
    "moved",
    "failed",
    "skipped",
    "dry_run",
    "duplicates_possible",
}
AUDIT_KEYS = {"time", "user", "broker", "action", "source", "destination", "count", "result"}
AUDIT_OPTIONAL = {"details", "via"}
QUEUE_KEYS = {"broker", "queue", "group", "kind", "dlq"}

Run = subprocess.CompletedProcess[str]


# ---------------------------------------------------------------- running the CLI


class Cli:
    """``python -m mqtop`` in subprocesses with an isolated state directory."""

    def __init__(self, home: Path) -> None:
        self.home = home

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "XDG_STATE_HOME": str(self.home / "state"),
            "XDG_CONFIG_HOME": str(self.home / "config-home"),
            "PYTHONPATH": str(ROOT),
        }
        env.pop("MQTOP_CONFIG", None)
        env.pop("MQTOP_DEBUG", None)
        return env

    def __call__(self, *args: str, timeout: float = 120) -> Run:
        return subprocess.run(
            [sys.executable, "-m", "mqtop", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(),
            cwd=self.home,
            stdin=subprocess.DEVNULL,  # no terminal: confirmations must not hang
            check=False,
        )

    def many(self, *argvs: Sequence[str]) -> list[Run]:
        """Run independent commands at the same time; results in order."""
        with ThreadPoolExecutor(len(argvs)) as pool:
            return list(pool.map(lambda argv: self(*argv), argvs))

    def tty(self, *args: str, answer: str, timeout: float = 60) -> tuple[int, str]:
        """Run with a pseudo-terminal as stdin/stderr; type ``answer`` at the prompt."""
        controller, terminal = pty.openpty()
        proc = subprocess.Popen(
            [sys.executable, "-m", "mqtop", *args],
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=terminal,
            env=self.env(),
            cwd=self.home,
        )
        os.close(terminal)
        seen = b""
        answered = False
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([controller], [], [], 0.2)
                if ready:
                    try:
                        chunk = os.read(controller, 4096)
                    except OSError:
                        break
                    if not chunk:
                        break
                    seen += chunk
                if not answered and b"[y/N]" in seen:
                    os.write(controller, answer.encode() + b"\n")
                    answered = True
                if proc.poll() is not None and not ready:
                    break
            code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            os.close(controller)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        assert answered, seen.decode(errors="replace")
        return code, seen.decode(errors="replace")


def ok_json(result: Run, code: int = 0) -> Any:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    return json.loads(result.stdout)


def one_line_error(result: Run, code: int) -> str:
    """A usage/config/broker error: the exit code, one line on stderr, nothing on stdout."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if not line.startswith("note: ")]
    assert len(lines) == 1, result.stderr
    assert result.stdout == "", result.stdout
    return lines[0]


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# ---------------------------------------------------------------- the brokers, test side


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@dataclass
class World:
    """Everything this module created on the four brokers, and how to read it back."""

    prefix: str
    redis: RedisBroker
    rabbit: RabbitBroker
    kafka: KafkaBroker
    sqs: SqsBroker
    artemis: ActiveMQBroker
    classic: ActiveMQBroker
    keys: list[str] = field(default_factory=list)
    rabbit_queues: list[str] = field(default_factory=list)
    rabbit_exchanges: list[str] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)
    sqs_urls: list[str] = field(default_factory=list)
    amq_queues: list[tuple[ActiveMQBroker, str]] = field(default_factory=list)

    # -- clients
    def r(self) -> Any:
        import redis

        return redis.Redis(host=self.redis.host, port=self.redis.port)

    def amqp(self) -> Any:
        import pika

        return pika.BlockingConnection(pika.URLParameters(self.rabbit.amqp_url))

    def sqs_client(self) -> Any:
        return self.sqs.client()

    # -- config
    def config(self, *, readonly: bool = False, alerts: str = "", audit: Path | None) -> str:
        ro = "true" if readonly else "false"
        p = self.prefix
        audit_line = f"audit_log: {json.dumps(str(audit))}" if audit else ""
        # secrets are given explicitly so the masking check has something to find
        return textwrap.dedent(
            f"""
            interval: 500ms
            timeout: 10s
            {audit_line}
            brokers:
              - name: cache
                type: redis
                url: "{self.redis.url}"
                lists: ["{p}:*"]
                streams: ["{p}:*"]
                readonly: {ro}
              - name: rabbit
                type: rabbitmq
                url: "{self.rabbit.amqp_url}"
                management_url: "{self.rabbit.management_url}"
                include: ["{p}.*"]
                readonly: {ro}
              - name: events
                type: kafka
                bootstrap_servers: "{self.kafka.bootstrap}"
                topics: ["{p}.*"]
                groups: ["{p}*"]
                readonly: {ro}
              - name: aws
                type: sqs
                endpoint_url: "{self.sqs.endpoint_url}"
                region: {self.sqs.region}
                access_key_id: testing
                secret_access_key: contractS3cretKey
                queue_name_prefix: "{p}"
                readonly: {ro}
              - name: amq
                type: activemq
                jolokia_url: "{self.artemis.jolokia_url}"
                user: {self.artemis.user}
                password: "{self.artemis.password}"
                browse_url: "{self.artemis.browse_url}"
                include: ["{p}*", "mqtop.DLA/DLQ.{p}*"]
                readonly: {ro}
              - name: amqc
                type: activemq
                jolokia_url: "{self.classic.jolokia_url}"
                user: {self.classic.user}
                password: "{self.classic.password}"
                browse_url: "{self.classic.browse_url}"
                include: ["ind.{p}*", "DLQ.ind.{p}*"]
                readonly: {ro}
            """
        ) + textwrap.dedent(alerts)

    # -- Redis
    def redis_list(self, key: str, items: Sequence[bytes]) -> None:
        self.keys.append(key)
        client = self.r()
        client.delete(key)
        if items:
            # LPUSH: consumers pop from the right, so items[0] is the next to be consumed
            client.lpush(key, *items)

    def redis_items(self, key: str) -> list[bytes]:
        """Items in consumption order (right end first)."""
        return list(reversed(self.r().lrange(key, 0, -1)))

    # -- RabbitMQ
    def rabbit_dlq(self, source: str, dlq: str, bodies: Sequence[bytes]) -> None:
        """A source queue whose rejected messages are dead-lettered (x-death) into dlq."""
        import pika

        conn = self.amqp()
        try:
            ch = conn.channel()
            dlx = source + ".dlx"
            ch.exchange_declare(dlx, "direct")
            self.rabbit_exchanges.append(dlx)
            ch.queue_declare(dlq, durable=True)
            self.rabbit_queues.append(dlq)
            ch.queue_bind(dlq, dlx, routing_key=source)
            ch.queue_declare(
                source,
                durable=True,
                arguments={"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": source},
            )
            self.rabbit_queues.append(source)
            ch.confirm_delivery()
            for i, body in enumerate(bodies):
                props = pika.BasicProperties(message_id=f"id-{i}", headers={"n": str(i)})
                ch.basic_publish("", source, body, props)
            for _ in bodies:
                method = wait_until(lambda: ch.basic_get(source)[0], 10, "message to reject")
                ch.basic_reject(method.delivery_tag, requeue=False)
        finally:
            conn.close()
        wait_until(lambda: self.rabbit_count(dlq) == len(bodies), 10, "dead letters")

    def rabbit_queue(self, name: str) -> None:
        conn = self.amqp()
        try:
            conn.channel().queue_declare(name, durable=True)
        finally:
            conn.close()
        self.rabbit_queues.append(name)

    def rabbit_count(self, queue: str) -> int:
        """Exact ready count (passive declare over AMQP)."""
        conn = self.amqp()
        try:
            return int(conn.channel().queue_declare(queue, passive=True).method.message_count)
        finally:
            conn.close()

    def rabbit_settled(self, queues: dict[str, int]) -> None:
        """Wait until the management API (what mqtop reads) shows these ready counts, and
        the consumer count: RabbitMQ 3.10 publishes it up to a statistics interval after the
        message counts, and until then mqtop rightly reports it null."""

        def settled() -> bool:
            for queue, ready in queues.items():
                info: Any = self.rabbit.api("GET", f"queues/%2F/{queue}")
                if info.get("messages_ready") != ready or info.get("consumers") is None:
                    return False
            return True

        wait_until(settled, 30, "management API statistics")

    def rabbit_drain(self, queue: str) -> list[tuple[bytes, dict[str, Any]]]:
        """Consume every message: (body, headers)."""
        conn = self.amqp()
        out = []
        try:
            ch = conn.channel()
            while True:
                method, props, body = ch.basic_get(queue, auto_ack=True)
                if method is None:
                    return out
                out.append((body, dict(props.headers or {})))
        finally:
            conn.close()

    # -- Kafka
    def kafka_run(self, work: Callable[..., Any]) -> Any:
        return asyncio.run(work(self.kafka.bootstrap))

    def kafka_topics(self, *names: str) -> None:
        async def work(bootstrap: str) -> None:
            from aiokafka import AIOKafkaProducer
            from aiokafka.admin import AIOKafkaAdminClient, NewTopic

            admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
            await admin.start()
            try:
                await admin.create_topics([NewTopic(n, 1, 1) for n in names])
            finally:
                await admin.close()
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
            await producer.start()
            try:
                for name in names:
                    for _ in range(100):
                        if await producer.partitions_for(name):
                            break
                        await asyncio.sleep(0.1)
            finally:
                await producer.stop()

        self.topics.extend(names)
        self.kafka_run(work)

    def kafka_produce(
        self, topic: str, bodies: Sequence[bytes], headers: list[tuple[str, bytes]] | None = None
    ) -> None:
        async def work(bootstrap: str) -> None:
            from aiokafka import AIOKafkaProducer

            producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
            await producer.start()
            try:
                for body in bodies:
                    await producer.send_and_wait(topic, body, headers=headers)
            finally:
                await producer.stop()

        self.kafka_run(work)

    def kafka_commit(self, group: str, topic: str, offset: int) -> None:
        async def work(bootstrap: str) -> None:
            from aiokafka import AIOKafkaConsumer, TopicPartition
            from aiokafka.structs import OffsetAndMetadata

            consumer = AIOKafkaConsumer(
                bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
            )
            await consumer.start()
            try:
                tp = TopicPartition(topic, 0)
                consumer.assign([tp])
                await consumer.commit({tp: OffsetAndMetadata(offset, "")})
            finally:
                await consumer.stop()

        self.kafka_run(work)

    def kafka_bounds(self, topic: str) -> tuple[int, int]:
        """(log start, end) offsets of partition 0."""

        async def work(bootstrap: str) -> tuple[int, int]:
            from aiokafka import AIOKafkaConsumer, TopicPartition

            consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
            await consumer.start()
            try:
                tp = TopicPartition(topic, 0)
                start = (await consumer.beginning_offsets([tp]))[tp]
                end = (await consumer.end_offsets([tp]))[tp]
                return start, end
            finally:
                await consumer.stop()

        result: tuple[int, int] = self.kafka_run(work)
        return result

    def kafka_read(self, topic: str) -> list[bytes]:
        """Every record value of partition 0, from the log start to the end."""
        return [value for value, _ in self.kafka_records(topic)]

    def kafka_records(self, topic: str) -> list[tuple[bytes, dict[str, bytes]]]:
        """Every record of partition 0 (value, headers), from the log start to the end."""

        async def work(bootstrap: str) -> list[tuple[bytes, dict[str, bytes]]]:
            from aiokafka import AIOKafkaConsumer, TopicPartition

            consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
            await consumer.start()
            try:
                tp = TopicPartition(topic, 0)
                consumer.assign([tp])
                start = (await consumer.beginning_offsets([tp]))[tp]
                end = (await consumer.end_offsets([tp]))[tp]
                consumer.seek(tp, start)
                out: list[tuple[bytes, dict[str, bytes]]] = []
                deadline = time.monotonic() + 15
                while len(out) < end - start and time.monotonic() < deadline:
                    batch = await consumer.getmany(tp, timeout_ms=500)
                    out.extend(
                        (r.value, dict(r.headers)) for r in batch.get(tp, []) if r.offset < end
                    )
                return out
            finally:
                await consumer.stop()

        result: list[tuple[bytes, dict[str, bytes]]] = self.kafka_run(work)
        return result

    # -- SQS
    def sqs_pair(self, source: str, dlq: str) -> tuple[str, str]:
        client = self.sqs_client()
        dlq_url = client.create_queue(QueueName=dlq)["QueueUrl"]
        arn = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])
        policy = {"deadLetterTargetArn": arn["Attributes"]["QueueArn"], "maxReceiveCount": "3"}
        src_url = client.create_queue(
            QueueName=source, Attributes={"RedrivePolicy": json.dumps(policy)}
        )["QueueUrl"]
        self.sqs_urls += [src_url, dlq_url]
        return src_url, dlq_url

    def sqs_queue(self, name: str) -> str:
        url: str = self.sqs_client().create_queue(QueueName=name)["QueueUrl"]
        self.sqs_urls.append(url)
        return url

    def sqs_send(self, url: str, bodies: Sequence[str]) -> None:
        client = self.sqs_client()
        for body in bodies:
            client.send_message(QueueUrl=url, MessageBody=body)

    def sqs_count(self, name: str) -> int:
        client = self.sqs_client()
        url = client.get_queue_url(QueueName=name)["QueueUrl"]
        attrs = client.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        assert attrs["ApproximateNumberOfMessagesNotVisible"] == "0", attrs
        return int(attrs["ApproximateNumberOfMessages"])

    def sqs_messages(self, name: str) -> list[tuple[str, list[str]]]:
        """(body, message attribute names) of every message, sorted (received, then made
        visible again)."""
        client = self.sqs_client()
        url = client.get_queue_url(QueueName=name)["QueueUrl"]
        found: dict[str, tuple[str, list[str]]] = {}
        receipts = []
        for _ in range(10):
            got = client.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=30,
                WaitTimeSeconds=0,
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not got:
                break
            for m in got:
                found[m["MessageId"]] = (m["Body"], sorted(m.get("MessageAttributes", {})))
                receipts.append(m["ReceiptHandle"])
        for receipt in receipts:
            client.change_message_visibility(
                QueueUrl=url, ReceiptHandle=receipt, VisibilityTimeout=0
            )
        return sorted(found.values())

    # -- ActiveMQ (amq: Artemis, amqc: Classic)
    def amq(self, name: str) -> ActiveMQBroker:
        return self.artemis if name == "amq" else self.classic

    def amq_names(self, name: str, tag: str) -> tuple[str, str]:
        """(queue, its DLQ) on the broker ``amq`` or ``amqc`` (Classic: ``ind.*`` queues
        dead-letter into their own ``DLQ.<queue>``)."""
        queue = f"{self.prefix}.{tag}" if name == "amq" else f"ind.{self.prefix}.{tag}"
        return queue, f"DLQ.{queue}"

    def amq_dlq(self, name: str, queue: str, dead: Sequence[bytes], live: int = 0) -> None:
        """A queue whose ``dead`` messages the broker dead-lettered, then ``live`` more."""
        broker = self.amq(name)
        broker.create_queue(queue)
        self.amq_queues.append((broker, queue))
        self.amq_send(broker, queue, dead)
        assert wait_count(broker, queue, len(dead)) == len(dead)
        broker.dead_letter(queue, len(dead))
        assert wait_count(broker, broker.dlq_of(queue), len(dead)) == len(dead)
        self.amq_send(broker, queue, [b"live-%d" % i for i in range(live)])
        assert wait_count(broker, queue, live) == live

    def amq_send(self, broker: ActiveMQBroker, queue: str, bodies: Sequence[bytes]) -> None:
        conn = broker.stomp()
        try:
            extra = {"destination-type": "ANYCAST"} if broker.flavor == "artemis" else {}
            for i, body in enumerate(bodies):
                conn.send(broker.destination(queue), body,
                          headers={"persistent": "true", "n": str(i), **extra})  # fmt: skip
        finally:
            conn.disconnect()

    def amq_count(self, name: str, queue: str) -> int:
        return self.amq(name).count(queue)

    # -- cleanup
    def cleanup(self) -> None:
        errors: list[str] = []
        for broker, queue in self.amq_queues:
            try:
                broker.cleanup(queue)
            except Exception as exc:
                errors.append(f"activemq: {exc}")
        try:
            if self.keys:
                self.r().delete(*self.keys)
        except Exception as exc:
            errors.append(f"redis: {exc}")
        try:
            conn = self.amqp()
            ch = conn.channel()
            for q in self.rabbit_queues:
                ch.queue_delete(q)
            for x in self.rabbit_exchanges:
                ch.exchange_delete(x)
            conn.close()
        except Exception as exc:
            errors.append(f"rabbitmq: {exc}")

        async def kafka_cleanup(bootstrap: str) -> None:
            from aiokafka.admin import AIOKafkaAdminClient
            from aiokafka.protocol.admin import DeleteGroupsRequest

            admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
            await admin.start()
            try:
                # this module's groups and mqtop's replay progress groups (single node: any
                # broker is the coordinator; aiokafka's admin client has no delete_groups)
                groups = [g[0] for g in await admin.list_consumer_groups() if self.prefix in g[0]]
                if groups:
                    node = next(iter(admin._client.cluster.brokers())).nodeId
                    await admin._client.send(node, DeleteGroupsRequest(groups))
                if self.topics:
                    await admin.delete_topics(self.topics)
            finally:
                await admin.close()

        try:
            self.kafka_run(kafka_cleanup)
        except Exception as exc:
            errors.append(f"kafka: {exc}")
        try:
            client = self.sqs_client()
            for url in self.sqs_urls:
                client.delete_queue(QueueUrl=url)
        except Exception as exc:
            errors.append(f"sqs: {exc}")
        assert not errors, errors


# ---------------------------------------------------------------- the shared fixture


@dataclass
class Static:
    """The read-only part of the world (metrics, queues, check, peek)."""

    world: World
    cli: Cli
    config: Path
    jobs: str
    dead: str
    stream: str
    rq: str
    rdlq: str
    topic: str
    dlt: str
    group_ok: str
    group_lag: str
    sq: str
    sdlq: str
    aq: tuple[str, str]
    cq: tuple[str, str]
    binary: bytes = b"\xff\xfe\x00binary"


@pytest.fixture(scope="module")
def world(
    redis_broker: RedisBroker,
    rabbitmq_broker: RabbitBroker,
    kafka_broker: KafkaBroker,
    sqs_broker: SqsBroker,
    artemis_broker: ActiveMQBroker,
    activemq_classic_broker: ActiveMQBroker,
) -> Iterator[World]:
    prefix = f"mqtop-test-ct-{uuid.uuid4().hex[:10]}"
    w = World(prefix, redis_broker, rabbitmq_broker, kafka_broker, sqs_broker, artemis_broker,
              activemq_classic_broker)  # fmt: skip
    try:
        yield w
    finally:
        w.cleanup()


@pytest.fixture(scope="module")
def static(world: World, tmp_path_factory: pytest.TempPathFactory) -> Static:
    home = tmp_path_factory.mktemp("contract")
    p = world.prefix
    s = Static(
        world=world,
        cli=Cli(home),
        config=home / "mqtop.yaml",
        jobs=f"{p}:jobs",
        dead=f"{p}:jobs:dead",
        stream=f"{p}:events",
        rq=f"{p}.orders",
        rdlq=f"{p}.orders.dlq",
        topic=f"{p}.orders",
        dlt=f"{p}.orders.DLT",
        group_ok=f"{p}-caught-up",
        group_lag=f"{p}-behind",
        sq=f"{p}-orders",
        sdlq=f"{p}-orders-dlq",
        aq=world.amq_names("amq", "orders"),
        cq=world.amq_names("amqc", "orders"),
    )
    s.config.write_text(world.config(audit=home / "audit.jsonl"))
    # Redis: a list with its :dead list, a stream with one lagging and one caught-up group
    world.redis_list(s.jobs, [b"j0", b"j1", b"j2", b"j3"])
    world.redis_list(s.dead, [s.binary, b"dead-1", b"dead-2"])
    r = world.r()
    world.keys.append(s.stream)
    for i in range(3):
        r.xadd(s.stream, {"n": str(i)})
    r.xgroup_create(s.stream, "lagging", id="0")
    r.xgroup_create(s.stream, "done", id="0")
    r.xreadgroup("lagging", "c1", {s.stream: ">"}, count=1)
    r.xreadgroup("done", "c1", {s.stream: ">"})
    for entry_id, _ in r.xrange(s.stream):
        r.xack(s.stream, "done", entry_id)
    # RabbitMQ: 3 dead letters (one binary), 2 live
    world.rabbit_dlq(s.rq, s.rdlq, [b"order-0", s.binary, b"order-2"])
    conn = world.amqp()
    ch = conn.channel()
    ch.confirm_delivery()
    for body in (b"live-0", b"live-1"):
        ch.basic_publish("", s.rq, body)
    conn.close()
    # Kafka: topic + DLT; one group at the end, one behind
    world.kafka_topics(s.topic, s.dlt)
    world.kafka_produce(s.topic, [b"k%d" % i for i in range(6)])
    world.kafka_produce(
        s.dlt,
        [b"kd-0", b"kd-1"],
        headers=[
            ("kafka_dlt-original-topic", s.topic.encode()),
            ("kafka_dlt-exception-message", b"boom"),
        ],
    )
    world.kafka_produce(s.dlt, [s.binary])
    world.kafka_commit(s.group_ok, s.topic, 6)
    world.kafka_commit(s.group_lag, s.topic, 2)
    # SQS: a queue with a RedrivePolicy and its DLQ
    src_url, dlq_url = world.sqs_pair(s.sq, s.sdlq)
    world.sqs_send(src_url, ["live"])
    world.sqs_send(dlq_url, ["sqs-dead-0", "sqs-dead-1"])
    # ActiveMQ: 3 dead letters (one binary) in the queue's own DLQ, 2 live, on each flavor
    for name, (queue, _) in (("amq", s.aq), ("amqc", s.cq)):
        world.amq_dlq(name, queue, [b"amq-0", s.binary, b"amq-2"], live=2)
    world.rabbit_settled({s.rq: 2, s.rdlq: 3})
    return s


# ---------------------------------------------------------------- metrics / queues


def _series(doc: dict[str, Any], broker: str, queue: str, group: str | None = None) -> Any:
    found = [
        x for x in doc["series"] if (x["broker"], x["queue"], x["group"]) == (broker, queue, group)
    ]
    assert len(found) == 1, (
        broker,
        queue,
        group,
        [(x["broker"], x["queue"]) for x in doc["series"]],
    )
    return found[0]


def test_metrics_json_and_prometheus(static: Static) -> None:
    """SPEC §3/§5: `metrics --format json` and `--format prometheus`, four brokers in one config."""
    from prometheus_client.parser import text_string_to_metric_families

    s, w = static, static.world
    cfg = str(s.config)
    as_json, as_prom = s.cli.many(
        ["metrics", "--config", cfg, "--format", "json"],
        ["metrics", "--config", cfg, "--format", "prometheus"],
    )
    doc = ok_json(as_json)

    # top level: exactly time, brokers, series; time is ISO 8601 with a zone
    assert set(doc) == {"time", "brokers", "series"}
    when = dt.datetime.fromisoformat(doc["time"].replace("Z", "+00:00"))
    assert when.tzinfo is not None
    assert abs(time.time() - when.timestamp()) < 120
    assert [b["name"] for b in doc["brokers"]] == NAMES
    for b in doc["brokers"]:
        assert set(b) == BROKER_KEYS, b
        assert b["up"] is True and b["error"] is None, b
    assert [b["type"] for b in doc["brokers"]] == [
        "redis", "rabbitmq", "kafka", "sqs", "activemq", "activemq"
    ]  # fmt: skip

    # every series: the six keys + "status", every metric present
    for x in doc["series"]:
        assert set(x) == SERIES_KEYS | {"status"}, x
        assert set(x["metrics"]) == METRICS, sorted(x["metrics"])
        for name, value in x["metrics"].items():
            assert value is None or is_number(value), (name, value)
        # SPEC §3: groups and (extended) every queue carry "status" (null while undecided)
        gs = x["metrics"]["group_status"]
        assert x["status"] == (None if gs is None else STATUS_NAMES[int(gs)]), x

    # Redis list: LLEN, DLQ by naming convention, consumer_lag_messages = queue_length
    r = w.r()
    jobs = _series(doc, "cache", s.jobs)
    assert jobs["kind"] == "list" and jobs["dlq"] == s.dead
    assert jobs["metrics"]["queue_length"] == r.llen(s.jobs) == 4
    assert jobs["metrics"]["dlq_length"] == r.llen(s.dead) == 3
    assert jobs["metrics"]["consumer_lag_messages"] == jobs["metrics"]["queue_length"]
    for name in ("in_flight", "latency_seconds", "consumers", "error_rate"):
        assert jobs["metrics"][name] is None, name  # Redis lists expose none of these
    # Redis stream groups: lag, PEL, status
    groups = {g["name"].decode(): g for g in r.xinfo_groups(s.stream)}
    lagging = _series(doc, "cache", s.stream, "lagging")
    assert lagging["kind"] == "stream"
    assert lagging["metrics"]["queue_length"] == groups["lagging"]["lag"] == 2
    assert lagging["metrics"]["consumer_lag_messages"] == 2
    assert lagging["metrics"]["in_flight"] == groups["lagging"]["pending"] == 1
    assert lagging["status"] is None  # lag > 0, no progress seen yet: undecided, not guessed
    done = _series(doc, "cache", s.stream, "done")
    assert done["metrics"]["queue_length"] == groups["done"]["lag"] == 0
    assert done["status"] == "OK" and done["metrics"]["group_status"] == 0
    # two polls an interval apart: rates exist (0: nothing was added in between)
    assert lagging["metrics"]["publish_rate"] == 0 and lagging["metrics"]["processing_rate"] == 0

    # RabbitMQ: ready counts, DLX-discovered DLQ, consumer_lag_messages = queue_length
    rq = _series(doc, "rabbit", s.rq)
    assert rq["dlq"] == s.rdlq
    assert rq["metrics"]["queue_length"] == w.rabbit_count(s.rq) == 2
    assert rq["metrics"]["dlq_length"] == w.rabbit_count(s.rdlq) == 3
    assert rq["metrics"]["consumer_lag_messages"] == 2
    assert rq["metrics"]["consumers"] == 0 and rq["metrics"]["in_flight"] == 0
    assert _series(doc, "rabbit", s.rdlq)["metrics"]["queue_length"] == 3

    # Kafka: lag per group x topic (end - committed), DLT length, status
    _, end = w.kafka_bounds(s.topic)
    dlt_start, dlt_end = w.kafka_bounds(s.dlt)
    ok = _series(doc, "events", s.topic, s.group_ok)
    behind = _series(doc, "events", s.topic, s.group_lag)
    assert ok["metrics"]["queue_length"] == end - 6 == 0
    assert behind["metrics"]["queue_length"] == behind["metrics"]["consumer_lag_messages"]
    assert behind["metrics"]["queue_length"] == end - 2 == 4
    assert ok["dlq"] == behind["dlq"] == s.dlt
    assert behind["metrics"]["dlq_length"] == dlt_end - dlt_start == 3
    assert ok["status"] == "OK" and ok["metrics"]["group_status"] == 0
    assert behind["status"] is None and behind["metrics"]["group_status"] is None
    assert behind["metrics"]["in_flight"] is None  # Kafka has no per-record ack state
    assert behind["metrics"]["consumer_lag_seconds"] is not None
    assert behind["metrics"]["publish_rate"] == 0 and behind["metrics"]["processing_rate"] == 0

    # SQS: visible messages, DLQ from RedrivePolicy
    sq = _series(doc, "aws", s.sq)
    assert sq["dlq"] == s.sdlq
    assert sq["metrics"]["queue_length"] == w.sqs_count(s.sq) == 1
    assert sq["metrics"]["consumer_lag_messages"] == 1
    assert sq["metrics"]["dlq_length"] == w.sqs_count(s.sdlq) == 2
    assert sq["metrics"]["consumers"] is None  # SQS has no consumer registry: null, never 0

    # ActiveMQ: MessageCount - DeliveringCount (Artemis) / QueueSize - InFlightCount
    # (Classic), the DLQ from the address settings / DLQ.<queue>, its messages as dlq_length
    for name, (queue, dlq), dlq_series in (
        ("amq", s.aq, f"mqtop.DLA/{s.aq[1]}"),
        ("amqc", s.cq, s.cq[1]),
    ):
        amq = _series(doc, name, queue)
        assert amq["kind"] == "queue" and amq["dlq"] == dlq_series, amq
        assert amq["metrics"]["queue_length"] == w.amq_count(name, queue) == 2
        assert amq["metrics"]["dlq_length"] == w.amq_count(name, dlq) == 3
        assert amq["metrics"]["consumer_lag_messages"] == 2
        assert amq["metrics"]["consumers"] == 0 and amq["metrics"]["in_flight"] == 0
        assert _series(doc, name, dlq_series)["kind"] == "dlq"
        assert amq["metrics"]["publish_rate"] == 0 and amq["metrics"]["processing_rate"] == 0
    artemis = _series(doc, "amq", s.aq[0])["metrics"]
    assert artemis["latency_seconds"] is not None and artemis["latency_seconds"] >= 0
    assert _series(doc, "amqc", s.cq[0])["metrics"]["latency_seconds"] is None  # not exposed

    # Prometheus: mqtop_<metric>{broker, queue, group}, parsed by prometheus_client itself
    assert as_prom.returncode == 0, as_prom.stderr
    families = {f.name: f for f in text_string_to_metric_families(as_prom.stdout)}
    for metric in METRICS:
        family = families[f"mqtop_{metric}"]
        assert family.type == "gauge"
        for sample in family.samples:
            assert sample.name == f"mqtop_{metric}"
            assert set(sample.labels) == {"broker", "queue", "group"}, sample
    mine = {
        (x["broker"], x["queue"], x["group"] or ""): x
        for x in doc["series"]
        if w.prefix in x["queue"]
    }
    for metric in ("queue_length", "dlq_length", "consumer_lag_messages", "group_status"):
        exported = {
            (smp.labels["broker"], smp.labels["queue"], smp.labels["group"]): smp.value
            for smp in families[f"mqtop_{metric}"].samples
            if w.prefix in smp.labels["queue"]
        }
        # a null metric is absent (never 0); a known one has the same value as in JSON
        expected = {
            k: x["metrics"][metric] for k, x in mine.items() if x["metrics"][metric] is not None
        }
        assert exported == expected, metric


def test_queues_json_and_broker_selection(static: Static) -> None:
    """SPEC §4/§5: `queues --format json`, `--broker NAME`; an unknown name is exit 2."""
    s = static
    cfg = str(s.config)
    every, cache_only, unknown, unknown_metrics = s.cli.many(
        ["queues", "--config", cfg, "--format", "json"],
        ["queues", "--config", cfg, "--format", "json", "--broker", "cache"],
        ["queues", "--config", cfg, "--format", "json", "--broker", "nope"],
        ["metrics", "--config", cfg, "--format", "json", "--broker", "nope"],
    )
    rows = ok_json(every)
    for row in rows:
        assert set(row) == QUEUE_KEYS, row
    found = {(r["broker"], r["queue"], r["group"]): (r["kind"], r["dlq"]) for r in rows}
    assert found[("cache", s.jobs, None)] == ("list", s.dead)
    assert found[("cache", s.stream, "lagging")][0] == "stream"
    assert found[("rabbit", s.rq, None)][1] == s.rdlq
    assert found[("events", s.topic, s.group_lag)][1] == s.dlt
    assert found[("aws", s.sq, None)][1] == s.sdlq
    assert found[("amq", s.aq[0], None)] == ("queue", f"mqtop.DLA/{s.aq[1]}")
    assert found[("amq", f"mqtop.DLA/{s.aq[1]}", None)] == ("dlq", None)
    assert found[("amqc", s.cq[0], None)] == ("queue", s.cq[1])
    assert found[("amqc", s.cq[1], None)] == ("dlq", None)
    assert {r["broker"] for r in rows} == {"cache", "rabbit", "events", "aws", "amq", "amqc"}

    only = ok_json(cache_only)
    assert only and {r["broker"] for r in only} == {"cache"}
    assert {(r["queue"], r["group"]) for r in only} == {
        (q, g) for (b, q, g) in found if b == "cache"
    }

    for result in (unknown, unknown_metrics):
        line = one_line_error(result, 2)
        assert "nope" in line


# ---------------------------------------------------------------- check


def _check_config(static: Static, threshold: float, severity: str = "warning") -> Path:
    p = static.world.prefix
    alerts = f"""
    alerts:
      - name: ContractBacklog
        metric: queue_length
        op: ">"
        threshold: {threshold}
        severity: {severity}
        match: {{queue: "{p}*"}}
    """
    path = static.cli.home / f"check-{threshold}-{severity}.yaml"
    path.write_text(static.world.config(alerts=alerts, audit=None))
    return path


def test_check_quiet_and_firing(static: Static) -> None:
    """SPEC §4/§5: `check --once`, every format, --fail-on, --output; exit 0 vs 1."""
    s, w = static, static.world
    home = s.cli.home
    quiet = str(_check_config(s, 1_000_000))
    loud = str(_check_config(s, 2))
    runs = s.cli.many(
        ["check", "--once", "--config", quiet, "--format", "json"],
        ["check", "--once", "--config", quiet, "--format", "text"],
        ["check", "--once", "--config", loud, "--format", "json", "--output", str(home / "c.json")],
        ["check", "--once", "--config", loud, "--format", "junit", "--output", str(home / "c.xml")],
        ["check", "--once", "--config", loud, "--format", "github"],
        ["check", "--once", "--config", loud, "--format", "text", "--fail-on", "critical"],
        ["check", "--once", "--config", loud, "--format", "json", "--fail-on", "warning"],
    )
    q_json, q_text, l_json, l_junit, l_github, l_text_critical, l_json_warning = runs

    doc = ok_json(q_json, 0)
    assert set(doc) == CHECK_KEYS
    assert doc == {"status": "ok", "alerts": [], "errors": []}
    assert q_text.returncode == 0 and "ok" in q_text.stdout

    doc = ok_json(l_json, 1)
    assert set(doc) == CHECK_KEYS and doc["status"] == "firing" and doc["errors"] == []
    assert (home / "c.json").read_text().strip() == l_json.stdout.strip()
    r = w.r()
    truth = {
        ("cache", s.jobs, None): r.llen(s.jobs),
        ("cache", s.dead, None): r.llen(s.dead),
        ("rabbit", s.rdlq, None): w.rabbit_count(s.rdlq),
        ("events", s.topic, s.group_lag): w.kafka_bounds(s.topic)[1] - 2,
    }
    firing = {}
    for alert in doc["alerts"]:
        assert set(alert) == ALERT_KEYS | ALERT_EXTRA, alert
        assert alert["held_until"] is None
        assert alert["rule"] == "ContractBacklog" and alert["severity"] == "warning"
        assert alert["state"] == "firing" and alert["threshold"] == 2
        assert alert["queue"].startswith(w.prefix)
        assert is_number(alert["value"]) and alert["value"] > 2
        assert isinstance(alert["summary"], str) and alert["summary"]
        firing[(alert["broker"], alert["queue"], alert["group"])] = alert["value"]
    for key, value in truth.items():
        assert firing[key] == value, key
    # queues at or below the threshold do not fire
    assert ("aws", s.sq, None) not in firing and ("rabbit", s.rq, None) not in firing
    assert ("events", s.topic, s.group_ok) not in firing

    assert l_junit.returncode == 1, l_junit.stderr
    assert (home / "c.xml").read_text().strip() == l_junit.stdout.strip()
    suites = ET.fromstring(l_junit.stdout)
    failures = [tc for tc in suites.iter("testcase") if tc.find("failure") is not None]
    assert len(failures) == len(doc["alerts"])

    assert l_github.returncode == 1
    annotations = [line for line in l_github.stdout.splitlines() if line.startswith("::warning")]
    assert len(annotations) == len(doc["alerts"])

    # only warnings fire: --fail-on critical passes, --fail-on warning fails
    assert l_text_critical.returncode == 0, l_text_critical.stdout
    assert ok_json(l_json_warning, 1)["status"] == "firing"


# ---------------------------------------------------------------- dlq peek


def test_dlq_peek_every_broker(static: Static) -> None:
    """SPEC §5 `dlq peek --format json`: exact keys, death object, base64 for binary bodies,
    and §7: peeking never consumes."""
    s, w = static, static.world
    cfg = str(s.config)
    before = (
        w.r().llen(s.dead),
        w.rabbit_count(s.rdlq),
        w.kafka_bounds(s.dlt),
        w.sqs_count(s.sdlq),
        w.amq_count("amq", s.aq[1]),
        w.amq_count("amqc", s.cq[1]),
    )
    runs = s.cli.many(
        ["dlq", "peek", "cache", s.dead, "-n", "10", "--format", "json", "--config", cfg],
        ["dlq", "peek", "rabbit", s.rdlq, "-n", "10", "--format", "json", "--config", cfg],
        ["dlq", "peek", "events", s.dlt, "-n", "10", "--format", "json", "--config", cfg],
        ["dlq", "peek", "aws", s.sdlq, "-n", "10", "--format", "json", "--config", cfg],
        ["dlq", "peek", "cache", s.dead, "-n", "2", "--format", "json", "--config", cfg],
        ["dlq", "peek", "amq", s.aq[1], "-n", "10", "--format", "json", "--config", cfg],
        ["dlq", "peek", "amqc", s.cq[1], "-n", "10", "--format", "json", "--config", cfg],
    )
    docs = [ok_json(run) for run in runs]
    for doc in docs:
        assert isinstance(doc, list) and doc
        for m in doc:
            assert set(m) >= PEEK_KEYS and set(m) - PEEK_KEYS <= PEEK_OPTIONAL, sorted(m)
            assert m["body_encoding"] in ("utf8", "base64")
            raw = (
                base64.b64decode(m["body"])
                if m["body_encoding"] == "base64"
                else m["body"].encode()
            )
            assert m["size"] == len(raw)
            assert isinstance(m["headers"], dict) and isinstance(m["properties"], dict)
            assert m["death"] is None or set(m["death"]) == DEATH_KEYS, m["death"]
    redis_doc, rabbit_doc, kafka_doc, sqs_doc, two, artemis_doc, classic_doc = docs
    # §7: where peeking has side effects (RabbitMQ requeue, SQS receive count), it says so
    assert ["note:" in run.stderr for run in runs[:4]] == [False, True, False, True]
    assert "note:" not in runs[5].stderr + runs[6].stderr  # ActiveMQ browses: no side effect

    def bodies(doc: list[Any]) -> list[bytes]:
        return [
            base64.b64decode(m["body"]) if m["body_encoding"] == "base64" else m["body"].encode()
            for m in doc
        ]

    # binary bodies come back as base64, byte for byte
    assert bodies(redis_doc) == w.redis_items(s.dead) == [s.binary, b"dead-1", b"dead-2"]
    assert redis_doc[0]["body_encoding"] == "base64"
    assert bodies(two) == [s.binary, b"dead-1"]  # -n N
    assert bodies(rabbit_doc) == [b"order-0", s.binary, b"order-2"]
    assert [m["body_encoding"] for m in rabbit_doc] == ["utf8", "base64", "utf8"]
    assert bodies(kafka_doc) == w.kafka_read(s.dlt)
    assert kafka_doc[2]["body_encoding"] == "base64"
    assert sorted(bodies(sqs_doc)) == [b"sqs-dead-0", b"sqs-dead-1"]

    # death: reason/count/original_queue where the broker records it, null otherwise
    for m in rabbit_doc:
        assert m["death"] == {"reason": "rejected", "count": 1, "original_queue": s.rq}
    assert kafka_doc[0]["death"]["original_queue"] == s.topic
    assert kafka_doc[0]["death"]["reason"] == "boom"
    assert kafka_doc[2]["death"] is None  # no DLT headers on that record
    assert all(m["death"] is None for m in redis_doc)  # list items carry nothing
    for m in sqs_doc:
        assert m["death"]["original_queue"] == s.sq
    # ActiveMQ: the broker's browse order; binary as base64; the original queue it records
    expected = [b"amq-0", s.binary, b"amq-2"]
    assert bodies(artemis_doc) == expected
    assert sorted(bodies(classic_doc)) == sorted(expected)
    for doc, queue in ((artemis_doc, s.aq[0]), (classic_doc, s.cq[0])):
        assert [m["body_encoding"] == "base64" for m in doc].count(True) == 1
        assert all(m["death"]["original_queue"] == queue for m in doc), doc
        assert {m["headers"]["n"] for m in doc} == {"0", "1", "2"}

    after = (
        w.r().llen(s.dead),
        w.rabbit_count(s.rdlq),
        w.kafka_bounds(s.dlt),
        w.sqs_count(s.sdlq),
        w.amq_count("amq", s.aq[1]),
        w.amq_count("amqc", s.cq[1]),
    )
    assert after == before


# ---------------------------------------------------------------- replay / move / purge


@dataclass
class Dlqs:
    """One fresh dead-letter queue per broker, with three messages each."""

    redis: tuple[str, str]
    rabbit: tuple[str, str]
    kafka: tuple[str, str]
    sqs: tuple[str, str]
    amq: tuple[str, str]
    amqc: tuple[str, str]
    bodies: tuple[bytes, ...] = (b"skip-0", b"pick-1", b"pick-2")

    def pairs(self) -> dict[str, tuple[str, str]]:
        return {"cache": self.redis, "rabbit": self.rabbit, "events": self.kafka, "aws": self.sqs,
                "amq": self.amq, "amqc": self.amqc}  # fmt: skip


NAMES = ["cache", "rabbit", "events", "aws", "amq", "amqc"]


def _fresh_dlqs(w: World, tag: str) -> Dlqs:
    p = w.prefix  # names stay inside the config's include patterns
    d = Dlqs(
        redis=(f"{p}:{tag}", f"{p}:{tag}:dead"),
        rabbit=(f"{p}.{tag}", f"{p}.{tag}.dlq"),
        kafka=(f"{p}.{tag}", f"{p}.{tag}.DLT"),
        sqs=(f"{p}-{tag}", f"{p}-{tag}-dlq"),
        amq=w.amq_names("amq", tag),
        amqc=w.amq_names("amqc", tag),
    )
    w.redis_list(d.redis[0], [])
    w.redis_list(d.redis[1], list(d.bodies))
    w.rabbit_dlq(d.rabbit[0], d.rabbit[1], list(d.bodies))
    w.kafka_topics(*d.kafka)
    w.kafka_produce(
        d.kafka[1], list(d.bodies), headers=[("kafka_dlt-original-topic", d.kafka[0].encode())]
    )
    _src_url, dlq_url = w.sqs_pair(*d.sqs)
    w.sqs_send(dlq_url, [b.decode() for b in d.bodies])
    for name in ("amq", "amqc"):
        w.amq_dlq(name, d.pairs()[name][0], list(d.bodies))
    return d


def _levels(w: World, d: Dlqs) -> dict[str, tuple[Any, Any]]:
    """What each source/DLQ pair holds, read from the brokers."""
    return {
        "cache": (w.redis_items(d.redis[0]), w.redis_items(d.redis[1])),
        "rabbit": (w.rabbit_count(d.rabbit[0]), w.rabbit_count(d.rabbit[1])),
        "events": (w.kafka_read(d.kafka[0]), w.kafka_bounds(d.kafka[1])),
        "aws": (w.sqs_count(d.sqs[0]), w.sqs_count(d.sqs[1])),
        "amq": (w.amq_count("amq", d.amq[0]), w.amq_count("amq", d.amq[1])),
        "amqc": (w.amq_count("amqc", d.amqc[0]), w.amq_count("amqc", d.amqc[1])),
    }


def _audit(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for rec in records:
        assert set(rec) >= AUDIT_KEYS and set(rec) - AUDIT_KEYS <= AUDIT_OPTIONAL, rec
        when = dt.datetime.fromisoformat(rec["time"].replace("Z", "+00:00"))
        assert when.tzinfo is not None
        assert isinstance(rec["user"], str) and rec["user"]
    return records


def _move_doc(result: Run, code: int = 0) -> dict[str, Any]:
    """Exactly the SPEC §5 keys on stdout; notes/errors (stderr lines) added for asserting."""
    ok_json(result, code)
    doc = move_report(result)
    assert set(doc) - {"notes", "errors"} == MOVE_KEYS, sorted(doc)
    for key in ("moved", "failed", "skipped", "duplicates_possible"):
        assert isinstance(doc[key], int) and not isinstance(doc[key], bool), (key, doc)
    assert isinstance(doc["dry_run"], bool)
    return doc


def test_replay_dry_run_confirmation_readonly_and_audit(static: Static, tmp_path: Path) -> None:
    """SPEC §4/§5/§7 on every broker: --dry-run changes nothing; no --yes without a terminal
    is refused (exit 2, nothing written, no hang); readonly brokers refuse writes (exit 2) but
    still list stuck stream entries;
    --limit + --filter move exactly the matching messages; every write is audited once."""
    w = static.world
    cli = Cli(tmp_path)
    d = _fresh_dlqs(w, "rp")
    audit = tmp_path / "audit.jsonl"
    cfg = tmp_path / "rw.yaml"
    cfg.write_text(w.config(audit=audit))
    ro = tmp_path / "ro.yaml"
    ro.write_text(w.config(readonly=True, audit=audit))
    names = NAMES
    n = len(names)
    pairs = d.pairs()
    start = _levels(w, d)

    def replay(name: str, config: Path, *extra: str) -> list[str]:
        return ["dlq", "replay", name, pairs[name][1], "--config", str(config), *extra]

    # commands that change nothing run together; two dry runs of one queue never overlap
    # (an SQS dry run receives the messages it counts)
    first = cli.many(
        *(replay(n, cfg, "--dry-run", "--format", "json") for n in names),
        *(replay(n, cfg, "--format", "json") for n in names),
        *(replay(n, ro, "--yes", "--format", "json") for n in names),
        *(
            ["dlq", "move", n, pairs[n][1], pairs[n][0], "--yes", "--config", str(ro)]
            for n in names
        ),
    )
    reclaim = ["dlq", "reclaim", "cache", static.stream, "--group", "lagging", "--idle", "0s"]
    second = cli.many(
        *(replay(n, ro, "--dry-run", "--format", "json") for n in names),
        *(["dlq", "purge", n, pairs[n][1], "--yes", "--config", str(ro)] for n in names),
        [*reclaim, "--to", f"{static.stream}:dead", "--yes", "--config", str(ro)],
        [*reclaim, "--format", "json", "--config", str(ro)],  # listing is not a write
    )
    dry, unconfirmed, refused, refused_move = (first[i : i + n] for i in range(0, 4 * n, n))
    dry_ro, refused_purge = second[:n], second[n : 2 * n + 1]
    pending = w.r().xpending(static.stream, "lagging")["pending"]
    assert len(ok_json(second[2 * n + 1])["entries"]) == pending == 1
    for name, run in zip(names * 2, dry + dry_ro, strict=True):
        doc = _move_doc(run)
        assert doc["dry_run"] is True and doc["failed"] == 0, (name, doc)
        assert doc["source"] == pairs[name][1] and doc["destination"] == pairs[name][0], doc
        assert doc["moved"] == 3, (name, doc)
    for run in unconfirmed:
        assert "--yes" in one_line_error(run, 2)
    for run in refused + refused_move + refused_purge:
        assert "readonly" in one_line_error(run, 2)
    assert _levels(w, d) == start
    assert _audit(audit) == []  # nothing was written, nothing is audited

    moved = cli.many(
        *(
            replay(n, cfg, "--yes", "--limit", "1", "--filter", "body:pick", "--format", "json")
            for n in names
        )
    )
    for name, run in zip(names, moved, strict=True):
        doc = _move_doc(run)
        assert doc["moved"] == 1 and doc["failed"] == 0 and doc["dry_run"] is False, (name, doc)
        assert doc["skipped"] >= 1, (name, doc)  # skip-0 comes first and does not match
    end = _levels(w, d)
    assert end["cache"] == ([b"pick-1"], [b"skip-0", b"pick-2"])
    assert end["rabbit"] == (1, 2)
    assert end["events"][0] == [b"pick-1"]  # a DLT is never deleted from: records are copied
    assert end["aws"] == (1, 2)
    assert end["amq"] == end["amqc"] == (1, 2)
    # SPEC §7: headers kept, and a replay records itself in a header / attribute (ActiveMQ:
    # the broker's own move records the DLQ instead, docs/activemq.md "Replay record")
    for name in ("amq", "amqc"):
        [raw] = w.amq(name).browse(pairs[name][0])
        strings = raw.get("StringProperties") or {}
        assert strings["n"] == "1", raw
        recorded = strings.get("_AMQ_ORIG_QUEUE") or raw.get("OriginalDestination")
        assert recorded in (pairs[name][1], f"queue://{pairs[name][1]}"), raw
    [(body, headers)] = w.rabbit_drain(d.rabbit[0])
    assert body == b"pick-1" and headers["n"] == "1" and "x-mqtop-replay" in headers, headers
    [(body, kheaders)] = w.kafka_records(d.kafka[0])
    assert body == b"pick-1" and "x-mqtop-replay" in kheaders, kheaders
    [(sbody, attributes)] = w.sqs_messages(d.sqs[0])
    assert sbody == "pick-1" and "mqtop-replayed" in attributes, attributes
    assert [b for b, _ in w.sqs_messages(d.sqs[1])] == ["pick-2", "skip-0"]

    records = _audit(audit)
    assert sorted(r["broker"] for r in records) == sorted(names)  # one line per write
    for rec in records:
        src, dst = pairs[rec["broker"]]
        assert (rec["action"], rec["source"], rec["destination"]) == ("replay", dst, src)
        assert rec["count"] == 1 and rec["result"] == "ok"
    text = audit.read_text()
    assert "contractS3cretKey" not in text and f":{w.rabbit.password}@" not in text


def test_move_purge_reclaim_and_audit(static: Static, tmp_path: Path) -> None:
    """`dlq move SRC DST`, `dlq purge`, `dlq reclaim` (Redis): results, broker state and one
    audit line per write; the default audit log is under the state directory."""
    w = static.world
    cli = Cli(tmp_path)
    d = _fresh_dlqs(w, "mv")
    cfg = tmp_path / "rw.yaml"
    cfg.write_text(w.config(audit=None))  # default location: $XDG_STATE_HOME/mqtop/audit.jsonl
    audit = tmp_path / "state" / "mqtop" / "audit.jsonl"
    pairs = d.pairs()
    # destinations (RabbitMQ and SQS queues must exist; a Kafka topic too)
    dst = {
        "cache": f"{w.prefix}:mv-other",
        "rabbit": f"{w.prefix}.mv-other",
        "events": f"{w.prefix}.mv-other",
        "aws": f"{w.prefix}-mv-other",
        "amq": f"{w.prefix}.mv-other",
        "amqc": f"ind.{w.prefix}.mv-other",
    }
    for name in ("amq", "amqc"):
        w.amq(name).create_queue(dst[name], dlq_per_queue=False)
        w.amq_queues.append((w.amq(name), dst[name]))
    w.keys.append(dst["cache"])
    w.rabbit_queue(dst["rabbit"])
    w.kafka_topics(dst["events"])
    w.sqs_queue(dst["aws"])
    # Redis streams: a pending entry nobody acknowledges, to reclaim into a dead-letter stream
    r = w.r()
    stream, dead = f"{w.prefix}:mv-stream", f"{w.prefix}:mv-stream:dead"
    w.keys += [stream, dead]
    entry = r.xadd(stream, {"n": "1"})
    r.xgroup_create(stream, "g", id="0")
    r.xreadgroup("g", "c1", {stream: ">"})
    reclaim = ["dlq", "reclaim", "cache", stream, "--group", "g", "--idle", "0s"]
    tail = ["--format", "json", "--config", str(cfg)]

    names = NAMES
    *moves, listed = cli.many(
        *(["dlq", "move", n, pairs[n][1], dst[n], "--yes", *tail] for n in names),
        [*reclaim, *tail],
    )
    for name, run in zip(names, moves, strict=True):
        doc = _move_doc(run)
        assert (doc["source"], doc["destination"]) == (pairs[name][1], dst[name])
        assert doc["moved"] == 3 and doc["failed"] == 0 and doc["skipped"] == 0, (name, doc)
    assert w.redis_items(dst["cache"]) == list(d.bodies)
    assert w.rabbit_count(dst["rabbit"]) == 3 and w.rabbit_count(d.rabbit[1]) == 0
    assert w.kafka_read(dst["events"]) == list(d.bodies)
    assert w.sqs_count(dst["aws"]) == 3 and w.sqs_count(d.sqs[1]) == 0
    for name in ("amq", "amqc"):
        assert w.amq_count(name, dst[name]) == 3 and w.amq_count(name, pairs[name][1]) == 0
    assert ok_json(listed)["entries"][0]["id"] == entry.decode()
    assert r.xpending(stream, "g")["pending"] == 1  # listing changes nothing

    nowhere = f"{w.prefix}.does-not-exist"
    *purges, reclaimed, failed = cli.many(
        *(["dlq", "purge", n, dst[n], "--yes", *tail] for n in names),
        [*reclaim, "--to", dead, "--yes", *tail],
        ["dlq", "move", "rabbit", static.rdlq, nowhere, "--yes", *tail],
    )
    # SPEC §4: an action that fails is exit 3 and the report says what was done
    doc = _move_doc(failed, 3)
    assert (doc["moved"], doc["failed"]) == (0, w.rabbit_count(static.rdlq)) and doc["errors"]
    for run in purges:
        assert run.returncode == 0, run.stderr
    assert w.r().llen(dst["cache"]) == 0
    assert w.rabbit_count(dst["rabbit"]) == 0
    start, end = w.kafka_bounds(dst["events"])
    assert start == end == 3  # DeleteRecords up to the end
    assert w.sqs_count(dst["aws"]) == 0
    assert w.amq_count("amq", dst["amq"]) == w.amq_count("amqc", dst["amqc"]) == 0
    assert ok_json(reclaimed)["moved"] == 1
    assert r.xlen(dead) == 1 and r.xpending(stream, "g")["pending"] == 0

    records = _audit(audit)
    [failure] = [rec for rec in records if rec["destination"] == nowhere]
    assert (failure["action"], failure["count"], failure["result"]) == ("move", 0, "partial")
    records.remove(failure)
    actions = sorted((rec["broker"], rec["action"]) for rec in records)
    assert actions == sorted(
        [(n, "move") for n in names] + [(n, "purge") for n in names] + [("cache", "reclaim")]
    )
    for rec in records:
        if rec["action"] == "move":
            assert (rec["source"], rec["destination"], rec["count"]) == (
                pairs[rec["broker"]][1],
                dst[rec["broker"]],
                3,
            )
        elif rec["action"] == "purge":
            assert (rec["source"], rec["destination"], rec["count"]) == (
                dst[rec["broker"]],
                None,
                3,
            )
        else:
            assert (rec["source"], rec["destination"], rec["count"]) == (stream, dead, 1)
        assert rec["result"] == "ok"


def test_confirmation_on_a_terminal(static: Static, tmp_path: Path) -> None:
    """SPEC §7: a write asks on a terminal; 'n' changes nothing and is not audited."""
    w = static.world
    cli = Cli(tmp_path)
    key = f"{w.prefix}:tty:dead"
    w.redis_list(key, [b"a", b"b"])
    cfg = tmp_path / "c.yaml"
    audit = tmp_path / "audit.jsonl"
    cfg.write_text(w.config(audit=audit))
    code, screen = cli.tty("dlq", "purge", "cache", key, "--config", str(cfg), answer="n")
    assert code == 2 and "[y/N]" in screen and "cancelled" in screen, screen
    assert w.r().llen(key) == 2 and _audit(audit) == []
    code, screen = cli.tty("dlq", "purge", "cache", key, "--config", str(cfg), answer="y")
    assert code == 0, screen
    assert w.r().llen(key) == 0
    [rec] = _audit(audit)
    assert (rec["action"], rec["source"], rec["count"], rec["result"]) == ("purge", key, 2, "ok")


# ---------------------------------------------------------------- unreachable, config, usage


def test_unreachable_brokers_exit_3(tmp_path: Path) -> None:
    """SPEC §4: a broker that cannot be reached is exit 3 for every command, shown as down
    (up false, an error), with no secret in any output. RabbitMQ with neither its management
    API nor AMQP answering is down too."""
    cli = Cli(tmp_path)
    dead = [free_port() for _ in range(6)]
    cfg = tmp_path / "dead.yaml"
    cfg.write_text(
        textwrap.dedent(
            f"""
            interval: 200ms
            timeout: 3s
            brokers:
              - {{name: cache, type: redis, url: "redis://:deadS3cret@127.0.0.1:{dead[0]}/0"}}
              - {{name: rabbit, type: rabbitmq, url: "amqp://guest:deadS3cret@127.0.0.1:{dead[1]}/",
                  management_url: "http://127.0.0.1:{dead[2]}"}}
              - {{name: events, type: kafka, bootstrap_servers: "127.0.0.1:{dead[3]}"}}
              - {{name: aws, type: sqs, endpoint_url: "http://127.0.0.1:{dead[4]}",
                  region: us-east-1, access_key_id: testing, secret_access_key: deadS3cret}}
              - {{name: amq, type: activemq, user: admin, password: deadS3cret,
                  jolokia_url: "http://127.0.0.1:{dead[5]}/console/jolokia",
                  browse_url: "amqp://127.0.0.1:{dead[5]}"}}
            """
        )
    )
    c = str(cfg)
    metrics, queues, check, peek_r, peek_rb, peek_k, peek_s, replay_rb, peek_a = cli.many(
        ["metrics", "--config", c, "--format", "json"],
        ["queues", "--config", c, "--format", "json"],
        ["check", "--once", "--config", c, "--format", "json"],
        ["dlq", "peek", "cache", "q", "--config", c, "--format", "json"],
        ["dlq", "peek", "rabbit", "q", "--config", c, "--format", "json"],
        ["dlq", "peek", "events", "q", "--config", c, "--format", "json"],
        ["dlq", "peek", "aws", "q", "--config", c, "--format", "json"],
        ["dlq", "replay", "rabbit", "q.dlq", "--to", "q", "--yes", "--config", c],
        ["dlq", "peek", "amq", "q", "--config", c, "--format", "json"],
    )
    doc = ok_json(metrics, 3)
    assert [(b["name"], b["up"]) for b in doc["brokers"]] == [
        ("cache", False),
        ("rabbit", False),
        ("events", False),
        ("aws", False),
        ("amq", False),
    ]
    for b in doc["brokers"]:
        assert set(b) == BROKER_KEYS and isinstance(b["error"], str) and b["error"], b
    assert doc["series"] == []
    assert ok_json(queues, 3) == []
    report = ok_json(check, 3)
    assert len(report["errors"]) == 5, report
    down = {a["broker"] for a in report["alerts"] if a["rule"] == "BrokerDown"}
    assert down == {"cache", "rabbit", "events", "aws", "amq"}, report
    for run in (peek_r, peek_rb, peek_k, peek_s, replay_rb, peek_a):
        one_line_error(run, 3)
    for run in (metrics, check, queues, peek_r, peek_rb, peek_k, peek_s, replay_rb, peek_a):
        assert "deadS3cret" not in run.stdout + run.stderr


def test_config_validate_show_init_and_usage_errors(static: Static, tmp_path: Path) -> None:
    """SPEC §4: config validate (file:line:column + field path), config show (secrets masked),
    init (a valid starter config), exit 2 on usage errors, never a traceback."""
    cli = Cli(tmp_path)
    bad = tmp_path / "bad.yaml"
    text = textwrap.dedent(
        """\
        interval: 5parsecs
        brokers:
          - {name: cache, type: redis, url: "redis://:validateS3cret@127.0.0.1:6379/0", colour: red}
          - name: rabbit
            type: rabbitmq
            url: "amqp://guest:validateS3cret@127.0.0.1:5672/"
        alerts:
          - {name: A, metric: no_such_metric, threshold: 1}
        """
    )
    bad.write_text(text)

    def position(needle: str) -> str:
        for number, line in enumerate(text.splitlines(), 1):
            if needle in line:
                return f"{bad}:{number}:{line.index(needle) + 1}:"
        raise AssertionError(needle)

    init_path = tmp_path / "started.yaml"
    validate, validate_ok, show, init, usage, no_file, missing_arg, bad_n = cli.many(
        ["config", "validate", str(bad)],
        ["config", "validate", str(static.config)],
        ["config", "show", "--config", str(static.config)],
        ["init", str(init_path)],
        ["metrics", "--format", "xml", "--config", str(static.config)],
        ["metrics", "--config", str(tmp_path / "absent.yaml")],
        ["dlq", "peek", "cache"],
        ["dlq", "peek", "cache", "q", "-n", "0", "--config", str(static.config)],
    )
    assert validate.returncode == 2 and validate.stdout == ""
    problems = validate.stderr.splitlines()
    assert any(line.startswith(position("5parsecs")) and "interval" in line for line in problems)
    assert any(
        line.startswith(position("colour")) and "brokers[0].colour" in line for line in problems
    ), problems
    assert any(
        line.startswith(position("no_such_metric")) and "alerts[0].metric" in line
        for line in problems
    ), problems
    assert "validateS3cret" not in validate.stderr
    assert validate_ok.returncode == 0 and "ok" in validate_ok.stdout

    assert show.returncode == 0, show.stderr
    assert "contractS3cretKey" not in show.stdout
    assert "secret_access_key" in show.stdout and "****" in show.stdout
    shown = show.stdout
    for name in ("cache", "rabbit", "events", "aws"):
        assert f"name: {name}" in shown

    assert init.returncode == 0, init.stderr
    again = cli("config", "validate", str(init_path))
    assert again.returncode == 0, again.stderr
    refused = cli("init", str(init_path))
    one_line_error(refused, 2)

    for run in (usage, no_file, missing_arg, bad_n):
        assert run.returncode == 2, (run.args, run.stderr)
        assert "Traceback" not in run.stderr and run.stderr.strip()
    one_line_error(no_file, 2)
    one_line_error(bad_n, 2)
    assert re.search(r"invalid choice: 'xml'", usage.stderr)


SPEC_EXAMPLE = """\
interval: 5s                 # poll period
history: {retention: 24h, path: ~/.local/state/mqtop/history.db}   # path optional: persistence
brokers:
  - {name: rabbit, type: rabbitmq, url: "amqp://guest:${RABBIT_PASSWORD}@localhost:5672/",
     management_url: "http://localhost:15672", include: ["orders*"], exclude: ["amq.*"], readonly: true}
  - {name: events, type: kafka, bootstrap_servers: "localhost:9092", groups: ["*"]}
  - {name: aws, type: sqs, region: us-east-1, endpoint_url: "http://localhost:4566", include: ["orders*"]}
  - {name: cache, type: redis, url: "redis://localhost:6379/0", lists: ["jobs:*"], streams: ["events:*"], channels: ["notify*"]}
alerts:
  - {name: QueueBacklog, metric: queue_length, op: ">", threshold: 1000, for: 1m, severity: warning}
  - {name: HighErrorRate, metric: error_rate, op: ">", threshold: 0.05, severity: critical}
  - {name: ConsumerLag, metric: consumer_lag_seconds, op: ">", threshold: 60, severity: warning}
  - {name: Slow, metric: processing_rate, op: "<", threshold: 1, function: avg, window: 5m,
     match: {broker: "rab*"}, labels: {team: orders}, summary: "{broker}/{queue}: {value}"}
notify:
  - {type: webhook, url: "https://hooks.example/..."}   # also: stdout, slack, alertmanager
  - {type: stdout}
  - {type: slack, url: "https://hooks.slack.example/T0/B0/x"}
  - {type: alertmanager, url: "http://localhost:9093"}
"""  # noqa: E501 (the SPEC's own lines)


def test_spec_config_example_and_lookup_order(tmp_path: Path) -> None:
    """SPEC §6: the example config (plus the other rule keys and notifier types) is valid;
    `${VAR}` must be set; SPEC §4: config lookup order --config, $MQTOP_CONFIG, ./mqtop.yaml,
    ~/.config/mqtop/config.yaml, else detection."""
    example = tmp_path / "spec.yaml"
    example.write_text(SPEC_EXAMPLE)
    home = tmp_path / "home"
    cwd = tmp_path / "cwd"
    (home / ".config" / "mqtop").mkdir(parents=True)
    cwd.mkdir()
    for name, path in {
        "flag": tmp_path / "flag.yaml",
        "env": tmp_path / "env.yaml",
        "cwd": cwd / "mqtop.yaml",
        "home": home / ".config" / "mqtop" / "config.yaml",
    }.items():
        path.write_text(f"brokers:\n  - {{name: from-{name}, type: redis}}\n")
    base = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(home)}
    for key in ("XDG_CONFIG_HOME", "MQTOP_CONFIG", "RABBIT_PASSWORD"):
        base.pop(key, None)

    def run(argv: list[str], env: dict[str, str], where: Path) -> Run:
        return subprocess.run(
            [sys.executable, "-m", "mqtop", *argv],
            capture_output=True,
            text=True,
            env={**base, **env},
            cwd=where,
            timeout=60,
            check=False,
        )

    show = ["config", "show"]
    env_cfg = {"MQTOP_CONFIG": str(tmp_path / "env.yaml")}
    jobs = [
        (["config", "validate", str(example)], {"RABBIT_PASSWORD": "pw"}, tmp_path),
        (["config", "validate", str(example)], {}, tmp_path),
        ([*show, "--config", str(tmp_path / "flag.yaml")], env_cfg, cwd),
        (show, env_cfg, cwd),
        (show, {}, cwd),
        (show, {}, tmp_path),
    ]
    with ThreadPoolExecutor(len(jobs)) as pool:
        valid, unset, flag, env, here, user = pool.map(lambda job: run(*job), jobs)
    assert valid.returncode == 0, valid.stderr
    assert "4 brokers" in valid.stdout
    assert unset.returncode == 2 and unset.stdout == ""
    line = unset.stderr.splitlines()[0]
    assert line.startswith(f"{example}:4:") and "RABBIT_PASSWORD" in line, unset.stderr
    for result, name in ((flag, "flag"), (env, "env"), (here, "cwd"), (user, "home")):
        assert result.returncode == 0, result.stderr
        assert f"name: from-{name}" in result.stdout, (name, result.stdout)


def test_a_write_that_cannot_be_audited_is_refused(static: Static, tmp_path: Path) -> None:
    """SPEC §7 "every write is appended to an audit log": with an audit log that cannot be
    written, a write is refused before anything changes (exit 2, one line), and a dry run,
    which writes nothing, still works."""
    w = static.world
    cli = Cli(tmp_path)
    src, dst = f"{w.prefix}:unaudited", f"{w.prefix}:unaudited:dead"
    w.redis_list(src, [b"a", b"b"])
    w.keys.append(dst)
    (tmp_path / "not-a-dir").write_text("")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(w.config(audit=tmp_path / "not-a-dir" / "audit.jsonl"))
    c = str(cfg)
    move, purge, dry = cli.many(
        ["dlq", "move", "cache", src, dst, "--yes", "--format", "json", "--config", c],
        ["dlq", "purge", "cache", src, "--yes", "--config", c],
        ["dlq", "move", "cache", src, dst, "--dry-run", "--format", "json", "--config", c],
    )
    for run in (move, purge):
        assert "audit log" in one_line_error(run, 2)
    assert w.redis_items(src) == [b"a", b"b"] and w.r().llen(dst) == 0
    assert _move_doc(dry)["moved"] == 2
