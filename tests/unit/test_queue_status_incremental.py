"""The incremental queue health (a queue whose inputs did not change keeps its verdict until a
window boundary, and its annotated sample): on random poll sequences, every poll's
``group_status``, ``status_reason`` and ``dlq_inflow_rate`` equal the full computation's
(a fresh evaluation of every window at every poll, :meth:`QueueWindow.evaluate`)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from collectors.group_status import GroupStatus
from collectors.queue_status import QueueHealth, QueueWindow, is_dead_set, judged, point_of
from mqtop.kernel.model import SeriesKey, SeriesSample

W = 20.0
SPAN = 6.0


class FullHealth:
    """The full computation: every window observed and evaluated afresh at every poll."""

    def __init__(self) -> None:
        self.windows: dict[SeriesKey, QueueWindow] = {}

    def annotate(self, samples: list[SeriesSample], now: float) -> list[dict[str, Any]]:
        dlqs = {s.dlq for s in samples if s.dlq}
        by_queue = {s.key.queue: s for s in samples if s.key.group is None}
        present = {s.key for s in samples}
        self.windows = {k: w for k, w in self.windows.items() if k in present}
        for s in samples:
            self.windows.setdefault(s.key, QueueWindow(W)).observe(point_of(s, now))
        out: list[dict[str, Any]] = []
        for s in samples:
            got: dict[str, Any] = {}
            if judged(s):
                parked = s.key.queue in dlqs or is_dead_set(s.info)
                verdict = self.windows[s.key].evaluate(now, parked)
                got["group_status"] = None if verdict.status is None else float(verdict.status)
                got["status_reason"] = verdict.reason
            if s.dlq:
                target = by_queue.get(s.dlq)
                got["dlq_inflow_rate"] = (
                    None if target is None else self.windows[target.key].inflow(now, SPAN)
                )
            out.append(got)
        return out


def seen(sample: SeriesSample, original: SeriesSample) -> dict[str, Any]:
    got: dict[str, Any] = {}
    for name in ("group_status", "dlq_inflow_rate"):
        if name in sample.values and name not in original.values:
            got[name] = sample.values[name]
    if "status_reason" in sample.info:
        got["status_reason"] = sample.info["status_reason"]
    # the collector's own values are kept as they were
    assert {k: v for k, v in sample.values.items() if k in original.values} == dict(original.values)
    return got


class Queue:
    """One queue's inputs, changed at random (None: the broker cannot tell)."""

    def __init__(self, rng: random.Random, name: str, dlq: str | None, role: str | None) -> None:
        self.rng = rng
        self.name = name
        self.dlq = dlq
        self.info: dict[str, Any] = {"role": role} if role else {}
        self.length: float | None = rng.choice([None, 0.0, 10.0])
        self.flight: float | None = rng.choice([None, 0.0, 2.0])
        self.processed: float | None = rng.choice([None, 0.0])
        self.published: float | None = rng.choice([None, 0.0])
        self.rate: float | None = rng.choice([None, 0.0, 1.5])
        self.consumers: float | None = rng.choice([None, 0.0, 2.0])
        self.age: float | None = rng.choice([None, 0.0, 30.0])
        self.head: str | None = rng.choice([None, "a"])
        self.sample = self.build()

    def change(self) -> None:
        rng = self.rng
        field = rng.choice(
            [
                "length",
                "length",
                "flight",
                "processed",
                "published",
                "rate",
                "consumers",
                "age",
                "head",
            ]
        )
        if field == "length":
            self.length = rng.choice([None, 0.0, (self.length or 0.0) + rng.choice([-3, 2, 5])])
            self.length = None if self.length is None else max(self.length, 0.0)
        elif field == "flight":
            self.flight = rng.choice([None, 0.0, 1.0, 3.0])
        elif field == "processed":
            self.processed = rng.choice([None, (self.processed or 0.0) + rng.choice([0, 3])])
        elif field == "published":
            self.published = rng.choice([None, (self.published or 0.0) + rng.choice([0, 4, -2])])
        elif field == "rate":
            self.rate = rng.choice([None, 0.0, 1.5])
        elif field == "consumers":
            self.consumers = rng.choice([None, 0.0, 1.0, 2.0])
        elif field == "age":
            self.age = rng.choice([None, 0.0, 10.0, 40.0])
        else:
            self.head = rng.choice([None, "a", "b"])

    def build(self) -> SeriesSample:
        values = {
            "queue_length": self.length,
            "in_flight": self.flight,
            "processed_total": self.processed,
            "published_total": self.published,
            "processing_rate": self.rate,
            "consumers": self.consumers,
            "latency_seconds": self.age,
        }
        info = dict(self.info)
        if self.head is not None:
            info["head_id"] = self.head
        return SeriesSample(
            SeriesKey("b", self.name),
            "queue",
            {k: v for k, v in values.items() if v is not None or self.rng.random() < 0.5},
            dlq=self.dlq,
            info=info,
        )

    def poll(self) -> SeriesSample:
        """The same sample object, an equal new one, or changed inputs."""
        roll = self.rng.random()
        if roll < 0.55:
            return self.sample
        if roll < 0.8:
            self.sample = self.build()  # equal inputs, a new object (as real collectors poll)
            return self.sample
        self.change()
        self.sample = self.build()
        return self.sample


@pytest.mark.parametrize("seed", range(12))
def test_incremental_status_equals_the_full_computation_on_random_polls(seed: int) -> None:
    rng = random.Random(seed)
    queues = [Queue(rng, "dead", None, None)]
    queues += [
        Queue(rng, f"q{i}", "dead" if i % 3 == 0 else None, "dead set" if i == 4 else None)
        for i in range(10)
    ]
    health = QueueHealth(window=W, inflow_span=SPAN)
    full = FullHealth()
    now = 1_700_000_000.123
    statuses: set[float | None] = set()
    for _ in range(300):
        now += rng.choice([0.3, 1.0, 2.0, 5.0, 5.0, 7.7, 21.0])
        present = [q for q in queues if rng.random() > 0.03]  # a queue may go away a while
        samples = [q.poll() for q in present]
        annotated = health.annotate(samples, now)
        expected = full.annotate(samples, now)
        assert [seen(a, s) for a, s in zip(annotated, samples, strict=True)] == expected
        statuses |= {e.get("group_status") for e in expected}
    assert len(statuses) >= 3  # the sequences reach several statuses, not only one


def test_a_queue_unchanged_for_many_polls_then_changing_gets_the_full_status() -> None:
    """Stuck with a consumer for longer than the window (STALL), idle, then consuming: the
    cached verdicts and the reused samples follow the full computation at each step."""
    health = QueueHealth(window=W, inflow_span=SPAN)
    full = FullHealth()
    key = SeriesKey("b", "q")
    stuck = SeriesSample(
        key, "queue", {"queue_length": 5.0, "consumers": 1.0, "processed_total": 10.0}
    )
    now = 100.0
    got: list[float | None] = []
    for n in range(40):
        now += 2.5
        sample = (
            stuck
            if n < 20
            else SeriesSample(
                key, "queue", {"queue_length": 5.0, "consumers": 1.0, "processed_total": 10.0 + n}
            )
        )
        (annotated,) = health.annotate([sample], now)
        (expected,) = full.annotate([sample], now)
        assert seen(annotated, sample) == expected
        got.append(annotated.values["group_status"])
    assert float(GroupStatus.STALL) in got[:20]
    assert got[-1] == float(GroupStatus.OK)
