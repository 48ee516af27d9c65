"""Run every benchmark (``benchmarks/bench_*.py``) and print the figures.

    python benchmarks/run.py [--quick] [--format table|json|markdown] [--only NAME ...]

Each module exposes ``run(quick) -> dict[str, float]``; figures are measured side by side with
their baseline in the same run, so ratios are comparable across machines. Every module runs in
its own Python process (one benchmark's garbage-collector tuning, caches or memory cannot
colour the next), CPU-bound ones first, then the broker ones. The brokers are found as the
test suite finds them (``tests/harness.py``: environment variables, default local ports, else
private ones started from installed binaries); the Kafka replay baseline needs ``kcat``;
ActiveMQ is found as tests/support/activemq.py finds it; the job-library baselines need Ruby
with ruby-sidekiq, Node with npm's bullmq and the rq package; the fleet benchmark needs
Debian's ``prometheus`` (a private one is started as tests/support/prometheus.py does).

``--format json`` prints ONE object: every figure of the proof (null when its benchmark
failed) followed by the extra figures the modules report. The exit code is 1 when a benchmark
failed or a required figure is missing; a missed goal is reported, not an error.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# The figures the proof asks for: (goal operator, goal value, module that measures it).
REQUIRED: dict[str, tuple[str | None, float | None, str]] = {
    "rabbitmq_move_vs_shovel": (">=", 0.8, "rabbitmq"),
    "kafka_replay_vs_kcat": (">=", 1.0, "kafka"),
    "sqs_move_vs_naive": (">=", 5.0, "sqs"),
    "redis_move_vs_naive": (None, None, "redis"),
    "sidekiq_retry_vs_retry_all": (">=", 1.0, "jobs"),
    "bullmq_retry_vs_retryjobs": (">=", 1.0, "jobs"),
    "rq_retry_vs_requeue_loop": (">=", 1.0, "jobs"),
    "store_ingest_samples_per_s": (">=", 1e6, "store"),
    "store_bytes_per_sample": ("<=", 16.0, "store"),
    "poll_cycle_cpu_s_5k_rabbit_queues": ("<", 1.0, "rabbitmq"),
    "poll_cycle_cpu_s_2k_kafka_partitions": ("<", 1.0, "kafka"),
    "tui_refresh_ms_10k_rows": ("<=", 100.0, "tui"),
    "startup_help_seconds": ("<=", 0.3, "startup"),
    "artemis_poll_wall_vs_bare_2k_queues": ("<", 2.0, "activemq"),
    "artemis_poll_cpu_vs_bare_2k_queues": ("<", 2.0, "activemq"),
    "artemis_move_vs_broker_move": (">=", 0.9, "activemq"),
}
# Further goals the modules' own figures are held to.
EXTRA_GOALS: dict[str, tuple[str, float]] = {
    "alert_eval_ms_50r_10k": ("<=", 50.0),
    "serve_metrics_vs_prometheus_client": ("<=", 1.5),
    "serve_scrape_http_ms_50k": ("<", 1000.0),
    "classic_poll_wall_vs_bare_2k_queues": ("<", 2.0),
    "classic_poll_cpu_vs_bare_2k_queues": ("<", 2.0),
    "classic_move_vs_broker_move": (">=", 0.9),
    "jobs_retry_lost_jobs": ("<=", 0.0),
    "serve_load_false_alerts": ("<=", 0.0),
    "serve_load_errors_20": ("<=", 0.0),
    "fleet_refresh_ui_ms_50k": ("<=", 100.0),
    "fleet_chart_24h_ms": ("<", 200.0),
    # 100,000 series, 10 % of them changing per poll (benchmarks/bench_scale.py)
    "scale_100k_rss_mb": ("<=", 1024.0),
    "scale_100k_store_bytes_per_series": ("<=", 10_240.0),
    "scale_ingest_per_series_vs_baseline": ("<=", 0.25),
    "scale_views_per_series_vs_baseline": ("<=", 0.25),
    "scale_eval_per_series_vs_baseline": ("<=", 0.25),
    "scale_model_per_series_vs_baseline": ("<=", 0.25),
    "scale_100k_eval_ms": ("<=", 150.0),
    "scale_100k_eval_first_ms": ("<=", 500.0),
}
# CPU-bound benchmarks first (nothing else of ours running), broker ones after.
ORDER = [
    "startup",
    "store",
    "alerts",
    "serve",
    "tui",
    "scale",
    "health",
    "redis",
    "jobs",
    "rabbitmq",
    "kafka",
    "sqs",
    "activemq",
    "fleet",
]


def goal_of(key: str) -> tuple[str, float] | None:
    """(operator, value) of a figure's goal, if it has one."""
    if key in REQUIRED:
        op, target, _ = REQUIRED[key]
        return None if op is None or target is None else (op, target)
    return EXTRA_GOALS.get(key)


def verdict(key: str, value: float | None) -> str:
    """'met', 'MISSED', 'no goal' or 'MISSING' (no figure)."""
    if value is None:
        return "MISSING"
    goal = goal_of(key)
    if goal is None:
        return "no goal"
    op, target = goal
    ok = {">=": value >= target, "<=": value <= target, "<": value < target}[op]
    return "met" if ok else "MISSED"


