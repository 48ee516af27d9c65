"""``mqtop`` with no sub-command: the interactive dashboard."""

from __future__ import annotations

import argparse
import sys

from mqtop.kernel.errors import EXIT_OK, UsageError
from mqtop.runtime import config_from_args
from mqtop.runtime import run as run_async


def run(args: argparse.Namespace) -> int:
    """Load the config and run the dashboard until the operator quits."""
    config = config_from_args(args)
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError(
            "the dashboard needs a terminal; for scripts use `mqtop metrics`, "
            "`mqtop check` or `mqtop serve`"
        )
    from mqtop.engine import Engine
    from mqtop.runtime import tune_gc
    from mqtop.ui.app import MqtopApp

    tune_gc()

    async def main() -> int:
        engine = Engine(config)
        app = MqtopApp(engine, lint=True)
        try:
            await app.run_async()
        finally:
            await app.stop_engine()
        return app.return_code or EXIT_OK

    return run_async(main())
