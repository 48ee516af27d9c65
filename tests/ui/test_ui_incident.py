"""An incident walked end to end at 80x24 with keystrokes, on real Redis and RabbitMQ:
alert -> detail -> DLQ -> group by reason -> search -> edit one -> replay the group -> the
alert resolves. Every step is checked on the broker and in the audit log."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pika
import pytest
import redis

from mqtop.config import load_config
from mqtop.engine import Engine
from mqtop.ui.alerts import AlertsScreen
from mqtop.ui.app import MqtopApp
from mqtop.ui.detail import DetailScreen
from mqtop.ui.dlq import DlqScreen
from mqtop.ui.modals import ConfirmModal
from mqtop.ui.overview import OverviewScreen
from tests.support.rabbit import Rabbit, broker_config, rabbit_session
from tests.support.rabbit import wait_until as sync_wait

pytestmark = pytest.mark.broker


async def wait_until(pilot, predicate: Callable[[], object], timeout: float = 60.0, what=""):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await pilot.pause(0.05)


def _extra(tmp_path: Path, dlq_glob: str) -> str:
    return (
        f'audit_log: "{tmp_path / "audit.jsonl"}"\n'
        f'alerting: {{silences_path: "{tmp_path / "silences.json"}"}}\n'
        "alerts:\n"
        "  - {name: DeadLetters, metric: queue_length, op: '>', threshold: 0, "
        f"severity: warning, match: {{queue: '{dlq_glob}'}}, summary: 'dead letters waiting'}}\n"
    )


def _fix(text: str) -> str:
    """The operator's edit: the broken address repaired."""
    assert "broken@" in text
    return text.replace("broken@", "fixed@example.com")


def _firing(app: MqtopApp) -> list:
    return [a for a in app.data.alerts if a.rule == "DeadLetters" and a.state.value == "firing"]


async def _confirm(pilot, app: MqtopApp, *expected: str) -> None:
    await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), 20, "confirm")
    body = app.screen.body.plain
    for text in expected:
        assert text in body, (text, body)
    await pilot.press("y")


async def walk(pilot, app: MqtopApp, *, dlq: str, first_group: str, second_group: str | None):
    """The incident, by keystrokes only."""
    await wait_until(pilot, lambda: _firing(app), 90, "the DeadLetters alert")
    # alert -> detail
    await pilot.press("A")
    await wait_until(pilot, lambda: isinstance(app.screen, AlertsScreen))
    await pilot.pause(0.2)
    assert "DeadLetters" in app.screen_text()
    await pilot.press("home", "enter")
    await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen), 20, "detail")
    assert app.screen.key.queue == dlq
    # detail -> DLQ browser (a side effect of peeking is asked first, where there is one)
    await pilot.press("d")
    screen = await wait_until(
        pilot, lambda: next((s for s in app.screen_stack if isinstance(s, DlqScreen)), None)
    )
    if isinstance(app.screen, ConfirmModal):
        await pilot.press("y")
    await wait_until(pilot, lambda: screen.messages, 30, "peek")
    total = len(screen.messages)
    # group by death reason, open the first group
    await pilot.press("g")
    await wait_until(pilot, lambda: first_group in app.screen_text(), 10, "groups")
    await pilot.press("home", "enter")
    assert screen.group == first_group
    in_group = len(screen.shown)
    # search inside the group, edit the one found
    await pilot.press("slash", *"broken", "enter")
    assert len(screen.shown) == 1
    await pilot.press("e")
    await _confirm(pilot, app, "Replay an edited copy", "body")
    await wait_until(pilot, lambda: "replayed an edited copy" in screen.last_words, 30, "edit")
    await wait_until(pilot, lambda: len(screen.messages) == total - 1, 30, "re-peek")
    # clear the search: the rest of the group, replayed (nothing selected: the group shown)
    await pilot.press("escape")
    assert len(screen.shown) == in_group - 1
    await pilot.press("r")
    await _confirm(pilot, app, "Nothing is selected: this takes the messages the list shows.")
    await wait_until(pilot, lambda: f"replayed {in_group - 1} to" in screen.last_words, 30)
    if second_group is not None:
        await wait_until(pilot, lambda: len(screen.messages) == total - in_group, 30, "re-peek")
        await pilot.press("escape")  # back to the groups
        await wait_until(pilot, lambda: screen.group is None)
        await pilot.press("home", "enter")
        assert screen.group == second_group
        await pilot.press("r")
        await _confirm(pilot, app, "message(s) · set #")
        await wait_until(pilot, lambda: "✓ replayed" in screen.last_words, 30)
    await wait_until(pilot, lambda: not screen.messages and screen.total == 0, 30, "empty DLQ")
    # the alert resolves with the next polls
    await wait_until(pilot, lambda: not _firing(app), 90, "the alert to resolve")
    assert any(a.rule == "DeadLetters" for a in app.data.resolved)
    await pilot.press("colon", *"overview", "enter")  # the ':' bar: straight back home
    await wait_until(pilot, lambda: isinstance(app.screen, OverviewScreen))
    await pilot.press("A")
    await wait_until(pilot, lambda: isinstance(app.screen, AlertsScreen))
    await pilot.pause(0.2)
    assert "Recent resolutions" in app.screen_text()


