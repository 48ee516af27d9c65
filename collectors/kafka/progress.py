"""The consumer groups that keep the progress of mqtop's replays, and their commit markers.

Kafka cannot delete single records, so a replay "takes" records from its source by advancing a
group owned by mqtop on it: ``mqtop-replay.<source>><destination>`` (plus ``#<hash>`` of the
filter). The collector reads the unfiltered ones back: records before their position have been
copied, so they are handled (see :mod:`collectors.kafka.backlog`).
"""

from __future__ import annotations

import hashlib

from collectors.base import MessageFilter

PREFIX = "mqtop-replay."
INFLIGHT = "mqtop-replay inflight "
DONE = "mqtop-replay done"


def replay_group(source: str, destination: str, message_filter: MessageFilter | None) -> str:
    """The consumer group keeping the progress of one replay job (source, destination, filter)."""
    name = f"{PREFIX}{source}>{destination}"
    if message_filter is not None:
        digest = hashlib.sha256(str(message_filter).encode()).hexdigest()[:8]
        name += f"#{digest}"
    return name


def replayed_source(group: str) -> str | None:
    """The source topic of an unfiltered replay job's group, else None.

    A filtered job's position also passes the records its filter skipped (they were not
    copied), so only unfiltered jobs say that every record before their position is handled.
    Topic names cannot hold ``>`` or ``#``, so the name parses without ambiguity.
    """
    if not group.startswith(PREFIX) or "#" in group:
        return None
    source, sep, destination = group[len(PREFIX) :].partition(">")
    return source if sep and source and destination else None
