"""Architecture rules: collectors/ and alerts/ never import Textual; the core stays UI-free."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _modules(package: str) -> list[str]:
    path = ROOT / package
    return [f"{package}.{m.name}" for m in pkgutil.iter_modules([str(path)])]


def test_collectors_and_alerts_never_import_textual():
    modules = _modules("collectors") + _modules("alerts")
    core = [m for m in _modules("mqtop") if m not in ("mqtop.ui", "mqtop.__main__")]
    code = (
        "import importlib, sys\n"
        f"for name in {modules + core!r}:\n"
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


def test_no_textual_in_source_of_collectors_and_alerts():
    for package in ("collectors", "alerts"):
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text()
            assert "import textual" not in text and "from textual" not in text, path
