"""ActiveMQ topology for ``mqtop lint``.

Artemis: the queues of the poll's one bulk read (address, dead-letter address, messages,
consumers), each address modelled as an exchange bound to its queues, and each queue's address
settings (``getAddressSettingsAsJSON``, one bulk POST): ``maxDeliveryAttempts`` and
``autoCreateDeadLetterResources`` when set (Artemis omits them at their defaults: 10 and
false). Classic: the queues only; Classic exposes neither its dead-letter strategy nor its
redelivery policy over JMX, so no Classic rule is checked (a note says so).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from collectors.activemq.collector import ActiveMQCollector
from collectors.activemq.decode import ARTEMIS, Row, broker_key
from collectors.activemq.jolokia import JolokiaError, JolokiaRefused, MBeanError, value_of
from collectors.activemq.options import ActiveMQOptions
from collectors.topology import Binding, DeadLetter, Exchange, QueueTopology, Topology
from mqtop.kernel.errors import BrokerUnreachable

SETTINGS_OP = "getAddressSettingsAsJSON(java.lang.String)"
DEFAULT_MAX_DELIVERY_ATTEMPTS = 10
CLASSIC_NOTE = (
    "ActiveMQ Classic exposes no dead-letter strategy or redelivery policy over JMX: "
    "no ActiveMQ rule is checked for it"
)


def decode_settings(raw: Any) -> dict[str, Any] | None:
    """An address-settings answer (a JSON string) as a dict; None when malformed."""
    if not isinstance(raw, str):
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def artemis_queue(row: Row, settings: Mapping[str, Any] | None) -> QueueTopology:
    """One Artemis queue with its address settings (None: they could not be read)."""
    dla = row.info.get("dead_letter_address")
    dead_letter = (
        DeadLetter(dla, None, "address-settings") if isinstance(dla, str) and dla else None
    )
    limit: int | None = None
    auto_create: bool | None = None
    if settings is not None:
        attempts = settings.get("maxDeliveryAttempts", DEFAULT_MAX_DELIVERY_ATTEMPTS)
        limit = attempts if type(attempts) is int else None
        auto_create = settings.get("autoCreateDeadLetterResources", False) is True
    messages = None
    if row.waiting is not None and row.in_flight is not None:
        messages = row.waiting + row.in_flight
    # a durable subscription's series is (address, group=queue): lint names it address/queue
    name = row.name if row.group is None else f"{row.name}/{row.group}"
    return QueueTopology(
        name=name,
        kind=row.kind,  # queue | dlq | subscription
        local_name=row.queue,
        durable=True,
        consumers=row.consumers,
        messages=messages,
        dead_letter=dead_letter,
        delivery_limit=limit,
        auto_create_dlq=auto_create,
    )


class ActiveMQTopologyReader:
    """Reads queues (one bulk POST) and, on Artemis, their address settings (another)."""

    def __init__(self, options: ActiveMQOptions) -> None:
        self.options = options
        self.collector = ActiveMQCollector(options)

    async def _settings(self, addresses: list[str]) -> dict[str, dict[str, Any] | None]:
        found_brokers = await self.collector.jolokia.search(
            f"{ARTEMIS}:{broker_key('artemis', self.options.broker_name)}"
        )
        if len(found_brokers) != 1:
            return dict.fromkeys(addresses)
        broker = found_brokers[0]
        requests = [
            {"type": "exec", "mbean": broker, "operation": SETTINGS_OP, "arguments": [a]}
            for a in addresses
        ]
        try:
            answers = await self.collector.jolokia.bulk(requests)
        except JolokiaRefused:  # the role may read queues but not call the operation
            return dict.fromkeys(addresses)
        found: dict[str, dict[str, Any] | None] = {}
        for address, answer in zip(addresses, answers, strict=True):
            try:
                found[address] = decode_settings(value_of(answer))
            except MBeanError:
                found[address] = None
        return found

    async def _read(self) -> Topology:
        rows, warnings = await self.collector.rows()
        flavor = self.collector.flavor
        wanted = [r for r in rows if self.options.wants(r.name)]
        if flavor != "artemis":
            queues = tuple(
                QueueTopology(r.name, r.kind, r.queue, consumers=r.consumers) for r in wanted
            )
            return Topology(
                self.options.name, "activemq", queues, warnings=(*warnings, CLASSIC_NOTE)
            )
        addresses = sorted({str(r.info.get("address")) for r in wanted})
        settings = await self._settings(addresses) if addresses else {}
        unread = [a for a in addresses if settings.get(a) is None]
        if unread:
            warnings.append(
                f"address settings of {len(unread)} address(es) could not be read "
                f"(e.g. {unread[0]!r}): activemq-dla-no-queue and "
                "activemq-max-delivery-attempts are not checked for their queues"
            )
        queues = tuple(artemis_queue(r, settings.get(str(r.info.get("address")))) for r in wanted)
        by_address: dict[str, set[str]] = {}
        for row in rows:
            by_address.setdefault(str(row.info.get("address")), set()).add(row.queue)
        exchanges = tuple(Exchange(a, "address") for a in sorted(by_address))
        bindings = tuple(
            Binding(a, q, "queue", "") for a, names in sorted(by_address.items()) for q in names
        )
        return Topology(
            self.options.name,
            "activemq",
            queues,
            exchanges=exchanges,
            bindings=bindings,
            all_queues=frozenset(r.queue for r in rows),
            warnings=tuple(warnings),
        )

    async def read(self) -> Topology:
        try:
            return await self._read()
        except JolokiaError as exc:
            raise BrokerUnreachable(f"broker {self.options.name!r}: {exc}") from None

    async def close(self) -> None:
        await self.collector.close()


def create_reader(options: ActiveMQOptions) -> ActiveMQTopologyReader:
    """The plugin's ``topology`` factory."""
    return ActiveMQTopologyReader(options)
