"""One builder for the series of a job queue and of a dead set, the same for every library."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from collectors.jobs.common import KIND
from mqtop.kernel.model import SeriesKey, SeriesSample


def _num(value: float | None) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True)
class JobQueueState:
    """What a library says about one job queue at one poll (None: the library cannot tell)."""

    queue: str
    waiting: int | None
    running: int | None
    oldest_enqueued: float | None = None  # epoch seconds of the oldest waiting job
    workers: int | None = None
    processed_total: float | None = None
    failed_total: float | None = None
    dlq: str | None = None
    dead: int | None = None
    info: Mapping[str, Any] = field(default_factory=dict)


def job_queue_sample(broker: str, state: JobQueueState, now: float) -> SeriesSample:
    """The series of a job queue: SPEC §3 metrics in the library's terms.

    An empty queue has no oldest job: its latency is 0 (nothing waits), as in Sidekiq's own
    ``Queue#latency``.
    """
    latency: float | None = None
    if state.waiting == 0:
        latency = 0.0
    elif state.oldest_enqueued is not None:
        latency = max(0.0, now - state.oldest_enqueued)
    values: dict[str, float | None] = {
        "queue_length": _num(state.waiting),
        "consumer_lag_messages": _num(state.waiting),
        "in_flight": _num(state.running),
        "latency_seconds": latency,
        "consumers": _num(state.workers),
        "processed_total": _num(state.processed_total),
        "dead_lettered_total": _num(state.failed_total),
        "dlq_length": _num(state.dead) if state.dlq else None,
    }
    return SeriesSample(
        key=SeriesKey(broker, state.queue, None),
        kind=KIND,
        values=values,
        dlq=state.dlq,
        info={"role": "job queue", **state.info},
    )


def dead_set_sample(
    broker: str,
    name: str,
    *,
    size: int | None,
    oldest_death: float | None,
    now: float,
    info: Mapping[str, Any],
) -> SeriesSample:
    """The series of a dead / failed set: its size, and the age of its oldest entry."""
    age: float | None = None
    if size == 0:
        age = 0.0
    elif oldest_death is not None:
        age = max(0.0, now - oldest_death)
    return SeriesSample(
        key=SeriesKey(broker, name, None),
        kind=KIND,
        values={
            "queue_length": _num(size),
            "consumer_lag_messages": _num(size),
            "latency_seconds": age,
        },
        info={"role": "dead set", **info},
    )
