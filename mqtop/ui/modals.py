"""Modal dialogs: confirmation (with move options), help, silence duration, destination picker."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Literal

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from collectors.base import MoveOptions
from collectors.kit.options import OptionSpec
from mqtop.kernel.durations import parse_duration
from mqtop.kernel.errors import MqtopError
from mqtop.kernel.safe import safe_text
from mqtop.ui.keys import HELP, bindings, help_rows


class ConfirmModal(ModalScreen[bool]):
    """Ask before a write: states what will happen, to how many messages, and where."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,n", "cancel", "Cancel"),
        Binding("y", "confirm", "Confirm"),
    ]

    def __init__(
        self, title: str, body: Text | str, confirm_label: str = "Confirm", danger: bool = False
    ) -> None:
        super().__init__()
        self.title_text = title
        self.body = body if isinstance(body, Text) else Text(body)
        self.confirm_label = confirm_label
        self.danger = danger

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="danger" if self.danger else ""):
            yield Label(Text(self.title_text, style="bold"), id="dialog-title")
            yield Static(self.body, id="dialog-body")
            yield from self.compose_inputs()
            with Horizontal(id="dialog-buttons"):
                yield Button("Cancel (n)", id="cancel")
                yield Button(
                    f"{self.confirm_label} (y)",
                    id="confirm",
                    variant="error" if self.danger else "primary",
                )

    def compose_inputs(self) -> Iterable[Widget]:
        """Inputs between the question and the buttons (none here)."""
        return ()

    def on_mount(self) -> None:
        """Focus Cancel: a stray Enter never confirms a write."""
        self.query_one("#cancel", Button).focus()

    @on(Button.Pressed, "#confirm")
    def _confirm_pressed(self) -> None:
        self.action_confirm()

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()

    def action_confirm(self) -> None:
        """Go ahead."""
        self.dismiss(True)

    def action_cancel(self) -> None:
        """Do nothing."""
        self.dismiss(False)


INPUT_TYPES: dict[str, Literal["integer", "number", "text"]] = {"int": "integer", "float": "number"}


class MoveConfirm(ConfirmModal):
    """Confirm a replay or move, with one input per move option the broker declares.

    The values are checked by ``build`` (the dead-letter service, in the CLI's words) when the
    operator confirms; a refusal is shown in the dialog, which stays open. ``options`` holds
    the checked options once confirmed.
    """

    def __init__(
        self,
        title: str,
        body: Text | str,
        confirm_label: str,
        specs: Sequence[OptionSpec],
        build: Callable[[Mapping[str, Any]], MoveOptions],
    ) -> None:
        super().__init__(title, body, confirm_label)
        self.specs = list(specs)
        self.build = build
        self.options: MoveOptions | None = None

    def compose_inputs(self) -> Iterable[Widget]:
        """One checkbox (yes/no options) or input (values) per option, then the refusal line."""
        if not self.specs:
            return
        yield Label(Text("Broker options (empty: the broker's default)", style="dim"))
        for spec in self.specs:
            label = Text(f"{spec.flag}  {safe_text(spec.help, 60)}")
            if spec.kind == "bool":
                yield Checkbox(label, id=f"option-{spec.name}", classes="move-option")
                continue
            kind = INPUT_TYPES.get(spec.kind, "text")
            with Horizontal(classes="move-option-row"):
                yield Label(label, classes="move-option-label")
                yield Input(
                    placeholder=spec.metavar or spec.kind,
                    type=kind,
                    id=f"option-{spec.name}",
                    classes="move-option",
                )
        yield Static("", id="options-error")

    def given(self) -> dict[str, Any]:
        """The options the operator set (left empty or unchecked: not given)."""
        out: dict[str, Any] = {}
        for spec in self.specs:
            widget = self.query_one(f"#option-{spec.name}")
            if isinstance(widget, Checkbox) and widget.value:
                out[spec.name] = True
            elif isinstance(widget, Input) and widget.value.strip():
                out[spec.name] = widget.value.strip()
        return out

    def action_confirm(self) -> None:
        """Go ahead when the broker accepts the options."""
        try:
            self.options = self.build(self.given())
        except MqtopError as exc:
            error = self.query_one("#options-error", Static)
            error.update(Text(safe_text(exc.message, 300), style="red"))
            return
        self.dismiss(True)


class HelpScreen(ModalScreen[None]):
    """The mqtop keys of the screen it was opened from (never a text box's editing keys)."""

    BINDINGS: ClassVar[list[BindingType]] = bindings(HELP)

    def __init__(self, screen: Screen[Any]) -> None:
        super().__init__()
        self.target = screen
        self.keymap = str(getattr(screen, "KEYMAP", ""))

    def compose(self) -> ComposeResult:
        with Vertical(id="help"):
            title = f"Keys · {self.keymap or 'this screen'}"
            yield Label(Text(title, style="bold"), id="help-title")
            with VerticalScroll():
                yield Static(self._table(), id="help-body")
            yield Static(
                Text(
                    "mouse: click a title to sort, a row twice to open it · Esc closes",
                    style="dim",
                )
            )

    def _table(self) -> Table:
        table = Table(show_header=False, box=None, expand=True, padding=(0, 1))
        table.add_column("key", no_wrap=True, style="bold")
        table.add_column("action", ratio=1)
        heading = False
        for keys, what, where in help_rows(self.keymap):
            if where and not heading:
                heading = True
                table.add_row("", Text("on every screen", style="dim italic"))
            table.add_row(keys, what)
        return table

    def action_close(self) -> None:
        """Close help."""
        self.dismiss(None)


