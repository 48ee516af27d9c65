"""Append-only audit log of every write action (JSON lines).

The log is opened without following a symbolic link (``O_NOFOLLOW``) and must be a regular file
owned by the user running mqtop: a link or a planted file in a shared directory would otherwise
let someone else choose which file mqtop appends to. Such a log is refused with
:class:`AuditLogRefused` (a usage error, exit 2).
"""

from __future__ import annotations

import datetime as dt
import errno
import getpass
import os
import socket
import stat
from pathlib import Path
from typing import Any

from mqtop.kernel.errors import UsageError
from mqtop.kernel.safe import strict_json
from mqtop.kernel.secrets import redact_obj

_FLAGS = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_APPEND
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NONBLOCK", 0)  # a FIFO planted there must not block the write forever
)


class AuditLogRefused(UsageError):
    """The audit log path is a symbolic link, not a regular file, or not the user's."""


def current_user() -> str:
    """Who is acting: the login name, with the host."""
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry (containers)
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return f"{user}@{socket.gethostname()}"


def _link(path: Path) -> AuditLogRefused:
    return AuditLogRefused(
        f"audit log {path} is a symbolic link: mqtop does not write through links "
        "(point audit_log at the file itself)"
    )


def _refuse(path: Path, info: os.stat_result) -> None:
    """Raise AuditLogRefused unless ``info`` is a regular file of the user running mqtop."""
    if stat.S_ISLNK(info.st_mode):
        raise _link(path)
    if not stat.S_ISREG(info.st_mode):
        raise AuditLogRefused(f"audit log {path} is not a regular file")
    me = os.geteuid()
    if info.st_uid != me:
        raise AuditLogRefused(
            f"audit log {path} is owned by uid {info.st_uid}, not by the user running "
            f"mqtop (uid {me}): refusing to append to someone else's file"
        )


def refuse_unsafe(path: Path) -> None:
    """Raise AuditLogRefused when the log is a symbolic link (dangling or not), not a regular
    file, or someone else's file; creates nothing (a pre-flight before a write)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return  # created 0600 by the first record
    if stat.S_ISDIR(info.st_mode):
        return  # opening it fails with the system's own words ("Is a directory")
    _refuse(path, info)


def open_log(path: Path) -> int:
    """Open the audit log for appending (created 0600 if missing); refuse a symbolic link,
    anything but a regular file, and a file owned by another user."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, _FLAGS, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _link(path) from None
        if exc.errno == errno.ENXIO:  # a FIFO without a reader
            raise AuditLogRefused(f"audit log {path} is not a regular file") from None
        raise
    try:
        _refuse(path, os.fstat(fd))  # the file opened, not whatever the path names by now
    except BaseException:
        os.close(fd)
        raise
    return fd


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
    line = strict_json(record) + "\n"
    # O_APPEND keeps concurrent writers from interleaving within a line
    fd = open_log(path)
    try:
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)
    return record
