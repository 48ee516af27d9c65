"""The demo's job-library part: receipts rendered by a real RQ worker on the demo's Redis.

Paid orders that ask for a PDF receipt (one in four) enqueue ``render_receipt`` jobs on the RQ
queue ``receipts``; one ``rq worker`` process (RQ's ``SimpleWorker``) runs them. Once a cycle
the PDF renderer is down for a while (the flag ``demo:receipts:renderer-down`` is set): every
receipt fails into RQ's failed registry, shown by mqtop as the dead set ``receipts:failed``
(and the shipped DeadJobsGrowing alert fires). Once the renderer is back, ``mqtop dlq replay
demo-rq receipts:failed`` (or ``r`` in the dashboard's DLQ browser) retries them with RQ's
requeue and the worker renders them; the few receipts of an invalid VAT id fail again, for
good.

Only pip-installable pieces: ``rq`` on the demo's fakeredis server. The worker's connection
class parses fakeredis' ``CLIENT INFO`` reply leniently (the server prints the client address
as a Python tuple, which redis-py's parser rejects; RQ asks for it once at start-up).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import redis

QUEUE = "receipts"
RENDERER_DOWN = "demo:receipts:renderer-down"
INVALID_VAT = "XX-INVALID"


class RendererUnavailable(RuntimeError):
    """The PDF renderer did not answer (retrying later succeeds)."""


class InvalidTemplateData(ValueError):
    """The order cannot be rendered (retrying does not help)."""


def rq_available() -> bool:
    """True when the ``rq`` package is installed."""
    return importlib.util.find_spec("rq") is not None


def _client_info(response: Any, **options: Any) -> dict[str, str]:
    text = response.decode("utf-8", "replace") if isinstance(response, bytes) else str(response)
    fields: dict[str, str] = {}
    for part in text.split(" "):
        key, sep, value = part.partition("=")
        if sep:
            fields[key] = value
    return fields


class DemoRedis(redis.Redis):
    """The RQ worker's connection to the demo server (``rq worker --connection-class``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.set_response_callback("CLIENT INFO", _client_info)


def render_receipt(order_id: str, vat_id: str) -> str:
    """An RQ job: render an order's receipt (fails while the renderer is down)."""
    from rq import get_current_job

    job = get_current_job()
    if job is not None and job.connection.exists(RENDERER_DOWN):
        raise RendererUnavailable("PDF renderer timed out after 2s")
    if vat_id == INVALID_VAT:
        raise InvalidTemplateData(f"order {order_id}: VAT id {vat_id!r} is not valid")
    return f"receipt-{order_id}.pdf"


def start_worker(redis_url: str, log_path: Path | None) -> subprocess.Popen[bytes]:
    """Start ``rq worker`` on the ``receipts`` queue (a process of the caller's group)."""
    cmd = [sys.executable, "-m", "rq.cli", "worker", "--url", redis_url,
           "--connection-class", "mqtop.demo.jobs.DemoRedis",
           "--worker-class", "rq.worker.SimpleWorker", "--logging_level", "WARNING",
           QUEUE]  # fmt: skip
    out = open(log_path, "ab") if log_path is not None else subprocess.DEVNULL  # noqa: SIM115
    try:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    finally:
        if log_path is not None:
            out.close()  # type: ignore[union-attr]


def stop_worker(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """Stop the worker: SIGTERM (RQ's warm shutdown), then SIGKILL."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


class Receipts:
    """The receipts queue: its RQ worker process, the enqueuing client (sync: call it from a
    thread) and the renderer's switch."""

    def __init__(self, redis_url: str, worker_log: Path | None = None) -> None:
        from rq import Queue

        self.client = redis.Redis.from_url(redis_url, socket_timeout=10)
        self.client.delete(RENDERER_DOWN)
        self.down = False
        self.queue = Queue(QUEUE, connection=self.client)
        self.worker = start_worker(redis_url, worker_log)

    @property
    def pid(self) -> int:
        """The worker's process id."""
        return self.worker.pid

    def enqueue(self, orders: list[tuple[str, str]]) -> None:
        """One receipt job per (order id, VAT id); a failed one is kept a day."""
        for order_id, vat_id in orders:
            self.queue.enqueue(
                "mqtop.demo.jobs.render_receipt", order_id, vat_id,
                result_ttl=60, failure_ttl=86_400,
            )  # fmt: skip

    def renderer(self, up: bool) -> None:
        """Bring the PDF renderer back (``up``) or down."""
        if up:
            self.client.delete(RENDERER_DOWN)
        else:
            self.client.set(RENDERER_DOWN, 1)
        self.down = not up

    def close(self) -> None:
        """Stop the worker, close the client."""
        stop_worker(self.worker)
        self.client.close()
