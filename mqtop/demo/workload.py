"""The demo's order-processing workload, run against the demo servers with ordinary clients.

::

    order-service ──► Kafka  orders (3 partitions)
                        ├─► group payment-service ──► SQS   email-notifications ──► email worker
                        │     │                      ├─► Redis jobs:invoices ────► invoice worker
                        │     │                      └─► RQ receipts ───────────► rq worker
                        │     └─ retries exhausted ─► Kafka orders.DLT
                        └─► group analytics (stalls for a while every cycle)
                  ──► Redis  events:orders (stream) ──► group fulfillment (2 consumers)
                  ──► Redis  notify:orders (pub/sub)

About 3 % of orders fail for good at one of three stages (a declined card, a bouncing
address, an invalid VAT id) and more fail transiently; failures are retried with exponential
backoff and then dead-lettered: ``orders.DLT`` (Spring-style ``kafka_dlt-*`` headers), the SQS
RedrivePolicy into ``email-notifications-dlq`` (visibility timeouts 1 s, 2 s, 4 s between
receives), and the Redis list ``jobs:invoices:dead``. Each cycle has an invoice re-run that
pushes ``jobs:invoices`` over 1000 jobs, a flash sale that does the same to the Kafka lag, a
stall of the ``analytics`` group longer than a minute, a short payment-gateway outage, and a
PDF-renderer outage that fails RQ receipt jobs into RQ's failed registry (mqtop/demo/jobs.py;
only when the ``rq`` package is installed).

Kafka records are produced one per request (``send_and_wait`` in sequence, ``linger_ms=0``):
the tansu broker reports wrong end offsets after batched produce.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import random
import struct
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("mqtop.demo")

ORDERS_TOPIC = "orders"
ORDERS_DLT = "orders.DLT"
PAYMENT_GROUP = "payment-service"
ANALYTICS_GROUP = "analytics"
EMAIL_QUEUE = "email-notifications"
EMAIL_DLQ = "email-notifications-dlq"
EMAIL_MAX_RECEIVES = 3
INVOICE_LIST = "jobs:invoices"
INVOICE_DEAD = "jobs:invoices:dead"
ORDER_STREAM = "events:orders"
FULFILLMENT_GROUP = "fulfillment"
NOTIFY_CHANNEL = "notify:orders"
STREAM_MAXLEN = 20_000

# A short session: before the first assignment the broker waits for other members for a
# while that grows with it (about 1 s at 2 s, 5 s at the default 10 s).
CONSUMER_TIMEOUTS: dict[str, int] = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 400}

DECLINED_CARD = "4000 0000 0000 0002"
GOOD_CARD = "4242 4242 4242 4242"
BOUNCE_DOMAIN = "bounce.invalid"
INVALID_VAT = "XX-INVALID"

Emit = Callable[[dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where the demo servers listen (None for a server that could not start)."""

    sqs_url: str | None
    redis_url: str | None
    kafka_bootstrap: str | None
    region: str = "us-east-1"


@dataclass(frozen=True, slots=True)
class Scenario:
    """Rates (per second) and the timeline of one cycle (seconds from the start).

    Every stage drains its share of a whole cycle (steady orders, the invoice re-run and the
    flash sale) well within the cycle, so backlogs rise and fall instead of growing forever.
    """

    order_rate: float = 8.0
    payment_rate: float = 60.0  # all concurrent gateway calls together, before retries
    payment_concurrency: int = 6
    analytics_rate: float = 80.0
    email_rate: float = 22.0
    invoice_rate: float = 40.0  # all invoice workers together, before retries
    invoice_workers: int = 4
    fulfillment_rate: float = 12.0  # per consumer (two consumers)
    failure_share: float = 0.01  # per stage (three stages: ~3 % of orders), dead-lettered
    transient_share: float = 0.05  # per stage, fails once, then succeeds on retry
    unacked_share: float = 0.01  # stream entries a fulfillment consumer "crashes" on
    retries: int = 3  # retries after the first attempt (in-process stages)
    backoff: float = 0.05  # first retry delay; doubles each retry
    cycle: float = 180.0
    invoice_batch_at: float = 0.0
    invoice_batch_size: int = 1500
    flash_sale_at: float = 30.0
    flash_sale_size: int = 1500
    stall_at: float = 20.0
    stall_for: float = 80.0
    outage_at: float = 60.0
    outage_for: float = 10.0
    renderer_down_at: float = 8.0  # RQ receipts fail into RQ's failed registry meanwhile
    renderer_down_for: float = 12.0
    seed: int = 8


