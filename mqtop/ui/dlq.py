"""DLQ browser: peek, view, select, and replay / move / purge behind a confirmation."""

from __future__ import annotations

import time
from typing import ClassVar, Literal

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Label, ProgressBar, Static

from collectors.base import MoveProgress, MoveResult, PeekedMessage
from mqtop.dlq import DeadLetterService, MovePlan, PurgePlan
from mqtop.dlq.preflight import readonly_refusal
from mqtop.engine import describe_error
from mqtop.kernel.errors import MqtopError
from mqtop.kernel.safe import hexdump, is_binary, json_safe, pretty_body, safe_text
from mqtop.ui.base import DashboardScreen
from mqtop.ui.dlq_rows import common_origin, fmt_size, message_row
from mqtop.ui.modals import ConfirmModal, DestinationPicker, MoveConfirm

VIEWER_LIMIT = 64 * 1024
WRITE_ACTIONS = frozenset({"replay", "move", "purge"})


def message_text(message: PeekedMessage, now: float, hex_view: bool = False) -> Text:
    """Everything about one message, safe to print: summary, death, headers, properties, body."""
    text = Text()

    def field(name: str, value: object) -> None:
        text.append(f"{name:<12}", "dim")
        text.append(safe_text(value, 2000))
        text.append("\n")

    field("id", message.id)
    if message.note:
        field("note", message.note)
    if message.body_complete:
        field("size", f"{fmt_size(len(message.body))} ({len(message.body)} bytes)")
    else:  # the broker showed only the start of the body
        whole = "?" if message.body_size is None else f"{message.body_size} bytes"
        field("size", f"{whole}, of which the broker showed the first {len(message.body)}")
    if message.timestamp is not None:
        field("age", message_row(message, now).age)
    if message.death is not None:
        death = message.death
        field("death", death.reason or "?")
        field("deaths", "-" if death.count is None else death.count)
        field("original", death.original_queue or "-")
    for title, mapping in (
        ("Headers", message.headers),
        ("Properties", message.properties),
        ("Broker", message.extra),
    ):
        if not mapping:
            continue
        text.append(f"\n{title}\n", "bold")
        for key, value in json_safe(dict(mapping)).items():
            text.append(f"  {safe_text(key, 200)}", "cyan")
            text.append(" = ")
            text.append(safe_text(value, 2000))
            text.append("\n")
    binary = is_binary(message.body)
    shown = "hex" if hex_view or binary else "text"
    text.append(f"\nBody ({shown}", "bold")
    if binary:
        text.append(", binary or invalid UTF-8", "bold yellow")
    if len(message.body) > VIEWER_LIMIT:
        text.append(f", first {fmt_size(VIEWER_LIMIT)} of {fmt_size(len(message.body))}", "bold")
    text.append(")\n", "bold")
    if hex_view or binary:
        text.append(hexdump(message.body, VIEWER_LIMIT))
    else:
        text.append(pretty_body(message.body, VIEWER_LIMIT))
    return text


