"""Notifiers: stdout (JSON lines), webhook, Slack incoming webhook and Alertmanager v2.

Each configured notifier gets its own queue and worker task, so a slow or failing receiver
never delays evaluation or the other notifiers. HTTP notifiers post with httpx (async) under a
timeout and retry connection errors, timeouts, HTTP 429 and 5xx with exponential backoff and
jitter; other 4xx answers are not retried. Failures are logged (URLs never: they are secrets)
and counted. Notifications are sent for firing (and re-notifications), for held (a flapping alert
whose condition turned false stays firing until ``held_until``) and for resolved. Every body is
strict JSON: a non-finite number (NaN, Infinity) is written as null.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import random
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

from alerts.config import (
    SEVERITY_ORDER,
    AlertmanagerNotifier,
    NotifierConfig,
    SlackNotifier,
    StdoutNotifier,
    WebhookNotifier,
)
from alerts.model import Alert, AlertEvent, AlertState
from mqtop import __version__
from mqtop.kernel.safe import strict_json
from mqtop.kernel.secrets import redact

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("mqtop.alerts.notify")

QUEUE_LIMIT = 10_000  # batches waiting per notifier before the oldest are dropped
BACKOFF_MAX = 30.0
USER_AGENT = f"mqtop/{__version__}"
_LABEL_NAME = re.compile(r"[^A-Za-z0-9_]")


def iso(epoch: float | None) -> str | None:
    """RFC 3339 UTC with milliseconds (None stays None)."""
    if epoch is None:
        return None
    return (
        dt.datetime.fromtimestamp(epoch, tz=dt.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def _num(value: float | None) -> float | int | None:
    if value is None or not math.isfinite(value):
        return None
    if float(value).is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def event_labels(alert: Alert, target_labels: Mapping[str, str] | None = None) -> dict[str, str]:
    """An event's ``labels``: the config's target labels (e.g. ``cluster``) under the rule's
    own (a rule label of the same name wins, as in the Alertmanager path)."""
    return {**(target_labels or {}), **alert.labels}


def event_json(event: AlertEvent, target_labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """One event as plain data: the contract's alert fields plus timing and labels (the
    rule's ``labels`` over the config's target ``labels:``)."""
    alert = event.alert
    out = alert.to_json()
    out["value"] = _num(alert.value)
    out["threshold"] = _num(alert.threshold)
    out.update(
        {
            "status": event.kind,
            "repeat": event.repeat,
            "time": iso(event.time),
            "labels": event_labels(alert, target_labels),
            "active_since": iso(alert.active_since),
            "fired_at": iso(alert.fired_at),
            "resolved_at": iso(alert.resolved_at),
            "held_until": iso(alert.held_until),
            "reason": alert.reason,
        }
    )
    return out


class DeliveryError(Exception):
    """A notification could not be delivered (after retries)."""


# ---------------------------------------------------------------- notifiers


class Notifier:
    """Base class: turns a batch of events into one delivery."""

    kind = "notifier"

    def __init__(
        self, name: str, min_severity: str = "info", labels: Mapping[str, str] | None = None
    ) -> None:
        self.name = name  # e.g. "webhook[0]": never contains the URL
        self.min_rank = SEVERITY_ORDER.get(min_severity, 0)
        # the config's target labels (e.g. cluster), through the redactor like every output
        self.labels = {k: redact(v) for k, v in (labels or {}).items()}

    def wants(self, alert: Alert) -> bool:
        """True when the alert is at or above this notifier's minimum severity."""
        return alert.severity_rank >= self.min_rank

    async def send(self, events: Sequence[AlertEvent]) -> None:
        """Deliver one batch (raise DeliveryError when it could not be delivered)."""
        raise NotImplementedError

    def resend_due(self, now: float) -> bool:
        """True when still-firing alerts should be re-sent now (Alertmanager)."""
        return False

    async def resend(self, alerts: Sequence[Alert], now: float) -> None:
        """Re-send the alerts still firing (only receivers that expire alerts need it)."""

    async def aclose(self) -> None:
        """Release connections."""


class StdoutSink(Notifier):
    """JSON lines on standard output (ASCII only: no raw control characters)."""

    kind = "stdout"

    def __init__(
        self,
        name: str,
        min_severity: str = "info",
        stream: IO[str] | None = None,
        labels: Mapping[str, str] | None = None,
    ):
        super().__init__(name, min_severity, labels)
        self._stream = stream

    async def send(self, events: Sequence[AlertEvent]) -> None:
        stream = self._stream or sys.stdout
        lines = "".join(strict_json(event_json(e, self.labels)) + "\n" for e in events)
        try:
            stream.write(lines)
            stream.flush()
        except (OSError, ValueError) as exc:
            raise DeliveryError(f"cannot write to stdout: {exc}") from None


