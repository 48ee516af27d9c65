"""Startup time of ``mqtop --help`` and ``--version`` vs a bare ``python -c pass``."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time


def _time(cmd: list[str], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def run(quick: bool = False) -> dict[str, float]:
    runs = 5 if quick else 15
    bare = _time([sys.executable, "-c", "pass"], runs)
    help_s = _time([sys.executable, "-m", "mqtop", "--help"], runs)
    version_s = _time([sys.executable, "-m", "mqtop", "--version"], runs)
    return {
        "startup_help_seconds": help_s,
        "startup_version_seconds": version_s,
        "startup_python_bare_seconds": bare,
        "startup_help_vs_bare_python": help_s / bare,
    }


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
