"""Stuck stream entries and group status in the Redis collector, against a real Redis."""

from __future__ import annotations

import asyncio
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


def test_stuck_count_and_group_status_per_group(r, redis_broker, write_config, unique):
    from mqtop.config import load_config_file
    from mqtop.engine import Engine
    from mqtop.kernel.model import SeriesKey

    client, created = r
    prefix = unique("stuck") + ":"
    stream = prefix + "orders"
    created.append(stream)
    ids = [client.xadd(stream, {"i": i}) for i in range(40)]
    for group in ("caught", "stuck", "idle", "stalled"):
        client.xgroup_create(stream, group, id="0")
    client.xreadgroup("caught", "c1", {stream: ">"})
    client.xack(stream, "caught", *ids)
    # "stuck": everything delivered, 7 entries pending for 10 minutes with 3 deliveries
    client.xreadgroup("stuck", "c1", {stream: ">"})
    client.xack(stream, "stuck", *ids[7:])
    client.xclaim(stream, "stuck", "c1", 0, ids[:7], idle=600_000, retrycount=3, justid=True)
    # "stalled": a live consumer that keeps re-reading its own pending entries, never new ones
    client.xreadgroup("stalled", "s1", {stream: ">"}, count=5)
    path = write_config(
        f"""
        interval: 1s
        brokers:
          - name: cache
            type: redis
            url: "{redis_broker.url}"
            lists: []
            streams: ["{prefix}*"]
            stuck_idle: 1m
            group_status_window: 2s
        """
    )
    config = load_config_file(path)

    async def scenario():
        engine = Engine(config)
        views = []
        try:
            for _ in range(3):
                client.xreadgroup("stalled", "s1", {stream: "0"})  # alive, but no progress
                await engine.poll_all()
                views.append(
                    {
                        g: engine.store.view(SeriesKey("cache", stream, g))
                        for g in ("caught", "stuck", "idle", "stalled")
                    }
                )
                await asyncio.sleep(1.1)
        finally:
            await engine.close()
        return views

    started = time.monotonic()
    views = asyncio.run(scenario())
    assert time.monotonic() - started >= 2.2
    first, last = views[0], views[-1]

    stuck_redis = client.xpending_range(stream, "stuck", "-", "+", 100, idle=60_000)
    assert len(stuck_redis) == 7
    assert last["stuck"].info["stuck"] == len(stuck_redis)
    assert last["stuck"].info["stuck_capped"] is False
    assert last["caught"].info["stuck"] == 0 and last["idle"].info["stuck"] == 0
    assert last["stalled"].info["stuck"] == 0  # pending, but not idle for a minute

    status = {g: v.metrics["group_status"] for g, v in last.items()}
    assert status["caught"] == 0  # OK: lag 0
    assert status["stuck"] == 1  # WARN: stuck entries even though lag is 0
    assert "7 pending entries" in last["stuck"].info["status_reason"]
    assert status["idle"] == 3  # STOP: backlog, nobody consuming for the whole window
    assert status["stalled"] == 2  # STALL: a live consumer, no progress for the window
    # first poll: a backlog with no progress yet is not judged before a full window
    assert first["stalled"].metrics["group_status"] is None
    assert first["caught"].metrics["group_status"] == 0

    # the dashboard's overview shows the count per group in its Stuck column
    from mqtop.ui.rows import build_rows, cell_text, visible_columns

    rows = {row.group: row for row in build_rows(list(last.values()), {}, [], time.time())}
    assert cell_text(rows["stuck"], "stuck") == "7"
    assert cell_text(rows["caught"], "stuck") == "0"
    assert "stuck" in [c.key for c, _ in visible_columns(200, has_groups=True, has_stuck=True)]
