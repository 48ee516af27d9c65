"""The demo workload against the demo servers, cross-checked with the servers' own numbers.

A compressed scenario (every event within a few seconds) runs in this process against a real
moto SQS endpoint, a fakeredis TCP server and a tansu Kafka broker started on free ports.
"""

from __future__ import annotations

import asyncio
import json
import struct
import time

import pytest

from mqtop.demo.servers import KafkaServer, RedisServer, SqsServer
from mqtop.demo.workload import (
    ANALYTICS_GROUP,
    BOUNCE_DOMAIN,
    DECLINED_CARD,
    EMAIL_DLQ,
    EMAIL_QUEUE,
    INVALID_VAT,
    INVOICE_DEAD,
    ORDER_STREAM,
    ORDERS_DLT,
    ORDERS_TOPIC,
    PAYMENT_GROUP,
    Endpoints,
    PermanentFailure,
    Scenario,
    TransientFailure,
    Workload,
    retry_with_backoff,
)
from mqtop.kernel.procs import process_alive

pytestmark = pytest.mark.slow

FAST = Scenario(
    order_rate=20.0,
    email_rate=80.0,  # keeps up with the flash sale, so bounces come round again on time
    cycle=60.0,
    invoice_batch_at=0.0,
    invoice_batch_size=60,
    flash_sale_at=1.0,
    flash_sale_size=80,
    stall_at=0.5,
    stall_for=4.0,
    # late and long enough that the payment consumer has joined its group on a loaded machine
    # (an outage before any payment attempt would dead-letter nothing)
    outage_at=5.0,
    outage_for=4.0,
    failure_share=0.05,
)


@pytest.fixture(scope="module")
def servers():
    kafka, redis_server, sqs = KafkaServer(), RedisServer(), SqsServer()
    kafka.start()
    redis_server.start()
    sqs.start()
    yield kafka, redis_server, sqs
    for server in (sqs, redis_server, kafka):
        server.stop()
    assert kafka.pid is None


def _dlq_attrs(url: str):
    client = _sqs_client(url)
    return {
        u: client.get_queue_attributes(QueueUrl=u, AttributeNames=["All"])["Attributes"]
        for u in client.list_queues()["QueueUrls"]
    }


def _sqs_client(url: str):
    import boto3

    return boto3.client(
        "sqs",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="t",
        aws_secret_access_key="t",
    )


async def _committed_by_partition(bootstrap: str, group: str, partitions: int) -> dict[int, int]:
    """A group's committed offsets on the order topic, read without joining the group."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await probe.start()
    try:
        return {
            p: await probe.committed(TopicPartition(ORDERS_TOPIC, p)) or 0
            for p in range(partitions)
        }
    finally:
        await probe.stop()


async def _committed(bootstrap: str, group: str, partitions: int) -> int:
    return sum((await _committed_by_partition(bootstrap, group, partitions)).values())


async def _read_topic(bootstrap: str, topic: str, partitions: int) -> list:
    """Every record of a topic (assigned partitions, no group)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records = []
        deadline = time.monotonic() + 20
        for tp in tps:
            while await consumer.position(tp) < ends[tp]:
                assert time.monotonic() < deadline, "topic read timed out"
                batch = await consumer.getmany(tp, timeout_ms=1000)
                records.extend(batch.get(tp, []))
        return records
    finally:
        await consumer.stop()


