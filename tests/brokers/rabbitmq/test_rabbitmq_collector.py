"""RabbitMQ collector against the real broker, cross-checked with the management API."""

from __future__ import annotations

import asyncio
import json
import time

import pika
import pytest

from tests.harness import free_port
from tests.support.rabbit import Rabbit, broker_config, rabbit_session, wait_until

pytestmark = pytest.mark.broker


@pytest.fixture
def rabbit(rabbitmq_broker, unique):
    yield from rabbit_session(rabbitmq_broker, unique)


def _series(doc: dict, queue: str) -> dict:
    matches = [s for s in doc["series"] if s["queue"] == queue]
    assert len(matches) == 1, (queue, [s["queue"] for s in doc["series"]])
    return matches[0]


def _metrics(run_cli, path) -> dict:
    result = run_cli("metrics", "--config", str(path), "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_metrics_match_management_api(rabbit: Rabbit, rabbitmq_broker, write_config, run_cli):
    p = rabbit.unique("mx")
    dlx = rabbit.exchange(p + ".dlx", "direct")
    # DLQ names follow no convention: the mapping must come from the DLX bindings
    src = rabbit.queue(
        p + ".orders",
        arguments={"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "orders"},
    )
    parking = rabbit.queue(p + ".parking")
    rabbit.bind(dlx, parking, "orders")
    qsrc = rabbit.queue(
        p + ".payments",
        arguments={
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": dlx,
            "x-dead-letter-routing-key": "payments",
        },
    )
    qparking = rabbit.queue(p + ".payments-parking", arguments={"x-queue-type": "quorum"})
    rabbit.bind(dlx, qparking, "payments")

    conn = rabbit.connect()
    channel = conn.channel()
    old = int(time.time()) - 120
    for queue in (src, qsrc):
        for i in range(20):
            channel.basic_publish(
                "",
                queue,
                f"m{i}".encode(),
                pika.BasicProperties(message_id=f"{queue}-{i}", timestamp=old, delivery_mode=2),
            )
        for _ in range(6):  # rejected into the DLQ
            method, _, _ = channel.basic_get(queue)
            channel.basic_reject(method.delivery_tag, requeue=False)
        for _ in range(4):
            method, _, _ = channel.basic_get(queue)
            channel.basic_ack(method.delivery_tag)
    # a consumer holding 2 unacknowledged messages of the classic queue
    holder = conn.channel()
    holder.basic_qos(prefetch_count=2)
    holder.basic_consume(src, lambda *a: None)
    conn.process_data_events(time_limit=0.5)

    def settled() -> bool:
        conn.process_data_events(0)
        a, b = rabbit.info(src), rabbit.info(qsrc)
        stats_a = a.get("message_stats", {})
        return (
            a.get("messages_ready") == 8
            and a.get("messages_unacknowledged") == 2
            and a.get("consumers") == 1
            and b.get("messages_ready") == 10
            and rabbit.info(parking).get("messages_ready") == 6
            and rabbit.info(qparking).get("messages_ready") == 6
            and stats_a.get("publish") == 20
            and stats_a.get("deliver_get") == 12
        )

    wait_until(settled, 45, "management stats")
    path = write_config(broker_config(rabbitmq_broker, [p + ".*"]))
    doc = _metrics(run_cli, path)
    assert doc["brokers"] == [{"name": "rabbit", "type": "rabbitmq", "up": True, "error": None}]
    now = time.time()
    api = {name: rabbit.info(name) for name in (src, qsrc, parking, qparking)}

    s = _series(doc, src)
    assert s["kind"] == "classic"
    assert s["dlq"] == parking
    m = s["metrics"]
    assert m["queue_length"] == api[src]["messages_ready"] == 8
    assert m["consumer_lag_messages"] == 8
    assert m["in_flight"] == api[src]["messages_unacknowledged"] == 2
    assert m["consumers"] == api[src]["consumers"] == 1
    assert m["dlq_length"] == api[parking]["messages_ready"] == 6
    head = api[src]["head_message_timestamp"]
    assert m["latency_seconds"] == pytest.approx(now - head, abs=15)
    assert m["latency_seconds"] >= 100
    # no traffic between the two polls: rates are known and zero, the error ratio unknown
    assert m["publish_rate"] == 0
    assert m["processing_rate"] == 0
    assert m["error_rate"] is None

    qs = _series(doc, qsrc)
    assert qs["kind"] == "quorum"
    assert qs["dlq"] == qparking
    assert qs["metrics"]["queue_length"] == api[qsrc]["messages_ready"] == 10
    assert qs["metrics"]["in_flight"] == api[qsrc]["messages_unacknowledged"] == 0
    assert qs["metrics"]["dlq_length"] == api[qparking]["messages_ready"] == 6
    # quorum queues do not report head_message_timestamp: latency is unknown, not 0
    assert "head_message_timestamp" not in api[qsrc]
    assert qs["metrics"]["latency_seconds"] is None

    dlq_series = _series(doc, parking)
    assert dlq_series["dlq"] is None
    assert dlq_series["metrics"]["queue_length"] == 6


def test_rates_and_error_rate_from_counters(rabbit: Rabbit, rabbitmq_broker, write_config, unique):
    """Two engine polls around real traffic; expected values from the broker's own numbers."""
    from mqtop.config import load_config_file
    from mqtop.engine import Engine
    from mqtop.kernel.model import SeriesKey

    p = rabbit.unique("er")
    direct = rabbit.exchange(p + ".dlx", "direct")
    a = rabbit.queue(
        p + ".a", arguments={"x-dead-letter-exchange": direct, "x-dead-letter-routing-key": "a"}
    )
    da = rabbit.queue(p + ".a-parked")
    rabbit.bind(direct, da, "a")
    # two sources share one DLQ through a topic exchange, keeping their own routing keys
    topic = rabbit.exchange(p + ".tdlx", "topic")
    b = rabbit.queue(p + ".b", arguments={"x-dead-letter-exchange": topic})
    c = rabbit.queue(p + ".c", arguments={"x-dead-letter-exchange": topic})
    shared = rabbit.queue(p + ".shared-parked")
    rabbit.bind(topic, shared, "#")
    names = (a, da, b, c, shared)
    wait_until(lambda: all("messages_ready" in rabbit.info(n) for n in names), 30, "queue stats")
    path = write_config(broker_config(rabbitmq_broker, [p + ".*"], interval="10s"))
    config = load_config_file(path)
    plan = {a: (12, 8), b: (15, 5), c: (10, 10)}  # queue: (acked, rejected)

    async def scenario():
        engine = Engine(config)
        try:
            first = await engine.poll("rabbit")
            conn = rabbit.connect()
            channel = conn.channel()
            for queue, (acked, rejected) in plan.items():
                for i in range(acked + rejected):
                    channel.basic_publish("", queue, b"x%d" % i)
                for _ in range(rejected):
                    method, _, _ = channel.basic_get(queue)
                    channel.basic_reject(method.delivery_tag, requeue=False)
                for _ in range(acked):
                    method, _, _ = channel.basic_get(queue)
                    channel.basic_ack(method.delivery_tag)

            def settled() -> bool:
                conn.process_data_events(0)
                for queue, (acked, rejected) in plan.items():
                    stats = rabbit.info(queue).get("message_stats", {})
                    if stats.get("ack") != acked or stats.get("publish") != acked + rejected:
                        return False
                    if stats.get("deliver_get") != acked + rejected:
                        return False
                return (
                    rabbit.info(da).get("messages") == 8
                    and rabbit.info(shared).get("messages") == 15
                )

            await asyncio.to_thread(wait_until, settled, 45, "management stats")
            second = await engine.poll("rabbit")
            views = {n: engine.store.view(SeriesKey("rabbit", n)) for n in names}
            return first, second, views
        finally:
            await engine.close()

    first, second, views = asyncio.run(scenario())
    assert first.up and second.up
    span = second.time - first.time
    for queue, (acked, rejected) in plan.items():
        metrics = views[queue].metrics
        assert metrics["error_rate"] == pytest.approx(rejected / (acked + rejected)), queue
        assert metrics["processing_rate"] == pytest.approx(acked / span), queue
        assert metrics["publish_rate"] == pytest.approx((acked + rejected) / span), queue
    assert views[a].info["error_rate_method"] == "dlx-inflow"
    assert views[b].info["error_rate_method"] == "deliveries"
    assert views[c].info["error_rate_method"] == "deliveries"
    # the broker does not count dead letters as publishes into the DLQ ...
    assert rabbit.info(da).get("message_stats", {}).get("publish", 0) == 0
    # ... so a DLQ's publish_rate is its inflow: depth growth plus what was consumed
    # (same counts; the collector times its own polls, which start after the engine's
    # first connect, so the span differs by that much)
    assert views[da].metrics["publish_rate"] == pytest.approx(8 / span, rel=0.1)
    assert views[shared].metrics["publish_rate"] == pytest.approx(15 / span, rel=0.1)
    assert views[a].dlq == da and views[b].dlq == shared and views[c].dlq == shared
    assert views[a].metrics["dlq_length"] == 8


def test_dlq_mapping_from_policy_and_arguments(
    rabbit: Rabbit, rabbitmq_broker, write_config, run_cli
):
    p = rabbit.unique("pol")
    # policy -> fanout DLX -> exchange-to-exchange binding -> queue
    fanout = rabbit.exchange(p + ".dlx", "fanout")
    hop = rabbit.exchange(p + ".hop", "direct")
    rabbit.bind_exchange(fanout, hop, "")
    parked = rabbit.queue(p + ".parked")
    rabbit.bind(hop, parked, p + ".src1")
    src1 = rabbit.queue(p + ".src1")
    # queue arguments win over the policy: default exchange straight to a queue
    other = rabbit.queue(p + ".other-parked")
    src2 = rabbit.queue(
        p + ".src2",
        arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": other},
    )
    rabbit.policy(p + "-dl", rf"^{p}\.src", {"dead-letter-exchange": fanout})
    wait_until(
        lambda: (
            rabbit.info(src1).get("effective_policy_definition", {}).get("dead-letter-exchange")
            == fanout
        ),
        30,
        "policy applied",
    )
    path = write_config(broker_config(rabbitmq_broker, [p + ".*"]))
    result = run_cli("queues", "--config", str(path), "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = {r["queue"]: r for r in json.loads(result.stdout)}
    assert rows[src1]["dlq"] == parked
    assert rows[src2]["dlq"] == other
    assert rows[parked]["kind"] == "classic"

    # a message really dead-lettered from src1 lands where mqtop said
    conn = rabbit.connect()
    channel = conn.channel()
    channel.basic_publish("", src1, b"x")
    method = wait_until(lambda: channel.basic_get(src1)[0], 10, "message")
    channel.basic_reject(method.delivery_tag, requeue=False)
    wait_until(lambda: rabbit.ready(parked) == 1, 10, "dead letter in parked")


def test_non_default_vhost_and_pagination(rabbit: Rabbit, rabbitmq_broker, write_config, run_cli):
    vhost = rabbit.vhost()
    rabbit.queue("jobs", vhost=vhost)
    rabbit.queue("jobs.dlq", vhost=vhost)
    rabbit.queue("audit", vhost=vhost)
    conn = rabbit.connect(vhost)
    channel = conn.channel()
    for i in range(3):
        channel.basic_publish("", "jobs", b"j%d" % i)
    channel.basic_publish("", "jobs.dlq", b"dead")
    wait_until(lambda: rabbit.info("jobs", vhost).get("messages_ready") == 3, 30, "stats")
    wait_until(lambda: rabbit.info("jobs.dlq", vhost).get("messages_ready") == 1, 30, "stats")
    # one queue per page: every page must be read
    extra = f'    vhosts: ["{vhost}"]\n    page_size: 1\n'
    path = write_config(broker_config(rabbitmq_broker, [f"{vhost}/*"], extra))
    doc = _metrics(run_cli, path)
    names = sorted(s["queue"] for s in doc["series"])
    assert names == [f"{vhost}/audit", f"{vhost}/jobs", f"{vhost}/jobs.dlq"]
    jobs = _series(doc, f"{vhost}/jobs")
    assert jobs["dlq"] == f"{vhost}/jobs.dlq"
    assert jobs["metrics"]["queue_length"] == 3
    assert jobs["metrics"]["dlq_length"] == 1


def test_without_management_degraded_amqp_mode(
    rabbit: Rabbit, rabbitmq_broker, write_config, run_cli
):
    p = rabbit.unique("deg")
    jobs = rabbit.queue(p + ".jobs")
    dlq = rabbit.queue(p + ".jobs.dlq")
    conn = rabbit.connect()
    channel = conn.channel()
    for _ in range(4):
        channel.basic_publish("", jobs, b"x")
    channel.basic_publish("", dlq, b"x")
    wait_until(lambda: rabbit.ready(jobs) == 4, 10, "published")
    closed = free_port()
    user, password = rabbitmq_broker.user, rabbitmq_broker.password
    path = write_config(
        f"""
        interval: 500ms
        brokers:
          - name: rabbit
            type: rabbitmq
            url: "amqp://{user}:{password}@{rabbitmq_broker.host}:{rabbitmq_broker.amqp_port}/"
            management_url: "http://admin:s3cretMgmtPw@127.0.0.1:{closed}"
            include: ["{jobs}", "{dlq}", "{p}.missing", "{p}.glob*"]
        """
    )
    result = run_cli("metrics", "--config", str(path), "--format", "json")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    doc = json.loads(result.stdout)
    assert doc["brokers"][0]["up"] is True
    s = _series(doc, jobs)
    assert s["metrics"]["queue_length"] == rabbit.ready(jobs) == 4
    assert s["metrics"]["consumers"] == 0
    assert s["dlq"] == dlq
    assert s["metrics"]["dlq_length"] == 1
    for metric in ("publish_rate", "processing_rate", "error_rate", "in_flight", "latency_seconds"):
        assert s["metrics"][metric] is None, metric
    assert [x["queue"] for x in doc["series"] if x["queue"].endswith(".missing")] == []

    table = run_cli("metrics", "--config", str(path))
    assert table.returncode == 0, table.stderr
    assert "degraded AMQP mode" in table.stdout
    assert f"127.0.0.1:{closed}" in table.stdout
    assert f"queue '{p}.missing' does not exist" in table.stdout
    for out in (result, table):
        assert "s3cretMgmtPw" not in out.stdout + out.stderr


def test_rejected_credentials_are_an_error_not_a_fallback(
    rabbitmq_broker, write_config, run_cli, unique
):
    h, port = rabbitmq_broker.host, rabbitmq_broker.amqp_port
    path = write_config(
        f"""
        interval: 200ms
        brokers:
          - name: rabbit
            type: rabbitmq
            url: "amqp://guest:guest@{h}:{port}/"
            management_url: "http://guest:wrongPassw0rd@{h}:{rabbitmq_broker.management_port}"
        """
    )
    result = run_cli("metrics", "--config", str(path), "--format", "json")
    assert result.returncode == 3
    doc = json.loads(result.stdout)
    assert doc["brokers"][0]["up"] is False
    assert "HTTP 401" in doc["brokers"][0]["error"]
    assert "Traceback" not in result.stderr
    assert "wrongPassw0rd" not in result.stdout + result.stderr
