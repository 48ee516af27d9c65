"""`mqtop dlq peek` on real ActiveMQ brokers: the broker's browse, with no side effect."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.activemq import ActiveMQBroker, broker_config, wait_count

pytestmark = pytest.mark.broker

ARTEMIS_COUNTERS = ("MessageCount", "DeliveringCount", "MessagesAdded", "MessagesAcknowledged",
                    "MessagesKilled", "ConsumerCount")  # fmt: skip
CLASSIC_COUNTERS = ("QueueSize", "InFlightCount", "EnqueueCount", "DequeueCount",
                    "DispatchCount", "ConsumerCount")  # fmt: skip


def counters(amq: ActiveMQBroker, queue: str) -> dict[str, Any]:
    names = ARTEMIS_COUNTERS if amq.flavor == "artemis" else CLASSIC_COUNTERS
    attrs = amq.queue_attributes(queue)
    return {n: attrs[n] for n in names}


def test_peek_shows_dead_letters_and_changes_nothing(
    amq: ActiveMQBroker,
    unique: Callable[[str], str],
    write_config: Callable[[str], Path],
    run_cli: Any,
) -> None:
    queue = unique("peek") if amq.flavor == "artemis" else "ind." + unique("peek")
    dlq = amq.dlq_of(queue)
    amq.create_queue(queue)
    try:
        amq.send(queue, [f'{{"order": {i}}}' for i in range(3)], {"color": "red", "tries": "3"})
        assert wait_count(amq, queue, 3) == 3
        amq.dead_letter(queue, 3)
        assert wait_count(amq, dlq, 3) == 3
        before, browsed = counters(amq, dlq), amq.browse(dlq)
        path = broker_config(write_config, amq)

        result = run_cli("dlq", "peek", "amq", dlq, "-n", "2", "--format", "json",
                         "--config", str(path))  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "note:" not in result.stderr  # browsing has no side effect to warn about
        peeked = json.loads(result.stdout)
        assert [m["body"] for m in peeked] == ['{"order": 0}', '{"order": 1}']
        for m in peeked:
            assert m["headers"]["color"] == "red" and m["headers"]["tries"] == "3"
            assert m["death"]["original_queue"] == queue
            assert m["body_encoding"] == "utf8"
        if amq.flavor == "artemis":
            assert peeked[0]["properties"]["broker_properties"]["_AMQ_ORIG_QUEUE"] == queue
        else:
            assert peeked[0]["properties"]["OriginalDestination"] == f"queue://{queue}"

        # nothing changed: counters, delivery state (redelivered flags) and order
        assert counters(amq, dlq) == before
        assert amq.browse(dlq) == browsed
        assert all(m.get("redelivered", m.get("JMSRedelivered")) is False for m in browsed)

        table = run_cli("dlq", "peek", "amq", dlq, "--config", str(path))
        assert table.returncode == 0 and '{"order": 0}' in table.stdout
    finally:
        amq.cleanup(queue)


def test_peek_unknown_queue_is_a_usage_error(
    amq: ActiveMQBroker, write_config: Callable[[str], Path], run_cli: Any
) -> None:
    result = run_cli("dlq", "peek", "amq", "no-such-queue-here", "--config",
                     str(broker_config(write_config, amq)))  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "no queue 'no-such-queue-here'" in result.stderr
    assert "Traceback" not in result.stderr


def test_artemis_queue_by_address_and_name(
    artemis_broker: ActiveMQBroker,
    unique: Callable[[str], str],
    write_config: Callable[[str], Path],
    run_cli: Any,
) -> None:
    """A queue whose name differs from its address answers to ``address/queue`` too."""
    amq = artemis_broker
    queue = unique("dl")
    amq.create_queue(queue)
    try:
        amq.send(queue, ["x"])
        assert wait_count(amq, queue, 1) == 1
        amq.dead_letter(queue, 1)
        path = broker_config(write_config, amq)
        for name in (f"DLQ.{queue}", f"mqtop.DLA/DLQ.{queue}"):
            result = run_cli("dlq", "peek", "amq", name, "--format", "json", "--config", str(path))
            assert result.returncode == 0, result.stderr
            assert [m["body"] for m in json.loads(result.stdout)] == ["x"]
    finally:
        amq.cleanup(queue)


def send_large(amq: ActiveMQBroker, queue: str, size: int) -> tuple[str, bytes]:
    """A ``size``-byte text message and a ``size``-byte bytes message (STOMP: a frame with a
    content-length is a bytes message on both flavors, one without it a text message)."""
    import stomp

    text = ("T" * (size - 8)) + "TAIL-TXT"
    data = ("B" * (size - 8) + "TAIL-BIN").encode()
    conn = stomp.Connection12([("127.0.0.1", amq.stomp_port)], heartbeats=(0, 0),
                              auto_content_length=False)  # fmt: skip
    conn.connect(amq.user, amq.password, wait=True)
    try:
        extra = {"destination-type": "ANYCAST"} if amq.flavor == "artemis" else {}
        common = {"persistent": "true", **extra}
        conn.send(amq.destination(queue), text, headers={"k": "t", **common})
        conn.send(amq.destination(queue), data,
                  headers={"k": "b", "content-length": str(size), **common})  # fmt: skip
    finally:
        conn.disconnect()
    return text, data


def test_peek_reads_whole_10kb_bodies_without_side_effects(
    amq: ActiveMQBroker,
    unique: Callable[[str], str],
    write_config: Callable[..., Path],
    run_cli: Any,
) -> None:
    """Jolokia shows 256 (Artemis) / 255 (Classic) bytes of a body; with browse_url mqtop
    browses the whole body (Artemis AMQP copy link, Classic STOMP browser); without it the
    preview is marked truncated, with the size only where the broker reports it."""
    queue = unique("big") if amq.flavor == "artemis" else "ind." + unique("big")
    dlq = amq.dlq_of(queue)
    amq.create_queue(queue)
    try:
        text, data = send_large(amq, queue, 10240)
        assert wait_count(amq, queue, 2) == 2
        amq.dead_letter(queue, 2)
        assert wait_count(amq, dlq, 2) == 2
        before, browsed = counters(amq, dlq), amq.browse(dlq)

        path = broker_config(write_config, amq)
        result = run_cli("dlq", "peek", "amq", dlq, "--format", "json", "--max-body", "20000",
                         "--config", str(path))  # fmt: skip
        assert result.returncode == 0, result.stderr
        cut = {m["headers"]["k"]: m for m in json.loads(result.stdout)}
        assert "set browse_url to read whole bodies" in result.stderr
        assert cut["b"]["truncated"] is True and len(cut["b"]["body"]) < 300
        if amq.flavor == "artemis":  # Artemis reports no body size: none is made up
            assert cut["b"]["size"] is None and cut["t"]["size"] is None
            assert cut["t"]["truncated"] is True and cut["t"]["body"] == "T" * 256
        else:  # Classic: BodyLength; a text message's whole Text
            assert cut["b"]["size"] == 10240 and len(cut["b"]["body"]) == 255
            assert cut["t"]["body"] == text and "truncated" not in cut["t"]

        path = broker_config(write_config, amq, browse_url=amq.browse_url)
        result = run_cli("dlq", "peek", "amq", dlq, "--format", "json", "--max-body", "20000",
                         "--config", str(path))  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "note:" not in result.stderr
        whole = {m["headers"]["k"]: m for m in json.loads(result.stdout)}
        assert whole["t"]["body"] == text and whole["t"]["size"] == 10240
        assert whole["b"]["body"] == data.decode() and whole["b"]["size"] == 10240
        assert "truncated" not in whole["t"] and "truncated" not in whole["b"]
        assert all(m["death"]["original_queue"] == queue for m in whole.values())

        after = counters(amq, dlq)
        if amq.flavor == "classic":  # the one message browsed over STOMP is counted there
            assert after.pop("DispatchCount") == before.pop("DispatchCount") + 1
        assert after == before  # nothing else changed: no delivery, no redelivery flag
        assert amq.browse(dlq) == browsed
    finally:
        amq.cleanup(queue)


def test_body_filter_reads_the_whole_body(
    amq: ActiveMQBroker,
    unique: Callable[[str], str],
    write_config: Callable[..., Path],
    run_cli: Any,
) -> None:
    """A body filter on text past the preview: untestable without browse_url (failed, they
    stay), exact with it."""
    queue = unique("bf") if amq.flavor == "artemis" else "ind." + unique("bf")
    dest = unique("bfto")
    dlq = amq.dlq_of(queue)
    amq.create_queue(queue)
    amq.create_queue(dest, dlq_per_queue=False)
    try:
        send_large(amq, queue, 10240)
        assert wait_count(amq, queue, 2) == 2
        amq.dead_letter(queue, 2)
        assert wait_count(amq, dlq, 2) == 2
        args = ("dlq", "move", "amq", dlq, dest, "--filter", "body:TAIL-BIN", "--yes",
                "--format", "json")  # fmt: skip
        plain = run_cli(*args, "--config", str(broker_config(write_config, amq)))
        assert plain.returncode == 3, plain.stderr
        report = json.loads(plain.stdout)
        assert report["moved"] == 0 and report["failed"] >= 1
        assert amq.count(dlq) == 2 and amq.count(dest) == 0

        path = broker_config(write_config, amq, browse_url=amq.browse_url)
        result = run_cli(*args, "--config", str(path))
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert (report["moved"], report["failed"], report["skipped"]) == (1, 0, 1)
        assert wait_count(amq, dest, 1) == 1 and amq.count(dlq) == 1
        moved = amq.browse(dest)[0]
        assert moved.get("BodyLength", 10240) == 10240
        assert "TAIL-BIN" not in json.dumps(amq.browse(dlq))
    finally:
        amq.cleanup(queue)
        amq.delete_queue(dest)
