"""Where mqtop keeps its state (history, silences, move journals, the audit log)."""

from __future__ import annotations

import os
from pathlib import Path


def default_state_dir() -> Path:
    """Where mqtop keeps history, silences, journals and the audit log by default."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local/state")
    return Path(base) / "mqtop"
