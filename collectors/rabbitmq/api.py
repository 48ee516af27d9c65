"""What mqtop reads from the RabbitMQ management API: the overview (statistics mode, version),
vhosts, the paged queue listing, one queue's details, and the dead-letter exchanges' bindings
(cached in a :class:`Topology`). The collector polls through it, the message actions look
queues up through it; both share one instance (and so its caches and its deadline).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from collectors.rabbitmq.deadletters import (
    MAX_E2E_DEPTH,
    DeadLetterTarget,
    ExchangeInfo,
    QueueDetails,
    Topology,
    dead_letter_target,
    effective_delivery_limit,
)
from collectors.rabbitmq.management import (
    ManagementHttp,
    ManagementRefused,
    ManagementUnavailable,
)
from collectors.rabbitmq.mapping import page_count
from collectors.rabbitmq.options import (
    RabbitMQOptions,
    amqp_target,
    management_endpoint,
    poll_budget,
    qualify,
    ssl_context,
)
from mqtop.kernel.errors import MqtopError
from mqtop.kernel.tls import certificate_failure

QUEUE_COLUMNS = (
    "name",
    "vhost",
    "type",
    "state",
    "messages",
    "messages_ready",
    "messages_unacknowledged",
    "consumers",
    "arguments",
    "effective_policy_definition",
    "policy",
    "head_message_timestamp",
    "message_stats",
)
PAGE_CONCURRENCY = 4
TOPOLOGY_CONCURRENCY = 8


class ManagementApi:
    """Reads of one broker's management API (every method raises ManagementUnavailable or
    ManagementRefused, or answers None where it says so, when there is no management_url)."""

    def __init__(self, options: RabbitMQOptions) -> None:
        self.options = options
        self._endpoint = management_endpoint(options)
        self.base = None if self._endpoint is None else self._endpoint[0]
        self._mgmt = (
            None
            if self._endpoint is None
            else ManagementHttp(
                self._endpoint[0],
                self._endpoint[1],
                lambda: ssl_context(options),
                options.max_response_mb * 1024 * 1024,
            )
        )
        self.deadline: float | None = None  # end of the management API's share of a poll
        self._failed: tuple[float, str] | None = None  # last one-off failure: (when, why)
        self.skipped_entries = 0  # entries of the last listing that were not queue objects
        self.topology = Topology()
        self.rates_mode: str | None = None
        self.server_version: str | None = None  # rabbitmq_version from /api/overview
        self._overview_at = -1e18
        self._vhosts: list[str] = []
        self._vhosts_at = -1e18

    def open(self) -> None:
        """Open the long-lived HTTP client polls use (one-off calls go without)."""
        if self._mgmt is not None:
            self._mgmt.open(TOPOLOGY_CONCURRENCY, self.options.http_timeout)

    async def close(self) -> None:
        if self._mgmt is not None:
            await self._mgmt.close()

    async def _get(self, path: str, params: Mapping[str, str | int] | None = None) -> Any:
        """GET ``/api/{path}``: JSON, None for 404; raises ManagementUnavailable/Refused.

        Each request has a total deadline: ``http_timeout``, and within a poll what is left
        of the poll's share for the management API; before an action (no poll running) the
        broker's timeout. An API that failed a one-off call is not asked again for
        ``discover_every`` (an action makes several lookups, each would wait again).
        """
        assert self._mgmt is not None
        now = time.monotonic()
        if self.deadline is not None:
            timeout = min(self.options.http_timeout, self.deadline - now)
        else:
            if self._failed is not None and now - self._failed[0] < self.options.discover_every:
                raise ManagementUnavailable(self._failed[1])
            timeout = min(self.options.http_timeout, poll_budget(self.options))
        try:
            return await self._mgmt.get(path, params, timeout)
        except ManagementUnavailable as exc:
            if self.deadline is None:
                self._failed = (time.monotonic(), str(exc))
            raise
        except (ManagementRefused, MqtopError):
            raise
        except Exception as exc:  # httpx.TransportError, OSError, ssl errors
            self._refuse_unverified(exc)
            reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
            if self.deadline is None:
                self._failed = (time.monotonic(), reason)
            raise ManagementUnavailable(reason) from None

    def _refuse_unverified(self, exc: BaseException) -> None:
        """A certificate that fails verification is an error, never a reason to fall back."""
        failure = certificate_failure(exc)
        if failure is not None:
            assert self._endpoint is not None
            raise ManagementRefused(
                f"TLS certificate of the management API at {self._endpoint[0]} not verified: "
                f"{failure} (ca_file: the CA to trust; tls_verify: false turns verification off)"
            ) from exc

    async def known_vhosts(self) -> list[str]:
        """Vhosts for name splitting: configured ones, the API's list, the URL's."""
        found: dict[str, None] = dict.fromkeys(self.options.vhosts)
        found[amqp_target(self.options.url.get_secret_value()).vhost] = None
        if self._endpoint is not None:
            try:
                await self._refresh_vhosts(force=not self._vhosts)
            except (ManagementUnavailable, ManagementRefused):
                pass
        for vhost in self._vhosts:
            found[vhost] = None
        return list(found)

    async def _refresh_vhosts(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._vhosts_at < self.options.discover_every:
            return
        data = await self._get("vhosts", {"columns": "name"})
        if isinstance(data, list):
            self._vhosts = [v["name"] for v in data if isinstance(v, dict) and "name" in v]
            self._vhosts_at = now

    async def overview(self) -> None:
        now = time.monotonic()
        if now - self._overview_at < self.options.discover_every and self.rates_mode:
            return
        data = await self._get(
            "overview", {"columns": "rates_mode,management_version,rabbitmq_version"}
        )
        if data is None:
            raise ManagementUnavailable("no management API at this URL (/api/overview: 404)")
        self.rates_mode = str(data.get("rates_mode") or "basic")
        self.server_version = str(data.get("rabbitmq_version") or "") or None
        self._overview_at = now

    async def fetch_queues(self, columns: Iterable[str] = QUEUE_COLUMNS) -> list[dict[str, Any]]:
        """Every visible queue, page by page (pages after the first concurrently)."""
        cols = ",".join(columns)
        self.skipped_entries = 0
        paths = (
            [f"queues/{quote(v, safe='')}" for v in self.options.vhosts]
            if self.options.vhosts
            else ["queues"]
        )
        items: list[dict[str, Any]] = []
        for path in paths:
            items.extend(await self._fetch_paged(path, cols))
        return items

    async def _fetch_paged(self, path: str, cols: str) -> list[dict[str, Any]]:
        size = self.options.page_size

        async def page(number: int) -> dict[str, Any] | None:
            # no "sort": the listing comes ordered by name already, and an explicit sort
            # makes the broker re-sort every queue for every page (3x slower at 5,000)
            data = await self._get(path, {"columns": cols, "page": number, "page_size": size})
            if data is None:
                return None
            if not isinstance(data, dict) or not isinstance(data.get("items"), list):
                raise ManagementUnavailable(f"/api/{path}: unexpected answer (no pagination)")
            return data

        first = await page(1)
        if first is None:
            return []  # e.g. a configured vhost that does not exist
        pages = page_count(path, first, size)
        items: list[dict[str, Any]] = []
        seen: set[tuple[str, str]] = set()
        self._take(first["items"], items, seen)
        if pages > 1:
            numbers = iter(range(2, pages + 1))

            async def worker() -> None:
                # pages are asked for as workers free up, never all at once
                for number in numbers:
                    data = await page(number)
                    if data is not None:
                        self._take(data["items"], items, seen)

            await asyncio.gather(*(worker() for _ in range(min(PAGE_CONCURRENCY, pages - 1))))
        return items

    def _take(
        self, entries: list[Any], items: list[dict[str, Any]], seen: set[tuple[str, str]]
    ) -> None:
        """Keep the queue objects of a page; count the entries that are not one."""
        for item in entries:
            if (
                not isinstance(item, dict)
                or not isinstance(item.get("vhost"), str)
                or not isinstance(item.get("name"), str)
            ):
                self.skipped_entries += 1
                continue
            ident = (item["vhost"], item["name"])
            if ident not in seen:  # a queue created meanwhile shifts pages
                seen.add(ident)
                items.append(item)

    async def dead_letter_sources_of(self, dlq: str) -> list[str] | None:
        """Queues whose dead letters reach ``dlq`` (None when the management API is unknown)."""
        if self._endpoint is None:
            return None
        try:
            items = await self.fetch_queues(
                ("name", "vhost", "arguments", "effective_policy_definition")
            )
            targets: dict[str, tuple[str, str, DeadLetterTarget]] = {}
            for item in items:
                vhost, name = item.get("vhost"), item.get("name")
                if isinstance(vhost, str) and isinstance(name, str):
                    target = dead_letter_target(item)
                    if target is not None:
                        targets[qualify(vhost, name)] = (vhost, name, target)
            await self.refresh_topology(
                {(v, t.exchange) for v, _, t in targets.values() if t.exchange}
            )
        except (ManagementUnavailable, ManagementRefused):
            return None
        sources = []
        for qname, (vhost, name, target) in targets.items():
            if dlq in (qualify(vhost, q) for q in self.topology.resolve(vhost, name, target)):
                sources.append(qname)
        return sorted(sources)

    async def queue_details(self, vhost: str, name: str) -> QueueDetails | None:
        """Type and average ready message size (None when the management API cannot say)."""
        if self._endpoint is None:
            return None
        try:
            data = await self._get(
                f"queues/{quote(vhost, safe='')}/{quote(name, safe='')}",
                {
                    "columns": "type,messages_ready,message_bytes_ready,arguments,"
                    "effective_policy_definition"
                },
            )
        except (ManagementUnavailable, ManagementRefused):
            return None
        if not isinstance(data, dict):
            return None
        ready, size = data.get("messages_ready"), data.get("message_bytes_ready")
        average: float | None = None
        if isinstance(ready, int) and isinstance(size, int) and ready > 0 and size >= 0:
            average = size / ready
        kind = str(data.get("type") or "classic")
        limit: int | None = None
        if kind == "quorum":
            if self.server_version is None:
                with contextlib.suppress(ManagementUnavailable, ManagementRefused):
                    await self.overview()
            limit = effective_delivery_limit(
                data.get("arguments"), data.get("effective_policy_definition"), self.server_version
            )
        return QueueDetails(type=kind, average_bytes=average, delivery_limit=limit)

    async def queue_type(self, vhost: str, name: str) -> str | None:
        """classic, quorum or stream (None when the management API cannot say)."""
        details = await self.queue_details(vhost, name)
        return None if details is None else details.type

    async def refresh_topology(self, targets: set[tuple[str, str]]) -> list[str]:
        """Fetch type and bindings of the DLX exchanges (and bound exchanges) when stale."""
        warnings: list[str] = []
        now = time.monotonic()
        every = self.options.discover_every
        semaphore = asyncio.Semaphore(TOPOLOGY_CONCURRENCY)

        async def fetch(vhost: str, exchange: str) -> None:
            vh = quote(vhost, safe="")
            ex = quote(exchange, safe="")
            async with semaphore:
                meta = await self._get(f"exchanges/{vh}/{ex}", {"columns": "name,type"})
                bindings = (
                    await self._get(f"exchanges/{vh}/{ex}/bindings/source")
                    if meta is not None
                    else None
                )
            if meta is None:
                warnings.append(
                    f"dead-letter exchange {qualify(vhost, exchange)!r} does not exist: "
                    "dead letters are dropped"
                )
            rows = [
                (
                    str(b.get("destination_type", "queue")),
                    str(b.get("destination", "")),
                    str(b.get("routing_key", "")),
                    b.get("arguments") or {},
                )
                for b in (bindings or [])
                if isinstance(b, dict)
            ]
            self.topology.store(
                vhost,
                exchange,
                ExchangeInfo(
                    type=None if meta is None else str(meta.get("type", "direct")),
                    bindings=rows,
                    fetched=time.monotonic(),
                ),
            )

        for _ in range(MAX_E2E_DEPTH + 1):
            wanted: set[tuple[str, str]] = set()
            for vhost, exchange in targets:
                wanted.update(self.topology.exchanges_to_fetch(vhost, exchange, now, every))
            if not wanted:
                break
            await asyncio.gather(*(fetch(v, e) for v, e in sorted(wanted)))
        return warnings
