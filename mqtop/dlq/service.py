"""One broker's dead-letter actions with every shared rule applied (CLI and dashboard alike)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from collectors.base import (
    BrokerOptions,
    MessageActions,
    MessageFilter,
    MessageRepublish,
    MoveOptions,
    MoveRequest,
    MoveResult,
    PeekedMessage,
    ProgressCallback,
    ReclaimRequest,
    RepublishRequest,
    RepublishResult,
    StreamReclaim,
)
from collectors.kit.options import OptionSpec, build_move_options, option_specs
from mqtop.config import Config
from mqtop.dlq.preflight import (
    how_many,
    move_question,
    purge_question,
    refuse_if_readonly,
    require_audit_log,
    require_distinct,
)
from mqtop.dlq.records import AuditTrail
from mqtop.dlq.reviewed import (
    MISSING,
    EditPlan,
    SelectionPlan,
    message_digest,
    republish_each,
    selection_fingerprint,
)
from mqtop.dlq.selection import SelectionFilter
from mqtop.engine import describe_error
from mqtop.kernel.durations import humanize_seconds
from mqtop.kernel.errors import ActionFailed, MqtopError, UnsupportedAction, UsageError
from mqtop.registry import get_plugin

Mode = Literal["replay", "move"]


@dataclass(frozen=True, slots=True)
class Peeked:
    """Messages read without consuming them, and how many had to be re-published (audited)."""

    messages: list[PeekedMessage]
    kept: int


@dataclass(frozen=True, slots=True)
class MovePlan:
    """A replay or move that passed pre-flight: the request and the question to confirm it."""

    request: MoveRequest
    count: int | None  # messages in the source when planned (None: unknown or a dry run)
    taken: str  # "all 7 message(s)", "2 selected message(s)"...
    question: str

    def with_options(self, options: MoveOptions) -> MovePlan:
        """The same plan with the broker's move options set."""
        return replace(self, request=replace(self.request, options=options))


@dataclass(frozen=True, slots=True)
class PurgePlan:
    """A purge that passed pre-flight."""

    queue: str
    count: int | None
    taken: str
    question: str


@dataclass(frozen=True, slots=True)
class ReclaimPlan:
    """A reclaim that passed pre-flight (``question`` is None when it writes nothing)."""

    request: ReclaimRequest
    question: str | None

    @property
    def writes(self) -> bool:
        """True when the reclaim changes the stream (not a dry run, not a listing)."""
        return self.question is not None