SILENCE_CHOICES: tuple[tuple[str, float], ...] = (
    ("15 minutes", 900.0),
    ("1 hour", 3600.0),
    ("4 hours", 14400.0),
    ("24 hours", 86400.0),
)


class SilenceModal(ModalScreen[tuple[float, str] | None]):
    """Pick how long to silence an alert, and say why."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(Text(f"Silence {self.what}", style="bold"), id="dialog-title")
            yield OptionList(
                *[Option(label, id=str(seconds)) for label, seconds in SILENCE_CHOICES],
                id="silence-choices",
            )
            yield Input(placeholder="or a duration: 30m, 2h, 3d", id="silence-duration")
            yield Input(placeholder="comment (who, why)", id="silence-comment")
            yield Static("", id="silence-error")
            with Horizontal(id="dialog-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Silence", id="confirm", variant="warning")

    def on_mount(self) -> None:
        """Start on the first choice."""
        choices = self.query_one(OptionList)
        choices.highlighted = 1
        choices.focus()

    def _chosen(self) -> float | None:
        typed = self.query_one("#silence-duration", Input).value.strip()
        if typed:
            try:
                seconds = parse_duration(typed)
            except ValueError as exc:
                self.query_one("#silence-error", Static).update(Text(str(exc), style="red"))
                return None
            if seconds <= 0:
                self.query_one("#silence-error", Static).update(
                    Text("the duration must be positive", style="red")
                )
                return None
            return seconds
        choices = self.query_one(OptionList)
        if choices.highlighted is None:
            return SILENCE_CHOICES[1][1]
        return SILENCE_CHOICES[choices.highlighted][1]

    @on(OptionList.OptionSelected)
    def _picked(self) -> None:
        self.query_one("#silence-comment", Input).focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#confirm")
    def action_confirm(self) -> None:
        """Silence for the chosen time."""
        seconds = self._chosen()
        if seconds is None:
            return
        comment = self.query_one("#silence-comment", Input).value.strip()
        self.dismiss((seconds, comment))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        """Do not silence."""
        self.dismiss(None)


class DestinationPicker(ModalScreen[str | None]):
    """Choose where to move messages: a known queue of the broker, or a typed name."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, source: str, candidates: Sequence[str]) -> None:
        super().__init__()
        self.source = source
        self.candidates = [c for c in candidates if c != source]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(
                Text(f"Move messages of {safe_text(self.source, 60)} to…", style="bold"),
                id="dialog-title",
            )
            yield Input(placeholder="queue name (type to filter or enter a new one)", id="dest")
            yield OptionList(
                *[
                    Option(Text(safe_text(c, 100)), id=f"q{i}")
                    for i, c in enumerate(self.candidates)
                ],
                id="dest-list",
            )
            with Horizontal(id="dialog-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Choose", id="confirm", variant="primary")

    def on_mount(self) -> None:
        """Type first."""
        self.query_one("#dest", Input).focus()

    @on(Input.Changed, "#dest")
    def _filter(self, event: Input.Changed) -> None:
        needle = event.value.strip().lower()
        options = self.query_one("#dest-list", OptionList)
        options.clear_options()
        options.add_options(
            [
                Option(Text(safe_text(c, 100)), id=f"q{i}")
                for i, c in enumerate(self.candidates)
                if needle in c.lower()
            ]
        )

    @on(OptionList.OptionSelected, "#dest-list")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        option_id = event.option.id or ""
        if option_id.startswith("q"):
            self.dismiss(self.candidates[int(option_id[1:])])

    @on(Input.Submitted, "#dest")
    @on(Button.Pressed, "#confirm")
    def action_confirm(self) -> None:
        """Use the highlighted queue, else the typed name."""
        options = self.query_one("#dest-list", OptionList)
        typed = self.query_one("#dest", Input).value.strip()
        if typed and typed in self.candidates:
            self.dismiss(typed)
            return
        if options.highlighted is not None and options.option_count and not typed:
            option = options.get_option_at_index(options.highlighted)
            if option.id and option.id.startswith("q"):
                self.dismiss(self.candidates[int(option.id[1:])])
                return
        if typed:  # the source itself is refused by the dead-letter service, in its words
            self.dismiss(typed)
            return
        self.notify("type or pick a destination queue", severity="warning")

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        """Cancel the move."""
        self.dismiss(None)


class TextPrompt(ModalScreen[str | None]):
    """Ask for one line of text (a file name, say), with a default."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, default: str = "") -> None:
        super().__init__()
        self.question = question
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(Text(self.question, style="bold"), id="dialog-title")
            yield Input(value=self.default, id="prompt")
            with Horizontal(id="dialog-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("OK", id="confirm", variant="primary")

    def on_mount(self) -> None:
        """Type first."""
        self.query_one("#prompt", Input).focus()

    @on(Input.Submitted, "#prompt")
    @on(Button.Pressed, "#confirm")
    def action_confirm(self) -> None:
        """Use the typed text."""
        value = self.query_one("#prompt", Input).value.strip()
        self.dismiss(value or None)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        """Do nothing."""
        self.dismiss(None)
