"""Run every benchmark (``benchmarks/bench_*.py``) and print the figures.

    python benchmarks/run.py [--quick] [--format table|json] [--only NAME ...]

Each module exposes ``run(quick) -> dict[str, float]``; figures are measured side by side with
their baseline in the same run, so ratios are comparable across machines.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

GOALS: dict[str, tuple[str, float]] = {
    "rabbitmq_move_vs_shovel": (">=", 0.8),
    "kafka_replay_vs_kcat": (">=", 1.0),
    "sqs_move_vs_naive": (">=", 5.0),
    "redis_move_vs_naive": (">=", 5.0),
    "store_ingest_samples_per_s": (">=", 1e6),
    "store_bytes_per_sample": ("<=", 16.0),
    "poll_cycle_cpu_s_5k_rabbit_queues": ("<", 1.0),
    "poll_cycle_cpu_s_2k_kafka_partitions": ("<", 1.0),
    "tui_refresh_ms_10k_rows": ("<=", 100.0),
    "startup_help_seconds": ("<=", 0.3),
    "alert_eval_ms_50r_10k": ("<=", 50.0),
}


def _goal(key: str, value: float) -> str:
    if key not in GOALS:
        return ""
    op, target = GOALS[key]
    ok = {">=": value >= target, "<=": value <= target, "<": value < target}[op]
    return f"goal {op} {target:g}: {'met' if ok else 'MISSED'}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a few minutes)")
    parser.add_argument("--format", choices=["table", "json"], default="table")
    parser.add_argument("--only", nargs="*", help="module names, e.g. store startup")
    args = parser.parse_args(argv)
    names = sorted(p.stem[len("bench_") :] for p in HERE.glob("bench_*.py"))
    if args.only:
        names = [n for n in names if n in args.only]
    results: dict[str, float] = {}
    errors: dict[str, str] = {}
    for name in names:
        started = time.perf_counter()
        try:
            module = importlib.import_module(f"benchmarks.bench_{name}")
            results.update({k: float(v) for k, v in module.run(quick=args.quick).items()})
        except Exception as exc:  # one broken benchmark must not hide the others
            errors[name] = f"{type(exc).__name__}: {exc}"
            if args.format == "table":
                traceback.print_exc()
        if args.format == "table":
            print(f"# {name}: {time.perf_counter() - started:.1f}s", file=sys.stderr)
    if args.format == "json":
        out: dict[str, object] = dict(results)
        if errors:
            out["errors"] = errors
        print(json.dumps(out, indent=2))
    else:
        width = max((len(k) for k in results), default=10)
        for key, value in results.items():
            print(f"{key:<{width}}  {value:>14.4g}  {_goal(key, value)}")
        for name, error in errors.items():
            print(f"{name}: FAILED: {error}")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