class PermanentFailure(Exception):
    """A message that can never succeed (it is dead-lettered after the retries)."""


class TransientFailure(Exception):
    """A failure that a retry may fix."""


async def retry_with_backoff(
    attempt: Callable[[int], Awaitable[None]], retries: int, backoff: float
) -> int:
    """Call ``attempt(n)`` until it succeeds; sleep ``backoff * 2**n`` between tries.

    Returns the number of attempts made; re-raises the last failure when retries run out.
    """
    tries = 0
    while True:
        try:
            await attempt(tries)
            return tries + 1
        except (PermanentFailure, TransientFailure):
            if tries >= retries:
                raise
            await asyncio.sleep(backoff * (2**tries))
            tries += 1


def _every(scenario: Scenario, start: float, elapsed: float) -> int:
    """How many times a cycle event at ``start`` has happened after ``elapsed`` seconds."""
    if elapsed < start:
        return 0
    return int((elapsed - start) // scenario.cycle) + 1


def _within(scenario: Scenario, start: float, length: float, elapsed: float) -> bool:
    """True while a periodic window ``[start, start + length)`` of the cycle is open."""
    if elapsed < start:
        return False
    return (elapsed - start) % scenario.cycle < length


class Workload:
    """Runs the order pipeline until stopped. ``emit`` receives scenario events."""

    def __init__(
        self,
        endpoints: Endpoints,
        scenario: Scenario | None = None,
        emit: Emit | None = None,
    ) -> None:
        self.endpoints = endpoints
        self.scenario = scenario or Scenario()
        self.worker_log: Any = None  # where the RQ worker writes (a Path), None: nowhere
        seed = self.scenario.seed
        self.rng = random.Random(seed)  # stage decisions (transient failures, crashes)
        # orders and re-run jobs draw from their own generators: the nth order is the same
        # in every run, whatever the interleaving of the stages
        self._order_rng = random.Random(f"{seed}-orders")
        self._batch_rng = random.Random(f"{seed}-reruns")
        self.counts: Counter[str] = Counter()
        self._emit = emit or (lambda event: None)
        self._t0 = time.monotonic()
        self._order_seq = 0
        self._reruns = 0
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self._redis: Any = None
        self.receipts: Any = None  # mqtop.demo.jobs.Receipts when rq is installed
        self._sqs: Any = None
        self._email_url: str | None = None
        self._producer: Any = None
        self._dlt_producer: Any = None
        self._order_lock = asyncio.Lock()
        self._dlt_lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        self._joined: dict[str, Any] = {}  # consumers started during setup, by group

    # -- helpers ---------------------------------------------------------------------

    def elapsed(self) -> float:
        """Seconds since the workload started."""
        return time.monotonic() - self._t0

    def event(self, name: str, **fields: Any) -> None:
        """Report a scenario event (flash sale, stall...) to the runner."""
        log.info("scenario: %s %s", name, fields)
        self._emit({"scenario": name, "at": round(self.elapsed(), 1), **fields})

    @property
    def stalled(self) -> bool:
        """True while the analytics group is stalled."""
        s = self.scenario
        return _within(s, s.stall_at, s.stall_for, self.elapsed())

    @property
    def outage(self) -> bool:
        """True while the payment gateway is down."""
        s = self.scenario
        return _within(s, s.outage_at, s.outage_for, self.elapsed())

    def new_order(self) -> dict[str, Any]:
        """A realistic order; some carry a defect a later stage cannot get past."""
        self._order_seq += 1
        n = self._order_seq
        rng, share = self._order_rng, self.scenario.failure_share
        customer = rng.randint(1, 5000)
        # early orders include one defect of each kind so every DLQ fills within seconds; the
        # declined card comes once a few dozen orders are paid, so the error rate (over 15 s)
        # does not start far above the alert threshold because of one order out of three
        declined = n == 40 or rng.random() < share
        bounce = n == 5 or rng.random() < share
        bad_vat = n == 7 or rng.random() < share
        domains = ("example.com", "example.org", "mail.test")
        domain = BOUNCE_DOMAIN if bounce else rng.choice(domains)
        return {
            "order_id": f"ord-{n:07d}",
            "customer": f"cust-{customer:05d}",
            "email": f"customer{customer}@{domain}",
            "amount": round(rng.uniform(5, 400), 2),
            "currency": "EUR",
            "items": rng.randint(1, 5),
            "card": DECLINED_CARD if declined else GOOD_CARD,
            "vat_id": INVALID_VAT if bad_vat else f"DE{rng.randint(100000000, 999999999)}",
            "created_at": round(time.time(), 3),
            # a PDF receipt (an RQ job) for one order in four: RQ on the demo's Python
            # Redis server renders a few a second, not the whole order rate
            "receipt": n % 4 == 0,
        }

    # -- setup -----------------------------------------------------------------------

    async def setup(self, patience: float = 30.0) -> None:
        """Create topics, queues and groups (retrying up to ``patience`` seconds)."""
        deadline = time.monotonic() + patience
        steps: list[Callable[[], Awaitable[None]]] = []
        if self.endpoints.redis_url:
            steps.append(self._setup_redis)
            steps.append(self._setup_receipts)
        if self.endpoints.sqs_url:
            steps.append(self._setup_sqs)
        if self.endpoints.kafka_bootstrap:
            steps.append(self._setup_kafka)
        for step in steps:
            while True:
                try:
                    await step()
                    break
                except Exception as exc:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"demo setup failed: {exc}") from exc
                    log.info("setup %s: %s (retrying)", step.__name__, exc)
                    await asyncio.sleep(0.3)

    def _redis_client(self) -> Any:
        """A new redis.asyncio client for the demo server (one per blocking consumer)."""
        from redis.asyncio import Redis

        assert self.endpoints.redis_url
        return Redis.from_url(self.endpoints.redis_url, socket_timeout=10)

    async def _setup_redis(self) -> None:
        client = self._redis_client()
        try:
            await client.ping()
            with contextlib.suppress(Exception):  # BUSYGROUP when it exists
                await client.xgroup_create(ORDER_STREAM, FULFILLMENT_GROUP, id="$", mkstream=True)
        except Exception:
            await client.aclose()
            raise
        self._redis = client
        self._closers.append(client.aclose)

    async def _setup_receipts(self) -> None:
        from mqtop.demo import jobs

        if not jobs.rq_available() or self.endpoints.redis_url is None:
            return
        url = self.endpoints.redis_url
        self.receipts = await asyncio.to_thread(jobs.Receipts, url, self.worker_log)
        self._closers.append(functools.partial(asyncio.to_thread, self.receipts.close))

    def _sqs_client(self) -> Any:
        import boto3

        return boto3.client(
            "sqs",
            endpoint_url=self.endpoints.sqs_url,
            region_name=self.endpoints.region,
            aws_access_key_id="demo",
            aws_secret_access_key="demo",  # noqa: S106 - the local moto endpoint takes any
        )

    async def _setup_sqs(self) -> None:
        def create() -> tuple[Any, str]:
            client = self._sqs_client()
            dlq_url = client.create_queue(QueueName=EMAIL_DLQ)["QueueUrl"]
            arn = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
            policy = {"deadLetterTargetArn": arn, "maxReceiveCount": str(EMAIL_MAX_RECEIVES)}
            url = client.create_queue(
                QueueName=EMAIL_QUEUE,
                Attributes={"RedrivePolicy": json.dumps(policy), "VisibilityTimeout": "15"},
            )["QueueUrl"]
            return client, url

        self._sqs, self._email_url = await asyncio.to_thread(create)

    async def _setup_kafka(self) -> None:
        from aiokafka import AIOKafkaProducer
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        bootstrap = self.endpoints.kafka_bootstrap
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            wanted = [
                NewTopic(ORDERS_TOPIC, num_partitions=3, replication_factor=1),
                NewTopic(ORDERS_DLT, num_partitions=1, replication_factor=1),
            ]
            missing = [t for t in wanted if t.name not in existing]
            if missing:
                await admin.create_topics(missing)
        finally:
            await admin.close()
        for attr in ("_producer", "_dlt_producer"):
            if getattr(self, attr) is None:
                # linger_ms=0 and one send_and_wait at a time: one record per request
                producer = AIOKafkaProducer(
                    bootstrap_servers=bootstrap, linger_ms=0, acks=1, request_timeout_ms=10000
                )
                await producer.start()
                setattr(self, attr, producer)
                self._closers.append(producer.stop)
        # both groups join before the workload starts: the first poll already sees them
        missing_groups = [g for g in (PAYMENT_GROUP, ANALYTICS_GROUP) if g not in self._joined]
        joined = await asyncio.gather(*(self._start_consumer(g) for g in missing_groups))
        self._joined.update(zip(missing_groups, joined, strict=True))

    async def _start_consumer(self, group: str) -> Any:
        """A consumer of the order topic in ``group``, joined (``start`` waits for that)."""
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(
            ORDERS_TOPIC,
            bootstrap_servers=self.endpoints.kafka_bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id=f"{group}-1",
            **CONSUMER_TIMEOUTS,
        )
        await consumer.start()
        return consumer

    async def _consumer(self, group: str) -> Any:
        """The consumer joined during setup, or a new one (after a stage restart)."""
        consumer = self._joined.pop(group, None)
        return consumer if consumer is not None else await self._start_consumer(group)

    # -- running ---------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run every stage until ``stop`` is set, then close every client."""
        self._t0 = time.monotonic()
        tasks = [
            asyncio.create_task(self._guard(name, factory), name=f"demo-{name}")
            for name, factory in self._stages()
        ]
        try:
            await stop.wait()
        finally:
            log.info("stopping the workload")
            tasks += list(self._background)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(task, 5)
            await self.close()

    async def close(self) -> None:
        """Close every client (bounded in time)."""
        joined, self._joined = list(self._joined.values()), {}
        for consumer in joined:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(consumer.stop(), 5)
        closers, self._closers = self._closers, []
        for closer in reversed(closers):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(closer(), 5)
        if self._sqs is not None:
            with contextlib.suppress(Exception):
                self._sqs.close()
            self._sqs = None

    def _stages(self) -> list[tuple[str, Callable[[], Awaitable[None]]]]:
        stages: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("order-service", self.order_service),
            ("scheduler", self.scheduler),
        ]
        if self.endpoints.kafka_bootstrap:
            stages.append(("payment-service", self.payment_service))
            stages.append(("analytics", self.analytics))
        if self.endpoints.sqs_url:
            stages.append(("email-worker", self.email_worker))
        if self.endpoints.redis_url:
            for n in range(1, self.scenario.invoice_workers + 1):
                stages.append((f"invoice-worker-{n}", self.invoice_worker))
            for name in ("fulfillment-1", "fulfillment-2"):
                stages.append((name, functools.partial(self.fulfillment, name)))
            stages.append(("notify-subscriber", self.notify_subscriber))
        return stages

    async def _guard(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        """Run a stage; restart it after an unexpected error (a demo keeps going)."""
        while True:
            try:
                await factory()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.counts[f"{name}.crashes"] += 1
                log.warning("stage %s failed: %s: %s (restarting)", name, type(exc).__name__, exc)
                await asyncio.sleep(1.0)

    # -- order service ---------------------------------------------------------------

    async def place_orders(self, orders: list[dict[str, Any]]) -> None:
        """Publish orders: Kafka one record per request, then one Redis round trip for all."""
        if not orders:
            return
        if self._producer is not None:
            async with self._order_lock:  # keeps Kafka sends strictly one at a time
                for order in orders:
                    await self._producer.send_and_wait(
                        ORDERS_TOPIC,
                        json.dumps(order, separators=(",", ":")).encode(),
                        key=order["customer"].encode(),
                        headers=[("content-type", b"application/json")],
                    )
                    self.counts["orders"] += 1
        else:
            for order in orders:  # no Kafka: the payment step runs inline
                self.counts["orders"] += 1
                if await self._pay(order) is None:
                    await self._fan_out([order])
        if self._redis is not None:
            pipe = self._redis.pipeline(transaction=False)
            for order in orders:
                pipe.xadd(
                    ORDER_STREAM,
                    {"order_id": order["order_id"], "amount": str(order["amount"])},
                    maxlen=STREAM_MAXLEN,
                    approximate=True,
                )
                pipe.publish(NOTIFY_CHANNEL, order["order_id"])
            await pipe.execute()

    async def order_service(self) -> None:
        """Place orders at a rate that drifts gently around ``order_rate``."""
        tick = 0.25
        due = 0.0
        while True:
            phase = 2 * math.pi * self.elapsed() / 90.0
            rate = self.scenario.order_rate * (1 + 0.35 * math.sin(phase))
            due += rate * tick
            batch = []
            while due >= 1:
                due -= 1
                batch.append(self.new_order())
            await self.place_orders(batch)
            await asyncio.sleep(tick)

    async def scheduler(self) -> None:
        """Fire the cycle's events: invoice re-run, flash sale, stall, outages."""
        s = self.scenario
        done: Counter[str] = Counter()
        was_stalled = was_down = False
        while True:
            now = self.elapsed()
            if _every(s, s.invoice_batch_at, now) > done["invoice"]:
                done["invoice"] += 1
                await self.invoice_batch(s.invoice_batch_size)
            if _every(s, s.flash_sale_at, now) > done["flash"]:
                done["flash"] += 1
                # in its own task: the scheduler keeps its timing while the orders go out
                self._spawn(self.flash_sale(s.flash_sale_size))
            if self.stalled != was_stalled:
                was_stalled = not was_stalled
                self.event("analytics_stalled" if was_stalled else "analytics_resumed")
            if self.outage != was_down:
                was_down = not was_down
                self.event("payment_outage" if was_down else "payment_recovered")
            renderer_down = _within(s, s.renderer_down_at, s.renderer_down_for, now)
            if self.receipts is not None and renderer_down != self.receipts.down:
                await asyncio.to_thread(self.receipts.renderer, not renderer_down)
                self.event("renderer_down" if renderer_down else "renderer_recovered")
            await asyncio.sleep(0.2)

    async def flash_sale(self, size: int) -> None:
        """A burst of ``size`` orders, as fast as the broker takes them (one per request)."""
        self.event("flash_sale", orders=size, topic=ORDERS_TOPIC)
        for start in range(0, size, 100):
            await self.place_orders([self.new_order() for _ in range(min(100, size - start))])

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def invoice_batch(self, size: int) -> None:
        """Month-end re-invoicing: push ``size`` invoice jobs at once."""
        if self._redis is None:
            return
        self.event("invoice_batch", jobs=size, queue=INVOICE_LIST)
        self._reruns += 1
        rng = self._batch_rng
        jobs = []
        for i in range(size):  # a re-run of orders already paid
            job = {
                "job": "create-invoice",
                "order_id": f"ord-r{self._reruns}-{i:05d}",
                "customer": f"cust-{rng.randint(1, 5000):05d}",
                "amount": round(rng.uniform(5, 400), 2),
                "currency": "EUR",
                "vat_id": f"DE{rng.randint(100000000, 999999999)}",
            }
            if i == 2 or rng.random() < self.scenario.failure_share:
                job["vat_id"] = INVALID_VAT  # the re-run meets the same bad data
            jobs.append(json.dumps(job, separators=(",", ":")).encode())
        for start in range(0, len(jobs), 500):
            await self._redis.lpush(INVOICE_LIST, *jobs[start : start + 500])

    # -- payment service (Kafka) -----------------------------------------------------

    async def _pay(self, order: dict[str, Any]) -> str | None:
        """Charge an order with retries: None when paid, else why the last attempt failed."""
        transient = self.rng.random() < self.scenario.transient_share

        async def attempt(n: int) -> None:
            await asyncio.sleep(self.scenario.payment_concurrency / self.scenario.payment_rate)
            if order.get("card") == DECLINED_CARD:
                raise PermanentFailure("card declined")
            if self.outage:
                raise TransientFailure("payment gateway timeout")
            if transient and n == 0:
                raise TransientFailure("payment gateway 503")

        try:
            await retry_with_backoff(attempt, self.scenario.retries, self.scenario.backoff)
        except (PermanentFailure, TransientFailure) as exc:
            self.counts["payments.failed"] += 1
            return str(exc)
        self.counts["payments.ok"] += 1
        return None

    async def payment_service(self) -> None:
        """Consume orders, charge them, fan out email and invoice work, dead-letter failures."""
        consumer = await self._consumer(PAYMENT_GROUP)
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=500, max_records=30)
                paid: list[dict[str, Any]] = []
                slots = asyncio.Semaphore(self.scenario.payment_concurrency)

                async def charge(
                    record: Any,
                    paid: list[dict[str, Any]] = paid,
                    slots: asyncio.Semaphore = slots,
                ) -> None:
                    async with slots:  # a few gateway calls in flight at once
                        order = _json(record.value)
                        failure = "invalid JSON" if order is None else await self._pay(order)
                        if failure is None and order is not None:
                            paid.append(order)
                        else:
                            await self._dead_letter_order(record, failure or "unknown")

                await asyncio.gather(*(charge(r) for rs in batch.values() for r in rs))
                await self._fan_out(paid)
                if batch:  # committed once the whole batch is paid or dead-lettered
                    await consumer.commit()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(consumer.stop(), 5)

    async def _fan_out(self, paid: list[dict[str, Any]]) -> None:
        """Queue the confirmation emails (SQS) and invoice jobs (Redis) of paid orders."""
        if not paid:
            return
        await self._send_emails(paid)
        if self._redis is not None:
            await self._redis.lpush(INVOICE_LIST, *(self._invoice_job(o) for o in paid))
        wanted = [o for o in paid if o["receipt"]]
        if self.receipts is not None and wanted:
            await asyncio.to_thread(
                self.receipts.enqueue, [(o["order_id"], o["vat_id"]) for o in wanted]
            )

    async def _dead_letter_order(self, record: Any, reason: str) -> None:
        """Publish a failed order to ``orders.DLT`` with Spring-style headers."""
        headers = [
            *list(record.headers or ()),
            ("kafka_dlt-original-topic", record.topic.encode()),
            ("kafka_dlt-original-partition", struct.pack(">i", record.partition)),
            ("kafka_dlt-original-offset", struct.pack(">q", record.offset)),
            ("kafka_dlt-original-timestamp", struct.pack(">q", record.timestamp)),
            ("kafka_dlt-original-consumer-group", PAYMENT_GROUP.encode()),
            ("kafka_dlt-exception-fqcn", b"PaymentError"),
            ("kafka_dlt-exception-message", reason.encode()),
        ]
        async with self._dlt_lock:  # payments run concurrently: still one record per request
            await self._dlt_producer.send_and_wait(
                ORDERS_DLT, record.value, key=record.key, headers=headers
            )
            self.counts["orders.dead_lettered"] += 1

    async def analytics(self) -> None:
        """A fast consumer group that stalls (stops committing, stays joined) each cycle."""
        consumer = await self._consumer(ANALYTICS_GROUP)
        try:
            while True:
                if self.stalled:
                    await asyncio.sleep(0.5)  # heartbeats go on: the group stays Stable
                    continue
                batch = await consumer.getmany(timeout_ms=500, max_records=40)
                count = sum(len(r) for r in batch.values())
                if count:
                    await asyncio.sleep(count / self.scenario.analytics_rate)
                    await consumer.commit()
                    self.counts["analytics"] += count
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(consumer.stop(), 5)

    # -- email worker (SQS) ----------------------------------------------------------

    async def _send_emails(self, orders: list[dict[str, Any]]) -> None:
        if self._sqs is None or self._email_url is None:
            return
        entries = [
            {
                "Id": str(i),
                "MessageBody": json.dumps(
                    {
                        "template": "order-confirmation",
                        "to": o["email"],
                        "order_id": o["order_id"],
                        "amount": o["amount"],
                    }
                ),
                "MessageAttributes": {
                    "order_id": {"DataType": "String", "StringValue": o["order_id"]},
                    "content-type": {"DataType": "String", "StringValue": "application/json"},
                },
            }
            for i, o in enumerate(orders)
        ]
        client, url = self._sqs, self._email_url

        def send() -> None:
            for start in range(0, len(entries), 10):
                chunk = entries[start : start + 10]
                for n, entry in enumerate(chunk):
                    entry["Id"] = str(n)
                client.send_message_batch(QueueUrl=url, Entries=chunk)

        await asyncio.to_thread(send)

    async def email_worker(self) -> None:
        """Send confirmation emails; failures back off through the visibility timeout.

        A failed message is made visible again after 1 s, 2 s, then 4 s; on the receive after
        the third failure SQS (the RedrivePolicy) moves it to the DLQ.
        """
        client, url = self._sqs, self._email_url
        if client is None or url is None:
            return

        def receive() -> list[dict[str, Any]]:
            response = client.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=1,
                AttributeNames=["ApproximateReceiveCount"],
                MessageAttributeNames=["All"],
            )
            return list(response.get("Messages", []))

        while True:
            messages = await asyncio.to_thread(receive)
            done: list[dict[str, str]] = []
            retry: list[dict[str, Any]] = []
            for message in messages:
                await asyncio.sleep(1.0 / self.scenario.email_rate)
                email = _json(message["Body"].encode()) or {}
                count = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
                bounce = str(email.get("to", "")).endswith("@" + BOUNCE_DOMAIN)
                flaky = count == 1 and self.rng.random() < self.scenario.transient_share
                if bounce or flaky:
                    retry.append(
                        {
                            "Id": str(len(retry)),
                            "ReceiptHandle": message["ReceiptHandle"],
                            "VisibilityTimeout": 2 ** (count - 1),
                        }
                    )
                    self.counts["emails.failed_attempts"] += 1
                else:
                    done.append({"Id": str(len(done)), "ReceiptHandle": message["ReceiptHandle"]})
                    self.counts["emails.sent"] += 1

            def settle(done: list[dict[str, str]], retry: list[dict[str, Any]]) -> None:
                if done:
                    client.delete_message_batch(QueueUrl=url, Entries=done)
                if retry:
                    client.change_message_visibility_batch(QueueUrl=url, Entries=retry)

            if done or retry:
                await asyncio.to_thread(settle, done, retry)

    # -- invoice worker (Redis list) -------------------------------------------------

    @staticmethod
    def _invoice_job(order: dict[str, Any]) -> bytes:
        job = {
            "job": "create-invoice",
            "order_id": order["order_id"],
            "customer": order["customer"],
            "amount": order["amount"],
            "currency": order["currency"],
            "vat_id": order["vat_id"],
        }
        return json.dumps(job, separators=(",", ":")).encode()

    async def invoice_worker(self) -> None:
        """One of the invoice workers: pop jobs, retry failures with backoff, dead-letter.

        Jobs are taken up to ten at a time (``RPOP key 10``), with a blocking ``BRPOP`` when
        the list is empty; a failed job is ``LPUSH``ed to the dead list exactly as queued.
        """
        client = self._redis_client()
        per_job = self.scenario.invoice_workers / self.scenario.invoice_rate
        try:
            while True:
                popped = await client.rpop(INVOICE_LIST, 10)
                if not popped:
                    got = await client.brpop([INVOICE_LIST], timeout=1)
                    popped = [got[1]] if got else []
                for raw in popped:
                    await self._invoice(client, raw, per_job)
        finally:
            with contextlib.suppress(Exception):
                await client.aclose()

    async def _invoice(self, client: Any, raw: bytes, per_job: float) -> None:
        job = _json(raw) or {}
        transient = self.rng.random() < self.scenario.transient_share

        async def attempt(n: int) -> None:
            await asyncio.sleep(per_job)
            if job.get("vat_id") == INVALID_VAT or not job:
                raise PermanentFailure("invalid VAT id")
            if transient and n == 0:
                raise TransientFailure("PDF renderer busy")

        try:
            await retry_with_backoff(attempt, self.scenario.retries, self.scenario.backoff)
            self.counts["invoices.ok"] += 1
        except (PermanentFailure, TransientFailure):
            # the dead list keeps the job exactly as it was queued (replayable as is)
            await client.lpush(INVOICE_DEAD, raw)
            self.counts["invoices.dead_lettered"] += 1

    # -- fulfillment (Redis stream group) and notifications (pub/sub) ----------------

    async def fulfillment(self, consumer: str) -> None:
        """Read the order stream as one consumer of the group; a few entries are never acked."""
        client = self._redis_client()
        try:
            while True:
                response = await client.xreadgroup(
                    FULFILLMENT_GROUP, consumer, {ORDER_STREAM: ">"}, count=10, block=1000
                )
                acked = []
                for _stream, entries in response or []:
                    for entry_id, _fields in entries:
                        await asyncio.sleep(1.0 / self.scenario.fulfillment_rate)
                        if self.rng.random() < self.scenario.unacked_share:
                            # the consumer "crashed" mid-way: the entry stays pending
                            self.counts["fulfillment.stuck"] += 1
                            continue
                        acked.append(entry_id)
                if acked:
                    await client.xack(ORDER_STREAM, FULFILLMENT_GROUP, *acked)
                    self.counts["fulfillment.acked"] += len(acked)
        finally:
            with contextlib.suppress(Exception):
                await client.aclose()

    async def notify_subscriber(self) -> None:
        """A dashboard service listening to order notifications (pub/sub)."""
        client = self._redis_client()
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(NOTIFY_CHANNEL)
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None:
                    self.counts["notifications"] += 1
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            with contextlib.suppress(Exception):
                await client.aclose()


def _json(raw: bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None
