"""RabbitMQ topology for ``mqtop lint``: queues (arguments and effective policy), exchanges
and bindings from the management API, in three paged reads.

Dead-letter settings: the queue's ``x-dead-letter-*`` arguments win over the effective
policy's ``dead-letter-*`` keys (as in the broker); likewise ``x-message-ttl`` /
``message-ttl``, ``x-max-length`` / ``max-length``, ``x-max-length-bytes`` /
``max-length-bytes`` and the quorum delivery limit.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from collectors.rabbitmq.deadletters import effective_delivery_limit
from collectors.rabbitmq.options import (
    RabbitMQOptions,
    management_endpoint,
    qualify,
    ssl_context,
)
from collectors.topology import Binding, DeadLetter, Exchange, QueueTopology, Topology
from mqtop.kernel.errors import BrokerUnreachable, UsageError
from mqtop.kernel.secrets import redact

if TYPE_CHECKING:
    import httpx

QUEUE_COLUMNS = (
    "name,vhost,type,durable,auto_delete,exclusive,arguments,policy,"
    "effective_policy_definition,consumers,messages"
)
MAX_PAGES = 2000


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _setting(args: Mapping[str, Any], policy: Mapping[str, Any], arg: str, key: str) -> Any:
    value = args.get(arg)
    return policy.get(key) if value is None else value


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def decode_queue(item: Mapping[str, Any], version: str | None) -> QueueTopology | None:
    """One ``/api/queues`` entry as a :class:`QueueTopology` (None when malformed)."""
    name, vhost = item.get("name"), item.get("vhost")
    if not isinstance(name, str) or not isinstance(vhost, str):
        return None
    args = _mapping(item.get("arguments"))
    policy = _mapping(item.get("effective_policy_definition"))
    kind = item.get("type") or args.get("x-queue-type") or "classic"
    dead_letter = None
    exchange = _setting(args, policy, "x-dead-letter-exchange", "dead-letter-exchange")
    if isinstance(exchange, str):
        key = _setting(args, policy, "x-dead-letter-routing-key", "dead-letter-routing-key")
        source = "argument" if "x-dead-letter-exchange" in args else "policy"
        dead_letter = DeadLetter(exchange, key if isinstance(key, str) else None, source)
    ttl = _int(_setting(args, policy, "x-message-ttl", "message-ttl"))
    policy_name = item.get("policy")
    return QueueTopology(
        name=qualify(vhost, name),
        kind=str(kind),
        local_name=name,
        vhost=vhost,
        durable=item.get("durable") if isinstance(item.get("durable"), bool) else None,
        temporary=bool(item.get("exclusive")) or bool(item.get("auto_delete")),
        consumers=_int(item.get("consumers")),
        messages=_int(item.get("messages")),
        dead_letter=dead_letter,
        message_ttl_seconds=ttl / 1000.0 if ttl is not None else None,
        max_length=_int(_setting(args, policy, "x-max-length", "max-length")),
        max_length_bytes=_int(_setting(args, policy, "x-max-length-bytes", "max-length-bytes")),
        delivery_limit=(
            effective_delivery_limit(args, policy, version) if kind == "quorum" else None
        ),
        policy=policy_name if isinstance(policy_name, str) and policy_name else None,
    )


def decode_exchange(item: Mapping[str, Any]) -> Exchange | None:
    """One ``/api/exchanges`` entry."""
    name, vhost, kind = item.get("name"), item.get("vhost"), item.get("type")
    if not isinstance(name, str) or not isinstance(vhost, str) or not isinstance(kind, str):
        return None
    alternate = _mapping(item.get("arguments")).get("alternate-exchange")
    return Exchange(name, kind, vhost, alternate if isinstance(alternate, str) else None)


def decode_binding(item: Mapping[str, Any]) -> Binding | None:
    """One ``/api/bindings`` entry."""
    fields = [item.get(k) for k in ("source", "destination", "destination_type", "vhost")]
    key = item.get("routing_key")
    if not all(isinstance(f, str) for f in fields) or not isinstance(key, str):
        return None
    source, destination, dest_type, vhost = (str(f) for f in fields)
    return Binding(source, destination, dest_type, key, vhost)


class RabbitMQTopologyReader:
    """Reads queues, exchanges and bindings over the management API."""

    def __init__(self, options: RabbitMQOptions) -> None:
        self.options = options
        self._http: httpx.AsyncClient | None = None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            import httpx

            endpoint = management_endpoint(self.options)
            if endpoint is None:
                raise UsageError(
                    f"broker {self.options.name!r}: lint reads the topology from the "
                    "management API: set management_url"
                )
            base, auth = endpoint
            verify: ssl.SSLContext | bool = False  # plain HTTP: no TLS, no CA bundle to load
            if base.lower().startswith("https://"):
                verify = ssl_context(self.options)
            self._http = httpx.AsyncClient(
                base_url=base,
                auth=auth,
                verify=verify,
                timeout=httpx.Timeout(self.options.http_timeout),
                headers={"Accept": "application/json"},
                trust_env=False,
            )
        return self._http

    async def _get(self, path: str, params: Mapping[str, str | int] | None = None) -> Any:
        import httpx

        client = self._client()
        try:
            response = await client.get(f"/api/{path}", params=params)
        except httpx.HTTPError as exc:
            raise BrokerUnreachable(
                redact(f"management API of {self.options.name!r}: {type(exc).__name__}: {exc}")
            ) from None
        if response.status_code != 200:
            raise BrokerUnreachable(
                f"management API of {self.options.name!r} answered HTTP {response.status_code}"
                f" to /api/{path}"
            )
        try:
            return response.json()
        except ValueError:
            raise BrokerUnreachable(
                f"management API of {self.options.name!r}: /api/{path} is not JSON"
            ) from None

    async def _paged(self, path: str, columns: str | None = None) -> list[Mapping[str, Any]]:
        items: list[Mapping[str, Any]] = []
        page = 1
        while page <= MAX_PAGES:
            params: dict[str, str | int] = {"page": page, "page_size": self.options.page_size}
            if columns:
                params["columns"] = columns
            data = await self._get(path, params)
            if not isinstance(data, Mapping) or not isinstance(data.get("items"), list):
                raise BrokerUnreachable(f"management API: unexpected /api/{path} answer")
            items.extend(i for i in data["items"] if isinstance(i, Mapping))
            count = data.get("page_count")
            if not isinstance(count, int) or page >= count:
                break
            page += 1
        return items

    def _wanted_vhost(self, vhost: str) -> bool:
        return not self.options.vhosts or vhost in self.options.vhosts

    async def read(self) -> Topology:
        overview = await self._get("overview", {"columns": "rabbitmq_version"})
        version = overview.get("rabbitmq_version") if isinstance(overview, Mapping) else None
        warnings: list[str] = []
        queues = []
        every: set[str] = set()
        for item in await self._paged("queues", QUEUE_COLUMNS):
            queue = decode_queue(item, version if isinstance(version, str) else None)
            if queue is None:
                warnings.append("a queue entry without name or vhost was skipped")
                continue
            every.add(queue.name)
            if self._wanted_vhost(queue.vhost) and self.options.wants(queue.name):
                queues.append(queue)
        exchanges = [
            e
            for e in (decode_exchange(i) for i in await self._paged("exchanges"))
            if e is not None and self._wanted_vhost(e.vhost)
        ]
        raw_bindings = await self._get("bindings")
        listed = raw_bindings if isinstance(raw_bindings, list) else []
        decoded = [decode_binding(i) if isinstance(i, Mapping) else None for i in listed]
        bindings = [b for b in decoded if b is not None and self._wanted_vhost(b.vhost)]
        skipped = sum(1 for b in decoded if b is None)
        if skipped:
            warnings.append(f"{skipped} malformed binding entries skipped")
        bound: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for b in bindings:
            if b.destination_type == "queue" and b.source:
                bound.setdefault((b.vhost, b.destination), []).append((b.source, b.routing_key))
        queues = [_with_bound(q, bound.get((q.vhost, q.short), [])) for q in queues]
        return Topology(
            broker=self.options.name,
            type="rabbitmq",
            queues=tuple(queues),
            exchanges=tuple(exchanges),
            bindings=tuple(bindings),
            all_queues=frozenset(every),
            warnings=tuple(warnings),
        )

    async def close(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            try:
                await http.aclose()
            except Exception:  # noqa: S110 - close must not raise
                pass


def _with_bound(queue: QueueTopology, keys: list[tuple[str, str]]) -> QueueTopology:
    from dataclasses import replace

    return replace(queue, bound_keys=tuple(keys)) if keys else queue


def create_reader(options: RabbitMQOptions) -> RabbitMQTopologyReader:
    """The plugin's ``topology`` factory."""
    return RabbitMQTopologyReader(options)
