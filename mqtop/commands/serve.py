"""``mqtop serve``: the headless daemon.

Polls every broker, evaluates the alert rules, sends notifications and serves Prometheus
``/metrics`` (every metric as ``mqtop_<metric>``, plus alert state and the daemon's own
health) and ``/healthz``. SIGHUP re-reads the config (rules, notifiers, brokers) keeping the
in-memory history and alert states; SIGTERM/SIGINT stop polling, deliver queued
notifications, flush history and exit 0, within about a second whatever the brokers do (a
client call stuck on a broker is abandoned, not waited for; queued notifications get up to
5 s). Logs are JSON lines on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Mapping
from typing import Any

from alerts.evaluator import AlertEvaluator
from alerts.model import Alert, AlertEvent
from alerts.notifiers import Dispatcher, event_json, iso
from alerts.silences import SilenceStore, default_silences_path
from mqtop import __version__
from mqtop.commands.serve_http import (
    MAX_CONNECTIONS,
    REQUEST_TIMEOUT,
    LoopHTTPServer,
)
from mqtop.commands.serve_metrics import DaemonCollector, Health, SeriesCounts, alert_families
from mqtop.config import Config
from mqtop.engine import Engine
from mqtop.exposition import Exposition
from mqtop.kernel.errors import EXIT_OK, EXIT_USAGE, MqtopError, UsageError
from mqtop.kernel.safe import strict_json
from mqtop.kernel.secrets import install_log_redaction, redact, redact_obj
from mqtop.kernel.store import TimeSeriesStore
from mqtop.lint.exporter import LintExporter
from mqtop.runtime import config_from_args, tune_gc
from mqtop.runtime import run as run_async

log = logging.getLogger("mqtop.serve")

HEALTHY_CYCLES = 3.0  # /healthz fails when no evaluation ran for this many intervals
__all__ = ["MAX_CONNECTIONS", "REQUEST_TIMEOUT", "Daemon", "run"]


# ---------------------------------------------------------------- structured logs


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, msg and any ``extra={"fields": ...}``."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            for key, value in redact_obj(dict(fields)).items():
                data.setdefault(key, value)  # never overwrite time/level/logger/msg
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            data["error"] = redact(f"{type(exc).__name__}: {exc}")
        return strict_json(data)


def setup_logging(verbose: int) -> None:
    """JSON logs on stderr at INFO (DEBUG with -vv); secrets masked."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig()
    for handler in root.handlers:
        handler.setFormatter(JsonLogFormatter())
    root.setLevel(logging.DEBUG if verbose >= 2 else logging.INFO)
    for noisy in ("httpx", "httpcore", "aiokafka", "pika", "botocore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    install_log_redaction()


# ---------------------------------------------------------------- the daemon


def _engine_settings(config: Config) -> tuple[Any, ...]:
    return (config.brokers, config.interval, config.timeout, config.history)


class Daemon:
    """Owns the store, engine, evaluator, notifiers and HTTP server of ``mqtop serve``."""

    def __init__(self, args: argparse.Namespace, config: Config) -> None:
        self.args = args
        self.config = config
        self.store = TimeSeriesStore(
            interval=config.interval,
            recent=config.history.recent,
            retention=config.history.retention,
        )
        self.engine = Engine(config, store=self.store)
        path = default_silences_path(config.alerting.silences_path, config.history.resolved_path())
        self.silences = SilenceStore(path)
        self.evaluator = AlertEvaluator(config.alerts, config.alerting, silences=self.silences)
        self.dispatcher = Dispatcher.from_config(config.notify, labels=config.labels)
        self.health = Health(started=time.time(), interval=config.interval)
        self._reloads = {"success": 0, "failure": 0}
        self._last_reload_ok = True
        self._last_reload: float | None = None
        self._wake = asyncio.Event()
        self._unsubscribe = self.store.subscribe(lambda _s: self._wake.set())
        self.lint = LintExporter(config.brokers, config.alerts, config.lint)
        self._series_counts = SeriesCounts()
        self.exposition = Exposition(config.labels, config.exporter)
        self._http: LoopHTTPServer | None = None
        self._http_thread: threading.Thread | None = None

    # -- HTTP --------------------------------------------------------------------------

    def metrics(self, compress: bool = False) -> bytes:
        """The /metrics body: every series with the target labels, health, alert state."""
        store = self.store
        health = self.health  # one snapshot: the alerts and the counters of one evaluation
        statuses = list(self.engine.statuses.values())
        daemon = DaemonCollector(health, statuses, self._series_counts.get(store))
        return self.exposition.render(
            statuses,
            lambda: store.views(include_stale=False),
            store.generation,
            collectors=(alert_families(health), daemon, self.lint.families()),
            compress=compress,
        )

    def listen(self, host: str, port: int) -> tuple[str, int]:
        """Bind the HTTP server (raises UsageError when the address is unusable)."""
        try:
            server = LoopHTTPServer((host, port), self)
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        self._http = server
        self._http_thread = server.start()
        bound = server.server_address
        return str(bound[0]), int(bound[1])

    def health_report(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, document) for ``/healthz``: healthy while evaluations keep running."""
        health = self.health
        now = time.time()
        limit = max(HEALTHY_CYCLES * health.interval, 10.0)
        if health.last_evaluation is None:
            timeouts = [self.config.poll_timeout(b) for b in self.config.brokers] or [0.0]
            ok = now - health.started <= limit + max(timeouts)
            state = "starting" if ok else "stalled"
        else:
            ok = now - health.last_evaluation <= limit
            state = "ok" if ok else "stalled"
        brokers = {
            s.name: {"up": s.up, "error": None if s.error is None else redact(s.error)}
            for s in list(self.engine.statuses.values())
        }
        return ok, {
            "status": state,
            "last_evaluation": iso(health.last_evaluation),
            "brokers": brokers,
            "version": __version__,
        }

    # -- running -----------------------------------------------------------------------

    def _publish_health(
        self,
        duration: float | None = None,
        evaluated: float | None = None,
        alerts: list[Alert] | None = None,
    ) -> None:
        old = self.health
        # one assignment: the HTTP thread reads either the old snapshot or the new one
        self.health = Health(
            started=old.started,
            last_evaluation=evaluated if evaluated is not None else old.last_evaluation,
            evaluation_seconds=duration if duration is not None else old.evaluation_seconds,
            evaluations=self.evaluator.cycles,
            reloads=dict(self._reloads),
            last_reload_ok=self._last_reload_ok,
            last_reload=self._last_reload,
            notifications=dict(self.dispatcher.counts),
            silences=len(self.silences.active()),
            interval=self.config.interval,
            alerts=old.alerts if alerts is None else tuple(alerts),
        )

    def evaluate(self) -> list[AlertEvent]:
        """One evaluation cycle: evaluate, log and queue notifications."""
        now = time.time()
        events = self.evaluator.evaluate(self.store, self.engine.statuses, now)
        alerts = self.evaluator.alerts()
        for event in events:
            data = event_json(event)
            log.info(
                "alert %s: %s %s",
                event.kind,
                event.alert.rule,
                data["summary"],
                extra={"fields": {"event": "alert", **data}},
            )
        self.dispatcher.notify(events)
        self.dispatcher.sync(alerts, now)
        self._publish_health(self.evaluator.last_duration, now, alerts)
        return events

    async def reload(self) -> bool:
        """Re-read the config; keep history and alert state. False (and keep running on the
        old config) when the new one is invalid."""
        self._last_reload = time.time()
        try:
            new = _without_sources(await asyncio.to_thread(config_from_args, self.args))
        except MqtopError as exc:
            self._reloads["failure"] += 1
            self._last_reload_ok = False
            log.error(
                "config reload failed; keeping the running config",
                extra={"fields": {"event": "reload", "result": "failure", "error": exc.message}},
            )
            self._publish_health()
            return False
        old = self.config
        if _engine_settings(new) != _engine_settings(old):
            await self.engine.stop()
            engine = Engine(new, store=self.store)
            for name, status in self.engine.statuses.items():
                if name in engine.statuses and engine.statuses[name].address == status.address:
                    engine.statuses[name] = status  # keep health (and BrokerDown) continuous
            self.engine = engine
            self.engine.start()
        self.evaluator.update_rules(new.alerts, new.alerting)
        self.lint.configure(new.brokers, new.alerts, new.lint)
        if (new.labels, new.exporter) != (old.labels, old.exporter):
            self.exposition.configure(new.labels, new.exporter)
        if (new.notify, new.labels) != (old.notify, old.labels):
            old_dispatcher = self.dispatcher
            self.dispatcher = Dispatcher.from_config(new.notify, labels=new.labels)
            self.dispatcher.start()
            await old_dispatcher.aclose(grace=5.0)
        self.config = new
        self._reloads["success"] += 1
        self._last_reload_ok = True
        log.info(
            "config reloaded",
            extra={
                "fields": {
                    "event": "reload",
                    "result": "success",
                    "rules": [r.name for r in self.evaluator.rules],
                    "brokers": [b.name for b in new.brokers],
                }
            },
        )
        self._publish_health()
        return True

    async def run(self, host: str, port: int) -> int:
        """Serve until SIGTERM/SIGINT; exit code 0 after a clean shutdown."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        reload_requested = asyncio.Event()
        installed = []
        for sig, handler in (
            (signal.SIGTERM, stop.set),
            (signal.SIGINT, stop.set),
            (signal.SIGHUP, reload_requested.set),
        ):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, handler)
                installed.append(sig)
        bound_host, bound_port = self.listen(host, port)
        try:
            loaded = await self.engine.load_history()
            tune_gc()  # after start-up and the history load: those objects are frozen
            self.engine.start()
            self.dispatcher.start()
            self.lint.start()
            log.info(
                "serving",
                extra={
                    "fields": {
                        "event": "start",
                        "metrics_url": f"http://{bound_host}:{bound_port}/metrics",
                        "port": bound_port,
                        "brokers": [b.name for b in self.config.brokers],
                        "rules": [r.name for r in self.evaluator.rules],
                        "history_rows_loaded": loaded,
                        "version": __version__,
                    }
                },
            )
            await self._loop(stop, reload_requested)
        finally:
            await self._shutdown()
            for sig in installed:
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(sig)
        return EXIT_OK

    async def _loop(self, stop: asyncio.Event, reload_requested: asyncio.Event) -> None:
        while not stop.is_set():
            waiters = [
                asyncio.ensure_future(stop.wait()),
                asyncio.ensure_future(reload_requested.wait()),
                asyncio.ensure_future(self._wake.wait()),
            ]
            try:
                await asyncio.wait(
                    waiters, timeout=self.config.interval, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                for waiter in waiters:
                    waiter.cancel()
            if stop.is_set():
                break
            if reload_requested.is_set():
                reload_requested.clear()
                await self.reload()
            if self._wake.is_set():
                await asyncio.sleep(0.05)  # coalesce brokers polled at the same moment
                self._wake.clear()
            try:
                self.evaluate()
            except Exception as exc:  # a bug in one cycle must not stop the daemon
                log.error(
                    "evaluation failed",
                    extra={"fields": {"error": redact(f"{type(exc).__name__}: {exc}")}},
                )

    async def _shutdown(self) -> None:
        log.info("stopping", extra={"fields": {"event": "stop"}})
        await self.lint.stop()
        with contextlib.suppress(Exception):
            await self.engine.stop()  # also flushes and closes the history database
        try:
            self.evaluate()  # a final look, so nothing seen is left unsent
        except Exception as exc:
            log.error("final evaluation failed: %s", redact(f"{type(exc).__name__}: {exc}"))
        await self.dispatcher.aclose(grace=5.0)
        self._unsubscribe()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        log.info("stopped", extra={"fields": {"event": "stopped"}})


def _without_sources(config: Config) -> Config:
    """``serve`` polls its own brokers only: a Prometheus source would loop back into it."""
    return config.model_copy(update={"sources": []}) if config.sources else config


def run(args: argparse.Namespace) -> int:
    """Run the daemon until SIGTERM/SIGINT."""
    setup_logging(getattr(args, "verbose", 0) or 0)
    port = int(getattr(args, "metrics_port", 9321))
    if not 0 <= port <= 65535:
        raise UsageError(f"--metrics-port {port}: must be between 0 and 65535")
    host = getattr(args, "metrics_host", "127.0.0.1") or "127.0.0.1"
    config = config_from_args(args)
    if config.sources:
        log.warning(
            "sources: ignored by serve (it exports its own brokers; series read from "
            "Prometheus would be exported again)",
            extra={"fields": {"event": "config", "sources": [s.name for s in config.sources]}},
        )
        config = _without_sources(config)
    if not config.brokers:
        where = config.source or "no config file; no broker detected on default local ports"
        raise UsageError(f"no brokers to watch ({where}); see `mqtop init` or config.example.yaml")

    async def main() -> int:
        daemon = Daemon(args, config)
        return await daemon.run(host, port)

    try:
        return run_async(main())  # a blocking call stuck on a broker is not waited for at exit
    except UsageError:
        raise
    except KeyboardInterrupt:
        return EXIT_OK
    except OSError as exc:
        log.error("cannot serve: %s", redact(str(exc)))
        return EXIT_USAGE
