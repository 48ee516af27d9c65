"""Keys the job libraries keep for themselves: the Redis collector never shows them as queues.

Matched only against keys found by a glob (``lists: ["*"]``); a key named literally in the
config is always shown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# (key type, pattern): what each library writes that looks like a queue but is not one
_INTERNAL: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("stream", re.compile(r"rq:results:.+")),  # RQ: one results stream per job
    ("list", re.compile(r"rq:queue:.+:intermediate")),  # RQ: taken, not yet started
    ("stream", re.compile(r"bull:[^:]+:events")),  # BullMQ: the event log, trimmed ~10,000
    ("list", re.compile(r"bull:[^:]+:active")),  # BullMQ: jobs running, not waiting
    ("list", re.compile(r"bull:[^:]+:\S+:(logs|dependencies)")),  # BullMQ: per-job lists
    ("list", re.compile(r".+\.reply\.celery\.pidbox")),  # Celery: remote-control replies
    ("list", re.compile(r"[^:]+:\d+:[0-9a-f]{12}-signals")),  # Sidekiq: a process's signals
)


def is_library_internal(key: str, key_type: str) -> bool:
    """True when ``key`` (a ``list`` or ``stream``) is a job library's bookkeeping."""
    return any(kind == key_type and pattern.fullmatch(key) for kind, pattern in _INTERNAL)


# kombu (Celery's Redis transport) keeps priority N > 0 of queue Q in the list ``Q\x06\x16N``
_PRIORITY_LIST = re.compile(r"(.+)\x06\x16(\d+)", re.DOTALL)


def celery_priority_groups(
    names: Iterable[str], literal: Iterable[str] = ()
) -> dict[str, list[tuple[int, str]]]:
    """Lists shown as one queue: each name -> its (priority, list) members, priority 0 first.

    kombu's priority sub-queues (``Q\x06\x16N``) found by a glob are folded into their queue
    ``Q``, whether or not ``Q``'s own list (priority 0) exists at the moment; a name the config
    spells out (``literal``) stays a queue of its own.
    """
    spelled = set(literal)
    groups: dict[str, list[tuple[int, str]]] = {}
    for name in names:
        match = None if name in spelled else _PRIORITY_LIST.fullmatch(name)
        if match is None:
            groups.setdefault(name, []).append((0, name))
        else:
            groups.setdefault(match.group(1), []).append((int(match.group(2)), name))
    for members in groups.values():
        members.sort()
    return groups
