"""Queue health: CPU of the engine's annotation (``QueueHealth.annotate``) per poll.

The synthetic collector of ``bench_scale`` (``benchmarks/synthetic.py``) reports 10,000 and
20,000 queues (``--quick``: 10,000); at each poll a rotating 10 % of them get new values, the
rest report the sample they reported before (as quiet queues do). Polls are stamped 5 s apart
with the default window (300 s); 70 polls are fed (the windows fill and verdicts cross their
boundaries), the last 20 are timed: CPU of the thread, median and minimum, with the engine's
garbage-collector settings (``tune_gc``).

Baseline in the same run: the same polls through the annotation before it was incremental
(``benchmarks/baseline_queue_status.py``, a frozen copy). ``health_<n>k_vs_baseline`` is
current / baseline CPU (lower is better).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks.*, as a script

POLLS = 70
TIMED = 20


def _cpu_per_poll(health: Any, series: int) -> tuple[float, float]:
    from benchmarks.synthetic import SyntheticCollector, SyntheticOptions

    coll = SyntheticCollector(SyntheticOptions(name="b", series=series, changing=0.1))
    now = 1_700_000_000.0
    times: list[float] = []
    for _ in range(POLLS):
        coll.advance()
        samples = tuple(coll.samples)
        now += 5.0
        start = time.thread_time()
        health.annotate(samples, now)
        times.append(time.thread_time() - start)
    timed = times[-TIMED:]
    return statistics.median(timed) * 1000, min(timed) * 1000


def run(quick: bool = False) -> dict[str, float]:
    from benchmarks import baseline_queue_status
    from collectors import queue_status
    from mqtop.runtime import tune_gc

    tune_gc()
    out: dict[str, float] = {}
    for series in (10_000,) if quick else (10_000, 20_000):
        label = f"{series // 1000}k"
        base = _cpu_per_poll(baseline_queue_status.QueueHealth(300.0, 15.0), series)
        mine = _cpu_per_poll(queue_status.QueueHealth(300.0, 15.0), series)
        out[f"health_{label}_baseline_ms"] = round(base[0], 1)
        out[f"health_{label}_baseline_min_ms"] = round(base[1], 1)
        out[f"health_{label}_ms"] = round(mine[0], 1)
        out[f"health_{label}_min_ms"] = round(mine[1], 1)
        out[f"health_{label}_vs_baseline"] = round(mine[0] / base[0], 3)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(json.dumps(run(quick=args.quick), indent=2))