class HttpNotifier(Notifier):
    """Shared POST with timeout, retries and backoff."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        timeout: float,
        retries: int,
        min_severity: str = "info",
        headers: Mapping[str, str] | None = None,
        backoff: float = 0.5,
        client_factory: Callable[[], httpx.AsyncClient] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(name, min_severity, labels)
        self._url = url
        self._timeout = timeout
        self._retries = retries
        self._headers = dict(headers or {})
        self._backoff = backoff
        self._client: httpx.AsyncClient | None = None
        self._client_factory = client_factory
        self.address = _address(url)

    def _get_client(self) -> httpx.AsyncClient:
        if self._client is None:
            if self._client_factory is not None:
                self._client = self._client_factory()
            else:
                import httpx

                self._client = httpx.AsyncClient(
                    timeout=httpx.Timeout(self._timeout),
                    follow_redirects=False,
                    headers={"User-Agent": USER_AGENT},
                )
        return self._client

    async def post(self, url: str, payload: Any) -> None:
        """POST JSON; retry what is worth retrying; raise DeliveryError in the end."""
        import httpx

        client = self._get_client()
        body = strict_json(payload).encode("utf-8")
        headers = {"Content-Type": "application/json", **self._headers}
        attempts = self._retries + 1
        reason = "not sent"
        for attempt in range(1, attempts + 1):
            retry = True
            try:
                response = await client.post(url, content=body, headers=headers)
            except httpx.TimeoutException:
                reason = f"timed out after {self._timeout:g}s"
            except httpx.HTTPError as exc:
                reason = redact(f"{type(exc).__name__}: {exc}".strip().rstrip(":"))
            else:
                if 200 <= response.status_code < 300:
                    return
                reason = f"HTTP {response.status_code}"
                retry = response.status_code == 429 or response.status_code >= 500
            if not retry or attempt == attempts:
                break
            delay = min(BACKOFF_MAX, self._backoff * 2 ** (attempt - 1)) * random.uniform(0.8, 1.2)
            log.warning(
                "notifier %s (%s): %s; retry %d/%d in %.1fs",
                self.name,
                self.address,
                reason,
                attempt,
                self._retries,
                delay,
            )
            await asyncio.sleep(delay)
        raise DeliveryError(reason)

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()


class WebhookSink(HttpNotifier):
    """``{"version", "source", "status", "alerts": [...]}`` POSTed as JSON."""

    kind = "webhook"

    async def send(self, events: Sequence[AlertEvent]) -> None:
        await self.post(self._url, webhook_payload(events, self.labels))


def webhook_payload(
    events: Sequence[AlertEvent], target_labels: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The webhook body: one entry per event (``status`` is firing while any is still firing,
    held ones included; each event's ``labels`` carry the target labels)."""
    firing = any(e.kind in ("firing", "held") for e in events)
    return {
        "version": "1",
        "source": "mqtop",
        "status": "firing" if firing else "resolved",
        "alerts": [event_json(e, target_labels) for e in events],
    }


