"""The audit records of dead-letter actions (one shape for the CLI and the dashboard)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from collectors.base import BrokerOptions, MoveRequest, MoveResult, PeekedMessage
from mqtop.audit import audit
from mqtop.config import Config
from mqtop.engine import describe_error


class AuditTrail:
    """Appends the records of one broker's dead-letter actions to the audit log.

    ``via`` names the front end in each record's details (the dashboard's are marked).
    """

    def __init__(self, config: Config, broker: BrokerOptions, via: str | None = None) -> None:
        self.config = config
        self.broker = broker
        self.via = via

    def _record(
        self,
        action: str,
        source: str,
        destination: str | None,
        count: int | None,
        result: str,
        *,
        details: dict[str, Any] | None = None,
    ) -> None:
        if self.via:
            details = {**(details or {}), "via": self.via}
        audit(
            self.config.audit_path(),
            broker=self.broker.name,
            action=action,
            source=source,
            destination=destination,
            count=count,
            result=result,
            details=details,
        )

    def record_kept(self, queue: str, messages: Sequence[PeekedMessage]) -> int:
        """Audit the writes a peek had to make (messages re-published so as not to lose
        them); returns how many."""
        kept = [m.id for m in messages if m.note]
        if kept:
            details = {"republished": kept[:100], "reason": "delivery limit reached"}
            self._record("peek", queue, queue, len(kept), "ok", details=details)
        return len(kept)

    def audit_move(self, request: MoveRequest, outcome: MoveResult | BaseException) -> None:
        """The record of a replay/move: ``ok``, ``partial``, or ``error: ...`` when it raised
        (a dry run only when it had to write)."""
        if isinstance(outcome, BaseException):
            if not request.dry_run:
                self.audit_error(request.mode, request.source, request.destination, outcome)
            return
        if request.dry_run and not outcome.republished:
            return
        details: dict[str, Any] = {
            "failed": outcome.failed,
            "skipped": outcome.skipped,
            "filter": str(request.filter) if request.filter else None,
            "duplicates_possible": outcome.duplicates_possible,
        }
        if outcome.republished:  # written back to the source so as not to lose them
            details["republished_to_source"] = outcome.republished
        # the operator interrupted it (a signal set the request's stop flag): it stopped part-way
        interrupted = request.stop is not None and request.stop.is_set()
        if interrupted:
            details["interrupted"] = True
        complete = outcome.complete and not interrupted
        result = "dry run" if request.dry_run else "ok" if complete else "partial"
        count = 0 if request.dry_run else outcome.moved
        self._record(
            request.mode, request.source, request.destination, count, result, details=details
        )

    def audit_selection(
        self, mode: str, source: str, destination: str, details: dict[str, Any], result: Any
    ) -> None:
        """The record of a replay / move of reviewed messages (``result``: a MoveResult, or
        the exception it raised)."""
        if isinstance(result, BaseException):
            self._record(
                mode,
                source,
                destination,
                None,
                f"error: {describe_error(result)}",
                details=details,
            )
            return
        details = {
            **details,
            "failed": result.failed,
            "skipped": result.skipped,
            "duplicates_possible": result.duplicates_possible,
        }
        outcome = "ok" if result.complete else "partial"
        self._record(mode, source, destination, result.moved, outcome, details=details)

    def audit_error(
        self,
        action: str,
        source: str,
        destination: str | None,
        error: BaseException,
        *,
        details: dict[str, Any] | None = None,
    ) -> None:
        """The record of a write that raised (what it did is unknown: count null)."""
        result = f"error: {describe_error(error)}"
        self._record(action, source, destination, None, result, details=details)

    def audit_done(
        self,
        action: str,
        source: str,
        destination: str | None,
        count: int | None,
        *,
        ok: bool,
        details: dict[str, Any] | None = None,
    ) -> None:
        """The record of a purge, reclaim or edited replay that finished (``ok``/``partial``)."""
        self._record(action, source, destination, count, "ok" if ok else "partial", details=details)
