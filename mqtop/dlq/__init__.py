"""The dead-letter service: the one place where `mqtop dlq` and the dashboard meet the brokers.

Both front ends build a request, hand it to :class:`DeadLetterService` and show what comes
back. The service owns every rule the brokers share: pre-flight of a write (readonly refusal,
an audit log that can be written, source different from destination, the confirmation
question with its count), the audit records (kept copies of a peek, replay / move ok, partial
or error, purge, reclaim) and the broker's declared move options. Brokers implement only
:class:`collectors.base.MessageActions`.
"""

from __future__ import annotations

from mqtop.dlq.preflight import how_many, require_audit_log, require_distinct
from mqtop.dlq.selection import SelectionFilter
from mqtop.dlq.service import (
    DeadLetterService,
    MovePlan,
    Peeked,
    PurgePlan,
    ReclaimPlan,
    open_service,
)

__all__ = [
    "DeadLetterService",
    "MovePlan",
    "Peeked",
    "PurgePlan",
    "ReclaimPlan",
    "SelectionFilter",
    "how_many",
    "open_service",
    "require_audit_log",
    "require_distinct",
]
