"""One reviewed message at a time on real Redis: a selection replayed by id (not by body),
an edited copy replayed with the original removed, and a second replay that finds nothing."""

from __future__ import annotations

import json

import pytest
import redis

from collectors.base import MoveProgress
from mqtop.config import load_config
from mqtop.dlq import DeadLetterService
from mqtop.dlq.reviewed import message_digest
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


@pytest.fixture
async def service(redis_broker, write_config, unique, tmp_path):
    prefix = unique("rep") + ":"
    path = write_config(
        f"""
        audit_log: "{tmp_path / "audit.jsonl"}"
        brokers:
          - name: cache
            type: redis
            url: "{redis_broker.url}"
            lists: ["{prefix}*"]
            streams: ["{prefix}*"]
        """
    )
    config = load_config(str(path))
    options = config.broker("cache")
    collector = get_plugin("redis").create(options)
    actions = collector.actions()
    assert actions is not None
    yield DeadLetterService(config, options, actions, via="test"), prefix
    await actions.close()
    await collector.close()


def _audit(tmp_path) -> list[dict]:
    return [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]


def _progress(_: MoveProgress) -> None:
    return None


async def test_a_selection_is_replayed_by_id_not_by_body(r, service, tmp_path):
    client, created = r
    svc, prefix = service
    dead, jobs = prefix + "dead", prefix + "jobs"
    created += [dead, jobs]
    # three byte-identical items and one other: the operator reviewed only the third copy
    client.rpush(dead, b"same", b"other", b"same", b"same")
    peeked = (await svc.peek(dead, 10)).messages
    assert [m.body for m in peeked] == [b"same", b"same", b"other", b"same"]  # head is right
    chosen = [peeked[2]]  # "other"
    plan = await svc.plan_selection("replay", dead, jobs, chosen)
    assert plan.by_id and plan.taken.startswith("1 reviewed message(s) #")
    result = await svc.move_selection(plan, _progress)
    assert (result.moved, result.skipped, result.failed) == (1, 0, 0)
    assert client.lrange(jobs, 0, -1) == [b"other"]
    assert sorted(client.lrange(dead, 0, -1)) == [b"same"] * 3
    # a second replay of the same reviewed message: nothing left, said so
    again = await svc.move_selection(plan, _progress)
    assert (again.moved, again.skipped) == (0, 1)
    assert "already replayed" in again.notes[0]
    assert client.lrange(jobs, 0, -1) == [b"other"]
    records = _audit(tmp_path)
    assert [(x["count"], x["details"]["matched"]) for x in records] == [(1, "by id"), (0, "by id")]
    assert records[1]["details"]["missing"] == [peeked[2].id]
    # one of three identical copies reviewed: exactly one moves (a body match took up to all)
    copies = (await svc.peek(dead, 10)).messages
    plan = await svc.plan_selection("replay", dead, jobs, [copies[1]])
    result = await svc.move_selection(plan, _progress)
    assert result.moved == 1
    assert client.lrange(dead, 0, -1) == [b"same", b"same"]
    assert client.lrange(jobs, 0, -1)[::-1] == [b"other", b"same"]  # head first: replayed last


async def test_an_edited_list_item_replaces_the_original(r, service, tmp_path):
    client, created = r
    svc, prefix = service
    dead, jobs = prefix + "dead", prefix + "jobs"
    created += [dead, jobs]
    client.rpush(dead, b'{"order": 1, "email": "bad@"}', b'{"order": 2}')
    (first, second) = (await svc.peek(dead, 10)).messages
    fixed = b'{"order": 2, "email": "ok@example.com"}'
    plan = await svc.plan_edit(dead, jobs, first, fixed, first.headers)
    assert plan.changed
    outcome = await svc.replay_edited(plan)
    assert outcome.published and outcome.removed
    assert client.lrange(jobs, 0, -1) == [fixed]
    assert client.lrange(dead, 0, -1) == [second.body]
    (record,) = _audit(tmp_path)
    assert record["action"] == "replay" and record["result"] == "ok" and record["count"] == 1
    assert record["details"]["edited"] is True
    assert record["details"]["before_sha256"] == message_digest(first.body, first.headers)
    assert record["details"]["after_sha256"] == message_digest(fixed, first.headers)
    # the same original again: gone
    again = await svc.replay_edited(plan)
    assert not again.published and "already replayed" in (again.note or "")


async def test_an_edited_stream_entry_keeps_its_fields_and_gets_a_replay_marker(
    r, service, tmp_path
):
    client, created = r
    svc, prefix = service
    dead, events = prefix + "events:dead", prefix + "events"
    created += [dead, events]
    entry = client.xadd(dead, {"payload": b'{"n": 1}', "trace": "t-1"})
    client.xgroup_create(dead, "workers", id="0")
    client.xreadgroup("workers", "w1", {dead: ">"}, count=1)  # pending in the group
    (message,) = (await svc.peek(dead, 10)).messages
    headers = dict(message.headers)
    headers["payload"] = '{"n": 2}'
    plan = await svc.plan_edit(dead, events, message, message.body, headers)
    outcome = await svc.replay_edited(plan)
    assert outcome.published and outcome.removed
    ((_, fields),) = client.xrange(events)
    assert fields[b"payload"] == b'{"n": 2}' and fields[b"trace"] == b"t-1"
    marker = json.loads(fields[b"mqtop-replay"])
    assert marker["from"] == dead and marker["id"] == entry.decode()
    assert client.xlen(dead) == 0
    assert client.xpending(dead, "workers")["pending"] == 0  # acknowledged, not left dangling
