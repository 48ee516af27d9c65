"""The dashboard against real brokers: numbers match the broker, a replay done through the UI
moves the messages (checked on the broker), and the overview follows."""

from __future__ import annotations

import json

import pika
import pytest
import redis

from mqtop.config import load_config
from mqtop.engine import Engine
from mqtop.kernel.model import SeriesKey
from mqtop.ui.app import MqtopApp
from mqtop.ui.overview import OverviewScreen
from tests.support.pilot import confirm, open_dlq_through_ui, row, state_config, wait_until
from tests.support.rabbit import Rabbit, broker_config, rabbit_session
from tests.support.rabbit import wait_until as sync_wait

pytestmark = pytest.mark.broker


@pytest.fixture
def rclient(redis_broker):
    client = redis.Redis(host=redis_broker.host, port=redis_broker.port)
    created: list[str] = []
    yield client, created
    if created:
        client.delete(*created)
    client.close()


async def test_redis_numbers_and_replay_through_the_ui(
    rclient, redis_broker, write_config, unique, tmp_path
):
    client, created = rclient
    prefix = unique("ui") + ":"
    jobs, dead = prefix + "jobs", prefix + "jobs:dead"
    created += [jobs, dead]
    client.rpush(jobs, *[f"job-{i}" for i in range(7)])
    bodies = [json.dumps({"order": i, "error": "timeout"}).encode() for i in range(5)]
    client.rpush(dead, *bodies)
    path = write_config(
        "interval: 1s\n"
        "brokers:\n"
        "  - name: cache\n"
        "    type: redis\n"
        f'    url: "{redis_broker.url}"\n'
        f'    lists: ["{prefix}*"]\n'
        "    streams: []\n" + state_config(tmp_path)
    )
    app = MqtopApp(Engine(load_config(str(path))))
    async with app.run_test(size=(160, 40)) as pilot:
        # the overview shows what Redis has
        await wait_until(
            pilot,
            lambda: (
                isinstance(app.screen, OverviewScreen)
                and row(app, SeriesKey("cache", dead)) is not None
                and row(app, SeriesKey("cache", jobs)) is not None
            ),
            what="both lists in the overview",
        )
        assert row(app, SeriesKey("cache", jobs)).backlog == client.llen(jobs) == 7
        assert row(app, SeriesKey("cache", dead)).backlog == client.llen(dead) == 5
        assert row(app, SeriesKey("cache", jobs)).dlq == dead
        assert "● cache up" in app.screen_text(), app.screen_text()

        screen = await open_dlq_through_ui(pilot, app, dead)
        await wait_until(pilot, lambda: len(screen.messages) == 5, what="peek")
        assert screen.total == 5 and screen.target() == jobs
        assert client.llen(dead) == 5  # peeking consumed nothing
        await pilot.press("space", "space")
        chosen = {m.body for m in screen.selected_messages()}
        assert len(chosen) == 2
        await pilot.press("r")
        await confirm(pilot, app, "2 selected message(s)", dead, jobs)
        await wait_until(pilot, lambda: screen.last_result is not None, what="replay")
        assert screen.last_result.moved == 2 and screen.last_result.failed == 0
        # checked on the broker: exactly the selected messages moved, nothing lost
        assert client.llen(dead) == 3 and client.llen(jobs) == 9
        in_jobs = set(client.lrange(jobs, 0, -1))
        in_dead = set(client.lrange(dead, 0, -1))
        assert chosen <= in_jobs and not chosen & in_dead
        assert in_dead | chosen == set(bodies)

        # everything else, nothing selected
        await wait_until(pilot, lambda: len(screen.messages) == 3, what="re-peek")
        screen.last_result = None
        await pilot.press("r")
        await confirm(pilot, app, "all 3 message(s)")
        await wait_until(pilot, lambda: screen.last_result is not None, what="replay all")
        assert client.llen(dead) == 0 and client.llen(jobs) == 12
        records = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
        assert [(r["action"], r["count"], r["result"]) for r in records] == [
            ("replay", 2, "ok"),
            ("replay", 3, "ok"),
        ]
        assert {r["source"] for r in records} == {dead}
        assert {r["destination"] for r in records} == {jobs}

        # back on the overview (Esc again clears the filter) the next polls show the new lengths
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, OverviewScreen))
        await pilot.press("escape")
        await wait_until(
            pilot,
            lambda: (r := row(app, SeriesKey("cache", jobs))) is not None and r.backlog == 12,
            what="overview follows",
        )
        await app.stop_engine()