async def test_workload_dead_letters_what_fails_and_nothing_else(servers):
    kafka, redis_server, sqs = servers
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from redis.asyncio import Redis

    endpoints = Endpoints(sqs.url, redis_server.url, kafka.bootstrap)
    events: list[dict] = []
    workload = Workload(endpoints, FAST, emit=events.append)
    await workload.setup()
    stop = asyncio.Event()
    task = asyncio.create_task(workload.run(stop))

    # during the stall the analytics group commits nothing, while orders keep coming
    await asyncio.sleep(2.0)
    assert workload.stalled
    before = await _committed(kafka.bootstrap, ANALYTICS_GROUP, 3)
    placed_before = workload.counts["orders"]
    await asyncio.sleep(1.5)
    assert workload.stalled
    assert await _committed(kafka.bootstrap, ANALYTICS_GROUP, 3) == before
    assert workload.counts["orders"] > placed_before

    await asyncio.sleep(11.0)  # past the stall, the outage, and SQS's 1+2+4 s of backoff
    stop.set()
    await asyncio.wait_for(task, 30)

    names = [e["scenario"] for e in events]
    assert names[:2] == ["invoice_batch", "analytics_stalled"]
    for name in ("flash_sale", "payment_outage", "payment_recovered", "analytics_resumed"):
        assert name in names

    # Kafka: one record per produce request, so tansu's end offsets count every order
    probe = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap)
    await probe.start()
    try:
        ends = await probe.end_offsets([TopicPartition(ORDERS_TOPIC, p) for p in range(3)])
        dlt_end = await probe.end_offsets([TopicPartition(ORDERS_DLT, 0)])
    finally:
        await probe.stop()
    # (a send cancelled by the stop may still have landed: at most one)
    placed = workload.counts["orders"]
    assert placed <= sum(ends.values()) <= placed + 1
    assert placed >= FAST.flash_sale_size
    dead_orders = workload.counts["orders.dead_lettered"]
    assert dlt_end[TopicPartition(ORDERS_DLT, 0)] == dead_orders > 0

    records = await _read_topic(kafka.bootstrap, ORDERS_TOPIC, 3)
    orders = {(r.partition, r.offset): r for r in records}
    dlt = await _read_topic(kafka.bootstrap, ORDERS_DLT, 1)
    assert len(dlt) == dead_orders
    reasons = set()
    for record in dlt:
        headers = dict(record.headers)
        assert headers["kafka_dlt-original-topic"] == ORDERS_TOPIC.encode()
        partition = struct.unpack(">i", headers["kafka_dlt-original-partition"])[0]
        offset = struct.unpack(">q", headers["kafka_dlt-original-offset"])[0]
        original = orders[(partition, offset)]
        assert record.value == original.value and record.key == original.key
        reason = headers["kafka_dlt-exception-message"].decode()
        reasons.add(reason)
        if reason == "card declined":
            assert json.loads(record.value)["card"] == DECLINED_CARD
    # declined cards (the 40th order among them) and the gateway outage both dead-letter
    assert reasons == {"card declined", "payment gateway timeout"}
    # every declined card the payment service got past is in the DLT; good cards only
    # dead-letter during the outage
    committed = await _committed_by_partition(kafka.bootstrap, PAYMENT_GROUP, 3)
    dead_ids = {json.loads(r.value)["order_id"]: r for r in dlt}
    consumed = [r for (p, o), r in orders.items() if o < committed[p]]
    declined = [r for r in consumed if json.loads(r.value)["card"] == DECLINED_CARD]
    assert "ord-0000040" in {json.loads(r.value)["order_id"] for r in declined}
    for record in declined:
        assert json.loads(record.value)["order_id"] in dead_ids
    for order_id, record in dead_ids.items():
        if json.loads(record.value)["card"] != DECLINED_CARD:
            assert dict(record.headers)["kafka_dlt-exception-message"] == (
                b"payment gateway timeout"
            ), order_id

    # Redis: dead invoices are exactly the jobs with an invalid VAT id, kept byte for byte
    client = Redis.from_url(redis_server.url)
    try:
        dead = await client.lrange(INVOICE_DEAD, 0, -1)
        groups = await client.xinfo_groups(ORDER_STREAM)
    finally:
        await client.aclose()
    assert len(dead) == workload.counts["invoices.dead_lettered"] > 0
    assert all(json.loads(raw)["vat_id"] == INVALID_VAT for raw in dead)
    assert groups[0]["consumers"] == 2

    # SQS: the redrive policy moved only bouncing addresses, after three failed receives
    def dlq_messages() -> list[dict]:
        client = _sqs_client(sqs.url)
        url = client.get_queue_url(QueueName=EMAIL_DLQ)["QueueUrl"]
        source = client.get_queue_url(QueueName=EMAIL_QUEUE)["QueueUrl"]
        policy = client.get_queue_attributes(QueueUrl=source, AttributeNames=["RedrivePolicy"])
        assert EMAIL_DLQ in policy["Attributes"]["RedrivePolicy"]
        got = client.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], VisibilityTimeout=0
        )
        return list(got.get("Messages", []))

    moved = await asyncio.to_thread(dlq_messages)
    assert moved, (workload.counts, await asyncio.to_thread(_dlq_attrs, sqs.url))
    for message in moved:
        assert json.loads(message["Body"])["to"].endswith("@" + BOUNCE_DOMAIN)
        assert int(message["Attributes"]["ApproximateReceiveCount"]) >= 3


async def test_retry_with_backoff_doubles_the_delay(monkeypatch):
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    calls: list[int] = []

    async def always(n: int) -> None:
        calls.append(n)
        raise PermanentFailure("no")

    with pytest.raises(PermanentFailure):
        await retry_with_backoff(always, retries=3, backoff=0.1)
    assert calls == [0, 1, 2, 3]
    assert sleeps == pytest.approx([0.1, 0.2, 0.4])

    sleeps.clear()

    async def once(n: int) -> None:
        if n == 0:
            raise TransientFailure("503")

    assert await retry_with_backoff(once, retries=3, backoff=0.1) == 2
    assert sleeps == pytest.approx([0.1])


def test_kafka_server_dies_with_its_parent(tmp_path):
    """tansu gets SIGKILL when the process that started it is killed (PR_SET_PDEATHSIG)."""
    import os
    import signal
    import subprocess
    import sys

    from tests.conftest import ROOT

    script = (
        "from mqtop.demo.servers import KafkaServer\n"
        "import sys, time\n"
        "k = KafkaServer(); k.start(); print(k.pid, k.port, flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        pid, _port = (int(x) for x in proc.stdout.readline().split())
        assert process_alive(pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not process_alive(pid)
    finally:
        proc.kill()
        proc.wait()


def test_orders_are_the_same_in_every_run():
    """Seeded data: the nth order does not depend on how the stages interleave."""
    endpoints = Endpoints(None, None, None)
    first, second = Workload(endpoints), Workload(endpoints)
    second.rng.random()  # a stage decision drawn first must not shift the orders
    a = [first.new_order() for _ in range(200)]
    b = [second.new_order() for _ in range(200)]
    for order in a + b:
        order.pop("created_at")
    assert a == b
    assert a[39]["card"] == DECLINED_CARD
    assert a[4]["email"].endswith("@" + BOUNCE_DOMAIN)
    assert a[6]["vat_id"] == INVALID_VAT
    # about 1 % of each defect beyond the forced ones
    assert sum(o["card"] == DECLINED_CARD for o in a) < 10