class DeadLetterService:
    """Peek / replay / move / purge / reclaim on one broker, with the shared rules applied.

    ``via`` names the front end in the audit records (the dashboard's are marked).
    """

    def __init__(
        self,
        config: Config,
        broker: BrokerOptions,
        actions: MessageActions,
        *,
        via: str | None = None,
    ) -> None:
        self.config = config
        self.broker = broker
        self.actions = actions
        self.trail = AuditTrail(config, broker, via)

    # -- pre-flight ---------------------------------------------------------------------

    def check_write(self, action: str) -> None:
        """Refuse a write before anything is asked or changed: readonly, audit log."""
        refuse_if_readonly(self.broker, action)
        require_audit_log(self.config)

    def move_option_model(self) -> type[MoveOptions]:
        """The move options this broker's plugin declares."""
        return get_plugin(self.broker.type).move_options

    def option_specs(self) -> list[OptionSpec]:
        """This broker's move options, as inputs to offer."""
        return option_specs({self.broker.type: self.move_option_model()})

    def move_options(self, given: Mapping[str, Any]) -> MoveOptions:
        """The options given, checked against the broker's declaration (UsageError, exit 2)."""
        return build_move_options(self.move_option_model(), given, self.broker.type)

    # -- peek ---------------------------------------------------------------------------

    async def peek_warning(self, queue: str) -> str | None:
        """A side effect of peeking ``queue`` to announce first, if any."""
        return await self.actions.peek_warning(queue)

    async def peek(self, queue: str, count: int) -> Peeked:
        """Up to ``count`` messages; copies a broker had to re-publish are audited."""
        messages = await self.actions.peek(queue, count)
        kept = self.trail.record_kept(queue, messages)
        return Peeked(list(messages), kept)

    async def count(self, queue: str) -> int | None:
        """Messages in ``queue`` (None when unknown)."""
        return await self.actions.count(queue)

    async def replay_target(self, queue: str) -> str | None:
        """Where the dead letters of ``queue`` came from, when the broker can tell."""
        return await self.actions.replay_target(queue)

    # -- replay / move ------------------------------------------------------------------

    async def plan_move(
        self,
        mode: Mode,
        source: str,
        destination: str | None = None,
        *,
        limit: int | None = None,
        msg_filter: MessageFilter | None = None,
        selected: Sequence[PeekedMessage] = (),
        dry_run: bool = False,
        options: MoveOptions | None = None,
    ) -> MovePlan:
        """Pre-flight of a replay or move; ``destination`` None replays to the origin.

        ``selected`` limits the move to those peeked messages (the dashboard's selection).
        """
        if selected:
            limit, msg_filter = len(selected), SelectionFilter(selected)
        if not dry_run:
            self.check_write(mode)
        if destination is None:
            destination = await self.actions.replay_target(source)
            if not destination:
                raise UsageError(
                    f"cannot tell which queue the messages in {source!r} came from: use --to QUEUE"
                )
        require_distinct(source, destination)
        request = MoveRequest(
            source=source,
            destination=destination,
            mode=mode,
            limit=limit,
            filter=msg_filter,
            dry_run=dry_run,
            options=options if options is not None else MoveOptions(),
        )
        count = None if dry_run else await self.actions.count(source)
        taken = how_many(count, limit, msg_filter)
        question = move_question(mode, taken, source, destination, self.broker.name)
        return MovePlan(request, count, taken, question)

    async def move(self, plan: MovePlan, progress: ProgressCallback) -> MoveResult:
        """Run a planned replay or move; audited ``ok``, ``partial`` or ``error``."""
        request = plan.request
        try:
            result = await self.actions.move(request, progress)
        except Exception as exc:
            self.trail.audit_move(request, exc)
            if isinstance(exc, MqtopError):
                raise
            raise ActionFailed(f"{request.mode} failed: {describe_error(exc)}") from None
        self.trail.audit_move(request, result)
        return result

    # -- reviewed messages: a selection by id, an edited message ------------------------

    @property
    def semantics(self) -> Literal["move", "copy"]:
        """``move`` (published, confirmed, then removed) or ``copy`` (the source keeps them)."""
        return get_plugin(self.broker.type).move_semantics

    async def plan_selection(
        self, mode: Mode, source: str, destination: str, messages: Sequence[PeekedMessage]
    ) -> SelectionPlan:
        """Pre-flight of a replay / move of exactly these reviewed messages."""
        self.check_write(mode)
        require_distinct(source, destination)
        chosen = tuple(messages)
        exact = isinstance(self.actions, MessageRepublish)
        plan = SelectionPlan(
            mode, source, destination, chosen, selection_fingerprint(chosen), exact, ""
        )
        question = move_question(mode, plan.taken, source, destination, self.broker.name)
        return replace(plan, question=question)

    async def move_selection(self, plan: SelectionPlan, progress: ProgressCallback) -> MoveResult:
        """Run it: by id where the broker can, else as a body-matching selection; audited."""
        details: dict[str, Any] = {
            "selection": plan.fingerprint,
            "ids": [m.id for m in plan.messages[:100]],
            "matched": "by id" if plan.by_id else "by body",
        }
        if not isinstance(self.actions, MessageRepublish):
            fallback = await self.plan_move(
                plan.mode, plan.source, plan.destination, selected=plan.messages
            )
            return await self.move(fallback, progress)
        try:
            result, missing = await republish_each(self.actions, plan, progress)
        except Exception as exc:
            self.trail.audit_selection(plan.mode, plan.source, plan.destination, details, exc)
            raise ActionFailed(f"{plan.mode} failed: {describe_error(exc)}") from None
        if missing:
            details["missing"] = missing[:100]
        self.trail.audit_selection(plan.mode, plan.source, plan.destination, details, result)
        return result

    async def plan_edit(
        self,
        source: str,
        destination: str,
        original: PeekedMessage,
        body: bytes,
        headers: Mapping[str, Any],
    ) -> EditPlan:
        """Pre-flight of replaying an edited copy of one message (the original is removed)."""
        self.check_write("replay")
        require_distinct(source, destination)
        if not isinstance(self.actions, MessageRepublish):
            raise UnsupportedAction(
                f"editing before replay is not available for {self.broker.type} brokers in "
                "this version: replay the message as it is, or publish a corrected copy yourself"
            )
        before = message_digest(original.body, original.headers)
        after = message_digest(body, headers)
        question = (
            f"replay an edited copy of message {original.id!r} from {source!r} to "
            f"{destination!r} on broker {self.broker.name!r}, then remove the original?"
        )
        return EditPlan(source, destination, original, body, headers, before, after, question)

    async def replay_edited(self, plan: EditPlan) -> RepublishResult:
        """Publish the edited copy (confirmed), then remove the original; audited with the
        hashes of before and after."""
        actions = self.actions
        if not isinstance(actions, MessageRepublish):
            raise UnsupportedAction(f"broker {self.broker.name!r} cannot republish one message")
        request = RepublishRequest(
            plan.source, plan.destination, plan.original, plan.body, plan.headers, "replay"
        )
        details: dict[str, Any] = {
            "edited": True,
            "id": plan.original.id,
            "before_sha256": plan.before,
            "after_sha256": plan.after,
        }
        try:
            outcome = await actions.republish(request)
        except Exception as exc:
            self.trail.audit_error("replay", plan.source, plan.destination, exc, details=details)
            if isinstance(exc, MqtopError):
                raise
            raise ActionFailed(f"replay failed: {describe_error(exc)}") from None
        if not outcome.published:
            details["missing"] = outcome.note or MISSING
        self.trail.audit_done(
            "replay",
            plan.source,
            plan.destination,
            1 if outcome.published else 0,
            ok=outcome.published == outcome.removed,
            details=details,
        )
        return outcome

    # -- purge --------------------------------------------------------------------------

    async def plan_purge(self, queue: str) -> PurgePlan:
        """Pre-flight of a purge."""
        self.check_write("purge")
        count = await self.actions.count(queue)
        taken = how_many(count)
        return PurgePlan(queue, count, taken, purge_question(taken, queue, self.broker.name))

    async def purge(self, plan: PurgePlan) -> int | None:
        """Run a planned purge; audited. Returns how many were deleted, when known."""
        try:
            purged = await self.actions.purge(plan.queue)
        except Exception as exc:
            self.trail.audit_error("purge", plan.queue, None, exc)
            if isinstance(exc, MqtopError):
                raise
            raise ActionFailed(f"purge failed: {describe_error(exc)}") from None
        self.trail.audit_done("purge", plan.queue, None, purged, ok=True)
        return purged

    # -- reclaim (Redis streams) --------------------------------------------------------

    def plan_reclaim(self, request: ReclaimRequest) -> ReclaimPlan:
        """Pre-flight of a reclaim (listing stuck entries writes nothing and is always allowed)."""
        if not isinstance(self.actions, StreamReclaim):
            raise UnsupportedAction(
                f"reclaim is for Redis streams; broker {self.broker.name!r} is {self.broker.type}"
            )
        if request.dry_run or not (request.to_stream or request.consumer):
            return ReclaimPlan(request, None)
        self.check_write("reclaim")
        target = (
            f"to stream {request.to_stream!r}"
            if request.to_stream
            else f"to consumer {request.consumer!r}"
        )
        question = (
            f"reclaim entries of {request.stream!r} group {request.group!r} idle > "
            f"{humanize_seconds(request.idle)} {target}?"
        )
        return ReclaimPlan(request, question)

    async def reclaim(self, plan: ReclaimPlan) -> dict[str, Any]:
        """Run a planned reclaim; a write is audited. Returns the broker's JSON-able report."""
        actions = self.actions
        if not isinstance(actions, StreamReclaim):
            raise UnsupportedAction(f"broker {self.broker.name!r} cannot reclaim")
        request = plan.request
        destination = request.to_stream or f"consumer:{request.consumer}"
        try:
            report = await actions.reclaim(request)
        except Exception as exc:
            if plan.writes:
                self.trail.audit_error("reclaim", request.stream, destination, exc)
            raise
        if plan.writes:
            count = int(report.get("moved", report.get("claimed", 0)) or 0)
            ok = not report.get("failed")
            self.trail.audit_done("reclaim", request.stream, destination, count, ok=ok)
        return report


@contextlib.asynccontextmanager
async def open_service(
    config: Config, broker: BrokerOptions, via: str | None = None
) -> AsyncIterator[DeadLetterService]:
    """A service on a fresh collector of ``broker`` (closed after); what the broker's client
    libraries raise becomes one line naming the broker (ActionFailed, exit 3)."""
    collector = get_plugin(broker.type).create(broker)
    actions = collector.actions()
    if actions is None:
        raise UnsupportedAction(
            f"broker {broker.name!r} ({broker.type}) has no message actions in this version"
        )
    try:
        yield DeadLetterService(config, broker, actions, via=via)
    except MqtopError:
        raise
    except Exception as exc:
        # pika's ProbableAuthenticationError, botocore's ClientError...: one line, exit 3
        if os.environ.get("MQTOP_DEBUG"):
            raise
        raise ActionFailed(
            f"broker {broker.name!r} ({broker.address()}): {describe_error(exc)}"
        ) from None
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(actions.close(), 10)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(collector.close(), 10)
