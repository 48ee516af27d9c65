"""The polling engine and every broker call on their own event loop, in a thread.

Collectors decode broker answers and build samples in Python: with 1,600 Redis lists polled
every second, that held Textual's loop for ~2 s in 10 s on an idle machine, and keys waited
behind it (seconds on a loaded one). Here the engine's tasks, the store's ingest and every
message action run on a loop of their own; the UI loop only awaits their results, and a
thread switch every few milliseconds keeps keys answered while a poll is decoded.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from collectors.base import (
    MessageActions,
    MessageRepublish,
    MoveRequest,
    MoveResult,
    PeekedMessage,
    ProgressCallback,
    RepublishRequest,
    RepublishResult,
)
from mqtop.engine import Engine

T = TypeVar("T")
STOP_TIMEOUT = 15.0  # seconds to wait for the engine to stop and close its collectors


class EngineThread:
    """Runs an engine on a private event loop; coroutines are sent to it and awaited."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopped = False

    def start(self) -> None:
        """Start the thread and its loop (idempotent)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._main, name="mqtop-engine", daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _main(self) -> None:
        from mqtop.kernel.threads import DaemonDefaultExecutor
        from mqtop.runtime import WORKERS

        loop = asyncio.new_event_loop()
        # blocking broker calls run in daemon threads: one abandoned at its poll's deadline
        # never holds the process when the operator quits
        loop.set_default_executor(DaemonDefaultExecutor(WORKERS, "mqtop-io"))
        self._loop = loop
        asyncio.set_event_loop(loop)
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The engine's loop (started on first use)."""
        self.start()
        assert self._loop is not None
        return self._loop

    async def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the engine's loop and await its result from another loop."""
        future = asyncio.run_coroutine_threadsafe(work, self.loop)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.cancel()  # the operator stopped waiting: stop the broker call too
            raise

    def call(self, function: Callable[[], object]) -> None:
        """Call a function on the engine's loop (for what must run inside it, like start)."""
        self.loop.call_soon_threadsafe(function)

    async def start_polling(self, before: Callable[[], Awaitable[object]] | None = None) -> None:
        """Run ``before`` (loading history) on the engine's loop, then start polling."""

        async def go() -> None:
            if before is not None:
                await before()
            self.engine.start()

        await self.run(go())

    async def stop(self) -> None:
        """Stop polling, close the collectors, end the thread (idempotent)."""
        if self._stopped or self._thread is None:
            self._stopped = True
            if self._thread is None:
                await self.engine.stop()
            return
        self._stopped = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.run(self.engine.stop()), STOP_TIMEOUT)
        loop = self.loop
        loop.call_soon_threadsafe(loop.stop)
        await asyncio.to_thread(self._thread.join, STOP_TIMEOUT)

    def actions(self, inner: MessageActions) -> MessageActions:
        """A broker's message actions, each call run on the engine's loop."""
        if isinstance(inner, MessageRepublish):
            return RepublishOnLoop(self, inner)
        return ActionsOnLoop(self, inner)


class ActionsOnLoop:
    """MessageActions whose calls run on the engine's loop (where the broker clients live)."""

    def __init__(self, backend: EngineThread, inner: MessageActions) -> None:
        self.backend = backend
        self.inner = inner

    async def peek_warning(self, queue: str) -> str | None:
        return await self.backend.run(self.inner.peek_warning(queue))

    async def peek(self, queue: str, count: int) -> list[PeekedMessage]:
        return await self.backend.run(self.inner.peek(queue, count))

    async def replay_target(self, dlq: str) -> str | None:
        return await self.backend.run(self.inner.replay_target(dlq))

    async def count(self, queue: str) -> int | None:
        return await self.backend.run(self.inner.count(queue))

    async def move(self, request: MoveRequest, progress: ProgressCallback) -> MoveResult:
        # progress is called on the engine's thread: the screen posts it as a message
        return await self.backend.run(self.inner.move(request, progress))

    async def purge(self, queue: str) -> int | None:
        return await self.backend.run(self.inner.purge(queue))

    async def close(self) -> None:
        await self.backend.run(self.inner.close())


class RepublishOnLoop(ActionsOnLoop):
    """The same, for brokers that can act on one message by its id."""

    inner: Any

    async def republish(self, request: RepublishRequest) -> RepublishResult:
        result: RepublishResult = await self.backend.run(self.inner.republish(request))
        return result
