"""Alert evaluation test tools: a clock, a store plus broker statuses advanced one poll at a
time, and small helpers for rules and events."""

from __future__ import annotations

import time
from collections.abc import Mapping

from alerts.config import AlertRule
from alerts.evaluator import AlertEvaluator
from mqtop.kernel.model import BrokerSnapshot, BrokerStatus, SeriesKey, SeriesSample
from mqtop.kernel.store import TimeSeriesStore


class Clock:
    """The tests' time zero: whole seconds, taken again by each test (``reset``)."""

    def __init__(self) -> None:
        self.t0 = float(int(time.time()))

    def reset(self) -> float:
        """Now, as the new time zero."""
        self.t0 = float(int(time.time()))
        return self.t0


CLOCK = Clock()


def rule(**kw) -> AlertRule:
    base = {"name": "Backlog", "metric": "queue_length", "op": ">", "threshold": 10}
    base.update(kw)
    return AlertRule.model_validate(base)


class World:
    """A store plus broker statuses, advanced one poll at a time."""

    def __init__(self, interval: float = 1.0) -> None:
        self.store = TimeSeriesStore(interval=interval)
        self.interval = interval
        self.statuses: dict[str, BrokerStatus] = {}

    def poll(
        self,
        t: float,
        series: Mapping[tuple[str, str | None], Mapping[str, float | None]],
        broker: str = "b",
        kind: str = "list",
        up: bool = True,
    ) -> None:
        samples = tuple(
            SeriesSample(key=SeriesKey(broker, q, g), kind=kind, values=dict(v))
            for (q, g), v in series.items()
        )
        self.store.ingest(
            BrokerSnapshot(broker, "redis", CLOCK.t0 + t, up, 0.01, samples if up else (), None),
            interval=self.interval,
        )
        old = self.statuses.get(broker)
        self.statuses[broker] = BrokerStatus(
            name=broker,
            type="redis",
            address=f"redis://{broker}:6379",
            up=up,
            last_poll=CLOCK.t0 + t,
            last_success=CLOCK.t0 + t if up else (old.last_success if old else None),
            error=None if up else "ConnectionError: refused",
            consecutive_failures=0 if up else (old.consecutive_failures + 1 if old else 1),
            interval=self.interval,
        )

    def eval(self, ev: AlertEvaluator, t: float):
        return ev.evaluate(self.store, self.statuses, CLOCK.t0 + t)


def kinds(events) -> list[tuple[str, str, str | None]]:
    return [(e.kind, e.alert.rule, e.alert.queue) for e in events]
