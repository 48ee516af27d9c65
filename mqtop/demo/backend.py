"""The demo's backend process: protocol servers plus the workload, until told to stop.

Run by :class:`mqtop.demo.runner.DemoBackend` as ``python -m mqtop.demo.backend`` in its own
session (process group). Protocol, one JSON object per line on stdout:

* ``{"ready": true, "endpoints": {...}, "pids": {...}, "ports": [...], "warnings": [...]}``
  once the servers answer and the topics, queues and groups exist;
  ``{"ready": false, "error": "..."}`` when that failed;
* then ``{"scenario": NAME, "at": SECONDS, ...}`` for each scenario event.

It stops on SIGTERM, SIGINT or end of file on stdin (the ``mqtop demo`` process went away,
however it died): the workload is cancelled, tansu is terminated and the servers are shut
down, so no process and no port outlives it. Diagnostics go to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from mqtop.demo.servers import KafkaServer, RedisServer, ServerError, SqsServer
from mqtop.demo.workload import Endpoints, Scenario, Workload

log = logging.getLogger("mqtop.demo")

_write_lock = threading.Lock()


def write_line(obj: dict[str, Any]) -> bool:
    """Write one JSON line to stdout; False when the reader is gone."""
    text = json.dumps(obj, separators=(",", ":")) + "\n"
    with _write_lock:
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except (BrokenPipeError, OSError, ValueError):
            return False
    return True


class Servers:
    """The three demo servers; a server that cannot start is reported, not fatal."""

    def __init__(self, workdir: Path | None = None) -> None:
        self.kafka = KafkaServer(workdir / "tansu.log" if workdir else None)
        self.redis = RedisServer()
        self.sqs = SqsServer()
        self.warnings: list[str] = []
        self.started: list[KafkaServer | RedisServer | SqsServer] = []

    def start(self) -> None:
        """Start tansu first (before this process has threads to fork with), then the rest."""
        for name, server in (("kafka", self.kafka), ("redis", self.redis), ("sqs", self.sqs)):
            try:
                server.start()
            except ServerError as exc:
                self.warnings.append(f"{name}: {exc}")
                log.warning("demo %s server unavailable: %s", name, exc)
                continue
            except Exception as exc:  # a broken install must not leave the others running
                self.warnings.append(f"{name}: {type(exc).__name__}: {exc}")
                log.exception("demo %s server failed to start", name)
                continue
            self.started.append(server)

    def endpoints(self) -> Endpoints:
        """Where the running servers listen."""
        return Endpoints(
            sqs_url=self.sqs.url if self.sqs in self.started else None,
            redis_url=self.redis.url if self.redis in self.started else None,
            kafka_bootstrap=self.kafka.bootstrap if self.kafka in self.started else None,
        )

    def ports(self) -> list[int]:
        """Listening ports of the running servers."""
        return [s.port for s in self.started]

    def stop(self) -> None:
        """Stop every started server, newest first."""
        while self.started:
            server = self.started.pop()
            with contextlib.suppress(Exception):
                server.stop()


def _watch_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Set ``stop`` when stdin reaches end of file (the parent closed it or died)."""

    def reader() -> None:
        with contextlib.suppress(Exception):
            while sys.stdin.buffer.read(4096):
                pass
        with contextlib.suppress(RuntimeError):  # the loop may be closed already
            loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=reader, name="demo-stdin", daemon=True).start()


async def serve(servers: Servers, scenario: Scenario) -> int:
    """Set up the topology, announce readiness, run the workload until stopped."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    _watch_stdin(loop, stop)

    def emit(event: dict[str, Any]) -> None:
        if not write_line(event):
            stop.set()

    endpoints = servers.endpoints()
    workload = Workload(endpoints, scenario, emit=emit)
    workdir = os.environ.get("MQTOP_DEMO_WORKDIR")
    workload.worker_log = Path(workdir) / "rq-worker.log" if workdir else None
    try:
        await workload.setup()
    except Exception as exc:
        await workload.close()
        write_line({"ready": False, "error": str(exc)})
        return 1
    pids = {"backend": os.getpid()}
    if servers.kafka.pid is not None:
        pids["kafka"] = servers.kafka.pid
    if workload.receipts is not None:
        pids["rq-worker"] = workload.receipts.pid
    write_line(
        {
            "ready": True,
            "endpoints": {
                "sqs": endpoints.sqs_url,
                "redis": endpoints.redis_url,
                "kafka": endpoints.kafka_bootstrap,
                "rq": endpoints.redis_url if workload.receipts is not None else None,
                "region": endpoints.region,
            },
            "pids": pids,
            "ports": servers.ports(),
            "warnings": servers.warnings,
        }
    )
    await workload.run(stop)
    log.info("workload stopped: %s", dict(workload.counts))
    return 0


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """Start the servers, run until stopped, stop everything."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("werkzeug", "aiokafka", "botocore", "urllib3", "moto"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    # until the event loop takes over, SIGTERM unwinds through the finally below
    signal.signal(signal.SIGTERM, _terminate)
    workdir_text = os.environ.get("MQTOP_DEMO_WORKDIR")
    workdir = Path(workdir_text) if workdir_text else None
    parent = os.getppid()
    servers = Servers(workdir)
    try:
        servers.start()
        if not servers.started:
            write_line({"ready": False, "error": "; ".join(servers.warnings)})
            return 1
        return asyncio.run(serve(servers, Scenario()))
    finally:
        servers.stop()
        log.info("servers stopped")
        if workdir is not None and os.getppid() != parent:
            # `mqtop demo` died without cleaning up: its temporary directory is ours to remove
            # (otherwise it reads our log for its error message, then removes it itself)
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
