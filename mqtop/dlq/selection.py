"""A selection of peeked messages as a move filter (the dashboard's "move these")."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from collectors.base import PeekedMessage


class SelectionFilter:
    """Matches the messages an operator selected, by the SHA-256 of their body.

    Brokers apply ``MoveRequest.filter`` to every message they visit, so a selection works on
    every broker without broker-specific support. Messages with byte-identical bodies are
    interchangeable: the move is also limited to the number selected.
    """

    def __init__(self, messages: Iterable[PeekedMessage]) -> None:
        chosen = list(messages)
        self.count = len(chosen)
        self.digests = frozenset(hashlib.sha256(m.body).digest() for m in chosen)
        # brokers may key resumable jobs on str(filter): two selections must never look alike
        self.fingerprint = hashlib.sha256(b"".join(sorted(self.digests))).hexdigest()[:12]

    def matches(
        self, body: bytes, headers: Mapping[str, Any], timestamp: float | None = None
    ) -> bool:
        """True when the body is one of the selected ones."""
        return hashlib.sha256(body).digest() in self.digests

    def __str__(self) -> str:
        return f"{self.count} selected message(s) #{self.fingerprint}"
