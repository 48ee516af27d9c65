"""The audit records of dead-letter actions (one shape for the CLI and the dashboard)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from collectors.base import BrokerOptions, MoveRequest, MoveResult, PeekedMessage
from mqtop.audit import audit
from mqtop.config import Config
from mqtop.engine import describe_error


def _with_via(details: dict[str, Any] | None, via: str | None) -> dict[str, Any] | None:
    if via:
        return {**(details or {}), "via": via}
    return details


def record_kept(
    config: Config,
    broker: BrokerOptions,
    queue: str,
    messages: Sequence[PeekedMessage],
    via: str | None = None,
) -> int:
    """Audit the writes a peek had to make (messages re-published so as not to lose them);
    returns how many."""
    kept = [m.id for m in messages if m.note]
    if kept:
        audit(
            config.audit_path(),
            broker=broker.name,
            action="peek",
            source=queue,
            destination=queue,
            count=len(kept),
            result="ok",
            details=_with_via({"republished": kept[:100], "reason": "delivery limit reached"}, via),
        )
    return len(kept)


def audit_move(
    config: Config,
    broker: BrokerOptions,
    request: MoveRequest,
    result: MoveResult | BaseException,
    via: str | None = None,
) -> None:
    """The audit record of a replay/move: ``ok``, ``partial``, or ``error: ...`` when it raised
    (a dry run only when it had to write)."""
    if isinstance(result, BaseException):
        if not request.dry_run:
            audit_error(
                config,
                broker,
                action=request.mode,
                source=request.source,
                destination=request.destination,
                error=result,
                via=via,
            )
        return
    if request.dry_run and not result.republished:
        return
    details: dict[str, Any] = {
        "failed": result.failed,
        "skipped": result.skipped,
        "filter": str(request.filter) if request.filter else None,
        "duplicates_possible": result.duplicates_possible,
    }
    if result.republished:  # written back to the source so as not to lose them
        details["republished_to_source"] = result.republished
    audit(
        config.audit_path(),
        broker=broker.name,
        action=request.mode,
        source=request.source,
        destination=request.destination,
        count=0 if request.dry_run else result.moved,
        result="dry run" if request.dry_run else "ok" if result.complete else "partial",
        details=_with_via(details, via),
    )


def audit_error(
    config: Config,
    broker: BrokerOptions,
    *,
    action: str,
    source: str,
    destination: str | None,
    error: BaseException,
    via: str | None = None,
) -> None:
    """The audit record of a write that raised (what it did is unknown: count null)."""
    audit(
        config.audit_path(),
        broker=broker.name,
        action=action,
        source=source,
        destination=destination,
        count=None,
        result=f"error: {describe_error(error)}",
        details=_with_via(None, via),
    )


def audit_done(
    config: Config,
    broker: BrokerOptions,
    *,
    action: str,
    source: str,
    destination: str | None,
    count: int | None,
    ok: bool = True,
    via: str | None = None,
) -> None:
    """The audit record of a purge or reclaim that finished (``ok`` or ``partial``)."""
    audit(
        config.audit_path(),
        broker=broker.name,
        action=action,
        source=source,
        destination=destination,
        count=count,
        result="ok" if ok else "partial",
        details=_with_via(None, via),
    )
