"""Dead-letter topology: where a queue's dead letters go (queue arguments, policies) and
which queues receive them, through the exchanges' types and bindings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from collectors.topology import topic_matches

MAX_E2E_DEPTH = 4
RABBITMQ4_DELIVERY_LIMIT = 20  # quorum queues' default delivery limit from RabbitMQ 4.0


def effective_delivery_limit(arguments: Any, policy: Any, version: str | None) -> int | None:
    """A quorum queue's delivery limit: the smaller of ``x-delivery-limit`` and the policy's
    ``delivery-limit``; without either, 20 from RabbitMQ 4.0 on (none before). A negative
    value (4.0+) means no limit from that setting."""
    found = [
        value
        for value in (
            arguments.get("x-delivery-limit") if isinstance(arguments, dict) else None,
            policy.get("delivery-limit") if isinstance(policy, dict) else None,
        )
        if isinstance(value, int) and not isinstance(value, bool)
    ]
    if found:
        bounded = [value for value in found if value >= 0]
        return min(bounded) if bounded else None
    major = (version or "").split(".", 1)[0]
    return RABBITMQ4_DELIVERY_LIMIT if major.isdigit() and int(major) >= 4 else None


@dataclass(frozen=True, slots=True)
class QueueDetails:
    """What the management API says about one queue, for the message actions."""

    type: str  # classic, quorum or stream
    average_bytes: float | None  # mean size of a ready message; None when empty or unknown
    delivery_limit: int | None = None  # quorum queues: x-delivery-limit / delivery-limit policy


@dataclass(frozen=True, slots=True)
class DeadLetterTarget:
    """Where a queue's dead letters go: exchange and routing key (None = message's own)."""

    exchange: str
    routing_key: str | None


def dead_letter_target(item: Mapping[str, Any]) -> DeadLetterTarget | None:
    """The DLX of a queue: queue arguments win over the effective policy."""
    args = item.get("arguments") or {}
    policy = item.get("effective_policy_definition") or {}
    # JSON gives dicts: the check against the Mapping ABC only for anything else
    if type(args) is not dict and not isinstance(args, Mapping):
        args = {}
    if type(policy) is not dict and not isinstance(policy, Mapping):
        policy = {}
    exchange = args.get("x-dead-letter-exchange")
    key = args.get("x-dead-letter-routing-key")
    if exchange is None:
        exchange = policy.get("dead-letter-exchange")
    if key is None:
        key = policy.get("dead-letter-routing-key")
    if not isinstance(exchange, str):
        return None
    return DeadLetterTarget(exchange, key if isinstance(key, str) else None)


@dataclass(slots=True)
class ExchangeInfo:
    """Type and outgoing bindings of one exchange (cached)."""

    type: str | None  # None: the exchange does not exist
    bindings: list[tuple[str, str, str, Mapping[str, Any]]]  # (dest type, dest, key, args)
    fetched: float


class Topology:
    """Resolves dead-letter exchanges to queues through cached exchange bindings."""

    def __init__(self) -> None:
        self.exchanges: dict[tuple[str, str], ExchangeInfo] = {}
        self._resolved: dict[tuple[str, str, DeadLetterTarget], list[str]] = {}

    def store(self, vhost: str, exchange: str, info: ExchangeInfo) -> None:
        """Cache an exchange's type and bindings (forgets resolutions made before, unless
        the exchange is as it was)."""
        old = self.exchanges.get((vhost, exchange))
        self.exchanges[(vhost, exchange)] = info
        if old is None or old.type != info.type or old.bindings != info.bindings:
            self._resolved.clear()

    def resolve(self, vhost: str, source_queue: str, target: DeadLetterTarget) -> list[str]:
        """Queue names (in ``vhost``) that receive the dead letters of ``source_queue``."""
        key = (vhost, source_queue, target)
        found = self._resolved.get(key)
        if found is None:
            found = self._resolved[key] = self._resolve(vhost, source_queue, target)
        return found

    def _resolve(self, vhost: str, source_queue: str, target: DeadLetterTarget) -> list[str]:
        if target.exchange == "":
            # default exchange: the routing key is the queue name
            key = target.routing_key
            return [key] if key and key != source_queue else []
        found: dict[str, None] = {}
        # without a dead-letter routing key messages keep their own keys; the usual one is
        # the source queue's name (published through the default exchange)
        guessed = target.routing_key is None
        key = source_queue if guessed else (target.routing_key or "")
        self._route(vhost, target.exchange, key=key, guessed=guessed, found=found, seen=set())
        found.pop(source_queue, None)
        return sorted(found)

    def _route(
        self,
        vhost: str,
        exchange: str,
        *,
        key: str,
        guessed: bool,
        found: dict[str, None],
        seen: set[str],
        depth: int = 0,
    ) -> None:
        if exchange in seen or depth > MAX_E2E_DEPTH:
            return
        seen.add(exchange)
        info = self.exchanges.get((vhost, exchange))
        if info is None or info.type is None:
            return
        matched: list[tuple[str, str]] = []
        for dest_type, dest, bkey, _args in info.bindings:
            if info.type in {"fanout", "headers"}:
                ok = True  # headers: routing depends on message headers; every binding may
            elif info.type == "topic":
                ok = topic_matches(bkey, key)
            else:  # direct (and other exchange types keyed on equality)
                ok = bkey == key
            if ok:
                matched.append((dest_type, dest))
        if not matched and guessed and info.type not in {"fanout", "headers"}:
            # unknown original keys: an exchange bound to a single queue is that queue
            queues = {d for t, d, _, _ in info.bindings if t == "queue"}
            if len(queues) == 1 and not any(t == "exchange" for t, _, _, _ in info.bindings):
                matched = [("queue", next(iter(queues)))]
        for dest_type, dest in matched:
            if dest_type == "queue":
                found[dest] = None
            else:
                self._route(
                    vhost, dest, key=key, guessed=guessed, found=found, seen=seen, depth=depth + 1
                )

    def exchanges_to_fetch(
        self, vhost: str, exchange: str, now: float, every: float
    ) -> list[tuple[str, str]]:
        """The exchange and any bound exchanges not cached (or stale)."""
        out = []
        stack = [(exchange, 0)]
        seen: set[str] = set()
        while stack:
            name, depth = stack.pop()
            if name in seen or depth > MAX_E2E_DEPTH:
                continue
            seen.add(name)
            info = self.exchanges.get((vhost, name))
            if info is None or now - info.fetched >= every:
                out.append((vhost, name))
                continue
            for dest_type, dest, _, _ in info.bindings:
                if dest_type == "exchange":
                    stack.append((dest, depth + 1))
        return out
