"""Redis key names as mqtop prints them, typed back; keys that are not UTF-8; missing keys.

A name with control characters (here Celery's priority sub-queue ``NAME\\x06\\x16N``, named
literally so that it stays a queue of its own) is printed escaped, and that printed form names
the same key when typed back. Found by a glob, Celery's priority lists are shown as one queue.
A key whose name is not valid UTF-8 is listed with its bad bytes as ``\\xNN`` (not dropped)
and is usable the same way.
Peeking a key that does not exist exits 2, as for RabbitMQ, Kafka and SQS.
"""

from __future__ import annotations

import json

import pytest
import redis

from tests.harness import RedisBroker

pytestmark = pytest.mark.broker


@pytest.fixture
def r(redis_broker: RedisBroker):
    client = redis.Redis(host=redis_broker.host, port=redis_broker.port)
    created: list[bytes | str] = []
    yield client, created
    if created:
        client.delete(*created)
    client.close()


def _printed(table: str, marker: str) -> str:
    """The name on the one table line that contains ``marker``, exactly as printed."""
    (line,) = [line for line in table.splitlines() if marker in line]
    return next(word for word in line.split() if marker in word)


def test_printed_names_typed_back_and_non_utf8_keys(r, redis_broker, write_config, run_cli, unique):
    client, created = r
    p = unique("names") + ":"
    celery = p + "celery\x06\x163"  # Celery's priority 3 sub-queue of "celery"
    binary = (p + "bin:").encode() + b"\xff\xfeq"
    moved_to = p + "moved\x07"
    created += [celery, binary, moved_to]
    client.rpush(celery, "job-a", "job-b")
    client.rpush(binary, b"\x00one", b"two", b"three")
    path = write_config(
        f"""
        interval: 200ms
        brokers:
          - {{name: cache, type: redis, url: "{redis_broker.url}",
              lists: ["{p}bin*", "{p}celery\\x06\\x163"], streams: []}}
        """
    )

    listed = run_cli("queues", "--format", "json", "--config", str(path))
    assert listed.returncode == 0, listed.stderr
    names = {row["queue"] for row in json.loads(listed.stdout)}
    assert names == {celery, p + "bin:\\xff\\xfeq"}  # the non-UTF-8 key is listed, escaped
    metrics = run_cli("metrics", "--format", "json", "--config", str(path))
    lengths = {
        s["queue"]: s["metrics"]["queue_length"] for s in json.loads(metrics.stdout)["series"]
    }
    assert lengths == {celery: 2, p + "bin:\\xff\\xfeq": 3}

    table = run_cli("queues", "--config", str(path)).stdout
    printed_celery, printed_binary = _printed(table, "celery"), _printed(table, "bin:")
    assert printed_celery == p + "celery\\x06\\x163" and "\x06" not in table
    assert printed_binary == p + "bin:\\xff\\xfeq"

    peek = run_cli(
        "dlq", "peek", "cache", printed_celery, "--format", "json", "--config", str(path)
    )
    assert peek.returncode == 0, peek.stderr
    assert [m["body"] for m in json.loads(peek.stdout)] == ["job-b", "job-a"]  # head first
    peek = run_cli(
        "dlq", "peek", "cache", printed_binary, "--format", "json", "--config", str(path)
    )
    assert peek.returncode == 0, peek.stderr
    assert len(json.loads(peek.stdout)) == 3

    move = run_cli(
        "dlq", "move", "cache", printed_binary, p + "moved\\x07", "--yes", "--format", "json",
        "--config", str(path),
    )  # fmt: skip
    assert move.returncode == 0, move.stderr
    assert json.loads(move.stdout)["moved"] == 3
    assert not client.exists(binary)
    assert client.lrange(moved_to, 0, -1) == [b"\x00one", b"two", b"three"]

    # two spellings of one key: refused like any same-queue move
    same = run_cli("dlq", "move", "cache", printed_celery, celery, "--yes", "--config", str(path))
    assert same.returncode == 2
    assert "source and destination are the same queue" in same.stderr
    assert client.llen(celery) == 2


def test_celery_priority_lists_found_by_a_glob_are_one_queue(
    r, redis_broker, write_config, run_cli, unique
):
    client, created = r
    p = unique("prio") + ":"
    base, prio3, prio6 = p + "tasks", p + "tasks\x06\x163", p + "tasks\x06\x166"
    only3 = p + "other\x06\x163"  # a queue whose priority-0 list is empty (deleted by Redis)
    created += [base, prio3, prio6, only3, p + "plain"]
    client.rpush(base, "a")
    client.rpush(prio3, "b", "c")
    client.rpush(prio6, "d", "e", "f")
    client.rpush(only3, "g")
    client.rpush(p + "plain", "h")
    path = write_config(
        f"""
        brokers:
          - {{name: cache, type: redis, url: "{redis_broker.url}", lists: ["{p}*"],
              streams: []}}
        """
    )
    metrics = run_cli("metrics", "--format", "json", "--config", str(path))
    assert metrics.returncode == 0, metrics.stderr
    lengths = {
        s["queue"]: s["metrics"]["queue_length"] for s in json.loads(metrics.stdout)["series"]
    }
    assert lengths == {base: 6, p + "other": 1, p + "plain": 1}
    assert client.llen(base) == 1 and client.llen(prio6) == 3  # only read
    detail = run_cli("queues", "--format", "json", "--config", str(path))
    assert {row["queue"] for row in json.loads(detail.stdout)} == set(lengths)


def test_peek_of_a_missing_key_exits_2_unless_the_config_names_it(
    r, redis_broker, write_config, run_cli, unique
):
    p = unique("missing") + ":"
    path = write_config(
        f"""
        brokers:
          - {{name: cache, type: redis, url: "{redis_broker.url}", lists: ["{p}*"],
              dlq: {{"{p}jobs": "{p}jobs:dead"}}}}
        """
    )
    missing = run_cli("dlq", "peek", "cache", p + "nope", "--config", str(path))
    assert missing.returncode == 2
    assert f"{p}nope' does not exist on broker 'cache'" in missing.stderr
    assert "Traceback" not in missing.stderr and missing.stdout == ""
    as_json = run_cli("dlq", "peek", "cache", p + "nope", "--format", "json", "--config", str(path))
    assert as_json.returncode == 2 and as_json.stdout == ""
    # a DLQ the config names is an empty list while it does not exist (Redis deletes empty lists)
    named = run_cli("dlq", "peek", "cache", p + "jobs:dead", "--config", str(path))
    assert named.returncode == 0, named.stderr
    assert "(no messages in" in named.stdout