class SlackSink(HttpNotifier):
    """Slack incoming-webhook message (text plus one coloured attachment per event)."""

    kind = "slack"

    def __init__(self, *args: Any, channel: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._channel = channel

    async def send(self, events: Sequence[AlertEvent]) -> None:
        await self.post(self._url, slack_payload(events, self._channel, self.labels))


_SLACK_COLORS = {"critical": "#d62728", "warning": "#ff9f1a", "info": "#1f77b4"}


def slack_escape(text: str) -> str:
    """Escape Slack control sequences: ``&``, ``<`` and ``>`` (no mentions or links)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(
    events: Sequence[AlertEvent],
    channel: str | None = None,
    target_labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An incoming-webhook payload: ``text`` (fallback) and ``attachments`` (fields: broker,
    queue, group, then the target labels and the rule's, e.g. ``cluster``)."""
    lines = []
    attachments = []
    for event in events:
        alert = event.alert
        head = {"resolved": "RESOLVED", "held": "HELD"}.get(event.kind, "FIRING")
        title = f"[{head}] {alert.rule} ({alert.severity})"
        summary = slack_escape(alert.summary)
        lines.append(f"*{slack_escape(title)}* {summary}")
        fields = [
            {"title": "broker", "value": slack_escape(alert.broker or "-"), "short": True},
            {"title": "queue", "value": slack_escape(alert.queue or "-"), "short": True},
        ]
        if alert.group:
            fields.append({"title": "group", "value": slack_escape(alert.group), "short": True})
        fields += [
            {"title": slack_escape(name), "value": slack_escape(value), "short": True}
            for name, value in event_labels(alert, target_labels).items()
        ]
        attachments.append(
            {
                "color": "#2ca02c" if event.kind == "resolved" else _SLACK_COLORS[alert.severity],
                "fallback": f"{title} {summary}",
                "title": slack_escape(title),
                "text": summary,
                "fields": fields,
                "ts": int(event.time),
            }
        )
    payload: dict[str, Any] = {"text": "\n".join(lines), "attachments": attachments}
    if channel:
        payload["channel"] = channel
    return payload


class AlertmanagerSink(HttpNotifier):
    """Alertmanager ``POST /api/v2/alerts`` (postable alerts: labels, annotations, times)."""

    kind = "alertmanager"

    def __init__(
        self,
        *args: Any,
        resend_interval: float = 60.0,
        labels: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, labels=labels, **kwargs)
        self.resend_interval = resend_interval
        self._last_resend: float | None = None
        self._endpoint = self._url.rstrip("/") + "/api/v2/alerts"

    def ends_at(self, now: float) -> float:
        """``endsAt`` for a firing alert: four resend intervals ahead (refreshed by resends)."""
        return now + 4 * self.resend_interval

    async def send(self, events: Sequence[AlertEvent]) -> None:
        payload = [
            alertmanager_alert(
                e.alert, e.kind == "resolved", e.time, self.ends_at(e.time), self.labels
            )
            for e in events
        ]
        await self.post(self._endpoint, payload)

    def resend_due(self, now: float) -> bool:
        if self._last_resend is None:
            self._last_resend = now
            return False
        return now - self._last_resend >= self.resend_interval

    async def resend(self, alerts: Sequence[Alert], now: float) -> None:
        self._last_resend = now
        firing = [a for a in alerts if a.state is AlertState.FIRING and not a.silenced]
        if firing:
            await self.post(
                self._endpoint,
                [alertmanager_alert(a, False, now, self.ends_at(now), self.labels) for a in firing],
            )


def label_name(name: str) -> str:
    """A valid Prometheus/Alertmanager label name."""
    cleaned = _LABEL_NAME.sub("_", name) or "_"
    return f"_{cleaned}" if cleaned[0].isdigit() else cleaned


def alertmanager_alert(
    alert: Alert,
    resolved: bool,
    now: float,
    ends_at: float,
    target_labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One postable alert of the Alertmanager v2 API (``target_labels`` under the rule's own
    labels, as Prometheus puts a series' labels under its rule's)."""
    labels = dict(target_labels or {})
    labels.update({label_name(k): str(v) for k, v in alert.labels.items()})
    labels.update({"alertname": alert.rule, "severity": alert.severity, "source": "mqtop"})
    for name in ("broker", "queue", "group"):
        value = getattr(alert, name)
        if value is not None:
            labels[name] = value
        else:
            labels.pop(name, None)
    annotations = {"summary": alert.summary}
    if _num(alert.value) is not None:
        annotations["value"] = str(_num(alert.value))
    if _num(alert.threshold) is not None:
        annotations["threshold"] = str(_num(alert.threshold))
    if alert.held_until is not None:
        annotations["held_until"] = iso(alert.held_until) or ""
    starts = alert.fired_at or alert.active_since or now
    end = (alert.resolved_at or now) if resolved else ends_at
    return {
        "labels": labels,
        "annotations": annotations,
        "startsAt": iso(starts),
        "endsAt": iso(max(end, starts)),
    }


def _address(url: str) -> str:
    """``scheme://host:port`` of a URL, for logs (paths and credentials are secrets)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        if parts.port:
            host = f"{host}:{parts.port}"
        return f"{parts.scheme}://{host}"
    except ValueError:
        return "?"


def build_notifier(
    config: NotifierConfig,
    index: int,
    backoff: float = 0.5,
    stream: IO[str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> Notifier:
    """Create the notifier for one ``notify:`` entry."""
    name = f"{config.type}[{index}]"
    if isinstance(config, StdoutNotifier):
        return StdoutSink(name, config.min_severity, stream=stream, labels=labels)
    # what every HTTP sink takes, then each its own
    http: dict[str, Any] = {
        "timeout": config.timeout,
        "retries": config.retries,
        "min_severity": config.min_severity,
        "backoff": backoff,
    }
    url = config.url.get_secret_value()
    if isinstance(config, WebhookNotifier):
        return WebhookSink(name, url, headers=config.headers, labels=labels, **http)
    if isinstance(config, SlackNotifier):
        return SlackSink(name, url, channel=config.channel, labels=labels, **http)
    if isinstance(config, AlertmanagerNotifier):
        return AlertmanagerSink(
            name, url, resend_interval=config.resend_interval, labels=labels, **http
        )
    raise ValueError(f"unknown notifier type {config.type!r}")  # pragma: no cover


# ---------------------------------------------------------------- dispatching


class _Worker:
    """One notifier's queue and task."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier
        self.queue: asyncio.Queue[tuple[str, Sequence[Any], float]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None


class Dispatcher:
    """Fans events out to every notifier without ever waiting for one."""

    def __init__(self, notifiers: Sequence[Notifier]) -> None:
        self._workers = [_Worker(n) for n in notifiers]
        self.counts: dict[tuple[str, str], int] = {}  # (notifier, sent|failed|dropped) -> n
        self._closed = False

    @classmethod
    def from_config(
        cls,
        configs: Sequence[NotifierConfig],
        backoff: float = 0.5,
        stream: IO[str] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Dispatcher:
        """Build every configured notifier (``labels``: the config's target labels, added to
        every notification)."""
        return cls([build_notifier(c, i, backoff, stream, labels) for i, c in enumerate(configs)])

    @property
    def notifiers(self) -> list[Notifier]:
        """The notifiers, in config order."""
        return [w.notifier for w in self._workers]

    def _count(self, notifier: Notifier, result: str, n: int = 1) -> None:
        key = (notifier.name, result)
        self.counts[key] = self.counts.get(key, 0) + n

    def start(self) -> None:
        """Start one worker task per notifier (call inside the running loop)."""
        for worker in self._workers:
            if worker.task is None or worker.task.done():
                worker.task = asyncio.create_task(
                    self._run(worker), name=f"mqtop-notify-{worker.notifier.name}"
                )

    def notify(self, events: Sequence[AlertEvent]) -> None:
        """Queue events for every notifier that wants them (returns at once)."""
        if self._closed or not events:
            return
        for worker in self._workers:
            wanted = [e for e in events if worker.notifier.wants(e.alert)]
            if wanted:
                self._put(worker, ("send", wanted, time.time()))

    def sync(self, alerts: Sequence[Alert] | Callable[[], Sequence[Alert]], now: float) -> None:
        """Offer the current alerts to notifiers that re-send periodically (Alertmanager).

        ``alerts`` may be a callable: it is only called when a re-send is due."""
        if self._closed:
            return
        current: Sequence[Alert] | None = None if callable(alerts) else alerts
        for worker in self._workers:
            notifier = worker.notifier
            if notifier.resend_due(now):
                if current is None:
                    current = alerts() if callable(alerts) else alerts
                wanted = [a for a in current if notifier.wants(a)]
                self._put(worker, ("resend", wanted, now))

    def _put(self, worker: _Worker, item: tuple[str, Sequence[Any], float]) -> None:
        if worker.queue.qsize() >= QUEUE_LIMIT:
            dropped = worker.queue.get_nowait()
            self._count(worker.notifier, "dropped", len(dropped[1]))
            log.error("notifier %s is not keeping up: dropped a batch", worker.notifier.name)
        worker.queue.put_nowait(item)

    async def _run(self, worker: _Worker) -> None:
        notifier = worker.notifier
        while True:
            action, items, when = await worker.queue.get()
            try:
                if action == "send":
                    await notifier.send(items)
                else:
                    await notifier.resend(items, when)
            except asyncio.CancelledError:
                raise
            except DeliveryError as exc:
                self._count(notifier, "failed", len(items))
                log.error(
                    "notifier %s: giving up on %d notification(s): %s",
                    notifier.name,
                    len(items),
                    redact(str(exc)),
                )
            except Exception as exc:  # a broken notifier must not kill its worker
                self._count(notifier, "failed", len(items))
                log.error(
                    "notifier %s failed: %s", notifier.name, redact(f"{type(exc).__name__}: {exc}")
                )
            else:
                self._count(notifier, "sent", len(items))
            finally:
                worker.queue.task_done()

    async def drain(self, grace: float) -> bool:
        """Wait until every queued notification was handled; False after ``grace`` s."""
        waits = [w.queue.join() for w in self._workers if w.task is not None]
        if not waits:
            return True
        try:
            await asyncio.wait_for(asyncio.gather(*waits), grace)
        except TimeoutError:
            return False
        return True

    async def aclose(self, grace: float = 10.0) -> None:
        """Deliver what is queued (for up to ``grace`` s), then stop the workers."""
        if self._closed:
            return
        if not await self.drain(grace):
            log.warning("notifications still queued at shutdown were not delivered")
        self._closed = True
        for worker in self._workers:
            if worker.task is not None:
                worker.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await worker.task
                worker.task = None
            await worker.notifier.aclose()
