"""Append-only audit log of every write action (JSON lines)."""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import socket
from pathlib import Path
from typing import Any

from mqtop.kernel.secrets import redact_obj


def current_user() -> str:
    """Who is acting: the login name, with the host."""
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry (containers)
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return f"{user}@{socket.gethostname()}"


def audit(
    path: Path,
    *,
    broker: str,
    action: str,
    source: str | None,
    destination: str | None,
    count: int | None,
    result: str,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Append one record (time, user, broker, action, source, destination, count, result)."""
    record: dict[str, Any] = {
        "time": dt.datetime.now(tz=dt.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "user": current_user(),
        "broker": broker,
        "action": action,
        "source": source,
        "destination": destination,
        "count": count,
        "result": result,
    }
    if details:
        record["details"] = details
    record = redact_obj(record)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, ensure_ascii=True, default=str) + "\n"
    # O_APPEND keeps concurrent writers from interleaving within a line
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)
    return record
