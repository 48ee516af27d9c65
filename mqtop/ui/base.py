"""What a dashboard screen may use of the app, and the hooks the app calls on a screen.

Screens import this module (and :mod:`mqtop.ui.messages`, :mod:`mqtop.ui.data`), never the
app module: the app imports the screens, never the reverse.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, cast

from textual.app import SystemCommand
from textual.screen import Screen

from collectors.base import MessageActions
from mqtop.config import Config
from mqtop.engine import Engine
from mqtop.kernel.model import SeriesKey
from mqtop.lint.model import Finding
from mqtop.ui.alerting import LockedAlerts
from mqtop.ui.data import DashboardData
from mqtop.ui.prefs import Prefs


class DashboardHost(Protocol):
    """The app as the screens see it (``mqtop.ui.app.MqtopApp`` provides it)."""

    @property
    def data(self) -> DashboardData:
        """The latest consistent picture (replaced on each refresh)."""

    @property
    def config(self) -> Config:
        """The effective config."""

    @property
    def engine(self) -> Engine:
        """The polling engine (its store is read-only for screens)."""

    @property
    def alert_source(self) -> LockedAlerts:
        """Alerts and silences."""

    @property
    def peek_count(self) -> int:
        """How many messages the DLQ browser peeks."""

    def clock(self) -> float:
        """The time now (fixed in tests)."""

    def broker_actions(self, broker: str) -> MessageActions | None:
        """A broker's message actions (released when the app stops)."""

    async def chart_points(
        self, key: SeriesKey, metric: str, start: float, end: float, points: int
    ) -> list[tuple[float, float | None]]:
        """A chart's points (from the series' Prometheus source when it is remote)."""

    async def lint_findings(self, broker: str) -> list[Finding] | None:
        """`mqtop lint` findings of a broker (None: lint off, no rules, or unreadable)."""

    def request_refresh(self) -> None:
        """Rebuild the data soon (after a silence, say)."""

    def open_detail(self, key: SeriesKey) -> None:
        """Show one series in detail."""

    def open_dlq(self, broker: str, queue: str) -> None:
        """Open the DLQ browser on a queue."""

    @property
    def prefs(self) -> Prefs:
        """The operator's saved dashboard settings (columns)."""

    def save_prefs(self, prefs: Prefs) -> None:
        """Keep these settings (in the state directory) and use them."""

    def edit_text(self, text: str) -> str | None:
        """Let the operator edit ``text`` in their editor; None when cancelled or impossible."""


class DashboardScreen(Screen[None]):
    """A full screen of the dashboard: the app through :attr:`host`, and typed hooks."""

    @property
    def host(self) -> DashboardHost:
        """The app, as a screen may use it."""
        return cast(DashboardHost, self.app)

    @property
    def busy(self) -> str | None:
        """The write running on this screen ("replay", "purge"...): quitting asks first."""
        return None

    def on_tick(self) -> None:
        """Called by the app once a second (ages and clocks move on)."""

    def palette_commands(self) -> Iterable[SystemCommand]:
        """This screen's extra entries in the command palette."""
        return ()
