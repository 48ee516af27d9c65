"""A collector's warning stays in the broker's status after a poll that does not repeat it
(for ``WARNING_KEEP_INTERVALS`` intervals, at least ``WARNING_KEEP_MIN`` seconds): before, the
next poll replaced it, so `metrics` (two polls) lost every warning of its first poll."""

from __future__ import annotations

import asyncio

from collectors.base import BrokerOptions, Collected
from mqtop import engine as engine_module
from mqtop.config import Config
from mqtop.engine import Engine
from mqtop.kernel.model import SeriesKey, SeriesSample


class OnceWarning:
    def __init__(self) -> None:
        self.polls = 0

    async def connect(self) -> None:
        return None

    async def collect(self) -> Collected:
        self.polls += 1
        sample = SeriesSample(key=SeriesKey("b", "q", None), kind="list", values={})
        warned = ("skipped 1 undecodable key",) if self.polls == 1 else ()
        return Collected(series=(sample,), warnings=(*warned, f"poll {self.polls}"))

    async def close(self) -> None:
        return None

    def actions(self) -> None:
        return None


def _engine() -> Engine:
    config = Config(interval=1.0, brokers=[BrokerOptions(name="b", type="fake")])
    return Engine(config, collectors={"b": OnceWarning()})


def test_a_warning_outlives_the_next_poll() -> None:
    async def main() -> tuple[tuple[str, ...], tuple[str, ...]]:
        engine = _engine()
        await engine.poll("b")
        await engine.poll("b")
        return engine.statuses["b"].warnings, (await engine.poll("b")).warnings

    second, third = asyncio.run(main())
    assert second == ("poll 2", "skipped 1 undecodable key", "poll 1")
    assert third[0] == "poll 3" and "skipped 1 undecodable key" in third


def test_a_warning_not_repeated_for_the_keep_time_goes(monkeypatch) -> None:
    monkeypatch.setattr(engine_module, "WARNING_KEEP_MIN", 0.0)
    monkeypatch.setattr(engine_module, "WARNING_KEEP_INTERVALS", 0.0)

    async def main() -> tuple[str, ...]:
        engine = _engine()
        await engine.poll("b")
        await asyncio.sleep(0.01)
        await engine.poll("b")
        return engine.statuses["b"].warnings

    assert asyncio.run(main()) == ("poll 2",)
