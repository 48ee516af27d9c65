"""Fixed, realistic sample data for the dashboard: no broker needed.

Used for the documentation screenshot, the snapshot tests and the refresh benchmark. Every
value is deterministic (a fixed clock and formulas, no randomness), so two builds render the
same screen.
"""

from __future__ import annotations

import fnmatch
import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from alerts.model import Alert, AlertEvent, AlertState
from collectors.base import (
    BrokerOptions,
    Collected,
    Collector,
    Death,
    MessageActions,
    MoveProgress,
    MoveRequest,
    MoveResult,
    PeekedMessage,
    ProgressCallback,
    RepublishRequest,
    RepublishResult,
)
from mqtop.config import Config
from mqtop.engine import Engine
from mqtop.kernel.model import BrokerSnapshot, BrokerStatus, SeriesKey, SeriesSample
from mqtop.kernel.store import TimeSeriesStore

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
INTERVAL = 5.0
POLLS = 180  # 15 minutes of history


class SampleCollector:
    """A collector that is never polled (the store is pre-filled); it only offers actions."""

    def __init__(self, options: BrokerOptions, actions: MessageActions | None) -> None:
        self._options = options
        self._actions = actions

    @property
    def options(self) -> BrokerOptions:
        return self._options

    async def connect(self) -> None:
        return None

    async def collect(self) -> Collected:
        return Collected(series=())

    async def close(self) -> None:
        return None

    def actions(self) -> MessageActions | None:
        return self._actions


class MemoryActions:
    """In-memory queues implementing MessageActions (move confirms before removing)."""

    def __init__(
        self,
        queues: Mapping[str, list[PeekedMessage]],
        origins: Mapping[str, str] | None = None,
        warning: str | None = None,
    ) -> None:
        self.queues: dict[str, list[PeekedMessage]] = {k: list(v) for k, v in queues.items()}
        self.origins = dict(origins or {})
        self.warning = warning
        self.closed = 0

    async def peek_warning(self, queue: str) -> str | None:
        return self.warning

    async def peek(self, queue: str, count: int) -> list[PeekedMessage]:
        return list(self.queues.get(queue, [])[:count])

    async def replay_target(self, dlq: str) -> str | None:
        return self.origins.get(dlq)

    async def count(self, queue: str) -> int | None:
        return len(self.queues.get(queue, []))

    async def move(self, request: MoveRequest, progress: ProgressCallback) -> MoveResult:
        source = self.queues.setdefault(request.source, [])
        dest = self.queues.setdefault(request.destination, [])
        moved = skipped = 0
        kept: list[PeekedMessage] = []
        total = len(source)
        for message in source:
            limit_hit = request.limit is not None and moved >= request.limit
            wanted = request.filter is None or request.filter.matches(message.body, message.headers)
            if limit_hit or not wanted:
                kept.append(message)
                skipped += 0 if limit_hit else 1
                continue
            if not request.dry_run:
                dest.append(message)
            else:
                kept.append(message)
            moved += 1
            progress(MoveProgress(done=moved, total=total, skipped=skipped))
        if not request.dry_run:
            self.queues[request.source] = kept
        return MoveResult(
            source=request.source,
            destination=request.destination,
            moved=moved,
            failed=0,
            skipped=skipped,
            dry_run=request.dry_run,
        )

    async def republish(self, request: RepublishRequest) -> RepublishResult:
        source = self.queues.setdefault(request.source, [])
        original = request.original
        found = [i for i, m in enumerate(source) if m.id == original.id and m.body == original.body]
        if not found:
            return RepublishResult(False, False, "not in the source any more")
        message = source.pop(found[0])
        copy = replace(message, body=request.body, headers=dict(request.headers))
        self.queues.setdefault(request.destination, []).append(copy)
        return RepublishResult(True, True)

    async def purge(self, queue: str) -> int | None:
        count = len(self.queues.get(queue, []))
        self.queues[queue] = []
        return count

    async def close(self) -> None:
        self.closed += 1


@dataclass
class SampleAlerts:
    """A fixed set of alerts with working silences (the evaluator's interface)."""

    fixed: list[Alert]
    resolved: list[Alert] = field(default_factory=list)
    _silences: list[Any] = field(default_factory=list)
    available: bool = True

    def evaluate(
        self, store: TimeSeriesStore, statuses: Mapping[str, BrokerStatus], now: float
    ) -> list[AlertEvent]:
        return []

    def alerts(self) -> list[Alert]:
        out = []
        for alert in self.fixed:
            silenced = any(_silence_matches(s, alert) for s in self._silences)
            out.append(replace(alert, silenced=silenced))
        return out

    def recent_resolved(self, limit: int) -> list[Alert]:
        return self.resolved[:limit]

    def silence(self, rule: str, matchers: dict[str, str], until: float, comment: str) -> Any:
        silence = SampleSilence(
            id=f"s{len(self._silences) + 1}",
            rule=rule,
            matchers=dict(matchers),
            until=until,
            comment=comment,
        )
        self._silences.append(silence)
        return silence

    def silences(self) -> list[Any]:
        return list(self._silences)

    def unsilence(self, id: str) -> Any:
        self._silences = [s for s in self._silences if s.id != id]


