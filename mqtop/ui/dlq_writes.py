"""The DLQ browser's writes: replay / move (reviewed messages by id, or the whole queue),
edit before replay, purge and export. Each is refused or asked first, in the dead-letter
service's words, and run through it (audited, confirm-before-remove)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Literal

from rich.text import Text
from textual import work
from textual.message import Message
from textual.widgets import Label, ProgressBar, Static

from collectors.base import MoveProgress, MoveResult, PeekedMessage
from mqtop.dlq import DeadLetterService, MovePlan
from mqtop.dlq.export import export_jsonl
from mqtop.dlq.reviewed import SelectionPlan
from mqtop.dlq.wording import outcome, what_happens
from mqtop.engine import describe_error
from mqtop.kernel.errors import MqtopError
from mqtop.kernel.safe import safe_text
from mqtop.ui.base import DashboardScreen
from mqtop.ui.dlq_edit import edit_document, parse_document
from mqtop.ui.modals import ConfirmModal, DestinationPicker, MoveConfirm, TextPrompt

Mode = Literal["replay", "move"]


class DlqWrites(DashboardScreen):
    """The write half of the DLQ browser (the list half is :class:`mqtop.ui.dlq.DlqScreen`)."""

    class Progressed(Message):
        """A running move reported progress (posted from any thread)."""

        def __init__(self, progress: MoveProgress) -> None:
            super().__init__()
            self.progress = progress

    def __init__(self, broker: str, queue: str) -> None:
        super().__init__()
        self.broker_name = broker
        self.queue = queue
        self.messages: list[PeekedMessage] = []
        self.selected: set[int] = set()
        self.running: str | None = None
        self.last_result: MoveResult | None = None
        self.last_words: str = ""  # the last result as shown (tests read it)
        self.refusal: MqtopError | None = None  # last write refused or failed (CLI words)
        self._service: DeadLetterService | None = None
        self._reason: str | None = None

    @property
    def busy(self) -> str | None:
        """The write running here, if any (quitting asks first)."""
        return self.running

    # what the list half provides
    def target(self) -> str | None:
        """Where a replay goes."""
        raise NotImplementedError

    def selected_messages(self) -> list[PeekedMessage]:
        """The selected messages."""
        raise NotImplementedError

    def shown_messages(self) -> list[PeekedMessage]:
        """The messages the list shows."""
        raise NotImplementedError

    def filtered(self) -> bool:
        """True when the list shows part of what was peeked."""
        raise NotImplementedError

    def cursor_index(self) -> int | None:
        """The message under the cursor."""
        raise NotImplementedError

    def load(self, keep_selection: bool = False) -> object:
        """Peek again (a worker)."""
        raise NotImplementedError

    # -- entry points ------------------------------------------------------------------

    def action_replay(self) -> None:
        """Replay the selection; with none, ask (the shown messages, or the whole queue)."""
        self._write("replay")

    def action_move(self) -> None:
        """Move the selection (or, asked clearly, every message) to a chosen queue."""
        self._write("move")

    def action_purge(self) -> None:
        """Delete every message of the queue."""
        self._write("purge")

    def action_edit(self) -> None:
        """Edit the message under the cursor, then replay the edited copy."""
        index = self.cursor_index()
        if index is None:
            self.notify("point at a message first", severity="warning")
            return
        self.edit_message(self.messages[index])

    def replay_messages(self, messages: list[PeekedMessage], what: str) -> None:
        """Replay exactly these messages (from the viewer: "this message")."""
        self._write("replay", messages, what)

    def _refused(self, exc: MqtopError, what: str | None = None) -> None:
        """Show a refusal or failure in the CLI's words (the CLI prints ``mqtop: <words>``)."""
        self.refusal = exc
        head = f"{what} failed: " if what else ""
        self.show_result(Text(f"✖ {head}{safe_text(exc.message, 300)}", "red"))
        self.notify(safe_text(exc.message, 200), severity="error")

    @work(exclusive=True, group="dlq-write")
    async def _write(
        self,
        mode: Literal["replay", "move", "purge"],
        chosen: list[PeekedMessage] | None = None,
        what: str | None = None,
    ) -> None:
        service = self._service
        if service is None:
            self.notify(self._reason or "no message actions", severity="warning")
            return
        if self.running is not None:
            return
        self.refusal = None
        try:
            # refused before anything is asked, as `mqtop dlq` refuses before it asks
            service.check_write(mode)
            if mode == "purge":
                await self._purge(service)
            else:
                await self._move(service, mode, chosen, what)
        except MqtopError as exc:
            self._refused(exc)
        except Exception as exc:  # a broker call of the pre-flight (count, ...) failed
            self.show_result(Text(f"✖ {mode}: {safe_text(describe_error(exc), 300)}", "red"))

    # -- replay / move -----------------------------------------------------------------

    async def _destination(self, mode: Mode) -> str | None:
        destination = self.target() if mode == "replay" else None
        if destination is None:
            candidates = sorted(
                {v.key.queue for v in self.host.data.views if v.key.broker == self.broker_name}
            )
            destination = await self.app.push_screen_wait(DestinationPicker(self.queue, candidates))
        return destination

    async def _move(
        self,
        service: DeadLetterService,
        mode: Mode,
        chosen: list[PeekedMessage] | None,
        what: str | None,
    ) -> None:
        if chosen is None:
            chosen = self.selected_messages()
            what = f"{len(chosen)} selected"
            if not chosen and self.filtered():
                chosen = self.shown_messages()
                what = f"the {len(chosen)} shown"
        destination = await self._destination(mode)
        if destination is None:
            return
        if chosen:
            plan = await service.plan_selection(mode, self.queue, destination, chosen)
            if await self._confirm_selection(service, plan, what or ""):
                await self._run_selection(service, plan)
            return
        whole = await service.plan_move(mode, self.queue, destination)
        await self._confirm_whole(service, whole)

    def _move_body(self, service: DeadLetterService, head: Text, destination: str) -> Text:
        body = head
        body.append("from   ", "dim")
        body.append(safe_text(self.queue, 120) + "\n", "bold")
        body.append("to     ", "dim")
        body.append(safe_text(destination, 120) + "\n", "bold green")
        body.append(f"on broker {safe_text(self.broker_name, 40)}\n\n")
        body.append(what_happens(service.semantics, self.queue), "dim")
        return body

    async def _confirm_selection(
        self, service: DeadLetterService, plan: SelectionPlan, what: str
    ) -> bool:
        verb = plan.mode.capitalize()
        head = Text()
        if what.startswith("the "):
            head.append("Nothing is selected: this takes the messages the list shows.\n", "yellow")
        head.append(f"{verb} {what} message(s)\n", "bold")
        head.append(f"{len(plan.messages)} message(s) · set #{plan.fingerprint}\n", "bold cyan")
        if plan.by_id:
            head.append(
                "Exactly these messages, found by id; one that left the queue meanwhile is "
                "reported, never replaced by another.\n",
                "dim",
            )
        else:
            head.append(
                f"{service.broker.type} finds messages by body: byte-identical bodies are "
                "interchangeable.\n",
                "yellow",
            )
        body = self._move_body(service, head, plan.destination)
        dialog = ConfirmModal(f"{verb} {len(plan.messages)} reviewed message(s)", body, verb)
        if await self.app.push_screen_wait(dialog):
            return True
        self.notify(f"{plan.mode} cancelled")
        return False

    async def _confirm_whole(self, service: DeadLetterService, plan: MovePlan) -> None:
        request = plan.request
        verb = request.mode.capitalize()
        head = Text()
        head.append(
            f"Nothing is selected: this {request.mode}s every message of the queue, not only "
            "the one under the cursor.\n",
            "bold yellow",
        )
        head.append(f"{verb} {plan.taken}\n", "bold")
        body = self._move_body(service, head, request.destination)
        dialog = MoveConfirm(
            f"{verb} ALL messages?",
            body,
            f"{verb} all",
            service.option_specs(),
            service.move_options,
        )
        if not await self.app.push_screen_wait(dialog):
            self.notify(f"{request.mode} cancelled")
            return
        if dialog.options is not None:
            plan = plan.with_options(dialog.options)
        total = request.limit if request.limit is not None else plan.count
        self.start_running(request.mode, total)
        started = time.monotonic()
        try:
            result = await service.move(plan, self._progress)
        except MqtopError as exc:
            self.finish_running()
            self._refused(exc, request.mode)
            self.load()
            return
        self.finish_running()
        self._show_outcome(service, request.mode, result, time.monotonic() - started, False)

    async def _run_selection(self, service: DeadLetterService, plan: SelectionPlan) -> None:
        self.start_running(plan.mode, len(plan.messages))
        started = time.monotonic()
        try:
            result = await service.move_selection(plan, self._progress)
        except MqtopError as exc:
            self.finish_running()
            self._refused(exc, plan.mode)
            self.load()
            return
        self.finish_running()
        self._show_outcome(service, plan.mode, result, time.monotonic() - started, plan.by_id)

    def _progress(self, update: MoveProgress) -> None:
        self.post_message(self.Progressed(update))

    def _show_outcome(
        self,
        service: DeadLetterService,
        mode: str,
        result: MoveResult,
        elapsed: float,
        by_id: bool,
    ) -> None:
        self.last_result = result
        said = outcome(service.semantics, mode, result, by_id=by_id)
        text = Text()
        style = {"✓": "bold green", "—": "bold"}.get(said.symbol, "bold yellow")
        text.append(f"{said.symbol} {safe_text(said.headline, 200)}", style)
        text.append(f" · in {elapsed:.1f}s", "dim")
        for line in said.lines:
            text.append(f"\n  {safe_text(line, 300)}")
        for note in result.notes[:5]:
            text.append(f"\nnote: {safe_text(note, 300)}", "dim")
        for error in result.errors[:5]:
            text.append(f"\nerror: {safe_text(error, 300)}", "red")
        self.last_words = text.plain
        self.show_result(text)
        self.notify(safe_text(said.headline, 200), severity="information" if said.ok else "warning")
        self.host.request_refresh()
        self.load()

    # -- edit before replay ------------------------------------------------------------

    @work(exclusive=True, group="dlq-write")
    async def edit_message(self, message: PeekedMessage) -> None:
        """$EDITOR on the body and headers, then replay the edited copy (asked first)."""
        service = self._service
        if service is None or self.running is not None:
            self.notify(self._reason or "no message actions", severity="warning")
            return
        try:
            service.check_write("replay")
            document = edit_document(message)
        except MqtopError as exc:
            self._refused(exc)
            return
        except ValueError as exc:
            self.notify(str(exc), severity="warning")
            return
        edited = self.host.edit_text(document)
        try:
            parsed = None if edited is None else parse_document(edited, message)
        except ValueError as exc:
            self.show_result(Text(f"✖ edit not used: {safe_text(exc, 300)}", "red"))
            return
        if parsed is None:
            self.notify("edit cancelled: nothing was replayed")
            return
        body, headers = parsed
        try:
            destination = await self._destination("replay")
            if destination is None:
                return
            plan = await service.plan_edit(self.queue, destination, message, body, headers)
        except MqtopError as exc:
            self._refused(exc)
            return
        text = Text()
        text.append(f"Replay an edited copy of {safe_text(message.id, 60)}\n", "bold")
        changes = []
        if body != message.body:
            changes.append(f"body {len(message.body)} → {len(body)} bytes")
        if headers is not message.headers:
            changes.append("headers changed")
        text.append((", ".join(changes) or "nothing changed") + "\n", "yellow")
        text.append(f"before sha256 {plan.before[:12]} · after {plan.after[:12]}\n", "dim")
        body_text = self._move_body(service, text, destination)
        body_text.append("\nThe original is removed once the copy is confirmed.", "dim")
        if not await self.app.push_screen_wait(ConfirmModal("Replay edited copy", body_text)):
            self.notify("edit cancelled: nothing was replayed")
            return
        self.start_running("replay", 1)
        try:
            result = await service.replay_edited(plan)
        except MqtopError as exc:
            self.finish_running()
            self._refused(exc, "replay")
            return
        self.finish_running()
        if result.published:
            words = f"✓ replayed an edited copy of {safe_text(message.id, 60)} to "
            words += safe_text(destination, 60)
            words += "; the original was removed" if result.removed else "; the original stays"
        else:
            words = f"— already replayed: {safe_text(result.note or 'not in the queue', 200)}"
        self.last_words = words
        self.show_result(Text(words, "bold green" if result.published else "bold"))
        self.notify(words[2:])
        self.host.request_refresh()
        self.load()

    # -- purge, export -----------------------------------------------------------------

    async def _purge(self, service: DeadLetterService) -> None:
        plan = await service.plan_purge(self.queue)
        body = Text()
        body.append(f"Purge {plan.taken}\n")
        body.append("from   ", "dim")
        body.append(safe_text(plan.queue, 120), "bold")
        body.append(f"\non broker {safe_text(self.broker_name, 40)}\n\n")
        body.append("This cannot be undone.", "bold red")
        if self.selected:
            body.append("\nPurge ignores the selection: it deletes the whole queue.", "yellow")
        if not await self.app.push_screen_wait(
            ConfirmModal("Purge queue", body, "Purge", danger=True)
        ):
            self.notify("purge cancelled")
            return
        self.start_running("purge", None)
        try:
            purged = await service.purge(plan)
        except MqtopError as exc:
            self.finish_running()
            self._refused(exc, "purge")
            self.load()
            return
        self.finish_running()
        shown = "all" if purged is None else str(purged)
        self.last_words = f"✓ purged {shown} message(s) from {safe_text(self.queue, 80)}"
        self.show_result(Text(self.last_words))
        self.notify(f"purged {shown} message(s)")
        self.load()

    @work(exclusive=True, group="dlq-export")
    async def action_export(self) -> None:
        """Write the selection (else what is shown) as JSON lines to a file."""
        chosen = self.selected_messages() or self.shown_messages()
        if not chosen:
            self.notify("nothing to export", severity="warning")
            return
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(self.host.clock()))
        safe_queue = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.queue)
        default = f"mqtop-{self.broker_name}-{safe_queue}-{stamp}.jsonl"
        path = await self.app.push_screen_wait(
            TextPrompt(f"Export {len(chosen)} message(s) as JSON lines to", default)
        )
        if not path:
            return
        try:
            count = await asyncio.to_thread(_export, chosen, path)
        except OSError as exc:
            self.notify(
                safe_text(f"cannot write {path}: {exc.strerror or exc}", 200), severity="error"
            )
            return
        self.last_words = f"✓ exported {count} message(s) to {safe_text(path, 200)}"
        self.show_result(Text(self.last_words))
        self.notify(self.last_words[2:])

    # -- progress ----------------------------------------------------------------------

    def start_running(self, label: str, total: int | None) -> None:
        """Show the progress bar."""
        self.running = label
        self.refresh_bindings()
        self.query_one("#dlq-progress").display = True
        self.query_one("#dlq-result").display = False
        self.query_one("#progress-label", Label).update(f"{label}… ")
        self.query_one("#progress", ProgressBar).update(total=total, progress=0)

    def finish_running(self) -> None:
        """Hide the progress bar."""
        self.running = None
        self.refresh_bindings()
        self.query_one("#dlq-progress").display = False

    def show_result(self, text: Text) -> None:
        """The result line under the list."""
        box = self.query_one("#dlq-result", Static)
        box.update(text)
        box.display = True

    def on_dlq_writes_progressed(self, message: Progressed) -> None:
        """Advance the progress bar."""
        progress = message.progress
        bar = self.query_one("#progress", ProgressBar)
        if progress.total is not None:
            bar.update(total=progress.total)
        bar.update(progress=progress.done)
        extra = f" · failed {progress.failed}" if progress.failed else ""
        extra += f" · skipped {progress.skipped}" if progress.skipped else ""
        total = f"/{progress.total}" if progress.total is not None else ""
        self.query_one("#progress-label", Label).update(
            f"{self.running or 'working'}: {progress.done}{total}{extra} "
        )


def _export(messages: list[PeekedMessage], path: str) -> int:
    return export_jsonl(messages, Path(path).expanduser())
