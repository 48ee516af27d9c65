"""Sidekiq's options and key layout (a namespace prefixes every key)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from collectors.jobs.common import JobsOptions
from mqtop.kernel.durations import Duration

DEAD = "dead"  # the dead set's queue name in mqtop (Sidekiq's own key name)


class SidekiqOptions(JobsOptions):
    """Sidekiq on one Redis server."""

    type: Literal["sidekiq"] = "sidekiq"
    dead_max_jobs: int = Field(
        10_000,
        ge=1,
        description="Sidekiq's dead_max_jobs: the dead set keeps one fewer (9,999 by default) "
        "and silently drops its oldest beyond that.",
    )
    dead_timeout: Duration = Field(
        180 * 86400.0,
        description="Sidekiq's dead_timeout_in_seconds: dead jobs older than this are dropped.",
    )


def kept_dead(dead_max_jobs: int) -> int:
    """How many jobs Sidekiq's dead set really keeps: ``DeadSet#kill`` adds the job, then
    trims with ``ZREMRANGEBYRANK dead 0 -dead_max_jobs``, which leaves ``dead_max_jobs - 1``."""
    return max(0, dead_max_jobs - 1)


class SidekiqKeys:
    """Sidekiq's key layout under an optional namespace."""

    def __init__(self, prefix: str) -> None:
        self.prefix = f"{prefix}:" if prefix and not prefix.endswith(":") else prefix

    def key(self, name: str) -> str:
        """A top-level key (``dead``, ``retry``, ``stat:processed``...)."""
        return self.prefix + name

    def queue(self, queue: str) -> str:
        """The list of a job queue."""
        return f"{self.prefix}queue:{queue}"


__all__ = ["DEAD", "SidekiqKeys", "SidekiqOptions", "kept_dead"]
