"""Moves across Redis Cluster hash slots: add first, remove after, with a journal in Redis.

A script can only touch keys of one slot. Across slots, messages are added to the destination
before they are removed from the source (a crash can duplicate, never lose). A small journal
key in the source's slot holds the batch in flight, so the next run can say how many messages
an interrupted run may have duplicated. (This journal lives in Redis, not in a file: it is
written and dropped in the same slot as the source, by the same scripts that remove.)
"""

from __future__ import annotations

import json

from collectors.kit.tally import Tally
from collectors.redis.client import RedisSession, hash_tag, key_slot
from collectors.redis.codecs import now_iso

JOURNAL_PREFIX = b"mqtop:journal:"


def journal_key(source: bytes) -> bytes | None:
    """A key in the same cluster slot as ``source`` for the cross-slot journal."""
    key = JOURNAL_PREFIX + b"{" + hash_tag(source) + b"}"
    return key if key_slot(key) == key_slot(source) else None


async def check_journal(
    session: RedisSession, source: bytes, labels: tuple[str, str], tally: Tally
) -> bytes | None:
    """Report an interrupted earlier run (its batch may be duplicated); return the journal key."""
    src_label, dst_label = labels
    key = journal_key(source)
    tally.note(
        f"{src_label} and {dst_label} are in different cluster slots: "
        "messages are added to the destination before being removed from the source, "
        "so an interruption can duplicate up to one batch (never lose)"
    )
    if key is None:
        return None
    raw = await session.r.get(key)
    if raw:
        try:
            info = json.loads(raw)
            count = int(info.get("count", 0))
        except (ValueError, TypeError, AttributeError):
            count = 0
        tally.duplicates += count
        tally.note(
            f"an earlier run was interrupted with {count} message(s) in flight: they may "
            "now be in the destination twice"
        )
    return key


async def write_journal(
    session: RedisSession, key: bytes | None, action: str, destination: str, count: int
) -> None:
    """Record the batch about to be added (dropped by the script that removes it)."""
    if key is not None:
        record = {"action": action, "destination": destination, "count": count, "time": now_iso()}
        await session.r.set(key, json.dumps(record))


__all__ = ["JOURNAL_PREFIX", "check_journal", "journal_key", "write_journal"]
