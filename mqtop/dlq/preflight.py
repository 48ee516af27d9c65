"""Pre-flight of a dead-letter write: the refusals and the question, each worded once.

Every refusal here happens before the broker is asked to change anything, and raises a
:class:`mqtop.kernel.errors.MqtopError` whose exit code the CLI returns and whose words the
dashboard shows.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from collectors.base import BrokerOptions, MessageFilter
from mqtop.audit import AuditLogRefused, refuse_unsafe
from mqtop.config import Config
from mqtop.dlq.selection import SelectionFilter
from mqtop.kernel.errors import SAME_QUEUE, ReadOnlyBroker, UsageError


def readonly_refusal(broker: BrokerOptions, action: str) -> ReadOnlyBroker | None:
    """The refusal of ``action`` on a ``readonly: true`` broker (None when it may write)."""
    if not broker.readonly:
        return None
    return ReadOnlyBroker(
        f"broker {broker.name!r} is configured readonly: {action} refused "
        "(set readonly: false in the config to allow writes)"
    )


def refuse_if_readonly(broker: BrokerOptions, action: str) -> None:
    """Raise ReadOnlyBroker (exit 2) for a write on a ``readonly: true`` broker."""
    refusal = readonly_refusal(broker, action)
    if refusal is not None:
        raise refusal


def _check_appendable(path: Path) -> None:
    """Raise OSError unless appending to ``path`` would work; creates nothing."""
    if path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_APPEND))
        return
    folder = path.parent
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent  # audit() creates the missing folders below this one
    if not folder.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(folder))
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(folder))


def require_audit_log(config: Config) -> None:
    """Refuse (exit 2) a write that could not be audited: every write is appended to the log.

    Checked without creating the file, so a refused or cancelled write leaves no trace.
    """
    path = config.audit_path()
    try:
        refuse_unsafe(path)  # a symbolic link, a FIFO, someone else's file
        _check_appendable(path)
    except AuditLogRefused as exc:
        raise UsageError(f"{exc.message}: nothing was changed") from None
    except OSError as exc:
        raise UsageError(
            f"audit log {path} cannot be written ({exc.strerror or exc}): nothing was changed"
        ) from None


def require_distinct(source: str, destination: str) -> None:
    """Refuse (exit 2) a replay or move onto its own source."""
    if source == destination:
        raise UsageError(SAME_QUEUE)


def how_many(
    count: int | None, limit: int | None = None, msg_filter: MessageFilter | None = None
) -> str:
    """The messages an action takes, as its question says: ``all 7 message(s)``, ``up to 5
    message(s) matching body:x``, ``2 selected message(s)``."""
    if isinstance(msg_filter, SelectionFilter):
        return f"{msg_filter.count} selected message(s)"
    bound = limit if count is None else count if limit is None else min(count, limit)
    matching = f" matching {msg_filter}" if msg_filter is not None else ""
    if bound is None:
        return f"all message(s){matching}"
    if limit is None and msg_filter is None:
        return f"all {bound} message(s)"
    return f"up to {bound} message(s){matching}"


def move_question(mode: str, taken: str, source: str, destination: str, broker: str) -> str:
    """The confirmation question of a replay or move."""
    return f"{mode} {taken} from {source!r} to {destination!r} on broker {broker!r}?"


def purge_question(taken: str, queue: str, broker: str) -> str:
    """The confirmation question of a purge."""
    return f"purge {taken} from {queue!r} on broker {broker!r}? This cannot be undone."