@pytest.fixture
def rabbit(rabbitmq_broker, unique):
    yield from rabbit_session(rabbitmq_broker, unique)


async def test_rabbitmq_numbers_and_replay_through_the_ui(
    rabbit: Rabbit, rabbitmq_broker, write_config, tmp_path
):
    p = rabbit.unique("ui")
    dlx = rabbit.exchange(p + ".dlx", "direct")
    src = rabbit.queue(
        p + ".work",
        arguments={"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "dead"},
    )
    dlq = rabbit.queue(p + ".parked")
    rabbit.bind(dlx, dlq, "dead")
    conn = rabbit.connect()
    channel = conn.channel()
    for i in range(6):
        channel.basic_publish(
            "", src, f'{{"n": {i}}}'.encode(), pika.BasicProperties(message_id=f"id-{i}")
        )
    for _ in range(6):
        method = sync_wait(lambda: channel.basic_get(src)[0], 10, "message to reject")
        channel.basic_reject(method.delivery_tag, requeue=False)
    sync_wait(lambda: rabbit.ready(dlq) == 6, 10, "dead letters")

    path = write_config(broker_config(rabbitmq_broker, [p + "*"], state_config(tmp_path)))
    app = MqtopApp(Engine(load_config(str(path))))
    async with app.run_test(size=(160, 40)) as pilot:
        # management statistics lag a few seconds: wait for the broker's own numbers
        await wait_until(
            pilot,
            lambda: (
                isinstance(app.screen, OverviewScreen)
                and (r := row(app, SeriesKey("rabbit", dlq))) is not None
                and r.backlog == 6
            ),
            timeout=60,
            what="the DLQ's length in the overview",
        )
        info = rabbit.info(dlq)
        assert row(app, SeriesKey("rabbit", dlq)).backlog == info["messages_ready"] == 6
        assert row(app, SeriesKey("rabbit", src)).backlog == rabbit.info(src)["messages_ready"]
        assert row(app, SeriesKey("rabbit", src)).dlq == dlq  # discovered through the DLX

        screen = await open_dlq_through_ui(pilot, app, dlq)
        # RabbitMQ peeking marks messages redelivered: the UI says so and asks first
        await confirm(pilot, app, "redelivered")
        await wait_until(pilot, lambda: len(screen.messages) == 6, what="peek")
        assert screen.target() == src
        assert [m.death.original_queue for m in screen.messages] == [src] * 6
        await pilot.press("down", "space", "space", "space")  # id-1, id-2, id-3
        chosen = sorted(m.id for m in screen.selected_messages())
        assert chosen == ["id-1", "id-2", "id-3"]
        await pilot.press("r")
        await confirm(pilot, app, "3 selected message(s)", dlq, src)
        await wait_until(pilot, lambda: screen.last_result is not None, timeout=60, what="replay")
        assert screen.last_result.moved == 3 and screen.last_result.failed == 0
        # on the broker: the three selected are back in the source, the others still parked
        assert sorted(rabbit.snapshot_ids(src)) == chosen
        assert sorted(rabbit.snapshot_ids(dlq)) == ["id-0", "id-4", "id-5"]
        record = json.loads((tmp_path / "audit.jsonl").read_text().splitlines()[-1])
        assert (record["action"], record["count"], record["source"], record["destination"]) == (
            "replay",
            3,
            dlq,
            src,
        )
        await app.stop_engine()
