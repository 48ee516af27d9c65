"""BullMQ's options and key layout (``prefix`` is BullMQ's, ``bull`` by default)."""

from __future__ import annotations

import base64
from typing import Literal

from pydantic import Field

from collectors.jobs.common import JobsOptions
from mqtop.kernel.durations import Duration


class BullMQOptions(JobsOptions):
    """BullMQ on one Redis server."""

    type: Literal["bullmq"] = "bullmq"
    discover_every: Duration = Field(30.0, description="How often queues are looked for (SCAN).")
    scan_count: int = Field(1000, ge=10, le=100_000, description="COUNT hint for SCAN.")


class BullMQKeys:
    """BullMQ's key layout under its prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix or "bull"

    def key(self, queue: str, name: str) -> str:
        """A queue's key (``wait``, ``failed``, ``meta``...)."""
        return f"{self.prefix}:{queue}:{name}"

    def job(self, queue: str, job_id: str) -> str:
        """A job's hash."""
        return f"{self.prefix}:{queue}:{job_id}"

    def client_name(self, queue: str) -> str:
        """The connection name of the queue's workers (BullMQ's ``clientName()``)."""
        return f"{self.prefix}:{base64.b64encode(queue.encode()).decode()}"

    def queue_of_meta(self, key: str) -> str | None:
        """The queue of a ``<prefix>:<queue>:meta`` key."""
        head, tail = f"{self.prefix}:", ":meta"
        if key.startswith(head) and key.endswith(tail):
            name = key[len(head) : -len(tail)]
            return name if name and ":" not in name else None
        return None


__all__ = ["BullMQKeys", "BullMQOptions"]
