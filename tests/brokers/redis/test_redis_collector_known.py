"""Known Redis keys that no longer exist, and discovery warnings, against a real Redis.

Redis deletes a list when its last item is taken: a drained queue is an absent key. A key the
config names is shown with 0 for as long as it is absent; a discovered key is shown with 0 for
``forget_after``, then forgotten. Warnings about discovery are in every poll's result.
"""

from __future__ import annotations

import asyncio

import pytest
import redis

from collectors.base import Collected
from mqtop.kernel.errors import UsageError
from mqtop.registry import get_plugin
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


def _collector(redis_broker: RedisBroker, **options):
    plugin = get_plugin("redis")
    return plugin.create(plugin.options_model(name="cache", url=redis_broker.url, **options))


def _rows(collected: Collected) -> dict[tuple[str, str | None], dict]:
    return {(s.key.queue, s.key.group): dict(s.values) for s in collected.series}


def test_known_lists_and_streams_show_zero_while_absent(r, redis_broker, unique):
    client, created = r
    p = unique("known") + ":"
    named, found, dead = p + "named", p + "l:found", p + "dead"
    named_stream, found_stream = p + "s:named", p + "s:found"
    created += [named, found, dead, named_stream, found_stream]
    client.rpush(named, "a", "b")
    client.rpush(found, "a")
    client.xadd(found_stream, {"n": 1})
    client.xgroup_create(found_stream, "workers", id="0")
    collector = _collector(
        redis_broker,
        lists=[named, p + "l:*"],
        streams=[named_stream, p + "s:f*"],
        dlq={named: dead},
        discover_every=0,
        forget_after=1.5,
    )

    async def scenario() -> list[dict]:
        await collector.connect()
        try:
            polls = [_rows(await collector.collect())]
            client.delete(named, found, found_stream)  # drained (and a stream deleted)
            polls.append(_rows(await collector.collect()))
            # the dashboard peeks through the same collector: a shown key is empty, not missing
            actions = collector.actions()
            assert await actions.peek(found, 10) == []
            with pytest.raises(UsageError, match="does not exist"):
                await actions.peek(p + "never-seen", 10)
            await actions.close()
            await asyncio.sleep(1.6)  # longer than forget_after
            polls.append(_rows(await collector.collect()))
            return polls
        finally:
            await collector.close()

    first, drained, later = asyncio.run(scenario())
    # a named stream that does not exist yet, and a named DLQ list that is empty, read 0
    assert first[(named_stream, None)]["queue_length"] == 0
    assert first[(named, None)]["queue_length"] == 2
    assert first[(named, None)]["dlq_length"] == 0
    assert first[(found_stream, "workers")]["queue_length"] == 1
    # drained: every known key still shows, with 0
    assert drained[(named, None)]["queue_length"] == 0
    assert drained[(named, None)]["consumer_lag_messages"] == 0
    assert drained[(found, None)]["queue_length"] == 0
    # a discovered stream that is gone was deleted (a drained stream keeps its key): dropped
    assert (found_stream, None) not in drained and (found_stream, "workers") not in drained
    # after forget_after, discovered keys are forgotten; keys the config names stay
    assert (found, None) not in later and (found_stream, None) not in later
    assert later[(named, None)]["queue_length"] == 0
    assert later[(named_stream, None)]["queue_length"] == 0
    # a discovered key that comes back is shown again at the next discovery
    client.rpush(found, "again")

    async def again() -> dict:
        await collector.connect()
        try:
            return _rows(await collector.collect())
        finally:
            await collector.close()

    assert asyncio.run(again())[(found, None)]["queue_length"] == 1


def test_key_cap_warning_is_in_every_poll(r, redis_broker, unique, monkeypatch):
    import collectors.redis.collector as redis_collector

    client, created = r
    p = unique("cap") + ":"
    keys = [f"{p}{i}" for i in range(7)]
    created += keys
    for key in keys:
        client.rpush(key, "x")
    monkeypatch.setattr(redis_collector, "MAX_KEYS", 5)
    collector = _collector(redis_broker, lists=[p + "*"], streams=[], discover_every=3600)

    async def scenario() -> list[Collected]:
        await collector.connect()
        try:
            return [await collector.collect() for _ in range(3)]  # one discovery, three polls
        finally:
            await collector.close()

    polls = asyncio.run(scenario())
    for collected in polls:
        assert len(collected.series) == 5
        assert any("more than 5" in w for w in collected.warnings), collected.warnings
    assert "more than 5 list keys match: only 5 are shown" in polls[-1].warnings[0]
