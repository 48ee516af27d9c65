"""Redis message actions (lists and streams). Peek/replay/move/purge/reclaim."""

from __future__ import annotations

from collectors.base import MoveRequest, MoveResult, PeekedMessage, ProgressCallback
from collectors.redis import RedisOptions
from mqtop.errors import UnsupportedAction


class RedisActions:
    """Placeholder until the Redis actions land: every action says it is not available."""

    def __init__(self, options: RedisOptions) -> None:
        self.options = options

    def _unsupported(self) -> UnsupportedAction:
        return UnsupportedAction("Redis message actions are not available in this version")

    def peek_warning(self, queue: str) -> str | None:
        return None

    async def peek(self, queue: str, count: int) -> list[PeekedMessage]:
        raise self._unsupported()

    async def replay_target(self, dlq: str) -> str | None:
        return None

    async def count(self, queue: str) -> int | None:
        return None

    async def move(self, request: MoveRequest, progress: ProgressCallback) -> MoveResult:
        raise self._unsupported()

    async def purge(self, queue: str) -> int | None:
        raise self._unsupported()

    async def close(self) -> None:
        return None