def modules(only: list[str] | None) -> list[str]:
    """Benchmark module names in run order (``--only`` keeps that order)."""
    found = {p.stem[len("bench_") :] for p in HERE.glob("bench_*.py")}
    names = [n for n in ORDER if n in found] + sorted(found - set(ORDER))
    if only:
        unknown = sorted(set(only) - found)
        if unknown:
            raise SystemExit(f"unknown benchmark(s): {', '.join(unknown)} (have: {sorted(found)})")
        names = [n for n in names if n in only]
    return names


def run_module(name: str, quick: bool, timeout: float, echo: bool) -> dict[str, float]:
    """Run ``bench_<name>.run(quick)`` in a fresh interpreter; its figures."""
    with tempfile.TemporaryDirectory(prefix="mqtop-bench-run-") as tmp:
        out = Path(tmp, "figures.json")
        code = (
            "import json, sys\n"
            f"from benchmarks import bench_{name} as module\n"
            f"figures = module.run(quick={quick!r})\n"
            f"open({str(out)!r}, 'w').write(json.dumps({{k: float(v) for k, v in "
            "figures.items()}))\n"
        )
        path = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
        # the module's own output goes to stderr: stdout carries only our report
        result = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=env,
            stdout=sys.stderr if echo else subprocess.PIPE,
            stderr=sys.stderr if echo else subprocess.PIPE,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            tail = "" if echo else (result.stderr or b"").decode(errors="replace")[-1500:]
            lines = [line for line in tail.splitlines() if line.strip()]
            reason = lines[-1] if lines else f"exit code {result.returncode}"
            if not echo and tail:
                print(tail, file=sys.stderr)
            raise RuntimeError(reason)
        figures: dict[str, float] = json.loads(out.read_text())
        return figures


def _number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def report_json(results: dict[str, float], required: list[str]) -> str:
    """One object: the required figures first (null when missing), then the extras."""
    out = {k: _number(results[k]) if k in results else None for k in required}
    out.update({k: _number(v) for k, v in results.items() if k not in REQUIRED})
    return json.dumps(out, indent=2)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0 or 1e-3 <= abs(value) < 1e7:
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{value:.3g}"


def _goal_text(key: str) -> str:
    goal = goal_of(key)
    return "" if goal is None else f"{goal[0]} {goal[1]:g}"


def report_table(results: dict[str, float], required: list[str], markdown: bool = False) -> str:
    """Required figures with their goals, then every other figure, one per line."""
    rows = [(k, results.get(k), _goal_text(k), verdict(k, results.get(k))) for k in required]
    extras = [k for k in results if k not in REQUIRED]
    rows += [(k, results[k], _goal_text(k), verdict(k, results[k])) for k in extras]
    if markdown:
        lines = ["| figure | value | goal | |", "|---|---:|---|---|"]
        lines += [f"| `{k}` | {_fmt(v)} | {g} | {s} |" for k, v, g, s in rows]
        return "\n".join(lines)
    width = max(len(k) for k, *_ in rows)
    lines = [f"{'figure':<{width}}  {'value':>14}  {'goal':<10}  result"]
    for n, (key, value, goal, state) in enumerate(rows):
        if n == len(required) and extras:
            lines.append("")
        shown = "" if state == "no goal" and not goal else state
        lines.append(f"{key:<{width}}  {_fmt(value):>14}  {goal:<10}  {shown}".rstrip())
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a few minutes)")
    parser.add_argument("--format", choices=["table", "json", "markdown"], default="table")
    parser.add_argument("--only", nargs="*", metavar="NAME", help="modules, e.g. store startup")
    parser.add_argument(
        "--timeout", type=float, default=3600.0, metavar="S", help="per-module limit (seconds)"
    )
    parser.add_argument(
        "--verbose", action="store_true", help="show each module's own output as it runs"
    )
    args = parser.parse_args(argv)
    results: dict[str, float] = {}
    failed: dict[str, str] = {}
    started = time.perf_counter()
    for name in modules(args.only):
        print(f"# {name}: running", file=sys.stderr, flush=True)
        begun = time.perf_counter()
        try:
            results.update(run_module(name, args.quick, args.timeout, args.verbose))
            state = "done"
        except subprocess.TimeoutExpired:
            failed[name] = f"timed out after {args.timeout:g}s"
            state = "FAILED"
        except Exception as exc:  # one broken benchmark must not hide the others
            failed[name] = str(exc) or type(exc).__name__
            state = "FAILED"
        took = time.perf_counter() - begun
        print(f"# {name}: {state} in {took:.1f}s", file=sys.stderr, flush=True)
    selected = set(modules(args.only))
    required = [k for k, (_, _, module) in REQUIRED.items() if module in selected]
    missing = [k for k in required if k not in results]
    for name, error in failed.items():
        print(f"# {name}: FAILED: {error}", file=sys.stderr)
    for key in missing:
        print(f"# missing figure: {key}", file=sys.stderr)
    print(f"# total {time.perf_counter() - started:.0f}s", file=sys.stderr)
    if args.format == "json":
        print(report_json(results, required))
    else:
        print(report_table(results, required, markdown=args.format == "markdown"))
    return 1 if failed or missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
