"""The ``:`` command bar: go to a broker, a queue, its DLQ, a screen or an action by name."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from mqtop.kernel.model import SeriesKey
from mqtop.kernel.safe import safe_text
from mqtop.ui.keys import Key

Kind = Literal["screen", "broker", "queue", "dlq", "action"]
SCREENS: tuple[tuple[str, str], ...] = (
    ("overview", "every series"),
    ("alerts", "firing and pending alerts, silences"),
    ("help", "the keys of this screen"),
)
MAX_SHOWN = 12
KIND_ORDER = {"screen": 0, "queue": 1, "dlq": 2, "broker": 3, "action": 4}


@dataclass(frozen=True, slots=True)
class Target:
    """One place or action the bar can go to."""

    name: str  # what the operator types (completed)
    kind: Kind
    about: str
    key: SeriesKey | None = None  # queue and dlq targets
    action: str | None = None  # action targets


def targets(
    brokers: Iterable[str],
    series: Iterable[tuple[SeriesKey, str | None]],
    actions: Sequence[Key],
) -> list[Target]:
    """Everything the bar offers: screens, brokers, queues (and their DLQs), actions."""
    out = [Target(name, "screen", about) for name, about in SCREENS]
    out += [Target(f"broker {b}", "broker", "its series in the overview") for b in brokers]
    seen: set[SeriesKey] = set()
    for key, dlq in series:
        if key in seen:
            continue
        seen.add(key)
        label = key.label()
        out.append(Target(label, "queue", "detail", key=key))
        if dlq:
            out.append(
                Target(
                    f"dlq {key.broker}/{dlq}",
                    "dlq",
                    f"dead letters of {label}",
                    key=SeriesKey(key.broker, dlq),
                )
            )
    out += [
        Target(k.label.lower(), "action", f"{k.help} ({k.shown_keys})", action=k.action)
        for k in actions
        if k.show and "(" not in k.action
    ]
    return out


def rank(candidates: Sequence[Target], text: str) -> list[Target]:
    """Matches for what was typed: the name's start first, then a word's, then anywhere."""
    needle = text.strip().lower()
    if not needle:
        return list(candidates)
    scored: list[tuple[int, int, Target]] = []
    for order, target in enumerate(candidates):
        name = target.name.lower()
        if name.startswith(needle):
            score = 0
        elif any(part.startswith(needle) for part in name.replace("/", " ").split()):
            score = 1
        elif needle in name:
            score = 2
        else:
            continue
        scored.append((score, order, target))
    # ties: a screen, then a queue, its DLQ, a broker, an action
    scored.sort(key=lambda item: (item[0], KIND_ORDER[item[2].kind], item[1]))
    return [target for _, _, target in scored]


class CommandBar(ModalScreen[Target | None]):
    """Type a name (Tab completes); Enter goes to the best match or the highlighted one."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("tab", "complete", "Complete", show=False, priority=True),
        Binding("down", "next", "Next", show=False),
        Binding("up", "previous", "Previous", show=False),
    ]

    def __init__(self, candidates: Sequence[Target]) -> None:
        super().__init__()
        self.candidates = list(candidates)
        self.matches: list[Target] = self.candidates[:MAX_SHOWN]

    def compose(self) -> ComposeResult:
        with Vertical(id="command-bar"):
            names = [t.name for t in self.candidates]
            yield Input(
                placeholder="go to: a queue, broker NAME, dlq NAME, alerts, or an action",
                suggester=SuggestFromList(names, case_sensitive=False),
                id="command",
            )
            yield OptionList(id="command-matches")
            yield Label(Text("Tab completes · ↑↓ choose · Enter goes · Esc cancels", "dim"))

    def on_mount(self) -> None:
        """Type first."""
        self._show()
        self.query_one("#command", Input).focus()

    def _show(self) -> None:
        options = self.query_one("#command-matches", OptionList)
        options.clear_options()
        options.add_options(
            [
                Option(
                    Text.assemble(
                        (safe_text(t.name, 70), "bold"), "  ", (f"{t.kind} · {t.about}", "dim")
                    )
                )
                for t in self.matches[:MAX_SHOWN]
            ]
        )
        if self.matches:
            options.highlighted = 0

    @on(Input.Changed, "#command")
    def _typed(self, event: Input.Changed) -> None:
        self.matches = rank(self.candidates, event.value)
        self._show()

    def action_complete(self) -> None:
        """Tab: the highlighted match's name into the box."""
        index = self.query_one("#command-matches", OptionList).highlighted
        if self.matches and index is not None and index < len(self.matches):
            box = self.query_one("#command", Input)
            box.value = self.matches[index].name
            box.cursor_position = len(box.value)

    def action_next(self) -> None:
        """Highlight the next match."""
        self.query_one("#command-matches", OptionList).action_cursor_down()

    def action_previous(self) -> None:
        """Highlight the previous match."""
        self.query_one("#command-matches", OptionList).action_cursor_up()

    @on(Input.Submitted, "#command")
    def _go(self) -> None:
        options = self.query_one("#command-matches", OptionList)
        index = options.highlighted
        if self.matches and index is not None and index < len(self.matches):
            self.dismiss(self.matches[index])
        else:
            self.notify("nothing matches", severity="warning")

    @on(OptionList.OptionSelected, "#command-matches")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        if event.option_index < len(self.matches):
            self.dismiss(self.matches[event.option_index])

    def action_cancel(self) -> None:
        """Close without going anywhere."""
        self.dismiss(None)
