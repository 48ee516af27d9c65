"""The collector skeleton every job library shares: one client, Redis time, remembered queues."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from collectors.base import Collected, MessageActions
from collectors.jobs.common import MAX_QUEUES, JobsOptions, client_for

if TYPE_CHECKING:
    from redis.asyncio import Redis

OptionsT = TypeVar("OptionsT", bound=JobsOptions)


class JobCollector(Generic[OptionsT]):
    """Base of the library collectors: subclasses implement ``read`` and ``make_actions``."""

    def __init__(self, options: OptionsT) -> None:
        self.options = options
        self._client: Redis | None = None
        self._actions: MessageActions | None = None
        # queues seen once stay listed: a drained queue shows 0, not nothing
        self._known: dict[str, None] = dict.fromkeys(options.queues)
        self._last_discovery = -1e18

    @property
    def client(self) -> Any:
        """The client, untyped: redis-py's replies are unions of awaitables and values."""
        if self._client is None:
            raise RuntimeError("not connected")
        return self._client

    async def connect(self) -> None:
        if self._client is None:
            self._client = client_for(self.options)
        await self._client.ping()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def actions(self) -> MessageActions | None:
        if self._actions is None:
            self._actions = self.make_actions()
        return self._actions

    def make_actions(self) -> MessageActions | None:
        """The library's dead-job actions (None when it has none)."""
        return None

    def remember(self, names: Iterable[str]) -> tuple[list[str], list[str]]:
        """Add discovered queue names; return the wanted known queues and any warnings."""
        warnings: list[str] = []
        for name in names:
            if name not in self._known:
                if len(self._known) >= MAX_QUEUES:
                    warnings.append(f"more than {MAX_QUEUES} job queues: narrow include")
                    break
                self._known[name] = None
        return [q for q in self._known if self.options.wants(q)], warnings

    async def queues_to_read(
        self, discover: Callable[[], Awaitable[list[str]]], every: float
    ) -> tuple[list[str], list[str]]:
        """``remember`` what ``discover`` finds, run at most once per ``every`` seconds (the
        first poll always); the wanted known queues and any warnings."""
        names: list[str] = []
        if time.monotonic() - self._last_discovery >= every:
            names = await discover()
            self._last_discovery = time.monotonic()
        return self.remember(names)

    def forget(self, name: str) -> None:
        """Stop listing a queue the library itself deleted."""
        if name not in self.options.queues:
            self._known.pop(name, None)

    async def now(self) -> float:
        """The Redis server's clock (the libraries' timestamps come from their hosts' clocks,
        which Redis' is usually closer to than this machine's)."""
        seconds, micros = await self.client.time()
        return float(seconds) + float(micros) / 1e6

    async def collect(self) -> Collected:
        return await self.read(await self.now())

    async def read(self, now: float) -> Collected:
        """Read the library's keys once."""
        raise NotImplementedError
