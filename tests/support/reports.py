"""Reading `dlq replay|move --format json` results in tests.

stdout holds exactly the contract's object (SPEC §5); notes and errors are ``note: …`` /
``error: …`` lines on stderr. ``move_report`` checks the first and adds the second as
``notes`` / ``errors`` lists, so a test can assert on both.
"""

from __future__ import annotations

import json
from typing import Any

MOVE_KEYS = frozenset(
    {"source", "destination", "moved", "failed", "skipped", "dry_run", "duplicates_possible"}
)


def move_report(result: Any = None, *, stdout: str | None = None, stderr: str = "") -> dict:
    """The JSON result of a finished move plus its ``notes`` and ``errors`` from stderr."""
    if result is not None:
        stdout, stderr = result.stdout, result.stderr or ""
    assert stdout is not None
    doc: dict[str, Any] = json.loads(stdout)
    assert set(doc) == MOVE_KEYS, sorted(doc)
    lines = stderr.splitlines()
    doc["notes"] = [line[len("note: ") :] for line in lines if line.startswith("note: ")]
    doc["errors"] = [line[len("error: ") :] for line in lines if line.startswith("error: ")]
    return doc
