"""``mqtop lint`` on the real ActiveMQ brokers: each Artemis rule broken and satisfied, read
from the queues and their address settings, with the broker's own behaviour behind each rule
checked (a rolled-back delivery with no dead-letter address, or a dead-letter address without
a queue, is killed and kept nowhere); Classic is read but judged by no ActiveMQ rule."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.activemq import ActiveMQBroker, wait_count

pytestmark = pytest.mark.broker

SETTINGS = "addAddressSettings(java.lang.String,java.lang.String)"


class Artemis:
    """Queues made on their own address with address settings of their own; cleaned up."""

    def __init__(self, broker: ActiveMQBroker) -> None:
        self.broker = broker
        self.mbean = broker.broker_mbean()
        self.queues: list[str] = []
        self.settings: list[str] = []
        self.addresses: list[str] = []

    def queue(self, name: str, address: str | None = None, **settings: Any) -> None:
        address = address or name
        if settings:
            self.broker.call(self.mbean, SETTINGS, address, json.dumps(settings))
            self.settings.append(address)
        config = {"name": name, "address": address, "routing-type": "ANYCAST", "durable": True}
        self.queues.append(name)
        self.broker.call(
            self.mbean, "createQueue(java.lang.String,boolean)", json.dumps(config), True
        )

    def fail_once(self, queue: str, left: int = 0) -> dict[str, Any]:
        """Send one message, receive it and disconnect without acknowledging (a rolled-back
        delivery); the queue's counters once it holds ``left`` messages."""
        self.broker.send(queue, ["poison"])
        assert wait_count(self.broker, queue, 1) == 1
        self.broker.hold(queue, 1).disconnect()
        assert wait_count(self.broker, queue, left) == left
        return self.broker.queue_attributes(queue)

    def queues_on(self, address: str) -> list[str]:
        pattern = (
            "org.apache.activemq.artemis:broker=*,component=addresses,"
            f'address="{address}",subcomponent=queues,*'
        )
        return list(self.broker.jolokia({"type": "search", "mbean": pattern})["value"])

    def cleanup(self) -> None:
        for name in reversed(self.queues):
            with contextlib.suppress(Exception):
                self.broker.call(
                    self.mbean, "destroyQueue(java.lang.String,boolean,boolean)", name, True, True
                )
        for address in self.settings:
            with contextlib.suppress(Exception):
                self.broker.call(self.mbean, "removeAddressSettings(java.lang.String)", address)
        for address in self.addresses:
            with contextlib.suppress(Exception):
                self.broker.call(
                    self.mbean, "deleteAddress(java.lang.String,boolean)", address, True
                )


@pytest.fixture
def artemis(artemis_broker: ActiveMQBroker) -> Iterator[Artemis]:
    made = Artemis(artemis_broker)
    yield made
    made.cleanup()


def _lint(run_cli: Callable[..., Any], write_config: Callable[..., Any],
          broker: ActiveMQBroker, prefix: str) -> tuple[Any, dict[str, Any]]:  # fmt: skip
    path = write_config(
        f"""
        brokers:
          - name: amq
            type: activemq
            jolokia_url: "{broker.jolokia_url}"
            user: {broker.user}
            password: "{broker.password}"
            include: ["{prefix}*"]
        """
    )
    result = run_cli("lint", "--config", str(path), "--format", "json")
    return result, json.loads(result.stdout)


def _found(data: dict[str, Any]) -> set[tuple[str, str]]:
    return {(f["rule"], f["queue"]) for f in data["findings"] if f["rule"] != "alert-uncovered"}


def test_artemis_rules_broken_and_satisfied(
    artemis: Artemis, unique: Callable[[str], str], run_cli: Any, write_config: Any
) -> None:
    p = unique("lint-amq")
    # no dead-letter address, one attempt: the broker kills the message and keeps it nowhere
    artemis.queue(p + ".nodla", deadLetterAddress="", maxDeliveryAttempts=1)
    # a dead-letter address with no queue and no auto-created resources: dropped as well
    artemis.addresses.append(p + ".nowhere")
    artemis.queue(p + ".lost", deadLetterAddress=p + ".nowhere", maxDeliveryAttempts=1)
    # infinite redelivery, dead letters kept
    artemis.addresses.append(p + ".DLA")
    artemis.queue(p + ".forever", deadLetterAddress=p + ".DLA",
                  autoCreateDeadLetterResources=True, maxDeliveryAttempts=-1)  # fmt: skip
    # satisfied: auto-created dead-letter resources, a sane bound
    artemis.queue(p + ".good", deadLetterAddress=p + ".DLA",
                  autoCreateDeadLetterResources=True, maxDeliveryAttempts=5)  # fmt: skip
    # satisfied: a dead-letter queue bound on the dead-letter address, the default bound
    artemis.queue(p + ".bound", deadLetterAddress=p + ".DLA2")
    artemis.queue(p + ".dlq", address=p + ".DLA2")

    result, data = _lint(run_cli, write_config, artemis.broker, p)
    assert result.returncode == 1, result.stderr
    assert _found(data) == {
        ("activemq-no-dla", p + ".nodla"),
        ("activemq-max-delivery-attempts", p + ".nodla"),
        ("activemq-dla-no-queue", p + ".lost"),
        ("activemq-max-delivery-attempts", p + ".lost"),
        ("activemq-max-delivery-attempts", p + ".forever"),
    }, data
    by_key = {(f["rule"], f["queue"]): f for f in data["findings"]}
    assert by_key[("activemq-no-dla", p + ".nodla")]["severity"] == "critical"
    assert data["brokers"] == ["amq"] and data["errors"] == []

    # what the rules warn of, on the broker itself
    for queue in (p + ".nodla", p + ".lost"):
        counters = artemis.fail_once(queue)
        assert counters["MessagesKilled"] == 1 and counters["MessageCount"] == 0, counters
    assert artemis.queues_on(p + ".nowhere") == []
    counters = artemis.fail_once(p + ".good", left=1)  # 4 attempts left: redelivered
    assert counters["MessagesKilled"] == 0 and counters["DeliveringCount"] == 0, counters
    artemis.queue(p + ".once", deadLetterAddress=p + ".DLA",
                  autoCreateDeadLetterResources=True, maxDeliveryAttempts=1)  # fmt: skip
    counters = artemis.fail_once(p + ".once")
    assert counters["MessagesKilled"] == 1
    kept = artemis.queues_on(p + ".DLA")
    assert kept and f'queue="DLQ.{p}.once"' in kept[0], kept
    artemis.queues.append(f"DLQ.{p}.once")


def test_classic_is_read_without_activemq_rules(
    activemq_classic_broker: ActiveMQBroker, unique: Callable[[str], str],
    run_cli: Any, write_config: Any,
) -> None:  # fmt: skip
    broker = activemq_classic_broker
    p = unique("lint-amqc")
    broker.create_queue(p + ".orders")
    try:
        result, data = _lint(run_cli, write_config, broker, p)
    finally:
        broker.delete_queue(p + ".orders")
    assert result.returncode == 0, result.stderr
    assert _found(data) == set() and data["brokers"] == ["amq"]
    assert any("Classic exposes no dead-letter strategy" in n for n in data["notes"]), data
