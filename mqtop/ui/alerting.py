"""How the dashboard sees alerts: the evaluator's interface, made safe to call from a worker."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any, Protocol

from alerts.model import Alert, AlertEvent
from mqtop.config import Config
from mqtop.kernel.model import BrokerStatus
from mqtop.kernel.store import TimeSeriesStore

log = logging.getLogger("mqtop.ui")


class AlertSource(Protocol):
    """What the dashboard needs of ``alerts.evaluator.AlertEvaluator``."""

    def evaluate(
        self, store: TimeSeriesStore, statuses: Mapping[str, BrokerStatus], now: float
    ) -> list[AlertEvent]:
        """Evaluate every rule against the store; return the transitions."""

    def alerts(self) -> list[Alert]:
        """Pending and firing alerts."""

    def recent_resolved(self, limit: int) -> list[Alert]:
        """The latest resolutions, newest first."""

    def silence(self, rule: str, matchers: dict[str, str], until: float, comment: str) -> Any:
        """Silence alerts of ``rule`` matching the labels until ``until``."""

    def silences(self) -> list[Any]:
        """Active silences."""

    def unsilence(self, id: str) -> Any:
        """Remove a silence."""


class NoAlerts:
    """Used when no evaluator is available: no alerts, silencing refused."""

    available = False

    def evaluate(
        self, store: TimeSeriesStore, statuses: Mapping[str, BrokerStatus], now: float
    ) -> list[AlertEvent]:
        return []

    def alerts(self) -> list[Alert]:
        return []

    def recent_resolved(self, limit: int) -> list[Alert]:
        return []

    def silence(self, rule: str, matchers: dict[str, str], until: float, comment: str) -> Any:
        raise RuntimeError("alert evaluation is not available in this build")

    def silences(self) -> list[Any]:
        return []

    def unsilence(self, id: str) -> Any:
        raise RuntimeError("alert evaluation is not available in this build")


class LockedAlerts:
    """Serialises calls so a worker thread can evaluate while the UI silences."""

    def __init__(self, inner: AlertSource) -> None:
        self.inner = inner
        self._lock = threading.RLock()
        self.available = getattr(inner, "available", True)

    def evaluate(
        self, store: TimeSeriesStore, statuses: Mapping[str, BrokerStatus], now: float
    ) -> list[AlertEvent]:
        with self._lock:
            return list(self.inner.evaluate(store, statuses, now))

    def alerts(self) -> list[Alert]:
        with self._lock:
            return list(self.inner.alerts())

    def recent_resolved(self, limit: int) -> list[Alert]:
        with self._lock:
            return list(self.inner.recent_resolved(limit))

    def silence(self, rule: str, matchers: dict[str, str], until: float, comment: str) -> Any:
        with self._lock:
            return self.inner.silence(rule, matchers, until, comment)

    def silences(self) -> list[Any]:
        with self._lock:
            return list(self.inner.silences())

    def unsilence(self, id: str) -> Any:
        with self._lock:
            return self.inner.unsilence(id)


def make_alert_source(config: Config) -> AlertSource:
    """The evaluator for the config's rules; silences persist in the shared silences file."""
    from alerts.evaluator import AlertEvaluator
    from alerts.silences import SilenceStore, default_silences_path

    path = default_silences_path(config.alerting.silences_path, config.history.resolved_path())
    source: AlertSource = AlertEvaluator(
        config.alerts, config.alerting, silences=SilenceStore(path)
    )
    return source


def glob_escape(value: str) -> str:
    """A label value as a glob that matches only itself (silence matchers are globs)."""
    return "".join(f"[{ch}]" if ch in "*?[" else ch for ch in value)
