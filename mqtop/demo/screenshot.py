"""Export an SVG screenshot of the dashboard on the running demo (for the README and docs).

``python -m mqtop.demo.screenshot docs/screenshot.svg [--after 15] [--size 160x45]``

Starts the demo servers and workload (without brokers found on local ports, so the picture
shows only the demo), opens the dashboard headless at the given size, waits ``--after``
seconds of live data, and writes Textual's SVG export.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path


async def capture(after: float, size: tuple[int, int]) -> str:
    """Run the dashboard on a demo session for ``after`` seconds; return the SVG."""
    from mqtop.demo.runner import DemoSession
    from mqtop.engine import Engine
    from mqtop.ui.app import MqtopApp

    with DemoSession(local=False) as session:
        config = await asyncio.to_thread(session.start)
        app = MqtopApp(Engine(config))
        async with app.run_test(size=size) as pilot:
            await pilot.pause(after)
            svg = app.export_screenshot(title="mqtop demo")
            await app.stop_engine()
    return svg


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m mqtop.demo.screenshot")
    parser.add_argument("output", type=Path, help="SVG file to write")
    parser.add_argument("--after", type=float, default=15.0, help="seconds of live data first")
    parser.add_argument("--size", default="160x45", help="terminal size COLSxROWS")
    args = parser.parse_args(argv)
    cols, _, rows = args.size.partition("x")
    svg = asyncio.run(capture(args.after, (int(cols), int(rows))))
    args.output.write_text(svg)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
