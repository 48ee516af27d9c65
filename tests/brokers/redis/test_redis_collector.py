"""Redis collector against a real Redis server, through the real CLI pipeline."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import redis

from tests.harness import RedisBroker

pytestmark = pytest.mark.broker


@pytest.fixture
def r(redis_broker: RedisBroker):
    client = redis.Redis(host=redis_broker.host, port=redis_broker.port)
    created: list[str] = []
    yield client, created
    if created:
        client.delete(*created)
    client.close()


def _config(write_config, redis_broker: RedisBroker, prefix: str, interval: str = "1s"):
    return write_config(
        f"""
        interval: {interval}
        brokers:
          - name: cache
            type: redis
            url: "{redis_broker.url}"
            lists: ["{prefix}*"]
            streams: ["{prefix}*"]
            channels: ["{prefix}chan*"]
        """
    )


def _series(doc: dict, queue: str, group: str | None = None) -> dict:
    matches = [s for s in doc["series"] if s["queue"] == queue and s["group"] == group]
    assert len(matches) == 1, (queue, group, [(s["queue"], s["group"]) for s in doc["series"]])
    return matches[0]


def test_metrics_json_matches_redis(r, redis_broker, write_config, run_cli, unique):
    client, created = r
    prefix = unique("redis") + ":"
    jobs, dead, stream = prefix + "jobs", prefix + "jobs:dead", prefix + "events"
    created += [jobs, dead, stream]
    client.rpush(jobs, *[f"job-{i}" for i in range(7)])
    client.rpush(dead, b"\xff\x00binary", "x")
    # a stream with two groups: one caught up, one behind with pending entries
    old_ms = int(time.time() * 1000) - 90_000  # first entries are 90 s old
    for i in range(10):
        client.xadd(stream, {"n": i}, id=f"{old_ms + i}-0")
    client.xgroup_create(stream, "fast", id="0")
    client.xgroup_create(stream, "slow", id="0")
    client.xreadgroup("fast", "c1", {stream: ">"})
    client.xreadgroup("slow", "c1", {stream: ">"}, count=3)
    client.xreadgroup("slow", "c2", {stream: ">"}, count=1)
    client.xack(stream, "slow", f"{old_ms}-0")

    path = _config(write_config, redis_broker, prefix)
    result = run_cli("metrics", "--config", str(path), "--format", "json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["brokers"] == [{"name": "cache", "type": "redis", "up": True, "error": None}]

    s_jobs = _series(doc, jobs)
    assert s_jobs["kind"] == "list"
    assert s_jobs["dlq"] == dead
    assert s_jobs["metrics"]["queue_length"] == client.llen(jobs) == 7
    assert s_jobs["metrics"]["dlq_length"] == 2
    # lists expose no counters, timestamps, consumers or unacked state: null, never 0
    for metric in (
        "publish_rate",
        "processing_rate",
        "error_rate",
        "latency_seconds",
        "in_flight",
        "consumers",
        "consumer_lag_seconds",
    ):
        assert s_jobs["metrics"][metric] is None, metric

    groups = {g["name"].decode(): g for g in client.xinfo_groups(stream)}
    fast = _series(doc, stream, "fast")["metrics"]
    slow = _series(doc, stream, "slow")["metrics"]
    assert fast["queue_length"] == groups["fast"]["lag"] == 0
    assert fast["consumer_lag_seconds"] == 0
    assert slow["queue_length"] == slow["consumer_lag_messages"] == groups["slow"]["lag"] == 6
    assert slow["in_flight"] == groups["slow"]["pending"] == 3
    assert slow["consumers"] == groups["slow"]["consumers"] == 2
    # the next undelivered entry (index 4) is ~90 s old
    assert 85 <= slow["consumer_lag_seconds"] <= 120
    assert slow["latency_seconds"] == pytest.approx(slow["consumer_lag_seconds"], abs=5)
    # no traffic between the two polls: rates are known and zero
    assert slow["publish_rate"] == 0
    assert slow["processing_rate"] == 0


def test_processing_rate_positive_after_consumer_reads(r, redis_broker, write_config, unique):
    """Drive the engine directly: a consumer reads between the two polls."""
    from mqtop.config import load_config_file
    from mqtop.engine import Engine
    from mqtop.kernel.model import SeriesKey

    client, created = r
    prefix = unique("rate") + ":"
    stream = prefix + "orders"
    created.append(stream)
    for i in range(50):
        client.xadd(stream, {"i": i})
    client.xgroup_create(stream, "workers", id="0")
    config = load_config_file(_config(write_config, redis_broker, prefix))

    async def scenario():
        engine = Engine(config)
        try:
            await engine.poll_all()
            client.xreadgroup("workers", "w1", {stream: ">"}, count=20)
            for i in range(5):
                client.xadd(stream, {"i": 100 + i})
            await asyncio.sleep(1.0)
            await engine.poll_all()
            return engine.store.view(SeriesKey("cache", stream, "workers"))
        finally:
            await engine.close()

    view = asyncio.run(scenario())
    assert view is not None
    assert view.metrics["processing_rate"] is not None and view.metrics["processing_rate"] > 0
    assert view.metrics["publish_rate"] is not None and view.metrics["publish_rate"] > 0
    assert view.metrics["queue_length"] == 35


def test_stream_without_groups_and_channels(r, redis_broker, write_config, run_cli, unique):
    client, created = r
    prefix = unique("nog") + ":"
    stream = prefix + "audit"
    created.append(stream)
    client.xadd(stream, {"a": 1})
    client.xadd(stream, {"a": 2})
    pubsub = client.pubsub()
    pubsub.subscribe(prefix + "chan1")
    pubsub.get_message(timeout=1)
    try:
        path = _config(write_config, redis_broker, prefix)
        result = run_cli("metrics", "--config", str(path), "--format", "json")
        assert result.returncode == 0, result.stderr
        doc = json.loads(result.stdout)
    finally:
        pubsub.close()
    audit = _series(doc, stream)["metrics"]
    assert audit["queue_length"] == 2
    assert audit["latency_seconds"] is not None and audit["latency_seconds"] >= 0
    chan = _series(doc, prefix + "chan1")
    assert chan["kind"] == "channel"
    assert chan["metrics"]["consumers"] == 1
    assert chan["metrics"]["queue_length"] is None


def test_dead_broker_exit_3_others_still_report(r, redis_broker, write_config, run_cli, unique):
    from tests.harness import free_port

    client, created = r
    prefix = unique("dead") + ":"
    created.append(prefix + "q")
    client.rpush(prefix + "q", "a")
    dead_port = free_port()
    path = write_config(
        f"""
        interval: 200ms
        timeout: 2s
        brokers:
          - {{name: live, type: redis, url: "{redis_broker.url}",
              lists: ["{prefix}*"], streams: []}}
          - {{name: gone, type: redis, url: "redis://:hunter2secret@127.0.0.1:{dead_port}/0"}}
        """
    )
    result = run_cli("metrics", "--config", str(path), "--format", "json")
    assert result.returncode == 3
    doc = json.loads(result.stdout)
    assert _series(doc, prefix + "q")["metrics"]["queue_length"] == 1
    gone = next(b for b in doc["brokers"] if b["name"] == "gone")
    assert gone["up"] is False and gone["error"]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "gone" in lines[0] and f"127.0.0.1:{dead_port}" in lines[0]
    assert "Traceback" not in result.stderr
    assert "hunter2secret" not in result.stderr + result.stdout


def test_queues_and_prometheus_formats(r, redis_broker, write_config, run_cli, unique):
    from prometheus_client.parser import text_string_to_metric_families

    client, created = r
    prefix = unique("fmt") + ":"
    jobs, dead = prefix + "jobs", prefix + "jobs-dlq"
    created += [jobs, dead]
    client.rpush(jobs, "a", "b")
    client.rpush(dead, "x")
    path = _config(write_config, redis_broker, prefix, interval="100ms")

    result = run_cli("queues", "--config", str(path), "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = {row["queue"]: row for row in json.loads(result.stdout)}
    assert rows[jobs] == {
        "broker": "cache",
        "queue": jobs,
        "group": None,
        "kind": "list",
        "dlq": dead,
    }
    assert rows[dead]["dlq"] is None

    result = run_cli("metrics", "--config", str(path), "--format", "prometheus")
    assert result.returncode == 0, result.stderr
    samples = {
        (s.name, s.labels.get("queue")): s
        for family in text_string_to_metric_families(result.stdout)
        for s in family.samples
    }
    assert samples[("mqtop_queue_length", jobs)].value == 2
    assert samples[("mqtop_queue_length", jobs)].labels == {
        "broker": "cache",
        "queue": jobs,
        "group": "",
    }
    assert samples[("mqtop_dlq_length", jobs)].value == 1
    assert ("mqtop_publish_rate", jobs) not in samples  # unknown: absent, never 0
    assert samples[("mqtop_broker_up", None)].value == 1

    result = run_cli("metrics", "--config", str(path))
    assert result.returncode == 0
    assert jobs in result.stdout and "BACKLOG" in result.stdout
