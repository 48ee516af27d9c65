"""The DLQ browser's message viewer: one message in full, safe to print."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from collectors.base import PeekedMessage
from mqtop.kernel.safe import hexdump, is_binary, json_safe, pretty_body, safe_text
from mqtop.ui.dlq_rows import fmt_size, message_row
from mqtop.ui.keys import VIEWER, bindings

VIEWER_LIMIT = 64 * 1024


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
    if not message.body_complete:
        text.append(", only the start the broker showed", "bold yellow")
    if len(message.body) > VIEWER_LIMIT:
        text.append(f", first {fmt_size(VIEWER_LIMIT)} of {fmt_size(len(message.body))}", "bold")
    text.append(")\n", "bold")
    if hex_view or binary:
        text.append(hexdump(message.body, VIEWER_LIMIT))
    else:
        text.append(pretty_body(message.body, VIEWER_LIMIT))
    return text


class MessageViewer(ModalScreen[str | None]):
    """One message in full: pretty JSON, headers and properties, hex for binary.

    Dismissed with ``"replay"`` or ``"edit"`` when the operator asks for that on this message.
    """

    KEYMAP = "viewer"
    BINDINGS: ClassVar[list[BindingType]] = bindings(VIEWER)

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

    def action_replay(self) -> None:
        """Replay this message (the list asks for confirmation)."""
        self.dismiss("replay")

    def action_edit(self) -> None:
        """Edit this message, then replay the edited copy (the list asks for confirmation)."""
        self.dismiss("edit")
