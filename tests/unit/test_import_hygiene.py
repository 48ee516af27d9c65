"""Import hygiene at run time: headless code never loads Textual.

The static layer rules are import-linter contracts (pyproject.toml, run by `lint-imports` in
CI). This test checks what static analysis cannot: importing every collector, alert and kernel
module, and the headless commands, in a fresh interpreter loads no Textual module at all.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEADLESS_COMMANDS = ["mqtop.commands.check", "mqtop.commands.serve", "mqtop.commands.metrics"]


def _modules(package: str) -> list[str]:
    path = ROOT.joinpath(*package.split("."))
    return [m.name for m in pkgutil.walk_packages([str(path)], prefix=f"{package}.") if not m.ispkg]


def test_headless_modules_never_load_textual():
    modules = [
        *_modules("collectors"),
        *_modules("alerts"),
        *_modules("mqtop.kernel"),
        *HEADLESS_COMMANDS,
    ]
    assert any(m.startswith("collectors.rabbitmq.") for m in modules)  # recursion works
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.')"
        " or m.startswith('textual_plotext'))\n"
        "print(bad)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
