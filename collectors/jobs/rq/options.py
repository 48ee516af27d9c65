"""RQ's options and key layout (``prefix`` is RQ's ``RQ_KEY_PREFIX``)."""

from __future__ import annotations

from typing import Literal

from collectors.jobs.common import JobsOptions


class RQOptions(JobsOptions):
    """RQ on one Redis server."""

    type: Literal["rq"] = "rq"


class RQKeys:
    """RQ's key layout under its prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix or "rq"

    @property
    def queues(self) -> str:
        """The set of every queue's key."""
        return f"{self.prefix}:queues"

    def queue(self, queue: str) -> str:
        """The list of a queue's waiting job ids."""
        return f"{self.prefix}:queue:{queue}"

    def intermediate(self, queue: str) -> str:
        """Jobs taken from the queue and not yet in the started registry."""
        return f"{self.queue(queue)}:intermediate"

    def registry(self, kind: str, queue: str) -> str:
        """A registry (``wip``, ``failed``, ``finished``, ``scheduled``, ``deferred``)."""
        return f"{self.prefix}:{kind}:{queue}"

    def workers(self, queue: str) -> str:
        """The set of workers registered for a queue."""
        return f"{self.prefix}:workers:{queue}"

    def job(self, job_id: str) -> str:
        """A job's hash."""
        return f"{self.prefix}:job:{job_id}"

    def results(self, job_id: str) -> str:
        """A job's results stream (RQ 1.12+)."""
        return f"{self.prefix}:results:{job_id}"

    def queue_name(self, key: str) -> str | None:
        """The queue name in a member of ``rq:queues``."""
        head = f"{self.prefix}:queue:"
        return key[len(head) :] if key.startswith(head) and len(key) > len(head) else None


__all__ = ["RQKeys", "RQOptions"]
