"""`mqtop dlq replay|move|purge` on real ActiveMQ brokers."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.activemq import ActiveMQBroker, broker_config, wait_count

pytestmark = pytest.mark.broker


def props(amq: ActiveMQBroker, raw: dict[str, Any]) -> dict[str, Any]:
    """User properties of a browsed message (broker-internal ones left out)."""
    out: dict[str, Any] = {}
    for key, values in raw.items():
        if key.endswith("Properties") and isinstance(values, dict):
            out.update({k: v for k, v in values.items() if not k.startswith("_AMQ_")})
    out.pop("originalExpiration", None)  # Classic adds it when dead-lettering
    return out


def body(raw: dict[str, Any]) -> str:
    text = raw.get("text", raw.get("Text"))
    if isinstance(text, str):
        return text
    return bytes(b & 0xFF for b in raw["BodyPreview"]).decode()


def correlation(amq: ActiveMQBroker, raw: dict[str, Any]) -> Any:
    if amq.flavor == "artemis":
        return raw["StringProperties"].get("JMSCorrelationID")
    return raw["JMSCorrelationID"]


def dead_letters(amq: ActiveMQBroker, queue: str, count: int, **headers: str) -> None:
    """``count`` messages sent to ``queue`` and dead-lettered by the broker."""
    conn = amq.stomp()
    try:
        extra = {"destination-type": "ANYCAST"} if amq.flavor == "artemis" else {}
        for i in range(count):
            conn.send(amq.destination(queue), f"message {i}",
                      headers={"persistent": "true", "n": str(i), "correlation-id": f"c-{i}",
                               **headers, **extra})  # fmt: skip
    finally:
        conn.disconnect()
    assert wait_count(amq, queue, count) == count
    amq.dead_letter(queue, count)


def name_for(amq: ActiveMQBroker, unique: Callable[[str], str], what: str) -> str:
    return unique(what) if amq.flavor == "artemis" else "ind." + unique(what)


def replay(run_cli: Any, path: Path, *args: str) -> tuple[Any, dict[str, Any] | None]:
    result = run_cli("dlq", *args, "--yes", "--format", "json", "--config", str(path))
    assert "Traceback" not in result.stderr
    try:
        return result, json.loads(result.stdout)
    except ValueError:
        return result, None


def test_replay_restores_every_message_with_its_properties(
    amq: ActiveMQBroker, unique: Callable[[str], str], write_config: Any, run_cli: Any
) -> None:
    queue = name_for(amq, unique, "replay")
    dlq = amq.dlq_of(queue)
    amq.create_queue(queue)
    try:
        dead_letters(amq, queue, 20, color="red")
        assert wait_count(amq, dlq, 20) == 20 and amq.count(queue) == 0
        before = {body(m): m for m in amq.browse(dlq)}
        path = broker_config(write_config, amq)

        result, report = replay(run_cli, path, "replay", "amq", dlq)
        assert result.returncode == 0, result.stderr
        assert report == {"source": dlq, "destination": queue, "moved": 20, "failed": 0,
                          "skipped": 0, "dry_run": False, "duplicates_possible": 0}  # fmt: skip
        assert "x-mqtop-replay" in result.stderr  # the note on how the replay is recorded
        assert amq.count(dlq) == 0 and wait_count(amq, queue, 20) == 20
        after = {body(m): m for m in amq.browse(queue)}
        assert set(after) == set(before) == {f"message {i}" for i in range(20)}
        for text, raw in after.items():
            assert props(amq, raw) == props(amq, before[text])
            assert props(amq, raw)["color"] == "red"
            assert correlation(amq, raw) == correlation(amq, before[text])
            if amq.flavor == "artemis":  # the broker's record of where it came from
                assert raw["StringProperties"]["_AMQ_ORIG_QUEUE"] == dlq
            else:
                assert raw["OriginalDestination"] == f"queue://{dlq}"
    finally:
        amq.cleanup(queue)


def test_unknown_destination_keeps_messages_in_the_dlq(
    amq: ActiveMQBroker, unique: Callable[[str], str], write_config: Any, run_cli: Any
) -> None:
    queue = name_for(amq, unique, "gone")
    dlq = amq.dlq_of(queue)
    amq.create_queue(queue)
    try:
        dead_letters(amq, queue, 5)
        assert wait_count(amq, dlq, 5) == 5
        path = broker_config(write_config, amq)
        missing = unique("missing")
        result, report = replay(run_cli, path, "replay", "amq", dlq, "--to", missing)
        assert result.returncode == 3, result.stderr
        assert report is not None and report["moved"] == 0 and report["failed"] == 5
        assert f"no queue {missing!r}" in result.stderr
        assert amq.count(dlq) == 5
        with pytest.raises(KeyError):
            amq.queue_mbean(missing)  # never created

        amq.delete_queue(queue)  # the original queue itself is gone now
        result, report = replay(run_cli, path, "replay", "amq", dlq)
        assert result.returncode == 3, result.stderr
        assert report is not None and report["moved"] == 0 and report["failed"] == 5
        assert amq.count(dlq) == 5
    finally:
        amq.cleanup(queue)


def test_replay_each_message_to_its_own_queue_with_a_filter(
    amq: ActiveMQBroker, unique: Callable[[str], str], write_config: Any, run_cli: Any
) -> None:
    """A DLQ shared by two queues: each message goes back where it came from; the filter
    (evaluated by mqtop on browsed messages) picks this run's messages only."""
    first, second = unique("first"), unique("second")
    run = unique("run")
    shared = "ActiveMQ.DLQ" if amq.flavor == "classic" else unique("shared-dlq")
    if amq.flavor == "artemis":
        broker = amq.broker_mbean()
        settings = json.dumps({"deadLetterAddress": shared, "maxDeliveryAttempts": 1})
        for name in (first, second):
            amq.call(broker, "addAddressSettings(java.lang.String,java.lang.String)", name,
                     settings)  # fmt: skip
        amq.create_queue(shared, dlq_per_queue=False)
    for name in (first, second):
        amq.create_queue(name, dlq_per_queue=False)
    try:
        dead_letters(amq, first, 3, run=run)
        dead_letters(amq, second, 2, run=run)
        dead_letters(amq, second, 1, run="other-" + run)
        path = broker_config(write_config, amq)
        result, report = replay(run_cli, path, "replay", "amq", shared, "--filter",
                                f"header.run={run}")  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert report is not None and report["moved"] == 5 and report["failed"] == 0
        assert report["destination"] == "(original queue of each message)"
        assert report["skipped"] >= 1  # at least the other run's message
        assert wait_count(amq, first, 3) == 3 and wait_count(amq, second, 2) == 2
        assert {body(m) for m in amq.browse(first)} == {f"message {i}" for i in range(3)}
    finally:
        amq.cleanup(first, second)
        if amq.flavor == "artemis":
            amq.delete_queue(shared)


