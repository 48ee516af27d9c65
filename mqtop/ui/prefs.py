"""The dashboard's own small state (the overview's columns): a JSON file in the state
directory, never the config: choosing columns is a matter of taste, not of monitoring."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mqtop.kernel.paths import default_state_dir
from mqtop.kernel.safe import dumps

PREFS_FILE = "dashboard.json"


def default_prefs_path() -> Path:
    """``<state dir>/dashboard.json`` (``$XDG_STATE_HOME/mqtop``, else ~/.local/state/mqtop)."""
    return default_state_dir() / PREFS_FILE


@dataclass(frozen=True, slots=True)
class Prefs:
    """What the operator chose: the overview's columns in order (None: the default)."""

    columns: tuple[str, ...] | None = None
    totals: bool = True


def load_prefs(path: Path, known: Sequence[str]) -> tuple[Prefs, str | None]:
    """The saved prefs (unknown columns dropped) and a warning when the file is unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Prefs(), None
    except (OSError, ValueError) as exc:
        return Prefs(), f"dashboard settings {path} not read ({exc}): defaults used"
    if not isinstance(data, dict):
        return Prefs(), f"dashboard settings {path} are not a JSON object: defaults used"
    columns = data.get("columns")
    chosen = (
        tuple(c for c in columns if isinstance(c, str) and c in known)
        if isinstance(columns, list)
        else None
    )
    return Prefs(columns=chosen or None, totals=data.get("totals") is not False), None


def save_prefs(path: Path, prefs: Prefs) -> None:
    """Write the prefs atomically (a crash never leaves half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"columns": list(prefs.columns) if prefs.columns else None, "totals": prefs.totals}
    temporary = path.with_suffix(".tmp")
    temporary.write_text(dumps(data) + "\n", encoding="utf-8")
    os.replace(temporary, path)
