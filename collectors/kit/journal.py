"""One file journal for moves that must be remembered across a crash.

A journal file exists while a move runs and is removed when the run ends with nothing of
unknown outcome. Left behind by a killed run, it tells the next run of the same move (same
broker, source and destination) that the earlier one died, and whatever state the broker
recorded in it (a window size, the ids of messages sent but not yet removed), so the new
run can report ``duplicates_possible`` honestly. A journal whose process is still alive
marks a concurrent run instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from mqtop.kernel.paths import default_state_dir
from mqtop.kernel.procs import process_alive


def journal_dir(kind: str) -> Path:
    """Where running moves of one broker type are recorded."""
    return default_state_dir() / f"{kind}-moves"


class MoveJournal:
    """The journal of one run of one move (``kind`` is the broker type)."""

    def __init__(self, kind: str, broker: str, source: str, destination: str) -> None:
        key = hashlib.sha256(f"{broker}\0{source}\0{destination}".encode()).hexdigest()[:24]
        self.path = journal_dir(kind) / f"{key}.json"
        self.run = uuid.uuid4().hex[:12]
        self.started = time.time()
        self.previous: dict[str, Any] | None = None
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(self.path.read_text())
            if isinstance(data, dict):
                self.previous = data

    def _previous_pid(self) -> int | None:
        pid = (self.previous or {}).get("pid")
        return pid if isinstance(pid, int) and not isinstance(pid, bool) else None

    def concurrent(self) -> dict[str, Any] | None:
        """The record of another run of the same move that is still alive, if any."""
        pid = self._previous_pid()
        if pid is not None and pid != os.getpid() and process_alive(pid):
            return self.previous
        return None

    def interrupted(self) -> dict[str, Any] | None:
        """The record of an earlier run of the same move that died without finishing."""
        prev = self.previous
        if not prev or prev.get("run") == self.run or self.concurrent() is not None:
            return None
        return prev

    def write(self, **state: Any) -> None:
        """Record this run (pid, start) and the broker's ``state``: atomic, small, blocking."""
        record = {"run": self.run, "pid": os.getpid(), "started": self.started, **state}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{self.run}.tmp")
        tmp.write_text(json.dumps(record))
        os.replace(tmp, self.path)

    def close(self) -> None:
        """The run ended with nothing of unknown outcome: forget it (if it is still ours)."""
        with contextlib.suppress(OSError, ValueError, AttributeError):
            if json.loads(self.path.read_text()).get("run") == self.run:
                self.path.unlink()
