"""RabbitMQ lint rules: dead-lettering set up, routable and bounded; backlogs consumed."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from collectors.base import is_dlq_name
from collectors.topology import Binding, Exchange, QueueTopology, Topology, topic_matches
from mqtop.lint.model import Finding, Rule

DLX_DOCS = "https://www.rabbitmq.com/docs/dlx"
QUORUM_DOCS = "https://www.rabbitmq.com/docs/quorum-queues#poison-message-handling"
LENGTH_DOCS = "https://www.rabbitmq.com/docs/maxlength"
TTL_DOCS = "https://www.rabbitmq.com/docs/ttl"
CONSUMERS_DOCS = "https://www.rabbitmq.com/docs/consumers"
MAX_HOPS = 8

NO_DLX = Rule(
    "rabbitmq-no-dlx",
    "warning",
    "rabbitmq",
    "queue without a dead-letter exchange: rejected and expired messages are discarded",
    "set a policy with dead-letter-exchange (or the x-dead-letter-exchange argument) and bind "
    "a dead-letter queue to that exchange",
    DLX_DOCS,
)
QUORUM_NO_DLX = Rule(
    "rabbitmq-quorum-no-dlx",
    "critical",
    "rabbitmq",
    "quorum queue without a dead-letter exchange: poison messages are dropped at the "
    "delivery limit (or redelivered forever without one)",
    "set dead-letter-exchange (policy or x-dead-letter-exchange) and a delivery-limit on "
    "the quorum queue",
    QUORUM_DOCS,
)
DLX_UNROUTABLE = Rule(
    "rabbitmq-dlx-unroutable",
    "critical",
    "rabbitmq",
    "dead-letter exchange missing or with no binding for the dead-letter routing key: dead "
    "letters are silently dropped",
    "declare the dead-letter exchange and bind a queue with the dead-letter routing key "
    "(or set x-dead-letter-routing-key to a bound key)",
    DLX_DOCS,
)
DLQ_UNBOUNDED = Rule(
    "rabbitmq-dlq-unbounded",
    "warning",
    "rabbitmq",
    "dead-letter queue with neither TTL nor max-length and no consumer: it only grows",
    "give the dead-letter queue a message-ttl or max-length policy, or consume it",
    LENGTH_DOCS,
)
BACKLOG_NO_CONSUMER = Rule(
    "rabbitmq-backlog-no-consumer",
    "warning",
    "rabbitmq",
    "queue with messages waiting and no consumer",
    "start a consumer for the queue, or delete the queue if it is abandoned",
    CONSUMERS_DOCS,
)
RULES = (NO_DLX, QUORUM_NO_DLX, DLX_UNROUTABLE, DLQ_UNBOUNDED, BACKLOG_NO_CONSUMER)


@dataclass(frozen=True, slots=True)
class Route:
    """Where a routing key goes from an exchange: queues, and whether that is certain."""

    queues: frozenset[str]
    certain: bool  # False when a headers (or plugin) exchange decides by what it cannot see
    exchange_exists: bool = True


class Router:
    """Exchange routing over a topology's exchanges and bindings (one vhost at a time)."""

    def __init__(self, topology: Topology) -> None:
        self.exchanges: dict[tuple[str, str], Exchange] = {
            (e.vhost, e.name): e for e in topology.exchanges
        }
        self.bindings: dict[tuple[str, str], list[Binding]] = {}
        for b in topology.bindings:
            self.bindings.setdefault((b.vhost, b.source), []).append(b)
        self.queues = {(q.vhost, q.short) for q in topology.queues}
        self.all_queues = topology.all_queues

    def route(self, vhost: str, exchange: str, key: str) -> Route:
        """The queues a message with ``key`` published to ``exchange`` reaches."""
        if exchange == "":
            known = (vhost, key) in self.queues or _qualified(vhost, key) in self.all_queues
            return Route(frozenset({key}) if known else frozenset(), True)
        if (vhost, exchange) not in self.exchanges:
            return Route(frozenset(), True, exchange_exists=False)
        found_queues: set[str] = set()
        certain = self._walk(vhost, exchange, key, found_queues, [])
        return Route(frozenset(found_queues), certain)

    def _walk(self, vhost: str, name: str, key: str, found: set[str], seen: list[str]) -> bool:
        """Follow ``key`` from exchange ``name``; ``seen``: the exchanges already walked."""
        if name in seen or len(seen) > MAX_HOPS:
            return True
        seen.append(name)
        exchange = self.exchanges.get((vhost, name))
        if exchange is None:
            return True
        certain = exchange.type in {"direct", "fanout", "topic"}
        matched = False
        for b in self.bindings.get((vhost, name), []):
            if exchange.type == "topic":
                ok = topic_matches(b.routing_key, key)
            elif exchange.type == "direct":
                ok = b.routing_key == key
            else:  # fanout; headers and plugin types: every binding may match
                ok = True
            if not ok:
                continue
            matched = True
            if b.destination_type == "queue":
                found.add(b.destination)
            else:
                certain = self._walk(vhost, b.destination, key, found, seen) and certain
        if not matched and exchange.alternate_exchange:
            certain = self._walk(vhost, exchange.alternate_exchange, key, found, seen) and certain
        return certain