class MessageViewer(ModalScreen[None]):
    """One message in full: pretty JSON, headers and properties, hex for binary."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,enter", "close", "Close"),
        Binding("x", "toggle_hex", "Hex/text"),
    ]

    def __init__(self, message: PeekedMessage, now: float) -> None:
        super().__init__()
        self.message = message
        self.now = now
        self.hex_view = False

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="viewer"):
            yield Static(message_text(self.message, self.now), id="viewer-body")
        yield Footer()

    def action_toggle_hex(self) -> None:
        """Switch between the decoded body and a hex dump."""
        self.hex_view = not self.hex_view
        self.query_one("#viewer-body", Static).update(
            message_text(self.message, self.now, self.hex_view)
        )

    def action_close(self) -> None:
        """Back to the list."""
        self.dismiss(None)


class DlqScreen(DashboardScreen):
    """Messages of one queue (usually a DLQ) and the actions on them."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,backspace", "back", "Back"),
        Binding("space", "toggle_select", "Select"),
        Binding("a", "select_all", "Select all"),
        Binding("enter", "view", "View"),
        Binding("r", "replay", "Replay"),
        Binding("m", "move", "Move"),
        Binding("P", "purge", "Purge", key_display="P"),
        Binding("f5,ctrl+r", "reload", "Reload"),
    ]

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
        self.total: int | None = None
        self.replay_target: str | None = None
        self.running: str | None = None
        self.last_result: MoveResult | None = None
        self.refusal: MqtopError | None = None  # last write refused or failed (CLI words)
        self._peek_ok = False
        self._service: DeadLetterService | None = None
        self._reason: str | None = None

    @property
    def busy(self) -> str | None:
        """The write running here, if any (quitting asks first)."""
        return self.running

    # -- layout ------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(id="dlq-title")
        yield Static(id="dlq-notice")
        yield DataTable(id="messages", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="dlq-progress"):
            yield Label("", id="progress-label")
            yield ProgressBar(id="progress", show_eta=False)
        yield Static(id="dlq-result")
        yield Footer()

    def on_mount(self) -> None:
        """Find the broker's actions, then peek."""
        table = self.query_one("#messages", DataTable)
        table.add_column(" ", key="sel", width=1)
        table.add_column("Id", key="id", width=14)
        table.add_column("Age", key="age", width=6)
        table.add_column("Reason", key="reason", width=10)
        table.add_column("#", key="count", width=2)
        table.add_column("Original", key="original", width=12)
        table.add_column("Size", key="size", width=8)
        table.add_column("Body", key="body", width=80)
        self.query_one("#dlq-progress").display = False
        self.query_one("#dlq-result").display = False
        try:
            options = self.host.config.broker(self.broker_name)
            actions = self.host.broker_actions(self.broker_name)
        except Exception as exc:
            self._reason = safe_text(describe_error(exc), 200)
        else:
            if actions is None:
                self._reason = f"{options.type} brokers have no message actions in this version"
            else:
                self._service = DeadLetterService(
                    self.host.config, options, actions, via="dashboard"
                )
                refusal = readonly_refusal(options, "replay, move and purge")
                self._reason = safe_text(refusal.message, 300) if refusal else None
        self._draw_header()
        table.focus()
        if self._service is not None:
            self.load()

    def _draw_header(self, notice: Text | None = None) -> None:
        title = Text()
        title.append(" DLQ ", "bold reverse magenta")
        title.append(f" {safe_text(self.broker_name, 40)} / ", "dim")
        title.append(safe_text(self.queue, 120), "bold")
        target = self._target()
        title.append(" → ", "dim")
        title.append(safe_text(target, 80) if target else "? (replay asks)", "bold green")
        if self.total is not None:
            title.append(f" · {self.total} msg")
        if self.messages and len(self.messages) != self.total:
            title.append(f" · {len(self.messages)} shown")
        if self.selected:
            title.append(f" · {len(self.selected)} selected", "bold cyan")
        self.query_one("#dlq-title", Static).update(title)
        box = self.query_one("#dlq-notice", Static)
        lines = Text()
        if self._reason:
            lines.append("⊘ " + self._reason, "yellow")
        if notice is not None:
            if lines:
                lines.append("\n")
            lines.append_text(notice)
        box.update(lines)
        box.display = bool(lines)

    def _target(self) -> str | None:
        if self.replay_target:
            return self.replay_target
        return common_origin(self.messages) if self.messages else None

    # -- enabling ----------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Writes are disabled (shown dimmed) on readonly brokers and while one runs."""
        if action in WRITE_ACTIONS and (self._reason is not None or self.running is not None):
            return None
        if action == "reload" and self.running is not None:
            return None
        return True

    # -- loading -----------------------------------------------------------------------

    @work(exclusive=True, group="dlq-peek")
    async def load(self) -> None:
        """Peek (after warning about side effects), count and find the replay target."""
        service = self._service
        if service is None:
            return
        try:
            warning = await service.peek_warning(self.queue)
        except MqtopError as exc:  # e.g. the queue cannot be found: the peek would fail too
            self._draw_header(Text(safe_text(exc.message, 300), "red"))
            return
        except Exception as exc:
            self._draw_header(Text(f"peek failed: {safe_text(describe_error(exc), 300)}", "red"))
            return
        if warning and not self._peek_ok:
            ok = await self.app.push_screen_wait(
                ConfirmModal(
                    "Peeking has a side effect",
                    Text(safe_text(warning, 1000) + "\n\nPeek anyway?"),
                    "Peek",
                )
            )
            if not ok:
                self._draw_header(Text("not peeked: the side effect was declined", "yellow"))
                return
            self._peek_ok = True
        self._draw_header(Text("peeking…", "dim"))
        try:
            peeked = await service.peek(self.queue, self.host.peek_count)
            total = await service.count(self.queue)
            target = await service.replay_target(self.queue)
        except MqtopError as exc:
            self._draw_header(Text(safe_text(exc.message, 300), "red"))
            return
        except Exception as exc:
            self._draw_header(Text(f"peek failed: {safe_text(describe_error(exc), 300)}", "red"))
            return
        self.messages = peeked.messages
        kept = peeked.kept
        self.total = total
        self.replay_target = target
        self.selected.clear()
        self._fill()
        note = Text(safe_text(warning, 300), "dim") if warning else None
        if kept:
            note = Text(
                f"{kept} message(s) had used up their delivery limit: re-published to the back "
                "of the queue so that putting them back did not drop them (see the viewer)",
                "yellow",
            )
        if not self.messages:
            note = Text("(no messages)", "dim")
        self._draw_header(note)

    def _fill(self) -> None:
        table = self.query_one("#messages", DataTable)
        cursor = table.cursor_row
        table.clear()
        now = self.host.clock()
        for i, message in enumerate(self.messages):
            row = message_row(message, now, 80)
            table.add_row(
                "●" if i in self.selected else " ",
                Text(row.id),
                row.age,
                Text(row.reason),
                row.count,
                Text(row.original),
                row.size,
                Text(row.preview),
                key=str(i),
            )
        if self.messages:
            table.move_cursor(row=max(0, min(cursor, len(self.messages) - 1)))

    # -- selection & viewing -------------------------------------------------------------

    def _cursor_index(self) -> int | None:
        table = self.query_one("#messages", DataTable)
        if not self.messages or not 0 <= table.cursor_row < len(self.messages):
            return None
        return table.cursor_row

    def _mark(self, index: int) -> None:
        table = self.query_one("#messages", DataTable)
        table.update_cell(str(index), "sel", "●" if index in self.selected else " ")

    def action_toggle_select(self) -> None:
        """Select or unselect the message under the cursor, then move down."""
        index = self._cursor_index()
        if index is None:
            return
        self.selected.symmetric_difference_update({index})
        self._mark(index)
        table = self.query_one("#messages", DataTable)
        if index + 1 < len(self.messages):
            table.move_cursor(row=index + 1)
        self._draw_header()

    def action_select_all(self) -> None:
        """Select every shown message (again: none)."""
        if len(self.selected) == len(self.messages):
            self.selected.clear()
        else:
            self.selected = set(range(len(self.messages)))
        for i in range(len(self.messages)):
            self._mark(i)
        self._draw_header()

    def action_view(self) -> None:
        """Open the message viewer."""
        index = self._cursor_index()
        if index is not None:
            self.app.push_screen(MessageViewer(self.messages[index], self.host.clock()))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter or a click on the selected row opens the viewer."""
        event.stop()
        self.action_view()

    def action_reload(self) -> None:
        """Peek again."""
        self.load()

    def action_back(self) -> None:
        """Back (a running action keeps running; its result is in the audit log)."""
        if self.running is not None:
            self.notify(f"{self.running} is running: wait for it to finish", severity="warning")
            return
        self.dismiss(None)

    def selected_messages(self) -> list[PeekedMessage]:
        """The selected messages in list order."""
        return [self.messages[i] for i in sorted(self.selected) if i < len(self.messages)]

    # -- writes ------------------------------------------------------------------------

    def action_replay(self) -> None:
        """Replay to the original queue (selected messages, or all)."""
        self._write("replay")

    def action_move(self) -> None:
        """Move to a chosen queue (selected messages, or all)."""
        self._write("move")

    def action_purge(self) -> None:
        """Delete every message of the queue."""
        self._write("purge")

    def _refused(self, exc: MqtopError, what: str | None = None) -> None:
        """Show a refusal or failure in the CLI's words (the CLI prints ``mqtop: <words>``)."""
        self.refusal = exc
        head = f"{what} failed: " if what else ""
        self._show_result(Text(f"✖ {head}{safe_text(exc.message, 300)}", "red"))
        self.notify(safe_text(exc.message, 200), severity="error")

    @work(exclusive=True, group="dlq-write")
    async def _write(self, mode: Literal["replay", "move", "purge"]) -> None:
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
                await self._move(service, mode)
        except MqtopError as exc:
            self._refused(exc)
        except Exception as exc:  # a broker call of the pre-flight (count, ...) failed
            self._show_result(Text(f"✖ {mode}: {safe_text(describe_error(exc), 300)}", "red"))

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
        await self._run_purge(service, plan)

    async def _move(self, service: DeadLetterService, mode: Literal["replay", "move"]) -> None:
        selected = self.selected_messages()
        source = self.queue
        destination = self._target() if mode == "replay" else None
        if destination is None:
            candidates = sorted(
                {v.key.queue for v in self.host.data.views if v.key.broker == self.broker_name}
            )
            destination = await self.app.push_screen_wait(DestinationPicker(source, candidates))
            if destination is None:
                return
        plan = await service.plan_move(mode, source, destination, selected=selected)
        verb = "Replay" if mode == "replay" else "Move"
        body = Text()
        body.append(f"{verb} {plan.taken}\n", "bold")
        body.append("from   ", "dim")
        body.append(safe_text(source, 120) + "\n", "bold")
        body.append("to     ", "dim")
        body.append(safe_text(destination, 120) + "\n", "bold green")
        body.append(f"on broker {safe_text(self.broker_name, 40)}\n\n", "")
        body.append(
            "Each message is published and confirmed before it is removed from the source.",
            "dim",
        )
        dialog = MoveConfirm(
            f"{verb} messages", body, verb, service.option_specs(), service.move_options
        )
        if not await self.app.push_screen_wait(dialog):
            self.notify(f"{mode} cancelled")
            return
        if dialog.options is not None:
            plan = plan.with_options(dialog.options)
        await self._run_move(service, plan)

    def _start(self, label: str, total: int | None) -> None:
        self.running = label
        self.refresh_bindings()
        self.query_one("#dlq-progress").display = True
        self.query_one("#dlq-result").display = False
        self.query_one("#progress-label", Label).update(f"{label}… ")
        self.query_one("#progress", ProgressBar).update(total=total, progress=0)

    def _finish(self) -> None:
        self.running = None
        self.refresh_bindings()
        self.query_one("#dlq-progress").display = False

    async def _run_move(self, service: DeadLetterService, plan: MovePlan) -> None:
        request = plan.request
        total = request.limit if request.limit is not None else plan.count
        self._start(request.mode, total)

        def progress(update: MoveProgress) -> None:
            self.post_message(self.Progressed(update))

        started = time.monotonic()
        try:
            result = await service.move(plan, progress)
        except MqtopError as exc:
            self._finish()
            self._refused(exc, request.mode)
            self.load()
            return
        self._finish()
        self.last_result = result
        elapsed = time.monotonic() - started
        ok = result.complete
        summary = Text()
        summary.append("✓ " if ok else "▲ ", "bold green" if ok else "bold yellow")
        summary.append(
            f"{request.mode}: moved {result.moved}, failed {result.failed}, "
            f"skipped {result.skipped}",
            "bold",
        )
        summary.append(
            f" · {safe_text(result.source, 60)} → {safe_text(result.destination, 60)}"
            f" in {elapsed:.1f}s"
        )
        if result.duplicates_possible:
            summary.append(
                f"\n▲ up to {result.duplicates_possible} message(s) may have been delivered twice",
                "yellow",
            )
        for note in result.notes[:5]:
            summary.append(f"\nnote: {safe_text(note, 300)}", "dim")
        for error in result.errors[:5]:
            summary.append(f"\nerror: {safe_text(error, 300)}", "red")
        self._show_result(summary)
        self.notify(
            f"{request.mode}: moved {result.moved}, failed {result.failed}, "
            f"skipped {result.skipped}",
            severity="information" if ok else "warning",
        )
        self.load()

    async def _run_purge(self, service: DeadLetterService, plan: PurgePlan) -> None:
        self._start("purge", None)
        try:
            purged = await service.purge(plan)
        except MqtopError as exc:
            self._finish()
            self._refused(exc, "purge")
            self.load()
            return
        self._finish()
        shown = "all" if purged is None else str(purged)
        self._show_result(Text(f"✓ purged {shown} message(s) from {safe_text(self.queue, 80)}"))
        self.notify(f"purged {shown} message(s)")
        self.load()

    def _show_result(self, text: Text) -> None:
        box = self.query_one("#dlq-result", Static)
        box.update(text)
        box.display = True

    def on_dlq_screen_progressed(self, message: Progressed) -> None:
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
