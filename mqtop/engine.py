"""Polling engine: one asyncio task per broker feeding the store.

Each poll runs under a timeout; the next poll is scheduled only after the previous one
finished; a failing broker is retried with capped exponential backoff and jitter. Status
(up, last success, staleness) is tracked per broker. Consumers never talk to brokers: they
read the store and the statuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from typing import Any

from collectors.base import BrokerOptions, Collector
from collectors.queue_status import QueueHealth
from mqtop.config import Config
from mqtop.kernel.model import BrokerSnapshot, BrokerStatus, SeriesKey
from mqtop.kernel.secrets import redact
from mqtop.kernel.store import TimeSeriesStore
from mqtop.persist import HistoryDB, HistoryWriteError
from mqtop.registry import get_plugin
from mqtop.sources.prometheus import SourceReader, backfill_plan

log = logging.getLogger("mqtop.engine")

# at most this many intervals between retries of a failing broker: a broker that comes back is
# seen within this many intervals (plus one poll), while a dead one is tried half as often
BACKOFF_MAX_FACTOR = 2.0
# seconds closing connections may take when a command or the daemon ends (all brokers at
# once); a close still running then (a client stuck on a silent endpoint) is abandoned
CLOSE_GRACE = 0.5
# a collector's warning stays in the broker's status this long after it was last reported (at
# least this many intervals): a warning of one poll (a discovery, one bad entry) is not
# replaced by the next poll's before anyone could read it
WARNING_KEEP_INTERVALS = 10.0
WARNING_KEEP_MIN = 60.0


def describe_error(exc: BaseException, timeout: float | None = None) -> str:
    """One line for the operator, secrets masked, no traceback."""
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return f"timed out after {timeout:g}s" if timeout else "timed out"
    text = _error_text(exc)
    name = type(exc).__name__
    return redact(f"{name}: {text}" if text else name)


def _error_text(exc: BaseException, depth: int = 0) -> str:
    """First line of an exception's message, looking inside wrappers whose own is empty.

    Client libraries wrap the cause: pika's AMQPConnectionError holds a connector error that
    holds the ``ConnectionRefusedError``, and neither prints anything by itself.
    """
    text = str(exc).strip()
    if text:
        return text.splitlines()[0]
    if depth >= 4:
        return ""
    inner: list[BaseException] = [a for a in exc.args if isinstance(a, BaseException)]
    wrapped = getattr(exc, "exception", None)  # pika's connector phase errors
    if isinstance(wrapped, BaseException):
        inner.append(wrapped)
    cause = exc.__cause__ or exc.__context__
    if cause is not None:
        inner.append(cause)
    for item in inner:
        found = _error_text(item, depth + 1)
        if found:
            name = type(item).__name__
            return found if found.startswith(name) else f"{name}: {found}"
    return ""


def longest_timeout(config: Config) -> float:
    """The longest a single poll of any broker or source of ``config`` may take."""
    timeouts = [config.poll_timeout(b) for b in config.brokers]
    timeouts += [max(s.timeout * 3, 1.0) for s in config.sources]  # see poll_source
    return max(timeouts, default=0.0)


def backoff_delay(interval: float, failures: int, rng: random.Random | None = None) -> float:
    """Delay before the next attempt after ``failures`` consecutive failures.

    Jittered downwards only (80-100 %), so retries of brokers that failed together spread out
    and the delay never exceeds ``BACKOFF_MAX_FACTOR`` intervals.
    """
    factor = min(2.0 ** max(failures - 1, 0), BACKOFF_MAX_FACTOR)
    jitter = (rng or random).uniform(0.8, 1.0)
    return interval * factor * jitter


class Engine:
    """Owns one long-lived collector per broker and polls them into a store."""

    def __init__(
        self,
        config: Config,
        store: TimeSeriesStore | None = None,
        collectors: dict[str, Collector] | None = None,
    ) -> None:
        self.config = config
        self.store = (
            store
            if store is not None
            else TimeSeriesStore(
                interval=config.interval,
                recent=config.history.recent,
                retention=config.history.retention,
            )
        )
        self.history: HistoryDB | None = None
        history_path = config.history.resolved_path()
        if history_path is not None:
            self.history = HistoryDB(history_path, self.store)
        self._history_lock = asyncio.Lock()
        self._history_error: str | None = None  # the last write error, logged once
        self._history_loaded = False
        self._collectors: dict[str, Collector] = dict(collectors or {})
        self._collector_lock = threading.Lock()
        self._connected: set[str] = set()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        # closes started after a failed poll, not waited for by that poll (a client stuck on
        # a silent endpoint may take long to close); the broker's next poll waits for its own
        self._closing: dict[str, asyncio.Task[None]] = {}
        self._warned: dict[str, dict[str, float]] = {}  # broker -> warning -> last reported
        self._stopping = asyncio.Event()
        self._status_listeners: list[Callable[[BrokerStatus], None]] = []
        self._health: dict[str, QueueHealth] = {}
        self.statuses: dict[str, BrokerStatus] = {}
        for broker in config.brokers:
            self.statuses[broker.name] = BrokerStatus(
                name=broker.name,
                type=broker.type,
                address=broker.address(),
                up=None,
                interval=config.poll_interval(broker),
                timeout=config.poll_timeout(broker),
            )
        # read-only fleet data: each source is shown like a broker, and so is each remote
        # broker it reports (statuses appear as the source finds them)
        local = [b.name for b in config.brokers]
        self.sources: dict[str, SourceReader] = {
            s.name: SourceReader(s, local, config.labels, config.interval) for s in config.sources
        }
        for reader in self.sources.values():
            self.statuses[reader.name] = BrokerStatus(
                name=reader.name,
                type="prometheus",
                address=reader.address,
                up=None,
                interval=reader.interval,
            )

    # -- collectors ------------------------------------------------------------------

    def collector(self, name: str) -> Collector:
        """The long-lived collector of a broker (created on first use; the dashboard asks
        from its UI thread while the engine polls on its own)."""
        with self._collector_lock:
            existing = self._collectors.get(name)
            if existing is not None:
                return existing
            options = self.config.broker(name)
            created = get_plugin(options.type).create(options)
            self._collectors[name] = created
            return created

    def prepare(self) -> None:
        """Create every broker's collector now (loading its package), not at the first poll:
        a command's deadline then counts from here."""
        for broker in self.config.brokers:
            self.collector(broker.name)

    def on_status(self, callback: Callable[[BrokerStatus], None]) -> None:
        """Call ``callback`` whenever a broker's status changes after a poll."""
        self._status_listeners.append(callback)

    # -- polling ---------------------------------------------------------------------

    async def poll(self, name: str) -> BrokerSnapshot:
        """Poll one broker once, store the result and update its status.

        The whole poll (the end of an earlier close, connecting, collecting) has one deadline,
        the broker's poll timeout: past it the poll is abandoned (a blocking client call left
        in a thread is not waited for) and the broker marked down.
        """
        options = self.config.broker(name)
        timeout = self.config.poll_timeout(options)
        interval = self.config.poll_interval(options)
        started = time.time()
        mono = time.monotonic()
        collector = self.collector(name)
        try:
            async with asyncio.timeout(timeout):
                closing = self._closing.get(name)
                if closing is not None:
                    await asyncio.shield(closing)
                if name not in self._connected:
                    await collector.connect()
                    self._connected.add(name)
                collected = await collector.collect()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = describe_error(exc, timeout)
            log.info("broker %s (%s) is unreachable: %s", name, options.address(), error)
            if name in self._connected:
                self._connected.discard(name)
                self._close_later(name, collector)
            snapshot = BrokerSnapshot(
                broker=name,
                type=options.type,
                time=started,
                up=False,
                duration=time.monotonic() - mono,
                error=error,
            )
        else:
            snapshot = BrokerSnapshot(
                broker=name,
                type=options.type,
                time=started,
                up=True,
                duration=time.monotonic() - mono,
                series=self._health_of(name, options, interval).annotate(collected.series, started),
                warnings=self._kept_warnings(name, collected.warnings, interval),
            )
        self._update_status(snapshot, interval)
        self.store.ingest(snapshot, interval=interval)
        await self.flush_history()
        return snapshot

    def _kept_warnings(self, name: str, new: Iterable[str], interval: float) -> tuple[str, ...]:
        """This poll's warnings, then those of earlier polls reported within the keep time."""
        now = time.monotonic()
        keep = max(WARNING_KEEP_INTERVALS * interval, WARNING_KEEP_MIN)
        seen = self._warned.setdefault(name, {})
        fresh = [redact(w) for w in new]
        for warning in fresh:
            seen.pop(warning, None)
            seen[warning] = now
        for warning, last in list(seen.items()):
            if now - last > keep:
                del seen[warning]
        older = [w for w in seen if w not in fresh]
        return tuple(dict.fromkeys([*fresh, *older]))

    def _close_later(self, name: str, collector: Collector) -> None:
        """Close a failed broker's connections in the background (the poll does not wait)."""

        async def close() -> None:
            with contextlib.suppress(Exception):
                await collector.close()

        task = asyncio.create_task(close(), name=f"mqtop-close-{name}")
        self._closing[name] = task
        task.add_done_callback(
            lambda done: self._closing.pop(name, None) if self._closing.get(name) is done else None
        )

    def _health_of(self, name: str, options: BrokerOptions, interval: float) -> QueueHealth:
        """The queue health windows of one broker (group_status, dlq_inflow_rate)."""
        health = self._health.get(name)
        if health is None:
            health = self._health[name] = QueueHealth(
                window=options.group_status_window, inflow_span=max(3 * interval, 15.0)
            )
        return health

    async def poll_source(self, name: str) -> BrokerSnapshot:
        """Read one source once: its remote brokers' snapshots go to the store like polls."""
        reader = self.sources[name]
        deadline = max(reader.options.timeout * 3, 1.0)  # instant query + history + parsing
        # (longest_timeout says the same)
        started = time.time()
        mono = time.monotonic()
        plan = backfill_plan(self.config.alerts, reader.interval)
        try:
            result = await asyncio.wait_for(reader.poll(started, plan), deadline)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = describe_error(exc, deadline)
            log.info("source %s (%s) is unreachable: %s", name, reader.address, error)
            snapshot = BrokerSnapshot(
                broker=name,
                type="prometheus",
                time=started,
                up=False,
                duration=time.monotonic() - mono,
                error=error,
            )
            self._update_status(snapshot, reader.interval)
            for remote in list(reader.remotes.values()):
                self._ingest_remote(
                    BrokerSnapshot(
                        broker=remote.name,
                        type=remote.type,
                        time=started,
                        up=False,
                        duration=snapshot.duration,
                        error=f"no data: source {name!r} is unreachable: {error}",
                    ),
                    reader,
                )
            return snapshot
        for key, kind, dlq, t, values in result.history:
            self.store.load_row(key, kind, dlq, t, values)
        for remote_snapshot in result.snapshots:
            self._ingest_remote(remote_snapshot, reader)
        snapshot = BrokerSnapshot(
            broker=name,
            type="prometheus",
            time=started,
            up=True,
            duration=time.monotonic() - mono,
            warnings=result.warnings,
        )
        self._update_status(snapshot, reader.interval)
        await self.flush_history()
        return snapshot

    def _ingest_remote(self, snapshot: BrokerSnapshot, reader: SourceReader) -> None:
        if snapshot.broker not in self.statuses:
            self.statuses[snapshot.broker] = BrokerStatus(
                name=snapshot.broker,
                type=snapshot.type,
                address=f"via {reader.name} ({reader.address})",
                up=None,
                interval=reader.interval,
            )
        elif self.statuses[snapshot.broker].type != snapshot.type:
            self.statuses[snapshot.broker] = replace(
                self.statuses[snapshot.broker], type=snapshot.type
            )
        self._update_status(snapshot, reader.interval)
        self.store.ingest(snapshot, interval=reader.interval)

    def source_of(self, broker: str) -> SourceReader | None:
        """The source a remote broker is read from (None for local brokers)."""
        for reader in self.sources.values():
            if broker in reader.remotes:
                return reader
        return None

    async def chart_points(
        self, key: SeriesKey, metric: str, start: float, end: float, points: int
    ) -> list[tuple[float, float | None]]:
        """Points for a chart: from the series' source (server-side step) when it is remote,
        else from the store."""
        reader = self.source_of(key.broker)
        if reader is None:
            return list(self.store.range(key, metric, start, end, points))
        deadline = max(reader.options.timeout, 1.0)
        return await asyncio.wait_for(reader.history(key, metric, start, end, points), deadline)

    async def load_history(self) -> int:
        """Restore persisted history into the store (once; no-op without ``history.path``)."""
        if self.history is None or self._history_loaded:
            return 0
        self._history_loaded = True
        async with self._history_lock:
            return await asyncio.to_thread(self.history.load)

    async def flush_history(self) -> None:
        """Write new samples to the history database in a thread (errors are logged)."""
        if self.history is None:
            return
        async with self._history_lock:
            try:
                await asyncio.to_thread(self.history.flush)
            except Exception as exc:  # a full disk must not stop monitoring
                text = redact(str(exc)) if isinstance(exc, HistoryWriteError) else None
                error = text or f"cannot write {self.history.path}: {describe_error(exc)}"
                if error != self._history_error:  # once per cause, not at every poll
                    log.warning("history: %s", error)
                self._history_error = error
            else:
                if self._history_error is not None:
                    log.warning("history: writing %s again", self.history.path)
                self._history_error = None

    def _update_status(self, snapshot: BrokerSnapshot, interval: float) -> None:
        old = self.statuses[snapshot.broker]
        if snapshot.up:
            new = replace(
                old,
                up=True,
                last_poll=snapshot.time,
                last_success=snapshot.time,
                last_refresh=snapshot.time + snapshot.duration,
                last_duration=snapshot.duration,
                error=None,
                consecutive_failures=0,
                interval=interval,
                warnings=snapshot.warnings,
            )
        else:
            new = replace(
                old,
                up=False,
                last_poll=snapshot.time,
                last_duration=snapshot.duration,
                error=snapshot.error,
                consecutive_failures=old.consecutive_failures + 1,
                interval=interval,
            )
        self.statuses[snapshot.broker] = new
        for callback in list(self._status_listeners):
            callback(new)

    async def poll_all(self, names: Iterable[str] | None = None) -> list[BrokerSnapshot]:
        """Poll every broker and source (or the named ones) once, concurrently."""
        targets = (
            list(names)
            if names is not None
            else [b.name for b in self.config.brokers] + list(self.sources)
        )
        return list(
            await asyncio.gather(
                *(self.poll_source(n) if n in self.sources else self.poll(n) for n in targets)
            )
        )

    async def _loop(self, name: str) -> None:
        source = name in self.sources
        interval = (
            self.sources[name].interval
            if source
            else self.config.poll_interval(self.config.broker(name))
        )
        while not self._stopping.is_set():
            started = time.monotonic()
            snapshot = await (self.poll_source(name) if source else self.poll(name))
            if snapshot.up:
                delay = max(0.0, interval - (time.monotonic() - started))
            else:
                failures = self.statuses[name].consecutive_failures
                delay = backoff_delay(interval, failures)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    def start(self) -> None:
        """Start one polling task per broker (idempotent)."""
        self._stopping.clear()
        for name in [b.name for b in self.config.brokers] + list(self.sources):
            task = self._tasks.get(name)
            if task is None or task.done():
                self._tasks[name] = asyncio.create_task(self._loop(name), name=f"mqtop-poll-{name}")

    async def stop(self) -> None:
        """Stop polling and close every collector."""
        self._stopping.set()
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await self.close()

    async def close(self) -> None:
        """Close every collector that was created (and flush/close the history database).

        Collectors and sources close concurrently, within ``CLOSE_GRACE`` seconds in all; a
        close still running then is cancelled (its client call, if blocking, is abandoned).
        """
        if self.history is not None:
            await self.flush_history()
            self.history.close()
            self.history = None
        collectors = list(self._collectors.values())
        self._collectors.clear()
        self._connected.clear()
        closes: list[Awaitable[Any]] = [r.aclose() for r in self.sources.values()]
        closes += [c.close() for c in collectors]
        tasks = [asyncio.ensure_future(c) for c in closes] + list(self._closing.values())
        self._closing.clear()
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=CLOSE_GRACE)
        for task in pending:
            task.cancel()
        for task in tasks:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: a failed close is not an error of the command

    async def __aenter__(self) -> Engine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