def _qualified(vhost: str, name: str) -> str:
    return name if vhost == "/" else f"{vhost}/{name}"


def _keys(
    queue: QueueTopology, exchanges: dict[tuple[str, str], Exchange]
) -> tuple[set[str], bool]:
    """The routing keys dead letters of ``queue`` carry, and whether that list is complete.

    With ``x-dead-letter-routing-key`` it is that key. Without, messages keep the keys they
    were published with: the queue's name (default exchange) and its direct binding keys are
    known; a topic, fanout or headers binding means keys lint cannot know.
    """
    if queue.dead_letter is not None and queue.dead_letter.routing_key is not None:
        return {queue.dead_letter.routing_key}, True
    keys = {queue.short}
    complete = True
    for source, key in queue.bound_keys:
        exchange = exchanges.get((queue.vhost, source))
        if exchange is not None and exchange.type == "direct":
            keys.add(key)
        else:
            complete = False
    return keys, complete


def dead_letter_queues(topology: Topology, router: Router | None = None) -> set[str]:
    """mqtop names of queues that receive dead letters (by routing, binding or name)."""
    router = router or Router(topology)
    dlx = {
        (q.vhost, q.dead_letter.target)
        for q in topology.queues
        if q.dead_letter is not None and q.dead_letter.target
    }
    found: set[tuple[str, str]] = set()
    for q in topology.queues:
        if q.dead_letter is None:
            continue
        keys, _complete = _keys(q, router.exchanges)
        for key in keys:
            route = router.route(q.vhost, q.dead_letter.target, key)
            found.update((q.vhost, name) for name in route.queues if name != q.short)
    for b in topology.bindings:
        if b.destination_type == "queue" and (b.vhost, b.source) in dlx:
            found.add((b.vhost, b.destination))
    return {q.name for q in topology.queues if (q.vhost, q.short) in found or is_dlq_name(q.short)}


def _dlx_name(queue: QueueTopology) -> str:
    target = queue.dead_letter.target if queue.dead_letter else ""
    return repr(target) if target else "the default exchange"


def _unroutable(queue: QueueTopology, router: Router) -> str | None:
    """Why the dead letters of ``queue`` go nowhere, or None when they are routed (or when
    lint cannot tell)."""
    assert queue.dead_letter is not None
    keys, complete = _keys(queue, router.exchanges)
    where = f"(from its {queue.dead_letter.source})"
    reached: set[str] = set()
    for key in sorted(keys):
        route = router.route(queue.vhost, queue.dead_letter.target, key)
        if not route.exchange_exists:
            return f"dead-letter exchange {_dlx_name(queue)} {where} does not exist"
        if not route.certain:
            return None
        reached.update(route.queues)
    reached.discard(queue.short)
    if reached or not complete:
        return None
    shown = ", ".join(repr(k) for k in sorted(keys))
    return f"dead-letter exchange {_dlx_name(queue)} {where} routes key {shown} to no queue"


def check(topology: Topology) -> Iterator[Finding]:
    """Every RabbitMQ rule over one topology."""
    router = Router(topology)
    dlqs = dead_letter_queues(topology, router)
    broker = topology.broker
    for queue in topology.queues:
        is_dlq = queue.name in dlqs
        yield from _dead_lettering(broker, queue, is_dlq, router)
        if queue.kind == "stream":
            continue
        if is_dlq:
            bounded = any(
                v is not None
                for v in (queue.message_ttl_seconds, queue.max_length, queue.max_length_bytes)
            )
            if not bounded and queue.consumers == 0:
                yield DLQ_UNBOUNDED.finding(
                    broker,
                    queue.name,
                    f"dead-letter queue has no message-ttl, no max-length and no consumer "
                    f"({_count(queue.messages)} messages)",
                )
        elif queue.consumers == 0 and queue.messages:
            yield BACKLOG_NO_CONSUMER.finding(
                broker, queue.name, f"{queue.messages} messages waiting and no consumer"
            )


def _count(value: int | None) -> str:
    return "unknown" if value is None else str(value)


def _dead_lettering(
    broker: str, queue: QueueTopology, is_dlq: bool, router: Router
) -> Iterable[Finding]:
    if queue.dead_letter is not None:
        why = _unroutable(queue, router)
        if why is not None:
            yield DLX_UNROUTABLE.finding(broker, queue.name, why)
        return
    if is_dlq or queue.kind == "stream" or queue.temporary or queue.short.startswith("amq."):
        return
    if queue.kind == "quorum":
        limit = queue.delivery_limit
        detail = (
            f"messages delivered {limit} times are dropped"
            if limit is not None
            else "no delivery limit either: a poison message is redelivered forever"
        )
        yield QUORUM_NO_DLX.finding(broker, queue.name, f"no dead-letter exchange; {detail}")
    else:
        yield NO_DLX.finding(broker, queue.name, "no dead-letter exchange (argument or policy)")
