"""The SQS native move task: StartMessageMoveTask, followed with ListMessageMoveTasks.

Used for plain replays and moves (no ``--filter``, ``--limit`` or ``--dry-run``). Endpoints
that do not implement it (moto answers HTTP 500) or refuse it (not a DLQ, no permission) make
the move fall back to :mod:`collectors.sqs.mover`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from collectors.base import MoveProgress, MoveRequest, MoveResult, ProgressCallback
from collectors.kit.tally import Tally
from collectors.sqs.client import THROTTLED, describe_aws_error, error_code
from mqtop.kernel.errors import ActionFailed

TASK_POLL = 2.0  # seconds between ListMessageMoveTasks calls
READ_FAILURES = 5  # failed listings in a row before the task is reported unreadable
UNSEEN_POLLS = 30  # listings without the task before it is reported missing
ENDED = ("COMPLETED", "FAILED", "CANCELLED")


def native_unsupported(exc: BaseException) -> bool:
    """True when StartMessageMoveTask failed in a way the fallback can handle."""
    if type(exc).__name__ != "ClientError" and not error_code(exc):
        return False  # network trouble: the fallback would fail the same way
    return error_code(exc) not in THROTTLED


def find_task(
    results: list[dict[str, Any]], handle: str, started_ms: int | None, started: float
) -> dict[str, Any] | None:
    """Our task in a listing: by handle while it runs, then by its start time.

    Only a RUNNING task carries its TaskHandle in the listing; once it has ended it is found
    by its StartedTimestamp, remembered while it ran (or the newest task started after us).
    """
    for candidate in results:
        if handle and candidate.get("TaskHandle") == handle:
            return candidate
        if started_ms is not None and candidate.get("StartedTimestamp") == started_ms:
            return candidate
    if started_ms is None:
        later = [c for c in results if int(c.get("StartedTimestamp", 0)) >= started * 1000 - 5000]
        return later[0] if later else None
    return None


def task_result(request: MoveRequest, task: dict[str, Any]) -> MoveResult:
    """The result of an ended task (its counts are approximate)."""
    moved = int(task.get("ApproximateNumberOfMessagesMoved", 0))
    total_raw = task.get("ApproximateNumberOfMessagesToMove")
    tally = Tally(total=None if total_raw is None else int(total_raw), moved=moved)
    status = str(task.get("Status"))
    if status != "COMPLETED":
        failed = max(0, (tally.total or 0) - moved) or (1 if status == "FAILED" else 0)
        tally.fail(failed, f"move task {status.lower()}: {task.get('FailureReason') or status}")
    tally.note(
        "moved by the SQS native move task (StartMessageMoveTask); counts are approximate "
        "and no replay attribute is added"
    )
    return tally.result(request.source, request.destination, dry_run=False)


async def follow_move_task(
    list_tasks: Callable[[], Awaitable[Any]],
    cancel: Callable[[], Awaitable[Any]],
    *,
    request: MoveRequest,
    handle: str,
    started: float,
    progress: ProgressCallback,
    poll: float | None = None,
) -> MoveResult:
    """Follow a started move task with ListMessageMoveTasks until it ends."""
    poll = TASK_POLL if poll is None else poll
    started_ms: int | None = None
    failures = unseen = 0
    try:
        while True:
            try:
                results = list((await list_tasks()).get("Results", []))
                failures = 0
            except Exception as exc:
                failures += 1
                if failures >= READ_FAILURES:
                    raise ActionFailed(
                        f"move task {handle or '?'} runs on the server but its progress cannot "
                        f"be read: {describe_aws_error(exc)}"
                    ) from None
                await asyncio.sleep(poll)
                continue
            task = find_task(results, handle, started_ms, started)
            if task is not None:
                if started_ms is None and task.get("StartedTimestamp") is not None:
                    started_ms = int(task["StartedTimestamp"])
                moved = int(task.get("ApproximateNumberOfMessagesMoved", 0))
                total = task.get("ApproximateNumberOfMessagesToMove")
                progress(MoveProgress(done=moved, total=None if total is None else int(total)))
                if task.get("Status") in ENDED:
                    return task_result(request, task)
            else:
                unseen += 1
                if unseen >= UNSEEN_POLLS:
                    raise ActionFailed(
                        f"move task {handle or '?'} was started but ListMessageMoveTasks does "
                        "not show it"
                    )
            await asyncio.sleep(poll)
    except asyncio.CancelledError:
        # interrupted: stop the server-side task (what it moved stays moved)
        with contextlib.suppress(Exception):
            await asyncio.shield(cancel())
        raise
