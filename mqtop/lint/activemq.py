"""ActiveMQ Artemis lint rules: a dead-letter address that exists and receives, and a
max-delivery-attempts that neither loops forever nor dead-letters on the first failure."""

from __future__ import annotations

from collections.abc import Iterator

from collectors.base import is_dlq_name
from collectors.topology import QueueTopology, Topology
from mqtop.lint.model import Finding, Rule

UNDELIVERED_DOCS = (
    "https://activemq.apache.org/components/artemis/documentation/latest/undelivered-messages.html"
)

NO_DLA = Rule(
    "activemq-no-dla",
    "critical",
    "activemq",
    "Artemis queue without a dead-letter address: a message that reaches max-delivery-attempts "
    "is removed for good",
    "set dead-letter-address (and auto-create-dead-letter-resources) in the address settings "
    "matching the queue's address",
    UNDELIVERED_DOCS,
)
DLA_NO_QUEUE = Rule(
    "activemq-dla-no-queue",
    "critical",
    "activemq",
    "Artemis dead-letter address with no queue and no auto-created dead-letter resources: "
    "dead letters are dropped",
    "create a queue on the dead-letter address, or set auto-create-dead-letter-resources: true "
    "in the address settings",
    UNDELIVERED_DOCS,
)
DELIVERY_ATTEMPTS = Rule(
    "activemq-max-delivery-attempts",
    "warning",
    "activemq",
    "Artemis max-delivery-attempts of -1 (a poison message is redelivered forever, never "
    "dead-lettered) or 1 (one failed delivery, e.g. a consumer crash, dead-letters it)",
    "set max-delivery-attempts in the address settings to a small bound above 1 (Artemis' "
    "default is 10)",
    UNDELIVERED_DOCS,
)
RULES = (NO_DLA, DLA_NO_QUEUE, DELIVERY_ATTEMPTS)


def _dead_letter_queues(topology: Topology) -> set[str]:
    """Queues on some queue's dead-letter address (the address's own queues)."""
    dlas = {q.dead_letter.target for q in topology.queues if q.dead_letter is not None}
    return {b.destination for b in topology.bindings if b.source in dlas}


def _is_dlq(queue: QueueTopology, dlqs: set[str]) -> bool:
    return queue.kind == "dlq" or queue.short in dlqs or is_dlq_name(queue.short)


def check(topology: Topology) -> Iterator[Finding]:
    """Every ActiveMQ rule over one topology (Artemis; a Classic topology has no links)."""
    broker = topology.broker
    dlqs = _dead_letter_queues(topology)
    addresses = {e.name for e in topology.exchanges}
    bound = {b.source for b in topology.bindings}
    for queue in topology.queues:
        link = queue.dead_letter
        limit = queue.delivery_limit
        if link is None and limit != -1 and addresses and not _is_dlq(queue, dlqs):
            after = f"{limit} delivery attempts" if limit is not None else "max-delivery-attempts"
            yield NO_DLA.finding(
                broker, queue.name, f"no dead-letter address: a message is removed after {after}"
            )
        elif (
            link is not None
            and addresses
            and link.target not in bound
            and queue.auto_create_dlq is False
        ):
            yield DLA_NO_QUEUE.finding(
                broker,
                queue.name,
                f"dead-letter address {link.target!r} has no queue and "
                "auto-create-dead-letter-resources is off",
            )
        if limit == -1:
            yield DELIVERY_ATTEMPTS.finding(
                broker,
                queue.name,
                "max-delivery-attempts is -1: a poison message is redelivered forever",
            )
        elif limit == 1 and not _is_dlq(queue, dlqs):
            outcome = "dead-letters" if link is not None else "removes"
            yield DELIVERY_ATTEMPTS.finding(
                broker,
                queue.name,
                f"max-delivery-attempts is 1: the first failed delivery {outcome} the message",
            )
