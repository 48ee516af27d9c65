"""The topology model a broker plugin may read for ``mqtop lint``.

A plugin declares ``CollectorPlugin(topology=factory)``; ``factory(options)`` returns a
:class:`TopologyReader` whose ``read()`` returns a :class:`Topology`: the queues with the
settings lint rules look at (dead-letter links, bounds, consumers, replication), plus the
exchanges and bindings of brokers that route. A value the broker does not expose is None,
never guessed; the rules skip what they cannot know.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Where a queue's dead letters go.

    RabbitMQ: ``target`` is the dead-letter exchange ("" = the default exchange) and
    ``routing_key`` the ``x-dead-letter-routing-key`` (None: messages keep their own keys).
    SQS: ``target`` is the DLQ's name and ``max_receive_count`` the redrive policy's.
    Artemis: ``target`` is the dead-letter address (source ``address-settings``).
    """

    target: str
    routing_key: str | None = None
    source: str = "argument"  # argument | policy | redrive
    max_receive_count: int | None = None


@dataclass(frozen=True, slots=True)
class QueueTopology:
    """One queue (RabbitMQ queue, SQS queue, Kafka topic) as lint rules see it."""

    name: str  # mqtop's name (RabbitMQ: ``vhost/name`` outside ``/``)
    kind: str  # classic | quorum | stream | standard | fifo | topic
    local_name: str = ""  # the name inside its vhost (RabbitMQ); else the name
    vhost: str = "/"
    durable: bool | None = None
    temporary: bool = False  # exclusive or auto-delete (RabbitMQ): a client's own queue
    consumers: int | None = None
    messages: int | None = None
    dead_letter: DeadLetter | None = None
    message_ttl_seconds: float | None = None  # RabbitMQ x-message-ttl / policy message-ttl
    max_length: int | None = None  # RabbitMQ x-max-length (messages); Sidekiq dead set cap
    max_length_bytes: int | None = None  # RabbitMQ x-max-length-bytes
    delivery_limit: int | None = None  # quorum queues; Artemis max-delivery-attempts (-1: none)
    auto_create_dlq: bool | None = None  # Artemis auto-create-dead-letter-resources
    policy: str | None = None  # the effective policy's name
    retention_seconds: float | None = None  # SQS MessageRetentionPeriod, Kafka retention.ms
    retention_bytes: int | None = None  # Kafka retention.bytes per partition
    unbounded_retention: bool = False  # Kafka retention.ms = -1 and retention.bytes = -1
    replication_factor: int | None = None  # Kafka
    min_insync_replicas: int | None = None  # Kafka
    consumer_groups: tuple[str, ...] | None = None  # Kafka groups with offsets on the topic
    bound_keys: tuple[tuple[str, str], ...] = ()  # RabbitMQ (exchange, key) bindings to it

    @property
    def short(self) -> str:
        """The name inside its vhost."""
        return self.local_name or self.name


@dataclass(frozen=True, slots=True)
class Exchange:
    """A RabbitMQ exchange."""

    name: str
    type: str  # direct | fanout | topic | headers | x-...
    vhost: str = "/"
    alternate_exchange: str | None = None


@dataclass(frozen=True, slots=True)
class Binding:
    """A RabbitMQ binding from an exchange to a queue or an exchange."""

    source: str
    destination: str
    destination_type: str  # queue | exchange
    routing_key: str
    vhost: str = "/"


@dataclass(frozen=True, slots=True)
class Topology:
    """What one broker's topology reader returned."""

    broker: str
    type: str
    queues: tuple[QueueTopology, ...]
    exchanges: tuple[Exchange, ...] = ()
    bindings: tuple[Binding, ...] = ()
    cluster_size: int | None = None  # brokers / nodes in the cluster, when known
    # every queue name of the broker, include/exclude not applied (RabbitMQ: the default
    # exchange routes to any of them; a DLQ outside include still receives dead letters)
    all_queues: frozenset[str] = frozenset()
    warnings: tuple[str, ...] = ()


@runtime_checkable
class TopologyReader(Protocol):
    """Reads a broker's topology once (raise when the broker cannot be reached)."""

    async def read(self) -> Topology:
        """The broker's queues and routing, filtered by the broker's include/exclude."""

    async def close(self) -> None:
        """Release clients. Must not raise."""


def topic_matches(pattern: str, key: str) -> bool:
    """AMQP topic matching: ``*`` is one word, ``#`` zero or more words."""
    pat = pattern.split(".") if pattern else []
    words = key.split(".") if key else []

    def match(i: int, j: int) -> bool:
        while i < len(pat):
            if pat[i] == "#":
                if i == len(pat) - 1:
                    return True
                return any(match(i + 1, k) for k in range(j, len(words) + 1))
            if j >= len(words) or (pat[i] != "*" and pat[i] != words[j]):
                return False
            i += 1
            j += 1
        return j == len(words)

    return match(0, 0)
