"""A collector's warnings reach the users of the machine-readable outputs: a real Redis with
more keys matching a pattern than mqtop shows (20,000). Before, `metrics --format json` and
`queues --format json` said nothing (only the tables printed warnings); now both print them
on stderr, one line each, and leave stdout to the document, whose keys SPEC §5 fixes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
import redis

from collectors.redis.collector import MAX_KEYS
from tests.harness import RedisBroker

pytestmark = [pytest.mark.broker]


@pytest.fixture
def many_lists(redis_broker: RedisBroker) -> Iterator[str]:
    prefix = f"mqtop-warn-{uuid.uuid4().hex[:8]}"
    client = redis.Redis(host=redis_broker.host, port=redis_broker.port)
    names = [f"{prefix}:{i}" for i in range(MAX_KEYS + 50)]
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.rpush(name, b"x")
    pipe.execute()
    yield prefix
    for start in range(0, len(names), 5000):
        client.delete(*names[start : start + 5000])
    client.close()


def test_warnings_are_in_the_json_outputs(redis_broker, many_lists, write_config, run_cli):
    path = write_config(
        f"""
        interval: 1s
        brokers:
          - name: cache
            type: redis
            url: "redis://{redis_broker.host}:{redis_broker.port}/0"
            lists: ["{many_lists}:*"]
        """
    )
    said = f"more than {MAX_KEYS} list keys match"
    result = run_cli("metrics", "--format", "json", "--config", str(path), timeout=120)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    (broker,) = doc["brokers"]
    assert broker == {"name": "cache", "type": "redis", "up": True, "error": None}
    assert len(doc["series"]) == MAX_KEYS
    assert f"mqtop: warning: broker 'cache': {said}" in result.stderr

    result = run_cli("queues", "--format", "json", "--config", str(path), timeout=120)
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)) == MAX_KEYS
    assert f"mqtop: warning: broker 'cache': {said}" in result.stderr
