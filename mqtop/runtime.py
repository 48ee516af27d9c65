"""Helpers shared by commands: config loading from args, running coroutines with clean
shutdown on SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from mqtop.config import Config, load_config

T = TypeVar("T")


def config_from_args(args: argparse.Namespace) -> Config:
    """Load the config named by ``--config`` (or the lookup order / detection); with
    ``--prometheus URL``, add that source (and detect no local broker when there is no file)."""
    url = getattr(args, "prometheus", None)
    if not url:
        return load_config(getattr(args, "config", None))
    from pydantic import ValidationError

    from mqtop.config import find_config_path, load_config_file
    from mqtop.kernel.errors import UsageError
    from mqtop.sources.config import PrometheusSource

    path = find_config_path(getattr(args, "config", None))
    config = load_config_file(path) if path is not None else Config()
    taken = {b.name for b in config.brokers} | {s.name for s in config.sources}
    name = next(n for n in ("prometheus", "prometheus-cli", "prometheus-flag") if n not in taken)
    try:
        source = PrometheusSource.model_validate({"type": "prometheus", "name": name, "url": url})
    except ValidationError:
        raise UsageError("--prometheus: expected a URL like http://prometheus:9090") from None
    return config.model_copy(update={"sources": [*config.sources, source]})


# blocking calls (asyncio.to_thread, DNS) run in daemon threads; at most this many at once
WORKERS = 32


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine like ``asyncio.run``, without waiting for abandoned blocking calls.

    ``asyncio.run`` joins the loop's default executor at exit: a blocking client call that
    the engine stopped waiting for at its poll timeout (pika's 20 s AMQP handshake against an
    endpoint that never answers) kept the process alive long after the command was done.
    Here the default executor is a pool of daemon threads that is never waited for: a call
    still running at exit ends with the process (collector calls only read).
    """
    from mqtop.kernel.threads import DaemonDefaultExecutor

    pool = DaemonDefaultExecutor(WORKERS, "mqtop-io")
    with asyncio.Runner() as runner:
        runner.get_loop().set_default_executor(pool)
        try:
            return runner.run(main)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)


@contextlib.asynccontextmanager
async def deadline(seconds: float, what: str = "") -> AsyncIterator[None]:
    """Cancel the block after ``seconds``: :class:`BrokerUnreachable` (exit 3) says that
    ``what`` gave up at its deadline (a TimeoutError from inside the block passes through)."""
    limit = asyncio.timeout(seconds)
    try:
        async with limit:
            yield
    except TimeoutError:
        if not limit.expired():
            raise
        from mqtop.kernel.durations import format_duration
        from mqtop.kernel.errors import BrokerUnreachable

        name = what or "the command"
        raise BrokerUnreachable(
            f"{name} gave up at its deadline of {format_duration(seconds)}"
        ) from None


async def until_signalled(
    work: Callable[[asyncio.Event], Awaitable[T]],
    signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM),
) -> T:
    """Run ``work(stop_event)``; SIGINT/SIGTERM set the event so work can shut down cleanly."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    installed = []
    for sig in signals:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        return await work(stop)
    finally:
        for sig in installed:
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)


def tune_gc() -> None:
    """Keep garbage-collection pauses off the poll and refresh paths of long-running commands.

    Each poll replaces tens of thousands of small objects (views, rows, alert columns); with
    the default thresholds a full collection (tens of milliseconds at 10,000 series) runs
    almost every poll. Objects alive after start-up are frozen out of collections and young
    collections run less often; reference counting still frees everything non-cyclic at once.
    Used by the dashboard, the demo and ``mqtop serve``.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