def _audit(tmp_path: Path) -> list[dict]:
    return [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]


@pytest.fixture
def rclient(redis_broker):
    client = redis.Redis(host=redis_broker.host, port=redis_broker.port)
    created: list[str] = []
    yield client, created
    if created:
        client.delete(*created)
    client.close()


async def test_incident_on_redis_at_80x24(rclient, redis_broker, write_config, unique, tmp_path):
    client, created = rclient
    prefix = unique("inc") + ":"
    events, dead = prefix + "events", prefix + "events:dead"
    created += [events, dead]
    client.xadd(events, {"payload": b'{"boot": true}'})
    reasons = ["pending longer than 1m"] * 4 + ["handler raised ValueError"] * 2
    for i, reason in enumerate(reasons):
        email = "broken@" if i == 1 else f"user{i}@example.com"
        marker = {"stream": events, "group": "workers", "reason": reason, "deliveries": 3}
        client.xadd(
            dead,
            {
                "payload": json.dumps({"order": i, "email": email}),
                "mqtop-dead-letter": json.dumps(marker),
            },
        )
    path = write_config(
        "interval: 1s\n"
        "brokers:\n"
        "  - name: cache\n"
        "    type: redis\n"
        f'    url: "{redis_broker.url}"\n'
        "    lists: []\n"
        f'    streams: ["{prefix}*"]\n' + _extra(tmp_path, "*:dead")
    )
    app = MqtopApp(Engine(load_config(str(path))), editor=_fix)
    async with app.run_test(size=(80, 24)) as pilot:
        await walk(
            pilot,
            app,
            dlq=dead,
            first_group="pending longer than 1m",
            second_group="handler raised ValueError",
        )
        await app.stop_engine()
    assert client.xlen(dead) == 0
    entries = client.xrange(events)
    assert len(entries) == 7  # the boot entry and the six dead letters, none lost
    payloads = [json.loads(fields[b"payload"]) for _, fields in entries[1:]]
    assert sorted(p["order"] for p in payloads) == list(range(6))
    assert next(p for p in payloads if p["order"] == 1)["email"] == "fixed@example.com"
    assert all(b"mqtop-dead-letter" not in fields for _, fields in entries)
    records = _audit(tmp_path)
    assert [r["count"] for r in records] == [1, 3, 2]
    assert records[0]["details"]["edited"] is True
    assert all(r["details"]["via"] == "dashboard" and r["result"] == "ok" for r in records)


@pytest.fixture
def rabbit(rabbitmq_broker, unique):
    yield from rabbit_session(rabbitmq_broker, unique)


async def test_incident_on_rabbitmq_at_80x24(
    rabbit: Rabbit, rabbitmq_broker, write_config, tmp_path
):
    p = rabbit.unique("inc")
    dlx = rabbit.exchange(p + ".dlx", "direct")
    src = rabbit.queue(
        p + ".work", arguments={"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "d"}
    )
    dlq = rabbit.queue(p + ".parked")
    rabbit.bind(dlx, dlq, "d")
    conn = rabbit.connect()
    channel = conn.channel()
    for i in range(5):  # rejected by the consumer
        email = "broken@" if i == 1 else f"user{i}@example.com"
        body = json.dumps({"order": i, "email": email}).encode()
        channel.basic_publish("", src, body, pika.BasicProperties(message_id=f"id-{i}"))
    for _ in range(5):
        method = sync_wait(lambda: channel.basic_get(src)[0], 10, "a message to reject")
        channel.basic_reject(method.delivery_tag, requeue=False)
    for i in range(5, 7):  # expired before anyone read them
        body = json.dumps({"order": i, "email": f"user{i}@example.com"}).encode()
        props = pika.BasicProperties(message_id=f"id-{i}", expiration="1")
        channel.basic_publish("", src, body, props)
    sync_wait(lambda: rabbit.ready(dlq) == 7, 20, "dead letters")
    path = write_config(broker_config(rabbitmq_broker, [p + "*"], _extra(tmp_path, "*.parked")))
    app = MqtopApp(Engine(load_config(str(path))), editor=_fix)
    async with app.run_test(size=(80, 24)) as pilot:
        await walk(pilot, app, dlq=dlq, first_group="rejected", second_group="expired")
        await app.stop_engine()
    assert rabbit.ready(dlq) == 0
    back = rabbit.drain(src)
    assert sorted(props.message_id for _, props, _ in back) == [f"id-{i}" for i in range(7)]
    fixed = next(json.loads(body) for _, props, body in back if props.message_id == "id-1")
    assert fixed["email"] == "fixed@example.com"
    records = _audit(tmp_path)
    assert [r["count"] for r in records] == [1, 4, 2]
    assert records[0]["details"]["edited"] is True
