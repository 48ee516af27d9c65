"""`mqtop dlq peek` on real ActiveMQ brokers: the broker's browse, with no side effect."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.activemq import ActiveMQBroker, wait_count

pytestmark = pytest.mark.broker

ARTEMIS_COUNTERS = ("MessageCount", "DeliveringCount", "MessagesAdded", "MessagesAcknowledged",
                    "MessagesKilled", "ConsumerCount")  # fmt: skip
CLASSIC_COUNTERS = ("QueueSize", "InFlightCount", "EnqueueCount", "DequeueCount",
                    "DispatchCount", "ConsumerCount")  # fmt: skip


def broker_config(write_config: Callable[..., Path], amq: ActiveMQBroker, **extra: Any) -> Path:
    """A config with one ActiveMQ broker named amq (a file of its own per variant)."""
    broker = {
        "name": "amq",
        "type": "activemq",
        "jolokia_url": amq.jolokia_url,
        "user": amq.user,
        "password": amq.password,
        **extra,
    }
    name = "mqtop-" + "-".join(sorted(extra)) + ".yaml"
    return write_config("brokers:\n  - " + json.dumps(broker) + "\n", name=name)


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