def test_move_limit_dry_run_readonly_and_purge(
    amq: ActiveMQBroker, unique: Callable[[str], str], write_config: Any, run_cli: Any
) -> None:
    src, dst = unique("src"), unique("dst")
    for name in (src, dst):
        amq.create_queue(name, dlq_per_queue=False)
    try:
        amq.send(src, [f"m{i}" for i in range(10)])
        assert wait_count(amq, src, 10) == 10
        path = broker_config(write_config, amq)

        result, report = replay(run_cli, path, "move", "amq", src, dst, "--dry-run")
        assert result.returncode == 0 and report is not None
        assert report["moved"] == 10 and report["dry_run"] is True
        assert amq.count(src) == 10 and amq.count(dst) == 0

        result, report = replay(run_cli, path, "move", "amq", src, dst, "--limit", "4",
                                "--batch", "3")  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert report is not None and report["moved"] == 4
        assert wait_count(amq, dst, 4) == 4 and amq.count(src) == 6

        readonly = broker_config(write_config, amq, readonly=True)
        refused = run_cli("dlq", "move", "amq", src, dst, "--yes", "--config", str(readonly))
        assert refused.returncode == 2 and "readonly" in refused.stderr
        refused = run_cli("dlq", "purge", "amq", src, "--yes", "--config", str(readonly))
        assert refused.returncode == 2 and "readonly" in refused.stderr
        assert amq.count(src) == 6 and amq.count(dst) == 4

        purged = run_cli("dlq", "purge", "amq", src, "--yes", "--format", "json",
                         "--config", str(path))  # fmt: skip
        assert purged.returncode == 0, purged.stderr
        assert json.loads(purged.stdout) == {"queue": src, "purged": 6}
        assert amq.count(src) == 0 and amq.count(dst) == 4
    finally:
        amq.cleanup(src, dst)


