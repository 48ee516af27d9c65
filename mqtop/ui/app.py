"""The dashboard application: owns the polling engine, turns store updates into screen data.

Data flow: the engine polls brokers in asyncio tasks on Textual's loop and writes the store;
the store calls back after each ingest; the app coalesces those calls and builds a
:class:`~mqtop.ui.data.DashboardData` (views, rows, alerts) in a thread worker, then hands it
to the screens as a :class:`~mqtop.ui.messages.DataRefreshed` message. The app imports the
screens; screens see the app only as :class:`~mqtop.ui.base.DashboardHost`. Screens never
talk to a broker; DLQ actions go through the dead-letter service in workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual import work
from textual.app import App, SuspendNotSupported, SystemCommand
from textual.binding import BindingType
from textual.notifications import SeverityLevel
from textual.screen import Screen

from alerts.model import AlertEvent
from collectors.base import MessageActions
from mqtop.config import Config
from mqtop.engine import Engine
from mqtop.kernel.errors import UsageError
from mqtop.kernel.model import BrokerSnapshot, BrokerStatus, SeriesKey
from mqtop.kernel.safe import safe_text
from mqtop.lint.exporter import LINT_EVERY
from mqtop.lint.model import Finding
from mqtop.lint.runner import run_lint
from mqtop.ui.alerting import AlertSource, LockedAlerts, make_alert_source
from mqtop.ui.alerts import AlertsScreen
from mqtop.ui.arranged import Arrangement
from mqtop.ui.backend import EngineThread
from mqtop.ui.base import DashboardScreen
from mqtop.ui.command import CommandBar, Target, targets
from mqtop.ui.data import DashboardData, compute_data
from mqtop.ui.detail import DetailScreen
from mqtop.ui.dlq import DlqScreen
from mqtop.ui.dlq_edit import run_editor
from mqtop.ui.keys import GLOBAL, SCREENS, bindings
from mqtop.ui.messages import DataRefreshed, StoreChanged
from mqtop.ui.modals import ConfirmModal, HelpScreen
from mqtop.ui.overview import OverviewScreen
from mqtop.ui.prefs import Prefs, default_prefs_path, load_prefs, save_prefs
from mqtop.ui.release import release
from mqtop.ui.rows import DEFAULT_ORDER
from mqtop.ui.screentext import svg_text

if TYPE_CHECKING:
    from mqtop.ui.base import DashboardHost

CSS_FILE = Path(__file__).with_name("mqtop.tcss")
STUCK_REFRESH = 30.0  # seconds after which a data build that never reported is retried
MAX_POPUPS = 5  # alert pop-ups per refresh; more are summed up in one (the alerts screen has all)


class MqtopApp(App[int]):
    """htop for message queues."""

    TITLE = "mqtop"
    CSS_PATH = str(CSS_FILE)
    ENABLE_COMMAND_PALETTE = True

    BINDINGS: ClassVar[list[BindingType]] = bindings(GLOBAL)

    def __init__(
        self,
        engine: Engine,
        alerts: AlertSource | None = None,
        *,
        clock: Callable[[], float] = time.time,
        autostart: bool = True,
        peek_count: int = 100,
        editor: Callable[[str], str | None] | None = None,
        prefs_path: Path | None = None,
        lint: bool = False,
    ) -> None:
        super().__init__()
        self.engine = engine
        # the detail screen shows `mqtop lint` findings of its queue (read per broker, cached)
        self.lint_enabled = lint
        self._lint: dict[str, tuple[float, list[Finding]]] = {}
        self.config: Config = engine.config
        self.alert_source = LockedAlerts(alerts or make_alert_source(engine.config))
        self.clock = clock
        self.autostart = autostart
        self.peek_count = peek_count
        self._editor = editor  # tests give one; else $EDITOR on the suspended terminal
        self.prefs_path = prefs_path or default_prefs_path()
        self._prefs, self._prefs_warning = load_prefs(self.prefs_path, DEFAULT_ORDER)
        self.data = DashboardData(time=clock(), statuses=dict(engine.statuses))
        self._refreshing = False
        self._refresh_started = 0.0
        self._dirty = False
        self._unsubscribe: Callable[[], None] | None = None
        self._actions: dict[str, MessageActions] = {}
        self.backend = EngineThread(engine)  # polls and broker calls, off the UI loop
        self._stopped = False
        self.refresh_count = 0  # completed data refreshes (tests and benchmarks wait on it)
        self.last_build_cpu = 0.0  # CPU seconds the worker spent on the last data build

    @classmethod
    def from_config(cls, config: Config) -> MqtopApp:
        """A dashboard polling the brokers of a config."""
        return cls(Engine(config))

    # -- lifecycle -------------------------------------------------------------------

    def on_mount(self) -> None:
        """Subscribe to the store, show the overview and start polling."""
        self._unsubscribe = self.engine.store.subscribe(self._on_ingest)
        self.backend.start()
        self.push_screen(OverviewScreen())
        if self._prefs_warning:
            self.notify(safe_text(self._prefs_warning, 300), severity="warning")
        if self.autostart:
            self._start_engine()
        self.request_refresh()
        self.set_interval(1.0, self._tick, name="status-tick")

    @work(exclusive=True, group="engine", exit_on_error=False)
    async def _start_engine(self) -> None:
        failed: list[Exception] = []

        async def history() -> None:
            try:
                await self.engine.load_history()
            except Exception as exc:  # a broken history file must not stop monitoring
                failed.append(exc)

        await self.backend.start_polling(history)
        for exc in failed:
            self.notify(safe_text(f"history not loaded: {exc}", 300), severity="warning")
        database = self.engine.history
        for warning in database.warnings if database is not None else ():
            self.notify(safe_text(warning, 400), severity="warning", timeout=15)

    def broker_actions(self, broker: str) -> MessageActions | None:
        """The message actions of a broker's long-lived collector, each call run on the
        engine's loop (closed when the app stops)."""
        actions = self._actions.get(broker)
        if actions is not None:
            return self.backend.actions(actions)
        actions = self.engine.collector(broker).actions()
        if actions is None:
            return None
        self._actions[broker] = actions
        return self.backend.actions(actions)

    async def chart_points(
        self, key: SeriesKey, metric: str, start: float, end: float, points: int
    ) -> list[tuple[float, float | None]]:
        """A chart's points, asked on the engine's loop (a source's HTTP client lives there)."""
        return await self.backend.run(self.engine.chart_points(key, metric, start, end, points))

    async def lint_findings(self, broker: str) -> list[Finding] | None:
        """The lint findings of a broker (read on the engine's loop, kept for
        :data:`LINT_EVERY`); None when lint is off, the broker has no lint rules or its
        topology could not be read."""
        if not self.lint_enabled:
            return None
        cached = self._lint.get(broker)
        now = time.monotonic()
        if cached is not None and now - cached[0] < LINT_EVERY:
            return cached[1]
        try:
            options = self.config.broker(broker)
        except UsageError:
            return None  # a broker of a Prometheus source: no topology to read
        config = self.config
        report = await self.backend.run(run_lint([options], config.alerts, config.lint))
        if broker not in report.brokers:
            return None
        self._lint[broker] = (now, report.findings)
        return report.findings

    async def stop_engine(self) -> None:
        """Stop polling, close every collector and the actions used (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for actions in self._actions.values():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.backend.actions(actions).close(), 10)
        self._actions.clear()
        await self.backend.stop()

    async def action_quit(self) -> None:
        """Stop the engine, then exit (asks first while a DLQ action is running)."""
        if any(isinstance(s, DashboardScreen) and s.busy for s in self.screen_stack):
            self._confirm_quit()
            return
        await self.stop_engine()
        self.exit(0)

    @work(exclusive=True, group="quit")
    async def _confirm_quit(self) -> None:
        body = (
            "A replay, move or purge is still running. Quitting interrupts it: every message "
            "stays in the source or the destination (a rerun finishes the job), but the result "
            "will not be shown."
        )
        if await self.push_screen_wait(ConfirmModal("Quit now?", body, "Quit", danger=True)):
            await self.stop_engine()
            self.exit(0)

    def _on_ingest(self, snapshot: BrokerSnapshot) -> None:
        # the store calls this on the thread that ingested: post_message is thread-safe
        self.post_message(StoreChanged())

    def on_store_changed(self, message: StoreChanged) -> None:
        """Coalesce store updates into at most one refresh at a time."""
        message.stop()
        self.request_refresh()

    def _tick(self) -> None:
        # self-healing: catch up with anything a lost or failed refresh left behind
        if self._refreshing:
            if time.monotonic() - self._refresh_started > STUCK_REFRESH:
                self._refreshing = False
                self.request_refresh()
        elif self._dirty or self.engine.store.generation != self.data.generation:
            self.request_refresh()
        for screen in self.screen_stack:
            if isinstance(screen, DashboardScreen):
                screen.on_tick()

    # -- refresh ---------------------------------------------------------------------

    def request_refresh(self) -> None:
        """Rebuild the dashboard data soon (one build at a time; updates are coalesced)."""
        if self._refreshing:
            self._dirty = True
            return
        self._refreshing = True
        self._refresh_started = time.monotonic()
        self._dirty = False
        overview = next((s for s in self.screen_stack if isinstance(s, OverviewScreen)), None)
        arrangement = overview.arrangement if overview is not None else None
        self._build_data(dict(self.engine.statuses), self.clock(), arrangement)

    @work(thread=True, group="refresh", exit_on_error=False)
    def _build_data(
        self, statuses: dict[str, BrokerStatus], now: float, arrangement: Arrangement | None
    ) -> None:
        started = time.thread_time()
        try:
            data, events = compute_data(self.engine, self.alert_source, statuses, now, arrangement)
            self.last_build_cpu = time.thread_time() - started
        except Exception as exc:
            self.call_from_thread(self._refresh_failed, exc)
            return
        self.call_from_thread(self._apply, data, events)

    def _refresh_failed(self, exc: Exception) -> None:
        self._refreshing = False
        self.notify(safe_text(f"refresh failed: {exc}", 300), severity="error")

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Every pop-up is plain text: names, summaries and errors come from brokers and are
        never read as markup (``x[/]`` would crash the app, ``[bold]`` would style it)."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    def _apply(self, data: DashboardData, events: list[AlertEvent]) -> None:
        previous, self.data = self.data, data
        release(previous)  # freed on another thread, not here
        del previous
        self.refresh_count += 1
        self._refreshing = False
        self._pop_up(events)
        for screen in self.screen_stack:
            screen.post_message(DataRefreshed())
        if self._dirty:
            self.request_refresh()

    def _pop_up(self, events: list[AlertEvent]) -> None:
        """A pop-up per new firing, held or resolved alert (at most MAX_POPUPS at once)."""
        shown = [
            e
            for e in events
            if not e.alert.silenced and not e.repeat and e.kind in ("firing", "held", "resolved")
        ]
        for event in shown[:MAX_POPUPS]:
            alert = event.alert
            severity: SeverityLevel = "information"
            if event.kind == "firing":
                severity = "error" if alert.severity == "critical" else "warning"
            word = {"firing": alert.severity, "held": "held", "resolved": "resolved"}[event.kind]
            self.notify(
                safe_text(alert.summary or alert.rule, 300),
                title=f"{word} · {safe_text(alert.rule, 60)}",
                severity=severity,
                timeout=8,
            )
        if len(shown) > MAX_POPUPS:
            self.notify(
                f"and {len(shown) - MAX_POPUPS} more alert changes: press A for the alerts",
                timeout=8,
            )

    # -- actions ---------------------------------------------------------------------

    def action_help(self) -> None:
        """Show every key of the current screen."""
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def action_command(self) -> None:
        """The ``:`` bar: go to a queue, a broker, a DLQ, a screen or an action by name."""
        if isinstance(self.screen, CommandBar):
            return
        screen = self.screen
        keymap = SCREENS.get(str(getattr(screen, "KEYMAP", "")), ())
        candidates = targets(
            [b.name for b in self.config.brokers],
            [(v.key, v.dlq) for v in self.data.views],
            keymap,
        )
        self.push_screen(CommandBar(candidates), partial(self._go, screen))

    def _go(self, origin: Screen[Any], target: Target | None) -> None:
        if target is None:
            return
        if target.kind == "action" and target.action:
            if self.screen is origin:
                self.call_later(origin.run_action, target.action)
            return
        if target.kind == "screen":
            {"overview": self.show_overview, "alerts": self.action_alerts}.get(
                target.name, self.action_help
            )()
        elif target.kind == "broker":
            overview = self.show_overview()
            overview.apply_filter(f"{target.name.removeprefix('broker ')}/*")
        elif target.kind == "queue" and target.key is not None:
            self.open_detail(target.key)
        elif target.kind == "dlq" and target.key is not None:
            self.open_dlq(target.key.broker, target.key.queue)

    def show_overview(self) -> OverviewScreen:
        """Close every screen above the overview; return it."""
        while len(self.screen_stack) > 2 and not isinstance(self.screen, OverviewScreen):
            self.pop_screen()
        screen = self.screen
        assert isinstance(screen, OverviewScreen)
        return screen

    def action_alerts(self) -> None:
        """Open the alerts screen."""
        if not isinstance(self.screen, AlertsScreen):
            self.push_screen(AlertsScreen())

    def open_detail(self, key: SeriesKey) -> None:
        """Open the detail screen of a series."""
        self.push_screen(DetailScreen(key))

    def open_dlq(self, broker: str, queue: str) -> None:
        """Open the DLQ browser on a queue."""
        self.push_screen(DlqScreen(broker, queue))

    @property
    def prefs(self) -> Prefs:
        """The operator's saved dashboard settings."""
        return self._prefs

    def save_prefs(self, prefs: Prefs) -> None:
        """Use these settings and keep them in the state directory."""
        self._prefs = prefs
        try:
            save_prefs(self.prefs_path, prefs)
        except OSError as exc:
            self.notify(
                safe_text(f"settings not saved to {self.prefs_path}: {exc.strerror or exc}", 300),
                severity="warning",
            )

    def edit_text(self, text: str) -> str | None:
        """$VISUAL / $EDITOR on ``text`` with the terminal handed over; None when cancelled."""
        if self._editor is not None:
            return self._editor(text)
        try:
            with self.suspend():
                return run_editor(text)
        except SuspendNotSupported:
            self.notify("this terminal cannot hand over to an editor", severity="error")
            return None

    def screen_text(self) -> str:
        """The current screen as plain text (what a terminal shows, without colours)."""
        width, height = self.size
        return svg_text(self.export_screenshot(), width, height)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """The palette lists every action bound on the current screen, plus screen extras."""
        yield from super().get_system_commands(screen)
        seen = {"quit", "change_theme", "command_palette"}
        for active in screen.active_bindings.values():
            binding = active.binding
            if not binding.description or binding.action in seen:
                continue
            seen.add(binding.action)
            yield SystemCommand(
                binding.description,
                f"key: {binding.key_display or binding.key}",
                partial(self.run_action, binding.action, active.node),
            )
        if isinstance(screen, DashboardScreen):
            yield from screen.palette_commands()


if TYPE_CHECKING:
    _HOST: type[DashboardHost] = MqtopApp  # mypy checks that the app provides every hook
