"""One reviewed message at a time on real RabbitMQ: a selection replayed by id (two messages
with one body stay apart), an edited copy published with confirms before the original is
acknowledged, and a second replay that finds nothing."""

from __future__ import annotations

import json

import pika
import pytest

from collectors.base import MoveProgress
from mqtop.config import load_config
from mqtop.dlq import DeadLetterService
from mqtop.dlq.reviewed import message_digest
from mqtop.registry import get_plugin
from tests.support.rabbit import Rabbit, broker_config, rabbit_session
from tests.support.rabbit import wait_until as sync_wait

pytestmark = pytest.mark.broker


@pytest.fixture
def rabbit(rabbitmq_broker, unique):
    yield from rabbit_session(rabbitmq_broker, unique)


@pytest.fixture
async def parked(rabbit: Rabbit, rabbitmq_broker, write_config, tmp_path):
    """A work queue whose rejects go to a parking queue, holding four dead letters."""
    p = rabbit.unique("rep")
    dlx = rabbit.exchange(p + ".dlx", "direct")
    src = rabbit.queue(
        p + ".work", arguments={"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "d"}
    )
    dlq = rabbit.queue(p + ".parked")
    rabbit.bind(dlx, dlq, "d")
    conn = rabbit.connect()
    channel = conn.channel()
    bodies = [b'{"n": 0}', b'{"same": true}', b'{"same": true}', b'{"n": 3}']
    for i, body in enumerate(bodies):
        props = pika.BasicProperties(message_id=f"id-{i}", headers={"tenant": "acme"})
        channel.basic_publish("", src, body, props)
    for _ in bodies:
        method = sync_wait(lambda: channel.basic_get(src)[0], 10, "a message to reject")
        channel.basic_reject(method.delivery_tag, requeue=False)
    sync_wait(lambda: rabbit.ready(dlq) == 4, 10, "dead letters")
    path = write_config(
        broker_config(rabbitmq_broker, [p + "*"], f'audit_log: "{tmp_path / "audit.jsonl"}"\n')
    )
    config = load_config(str(path))
    options = config.broker("rabbit")
    collector = get_plugin("rabbitmq").create(options)
    actions = collector.actions()
    assert actions is not None
    yield DeadLetterService(config, options, actions, via="test"), src, dlq
    await actions.close()
    await collector.close()


def _progress(_: MoveProgress) -> None:
    return None


def _audit(tmp_path) -> list[dict]:
    return [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]


async def test_a_selection_is_replayed_by_id(rabbit: Rabbit, parked, tmp_path):
    svc, src, dlq = parked
    peeked = (await svc.peek(dlq, 10)).messages
    by_id = {m.id: m for m in peeked}
    assert by_id["id-1"].body == by_id["id-2"].body  # one body, two messages
    plan = await svc.plan_selection("replay", dlq, src, [by_id["id-2"], by_id["id-3"]])
    assert plan.by_id
    result = await svc.move_selection(plan, _progress)
    assert (result.moved, result.skipped, result.failed) == (2, 0, 0)
    assert sorted(rabbit.snapshot_ids(src)) == ["id-2", "id-3"]
    assert sorted(rabbit.snapshot_ids(dlq)) == ["id-0", "id-1"]  # id-1 has id-2's body: stays
    again = await svc.move_selection(plan, _progress)
    assert (again.moved, again.skipped) == (0, 2)
    assert sorted(rabbit.snapshot_ids(src)) == ["id-2", "id-3"]
    records = _audit(tmp_path)
    assert [r["count"] for r in records] == [2, 0]
    assert records[0]["details"]["ids"] == ["id-2", "id-3"]
    assert records[1]["details"]["missing"] == ["id-2", "id-3"]


async def test_an_edited_copy_is_confirmed_before_the_original_goes(
    rabbit: Rabbit, parked, tmp_path
):
    svc, src, dlq = parked
    peeked = (await svc.peek(dlq, 10)).messages
    first = next(m for m in peeked if m.id == "id-0")
    headers = {**first.headers, "tenant": "acme-eu"}
    fixed = b'{"n": 0, "fixed": true}'
    plan = await svc.plan_edit(dlq, src, first, fixed, headers)
    outcome = await svc.replay_edited(plan)
    assert outcome.published and outcome.removed
    ((_, props, body),) = rabbit.drain(src)
    assert body == fixed and props.message_id == "id-0"
    assert props.headers["tenant"] == "acme-eu"
    assert props.headers["x-mqtop-replay"]["edited"] is True
    assert sorted(rabbit.snapshot_ids(dlq)) == ["id-1", "id-2", "id-3"]
    (record,) = _audit(tmp_path)
    assert record["details"]["edited"] is True and record["result"] == "ok"
    assert record["details"]["before_sha256"] == message_digest(first.body, first.headers)
    assert record["details"]["after_sha256"] == message_digest(fixed, headers)
    again = await svc.replay_edited(plan)
    assert not again.published and "already replayed" in (again.note or "")
