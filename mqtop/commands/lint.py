"""``mqtop lint``: the brokers' topology checked against best practices (docs/lint.md).

Exit codes (SPEC §4): 1 when a finding at or above ``--fail-on`` is reported (this wins over
an unreadable broker, reported in ``errors``); else 3 when a broker's topology could not be
read; 2 for usage and config errors; else 0.
"""

from __future__ import annotations

import argparse
import sys

from mqtop.kernel.errors import EXIT_FIRING, EXIT_OK, EXIT_UNREACHABLE, UsageError
from mqtop.kernel.safe import safe_text
from mqtop.lint.report import render
from mqtop.lint.runner import run_lint
from mqtop.runtime import config_from_args
from mqtop.runtime import run as run_async


def run(args: argparse.Namespace) -> int:
    """Lint every configured broker (or ``--broker NAME``); print the report."""
    fmt = getattr(args, "format", "text") or "text"
    fail_on = getattr(args, "fail_on", "warning") or "warning"
    config = config_from_args(args)
    name = getattr(args, "broker", None)
    brokers = [config.broker(name)] if name else list(config.brokers)
    if not brokers:
        where = config.source or "no config file; no broker detected on default local ports"
        raise UsageError(f"no brokers to lint ({where}); see `mqtop init` or config.example.yaml")
    report = run_async(run_lint(brokers, config.alerts, config.lint))
    print(render(report, fmt, fail_on))
    if fmt != "text":
        for error in report.errors:
            print(f"mqtop: {safe_text(error, 500)}", file=sys.stderr)
    if report.failing(fail_on):
        return EXIT_FIRING
    if report.errors:
        return EXIT_UNREACHABLE
    return EXIT_OK
