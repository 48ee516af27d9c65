"""A synthetic collector for the scale benchmark (never shipped: it lives in ``benchmarks/``).

It is a complete collector plugin, registered the way a third-party one is (an entry point in
the ``mqtop.collectors`` group, see :func:`install`), so the benchmark drives the real engine,
store, alert evaluator and dashboard model. Each broker reports ``series`` queues; at each
poll a ``changing`` fraction of them (a rotating slice, so every series changes now and then)
gets new values, the others report exactly what they reported before, as a quiet queue does.
Queue names follow ``bench_alerts``, so its 50 rules select the same shares of series.
"""

from __future__ import annotations

import random
import sys
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import Field

from benchmarks.bench_alerts import _queue_names
from collectors.base import BrokerOptions, Collected, CollectorPlugin
from mqtop.kernel.model import SeriesKey, SeriesSample

TYPE = "synthetic"


class SyntheticOptions(BrokerOptions):
    """Options of a synthetic broker."""

    type: Literal["synthetic"] = "synthetic"
    series: int = Field(1000, ge=1, description="Queues reported.")
    offset: int = Field(0, ge=0, description="Index of the first queue name.")
    changing: float = Field(0.1, ge=0.0, le=1.0, description="Share of queues changing per poll.")
    seed: int = Field(7, description="Random seed.")


class SyntheticCollector:
    """Reports ``series`` queues; a rotating ``changing`` share of them changes per poll."""

    def __init__(self, options: SyntheticOptions) -> None:
        self._options = options
        self.rng = random.Random(options.seed + options.offset)
        names = _queue_names(options.offset + options.series)[options.offset :]
        self.keys = [SeriesKey(options.name, n) for n in names]
        self.totals = [[0.0, 0.0, 0.0] for _ in self.keys]
        self.hot = [self.rng.random() < 0.02 for _ in self.keys]
        self.samples = [self._sample(i) for i in range(len(self.keys))]
        self.cursor = 0
        self.polls = 0

    @property
    def options(self) -> BrokerOptions:
        return self._options

    def _sample(self, i: int) -> SeriesSample:
        rng = self.rng
        # about 2 % of the queues are in trouble at any time, a few change state each poll
        if self.hot[i]:
            self.hot[i] = rng.random() >= 0.2
        else:
            self.hot[i] = rng.random() < 0.004
        hot = self.hot[i]
        totals = self.totals[i]
        # integral counters, as brokers report them
        totals[0] += rng.randint(500, 510) if hot else rng.randint(0, 60)
        totals[1] += rng.randint(0, 60) if not hot else 0
        totals[2] += rng.randint(10, 20) if hot else 0
        high = rng.uniform(0.99, 1.0) if hot else rng.uniform(0.0, 0.9)
        return SeriesSample(
            key=self.keys[i],
            kind="queue",
            values={
                "queue_length": float(round(10_000 * high)),
                "in_flight": float(round(1_000 * high)),
                "consumers": 0.0 if hot else 3.0,
                "latency_seconds": round(600 * high, 3),
                "consumer_lag_seconds": round(600 * high, 3),
                "consumer_lag_messages": float(round(10_000 * high)),
                "dlq_length": float(round(100 * high)),
                "published_total": totals[0],
                "processed_total": totals[1],
                "dead_lettered_total": totals[2],
            },
        )

    def advance(self, share: float | None = None) -> None:
        """Give the next ``changing`` share (or ``share``) of the queues new values."""
        n = len(self.keys)
        k = round(n * (self._options.changing if share is None else share))
        for step in range(k):
            i = (self.cursor + step) % n
            self.samples[i] = self._sample(i)
        self.cursor = (self.cursor + k) % n
        self.polls += 1

    async def connect(self) -> None:
        return None

    async def collect(self) -> Collected:
        self.advance()
        return Collected(series=tuple(self.samples))

    async def close(self) -> None:
        return None

    def actions(self) -> None:
        return None


PLUGIN = CollectorPlugin(type=TYPE, options_model=SyntheticOptions, factory=SyntheticCollector)


def install() -> Path:
    """Register the plugin under the ``mqtop.collectors`` entry-point group (a distribution
    on ``sys.path``, as a pip-installed plugin is), and make the registry see it."""
    from mqtop.registry import available_types, get_plugin

    site = Path(tempfile.mkdtemp(prefix="mqtop-synthetic-"))
    dist = site / "mqtop_synthetic_bench-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mqtop-synthetic-bench\n")
    (dist / "entry_points.txt").write_text(
        f"[mqtop.collectors]\n{TYPE} = benchmarks.synthetic:PLUGIN\n"
    )
    sys.path.append(str(site))
    available_types.cache_clear()
    get_plugin.cache_clear()
    assert TYPE in available_types(), "the entry point was not found"
    return site