@dataclass(frozen=True)
class SampleSilence:
    """A silence as the sample alert source keeps it."""

    id: str
    rule: str
    matchers: dict[str, str]
    until: float
    comment: str


def _silence_matches(silence: SampleSilence, alert: Alert) -> bool:
    if not fnmatch.fnmatchcase(alert.rule, silence.rule):
        return False
    return all(
        fnmatch.fnmatchcase(getattr(alert, k, None) or "", v) for k, v in silence.matchers.items()
    )


# ---------------------------------------------------------------- the sample estate


def _wave(i: int, period: float, amp: float, base: float) -> float:
    return base + amp * math.sin(2 * math.pi * i / period)


@dataclass(frozen=True)
class _Spec:
    key: SeriesKey
    kind: str
    dlq: str | None
    values: Any  # (poll index) -> dict of values
    info: Mapping[str, Any] = field(default_factory=dict)


def _specs() -> list[_Spec]:
    def queue(  # noqa: PLR0917 - a compact table of sample queues
        backlog: Any,
        rate_in: float,
        rate_out: float,
        consumers: float | None,
        latency: Any,
        dead: float = 0.0,
        inflight: float | None = None,
        dlq_len: Any = None,
    ) -> Any:
        def values(i: int) -> dict[str, float | None]:
            out: dict[str, float | None] = {
                "queue_length": round(backlog(i)),
                "published_total": 100_000 + rate_in * INTERVAL * i,
                "processed_total": 90_000 + rate_out * INTERVAL * i,
                "dead_lettered_total": 500 + dead * INTERVAL * i,
                "consumers": consumers,
                "latency_seconds": latency(i) if callable(latency) else latency,
                "in_flight": inflight,
            }
            if dlq_len is not None:
                out["dlq_length"] = round(dlq_len(i))
            return out

        return values

    def group(lag: Any, lag_s: Any, rate: float, members: float, status: float) -> Any:
        def values(i: int) -> dict[str, float | None]:
            return {
                "queue_length": round(lag(i)),
                "consumer_lag_messages": round(lag(i)),
                "consumer_lag_seconds": lag_s(i),
                "published_total": 5_000_000 + rate * INTERVAL * i,
                "processed_total": 4_000_000 + (rate - lag(i) / 900) * INTERVAL * i,
                "consumers": members,
                "group_status": status,
            }

        return values

    partitions = [
        {
            "partition": p,
            "leader": 1,
            "end_offset": 1_250_000 + p * 1000,
            "committed": 1_210_000 + p * 1000,
            "lag": 40_000 + p * 250,
        }
        for p in range(3)
    ]
    return [
        _Spec(
            SeriesKey("rabbit", "orders"),
            "quorum",
            "orders.dlq",
            queue(
                lambda i: 600 + 4 * i + _wave(i, 40, 90, 0),
                85.0,
                79.0,
                4,
                lambda i: 12 + i / 20,
                dead=6.0,
                inflight=40,
                dlq_len=lambda i: 37 + i // 6,
            ),
            {"vhost": "/", "type": "quorum", "node": "rabbit@mq-1", "durable": True},
        ),
        _Spec(
            SeriesKey("rabbit", "orders.dlq"),
            "classic",
            None,
            queue(lambda i: 37 + i // 6, 1.2, 0.0, 0, lambda i: 310.0 + i * 5),
        ),
        _Spec(
            SeriesKey("rabbit", "payments"),
            "classic",
            "payments.dlq",
            queue(
                lambda i: _wave(i, 24, 8, 12), 40.0, 40.0, 2, 0.3, inflight=6, dlq_len=lambda i: 0
            ),
        ),
        _Spec(
            SeriesKey("rabbit", "payments.dlq"),
            "classic",
            None,
            queue(lambda i: 0, 0.0, 0.0, 0, None),
        ),
        _Spec(
            SeriesKey("rabbit", "emails"),
            "classic",
            None,
            queue(lambda i: 4200 + 7 * i, 1.4, 0.0, 0, lambda i: 1200.0 + i * 5, inflight=0),
        ),
        _Spec(
            SeriesKey("events", "clicks", "analytics"),
            "topic",
            None,
            group(lambda i: 110_000 + 60 * i, lambda i: 300 + i / 2, 350.0, 3, 1),
            {"partitions": partitions, "consumers": ["analytics-1", "analytics-2", "analytics-3"]},
        ),
        _Spec(
            SeriesKey("events", "clicks", "billing"),
            "topic",
            None,
            group(lambda i: 12 + (i % 5), lambda i: 0.8, 350.0, 2, 0),
        ),
        _Spec(
            SeriesKey("events", "orders.DLT", "replayer"),
            "topic",
            None,
            group(lambda i: 0, lambda i: 0.0, 0.2, 1, 0),
        ),
        _Spec(
            SeriesKey("aws", "signup-queue"),
            "standard",
            "signup-dlq",
            queue(lambda i: 3 + (i % 4), 2.5, 2.5, None, 4.0, inflight=2, dlq_len=lambda i: 14),
        ),
        _Spec(
            SeriesKey("aws", "signup-dlq"),
            "standard",
            None,
            queue(lambda i: 14, 0.0, 0.0, None, 5400.0, inflight=0),
        ),
        _Spec(
            SeriesKey("aws", "reports.fifo"),
            "fifo",
            None,
            queue(lambda i: 0, 0.0, 0.0, None, None, inflight=0),
        ),
        _Spec(
            SeriesKey("cache", "jobs:default"),
            "list",
            "jobs:dead",
            lambda i: {"queue_length": 42.0, "dlq_length": 3.0},
        ),
        _Spec(SeriesKey("cache", "jobs:dead"), "list", None, lambda i: {"queue_length": 3.0}),
    ]


BROKERS: tuple[tuple[str, str], ...] = (
    ("rabbit", "rabbitmq"),
    ("events", "kafka"),
    ("aws", "sqs"),
    ("cache", "redis"),
)
DOWN_BROKER = "cache"
DOWN_ERROR = "ConnectionError: Error 111 connecting to 10.0.0.7:6379. Connection refused."


def sample_messages(queue: str, origin: str, count: int = 6) -> list[PeekedMessage]:
    """Dead letters with realistic JSON bodies, one binary and one hostile."""
    out: list[PeekedMessage] = []
    for i in range(count):
        body = b'{"order_id": "A-%d", "customer": "c-%03d", "amount": %d.%02d, "items": 2}' % (
            10_400 + i,
            17 + i,
            20 + 7 * i,
            i * 3,
        )
        out.append(
            PeekedMessage(
                id=f"msg-{i + 1:04d}",
                body=body,
                headers={"x-retries": 3, "trace-id": f"t-{i:04x}"},
                properties={"content_type": "application/json", "delivery_mode": 2},
                death=Death(
                    reason="rejected" if i % 3 else "expired",
                    count=1 + i % 3,
                    original_queue=origin,
                ),
                timestamp=NOW - 600 - 90 * i,
            )
        )
    out.append(
        PeekedMessage(
            id=f"msg-{count + 1:04d}",
            body=b"\x00\x01\xff\xfe binary \x1b[2J payload",
            headers={"evil\x1b[31m": "\x1b]0;pwned\x07"},
            death=Death(reason="rejected", count=5, original_queue=origin),
            timestamp=NOW - 4000,
        )
    )
    return out


def sample_engine(
    now: float = NOW,
    extra_series: int = 0,
    actions: MessageActions | None = None,
    readonly: Iterable[str] = (),
    audit_log: str | None = None,
) -> Engine:
    """An engine whose store holds 15 minutes of the sample estate (never polls)."""
    ro = set(readonly)
    config = Config(
        interval=INTERVAL,
        audit_log=audit_log,
        brokers=[BrokerOptions(name=n, type=t, readonly=n in ro) for n, t in BROKERS],
    )
    memory = actions or MemoryActions(
        {
            "orders.dlq": sample_messages("orders.dlq", "orders"),
            "payments.dlq": [],
        },
        origins={"orders.dlq": "orders", "payments.dlq": "payments"},
    )
    collectors: dict[str, Collector] = {
        name: SampleCollector(
            BrokerOptions(name=name, type=kind, readonly=name in ro),
            memory if name == "rabbit" else None,
        )
        for name, kind in BROKERS
    }
    engine = Engine(config, collectors=collectors)
    store = engine.store
    specs = _specs()
    for i in range(POLLS):
        t = now - (POLLS - 1 - i) * INTERVAL
        for name, kind in BROKERS:
            up = not (name == DOWN_BROKER and i > POLLS - 40)
            series = tuple(
                SeriesSample(spec.key, spec.kind, spec.values(i), dlq=spec.dlq, info=spec.info)
                for spec in specs
                if spec.key.broker == name
            )
            if name == "rabbit" and extra_series:
                series += _bulk(extra_series, i)
            store.ingest(
                BrokerSnapshot(
                    broker=name,
                    type=kind,
                    time=t,
                    up=up,
                    duration=0.05,
                    series=series if up else (),
                    error=None if up else DOWN_ERROR,
                ),
                interval=INTERVAL,
            )
    last_ok = now - 40 * INTERVAL
    for name, kind in BROKERS:
        down = name == DOWN_BROKER
        engine.statuses[name] = BrokerStatus(
            name=name,
            type=kind,
            address=name,
            up=not down,
            last_poll=now,
            last_success=last_ok if down else now,
            last_duration=0.05,
            error=DOWN_ERROR if down else None,
            consecutive_failures=39 if down else 0,
            interval=INTERVAL,
        )
    return engine


def _bulk(count: int, i: int) -> tuple[SeriesSample, ...]:
    out = []
    for n in range(count):
        digest = hashlib.blake2b(str(n).encode(), digest_size=2).digest()
        base = int.from_bytes(digest, "big") % 5000
        out.append(
            SeriesSample(
                SeriesKey("rabbit", f"bulk.{n:05d}"),
                "classic",
                {
                    "queue_length": float(base + (i * (n % 7)) % 300),
                    "published_total": float(1000 + i * (n % 13)),
                    "processed_total": float(900 + i * (n % 11)),
                    "consumers": float(n % 4),
                    "in_flight": float(n % 9),
                },
            )
        )
    return tuple(out)


def sample_alerts(now: float = NOW) -> SampleAlerts:
    """Alerts matching the sample estate: firing, pending, broker down, and a resolution."""

    def alert(  # noqa: PLR0917 - a compact table of sample alerts
        rule: str,
        severity: str,
        state: AlertState,
        broker: str,
        queue: str | None,
        group: str | None,
        value: float | None,
        threshold: float | None,
        summary: str,
        since: float,
    ) -> Alert:
        return Alert(
            rule=rule,
            severity=severity,
            state=state,
            broker=broker,
            queue=queue,
            group=group,
            value=value,
            threshold=threshold,
            summary=summary,
            active_since=now - since,
            fired_at=now - since + 60 if state == AlertState.FIRING else None,
        )

    return SampleAlerts(
        fixed=[
            alert(
                "HighErrorRate",
                "critical",
                AlertState.FIRING,
                "rabbit",
                "orders",
                None,
                0.071,
                0.05,
                "7.1% of orders are dead-lettered (threshold 5%)",
                420,
            ),
            alert(
                "QueueBacklog",
                "warning",
                AlertState.FIRING,
                "rabbit",
                "emails",
                None,
                5453,
                1000,
                "emails backlog 5453 > 1000 for 1m",
                900,
            ),
            alert(
                "ConsumerLag",
                "warning",
                AlertState.FIRING,
                "events",
                "clicks",
                "analytics",
                389.5,
                60,
                "group analytics is 6m29s behind on clicks",
                800,
            ),
            alert(
                "QueueBacklog",
                "warning",
                AlertState.PENDING,
                "rabbit",
                "orders",
                None,
                1310,
                1000,
                "orders backlog 1310 > 1000 (pending 1m)",
                25,
            ),
            alert(
                "BrokerDown",
                "critical",
                AlertState.FIRING,
                "cache",
                None,
                None,
                None,
                None,
                "broker cache is unreachable: connection refused",
                200,
            ),
        ],
        resolved=[
            replace(
                alert(
                    "QueueBacklog",
                    "warning",
                    AlertState.RESOLVED,
                    "aws",
                    "signup-queue",
                    None,
                    6,
                    1000,
                    "signup-queue backlog back to 6",
                    3000,
                ),
                resolved_at=now - 1500,
            )
        ],
    )


async def _screenshot(size: tuple[int, int]) -> str:
    from mqtop.ui.app import MqtopApp

    app = MqtopApp(sample_engine(), sample_alerts(), clock=lambda: NOW, autostart=False)
    async with app.run_test(size=size) as pilot:
        while app.refresh_count < 1:
            await pilot.pause(0.05)
        await pilot.pause(0.2)
        svg = app.export_screenshot(title="mqtop")
        await app.stop_engine()
    return svg


def main(argv: list[str] | None = None) -> int:
    """``python -m mqtop.ui.sample [PATH]``: write an SVG screenshot of the overview."""
    import asyncio
    import sys

    args = sys.argv[1:] if argv is None else argv
    path = args[0] if args else "docs/screenshot-overview.svg"
    svg = asyncio.run(_screenshot((132, 30)))
    with open(path, "w", encoding="utf-8") as out:
        out.write(svg)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
