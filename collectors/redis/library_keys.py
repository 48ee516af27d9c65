"""Keys the job libraries keep for themselves: the Redis collector never shows them as queues.

Matched only against keys found by a glob (``lists: ["*"]``); a key named literally in the
config is always shown.
"""

from __future__ import annotations

import re

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