def typed_message(amq: ActiveMQBroker, queue: str) -> None:
    """One message with typed properties and JMS headers, as the broker's clients send them
    (Classic: its own sendTextMessage; Artemis: an AMQP 1.0 producer)."""
    if amq.flavor == "classic":
        headers = {"n": 5, "flag": True, "s": "x", "JMSCorrelationID": "corr-1",
                   "JMSType": "order", "JMSPriority": 7}  # fmt: skip
        amq.call(amq.queue_mbean(queue),
                 "sendTextMessage(java.util.Map,java.lang.String,java.lang.String,java.lang.String)",
                 headers, "typed", amq.user, amq.password)  # fmt: skip
        return
    from proton import Message, byte, float32, int32, short
    from proton.utils import BlockingConnection

    conn = BlockingConnection(amq.browse_url, user=amq.user, password=amq.password,
                              allowed_mechs="PLAIN")  # fmt: skip
    try:
        props = {"i": int32(5), "s": short(3), "b": byte(1), "f": float32(1.5), "l": 7,
                 "flag": True, "str": "x"}  # fmt: skip
        conn.create_sender(queue).send(Message(
            body="typed", id="mid-1", correlation_id="corr-1", subject="order", priority=7,
            durable=True, content_type="text/plain", properties=props))  # fmt: skip
    finally:
        conn.close()


def unrecorded(value: Any) -> Any:
    """A typed property map without the broker's record of a move (Artemis _AMQ_ORIG_*)."""
    if not isinstance(value, dict):
        return value
    return {k: v for k, v in value.items() if "_AMQ_ORIG_" not in k and "x-opt-ORIG-" not in k}


def test_move_keeps_ids_and_property_types(
    amq: ActiveMQBroker, unique: Callable[[str], str], write_config: Any, run_cli: Any
) -> None:
    """Why replays are the broker's own moves (docs/activemq.md, Replay record): they keep
    the message id and every property's type, which a STOMP or AMQP re-send does not."""
    source, dest = unique("typed"), unique("typedto")
    amq.create_queue(source, dlq_per_queue=False)
    amq.create_queue(dest, dlq_per_queue=False)
    try:
        typed_message(amq, source)
        assert wait_count(amq, source, 1) == 1
        (before,) = amq.browse(source)
        result, report = replay(run_cli, broker_config(write_config, amq), "move", "amq",
                                source, dest)  # fmt: skip
        assert result.returncode == 0 and report is not None and report["moved"] == 1
        assert wait_count(amq, dest, 1) == 1
        (after,) = amq.browse(dest)
        if amq.flavor == "classic":
            same = ("JMSMessageID", "JMSCorrelationID", "JMSType", "JMSPriority", "JMSTimestamp",
                    "IntProperties", "BooleanProperties", "StringProperties", "Text")  # fmt: skip
            assert after["IntProperties"] == {"n": 5}
            assert after["BooleanProperties"] == {"flag": True}
        else:
            same = ("protocol", "userID", "type", "priority", "timestamp", "IntProperties",
                    "ShortProperties", "ByteProperties", "LongProperties", "FloatProperties",
                    "BooleanProperties", "text")  # fmt: skip
            assert after["IntProperties"] == {"applicationProperties.i": 5}
            assert after["userID"] == "ID:mid-1"
        assert {k: unrecorded(after.get(k)) for k in same} == {k: before.get(k) for k in same}
        if amq.flavor == "artemis":  # what the broker adds: its record of the move
            assert after["LongProperties"]["extraProperties._AMQ_ORIG_MESSAGE_ID"] == int(
                before["messageID"]
            )
    finally:
        amq.delete_queue(source)
        amq.delete_queue(dest)
