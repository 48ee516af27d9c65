"""Prometheus text exposition of the store, built for large scrapes (``mqtop serve``).

One ``serve`` per cluster exports every series with the config's target ``labels:`` (e.g.
``cluster``), ``mqtop_up{broker}``, poll and scrape durations, a ``mqtop_queue_info`` series
per queue (kind, DLQ) and, when asked, per-partition detail. Every family has HELP and TYPE.

Speed: each series' label text is escaped once and kept until the series set changes; the
series part of the body (and its gzip) is rendered once per store generation, so scrapes
between two polls cost a copy. Families that change only now and then (the alerts, once per
evaluation; lint findings) come as :class:`CachedFamilies` and are rendered, and compressed,
once per state of theirs. The small, live part (broker health, the daemon's own numbers) is
rendered per scrape and appended; compressed, every part is a gzip member of its own (RFC 1952
allows several; Prometheus' and every HTTP client's gzip reader reads them as one stream).
"""

from __future__ import annotations

import fnmatch
import gzip
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mqtop.kernel.model import PUBLIC_METRIC_NAMES, PUBLIC_METRICS, BrokerStatus, SeriesView
from mqtop.kernel.secrets import redact

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
GZIP_LEVEL = 5  # level 9 costs three times the CPU for a few percent fewer bytes
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# label names mqtop's own families use, or that Prometheus and Alertmanager set themselves
RESERVED_LABELS = frozenset(
    {
        "broker", "queue", "group", "kind", "dlq", "type", "partition", "rule", "severity",
        "state", "notifier", "result", "version", "job", "instance", "alertname", "source",
        "le", "quantile",
    }
)  # fmt: skip
PARTITION_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("lag", "mqtop_partition_lag_messages", "Consumer group lag of one partition, in messages."),
    (
        "lag_seconds",
        "mqtop_partition_lag_seconds",
        "How far behind in time the group is on one partition.",
    ),
    ("end_offset", "mqtop_partition_end_offset", "Log end offset of one partition."),
    ("committed", "mqtop_partition_committed_offset", "Committed offset of the group."),
)


class ExporterConfig(BaseModel):
    """What ``mqtop serve`` exports on /metrics (cardinality controls)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    include: list[str] = Field(
        default_factory=lambda: ["*"],
        description="Globs over `broker/queue`: only matching series are exported.",
    )
    exclude: list[str] = Field(
        default_factory=list, description="Globs over `broker/queue` never exported."
    )
    metrics: list[str] = Field(
        default_factory=lambda: list(PUBLIC_METRIC_NAMES),
        description="Metrics exported as `mqtop_<metric>` (default: all).",
    )
    queue_info: bool = Field(
        True,
        description="Export `mqtop_queue_info{broker,queue,group,kind,dlq} 1` (one series per "
        "queue; exported rules with a `kind` match join it).",
    )
    partitions: bool = Field(
        False,
        description="Export per-partition lag and offsets (Kafka: one series per partition and "
        "group; off by default: the largest source of series).",
    )

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(PUBLIC_METRIC_NAMES))
        if unknown:
            raise ValueError(
                f"unknown metric(s) {unknown} (known: {', '.join(PUBLIC_METRIC_NAMES)})"
            )
        return value


def check_target_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """Validate the config's ``labels:`` (raise ValueError naming the first bad one)."""
    for name in labels:
        if not _LABEL_NAME.match(name):
            raise ValueError(
                f"label name {name!r} is not a Prometheus label name [a-zA-Z_][a-zA-Z0-9_]*"
            )
        if name.startswith("__"):
            raise ValueError(f"label name {name!r}: names starting with __ are reserved")
        if name in RESERVED_LABELS:
            raise ValueError(f"label name {name!r} is used by mqtop or Prometheus itself")
    return dict(labels)


def escape_value(value: str) -> str:
    """A label value for the text format (backslash, double quote and newline escaped)."""
    if "\\" in value or '"' in value or "\n" in value:
        value = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def _help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _family(out: list[str], name: str, help_text: str, kind: str = "gauge") -> None:
    out.append(f"# HELP {name} {_help(help_text)}\n# TYPE {name} {kind}\n")


def _encode(text: str) -> bytes:
    # names decoded with surrogateescape would make strict UTF-8 fail: keep them visible
    return text.encode("utf-8", "backslashreplace")


@dataclass(frozen=True, slots=True)
class CachedFamilies:
    """Families whose text is kept while their state is the same object (``key``).

    ``collect`` yields prometheus_client-style families rendered from that very state (read
    once by whoever made this, so key and text always agree); ``name`` tells the parts apart.
    A scrape between two changes of ``key`` costs a copy of the rendered bytes.
    """

    name: str
    key: object
    collect: Callable[[], Iterable[Any]]


_Part = tuple[object, bytes, bytes | None, int]  # key, text, gzip (made on demand), samples


class Exposition:
    """Renders /metrics; thread-safe (the HTTP server answers scrapes on several threads)."""

    def __init__(
        self, labels: Mapping[str, str] | None = None, config: ExporterConfig | None = None
    ):
        self._lock = threading.Lock()
        self._labels: dict[str, str] = {}
        self._const = ""
        self._config = ExporterConfig()
        self._label_cache: dict[Any, str] = {}
        self._selected: dict[tuple[str, str], bool] = {}
        self._cached: _Part | None = None
        self._parts: dict[str, _Part] = {}
        self.scrapes = 0
        self.last_duration = 0.0
        self.last_series = 0
        self.last_bytes = 0
        self.configure(labels or {}, config or ExporterConfig())

    def configure(self, labels: Mapping[str, str], config: ExporterConfig) -> None:
        """Apply (new) target labels and exporter settings (config reload)."""
        with self._lock:
            self._labels = {k: redact(v) for k, v in labels.items()}
            self._const = "".join(f',{k}="{escape_value(v)}"' for k, v in self._labels.items())
            self._config = config
            self._label_cache = {}
            self._selected = {}
            self._cached = None
            self._parts = {}

    @property
    def labels(self) -> dict[str, str]:
        """The target labels added to every series."""
        return dict(self._labels)

    # -- selection -----------------------------------------------------------------------

    def _keep(self, broker: str, queue: str) -> bool:
        key = (broker, queue)
        found = self._selected.get(key)
        if found is None:
            name = f"{broker}/{queue}"
            cfg = self._config
            found = any(fnmatch.fnmatchcase(name, p) for p in cfg.include) and not any(
                fnmatch.fnmatchcase(name, p) for p in cfg.exclude
            )
            if len(self._selected) > 1_000_000:
                self._selected.clear()
            self._selected[key] = found
        return found

    def _series_labels(self, view: SeriesView) -> str:
        key = view.key
        text = self._label_cache.get(key)
        if text is None:
            text = (
                f'broker="{escape_value(key.broker)}",queue="{escape_value(key.queue)}",'
                f'group="{escape_value(key.group or "")}"{self._const}'
            )
            self._label_cache[key] = text
        return text

    # -- rendering -----------------------------------------------------------------------

    def _series_part(self, views: Sequence[SeriesView]) -> tuple[str, int]:
        """Every value family, the info family and partition detail; (text, samples)."""
        cfg = self._config
        keep = self._keep
        if cfg.include == ["*"] and not cfg.exclude:
            live = [v for v in views if not v.stale]
        else:
            live = [v for v in views if not v.stale and keep(v.key.broker, v.key.queue)]
        if len(self._label_cache) > 2 * len(live) + 1024:
            self._label_cache = {}
        label = self._series_labels
        pairs = [(label(v), v.metrics) for v in live]
        out: list[str] = []
        count = 0
        wanted = set(cfg.metrics)
        for metric in PUBLIC_METRICS:
            if metric.name not in wanted:
                continue
            name = "mqtop_" + metric.name
            _family(out, name, metric.help)
            field = metric.name
            lines = [
                f"{name}{{{lab}}} {v!r}\n"
                for lab, values in pairs
                if (v := values.get(field)) is not None
            ]
            count += len(lines)
            out.extend(lines)
        if cfg.queue_info:
            _family(
                out, "mqtop_queue_info", "1 per exported queue: its kind and dead-letter queue."
            )
            for view in live:
                out.append(
                    f'mqtop_queue_info{{{label(view)},kind="{escape_value(view.kind or "")}",'
                    f'dlq="{escape_value(view.dlq or "")}"}} 1\n'
                )
            count += len(live)
        if cfg.partitions:
            count += self._partitions(out, live)
        return "".join(out), count

    def _partitions(self, out: list[str], live: Sequence[SeriesView]) -> int:
        rows: list[tuple[str, Mapping[str, Any]]] = []
        for view in live:
            records = view.info.get("partitions")
            if not isinstance(records, list | tuple):
                continue
            base = self._series_labels(view)
            for row in records:
                if isinstance(row, Mapping) and isinstance(row.get("partition"), int):
                    rows.append((f'{base},partition="{row["partition"]}"', row))
        count = 0
        for field, name, help_text in PARTITION_FIELDS:
            _family(out, name, help_text)
            for labels, row in rows:
                value = row.get(field)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    out.append(f"{name}{{{labels}}} {float(value)!r}\n")
                    count += 1
        return count

    def _status_part(self, statuses: Iterable[BrokerStatus]) -> str:
        const = self._const
        out: list[str] = []
        items = list(statuses)
        _family(out, "mqtop_up", "1 when the last poll of the broker succeeded, 0 when it failed.")
        for s in items:
            if s.up is not None:
                out.append(
                    f'mqtop_up{{broker="{escape_value(s.name)}"{const}}} {1 if s.up else 0}\n'
                )
        _family(out, "mqtop_broker_up", "1 when the last poll succeeded.")
        for s in items:
            out.append(
                f'mqtop_broker_up{{broker="{escape_value(s.name)}",type="{escape_value(s.type)}"'
                f"{const}}} {1.0 if s.up else 0.0}\n"
            )
        _family(out, "mqtop_broker_poll_duration_seconds", "Duration of the last poll.")
        for s in items:
            if s.last_duration is not None:
                out.append(
                    f'mqtop_broker_poll_duration_seconds{{broker="{escape_value(s.name)}"{const}}}'
                    f" {s.last_duration!r}\n"
                )
        return "".join(out)

    def _collector_part(self, collectors: Iterable[Any]) -> tuple[str, int]:
        """Families of prometheus_client-style collectors, with the target labels added;
        (text, samples)."""
        const = self._const
        out: list[str] = []
        count = 0
        for collector in collectors:
            for metric in collector.collect():
                name = metric.name + "_total" if metric.type == "counter" else metric.name
                _family(out, name, metric.documentation, metric.type)
                for sample in metric.samples:
                    labels = ",".join(
                        f'{k}="{escape_value(str(v))}"' for k, v in sample.labels.items()
                    )
                    text = (labels + const).lstrip(",")
                    body = f"{{{text}}}" if text else ""
                    out.append(f"{sample.name}{body} {float(sample.value)!r}\n")
                count += len(metric.samples)
        return "".join(out), count

    def _self_part(self) -> str:
        const = self._const.lstrip(",")
        body = f"{{{const}}}" if const else ""
        out: list[str] = []
        _family(
            out,
            "mqtop_scrape_duration_seconds",
            "Time taken to render the previous /metrics answer.",
        )
        out.append(f"mqtop_scrape_duration_seconds{body} {self.last_duration!r}\n")
        _family(out, "mqtop_scrape_samples", "Samples in the previous /metrics answer.")
        out.append(f"mqtop_scrape_samples{body} {self.last_series}\n")
        _family(out, "mqtop_scrape_bytes", "Uncompressed size of the previous /metrics answer.")
        out.append(f"mqtop_scrape_bytes{body} {self.last_bytes}\n")
        _family(out, "mqtop_scrapes_total", "/metrics answers served.", "counter")
        out.append(f"mqtop_scrapes_total{body} {self.scrapes}\n")
        return "".join(out)

    def render(
        self,
        statuses: Iterable[BrokerStatus],
        views: Callable[[], Sequence[SeriesView]],
        generation: int,
        collectors: Iterable[Any] = (),
        compress: bool = False,
    ) -> bytes:
        """The /metrics body (gzip-compressed when ``compress``).

        ``collectors`` are prometheus_client-style collectors, rendered at every call, or
        :class:`CachedFamilies`, rendered once per state; the cached parts come right after the
        queue series, the per-call ones at the end.
        """
        started = time.perf_counter()
        live = [c for c in collectors if not isinstance(c, CachedFamilies)]
        kept = [c for c in collectors if isinstance(c, CachedFamilies)]
        with self._lock:
            cached = self._cached
            if cached is None or cached[0] != generation:
                text, count = self._series_part(views())
                cached = (generation, _encode(text), None, count)
            if compress:
                cached = _compressed(cached)
            self._cached = cached
            parts = [cached]
            for families in kept:
                part = self._parts.get(families.name)
                if part is None or part[0] is not families.key:
                    text, count = self._collector_part([_Collect(families.collect)])
                    part = (families.key, _encode(text), None, count)
                if compress:
                    part = _compressed(part)
                self._parts[families.name] = part
                parts.append(part)
            text, _ = self._collector_part(live)
            small = _encode(self._status_part(statuses) + text + self._self_part())
            body = b"".join(part[1] for part in parts) + small
            self.scrapes += 1
            self.last_series = sum(part[3] for part in parts) + _samples(small)
            self.last_bytes = len(body)
            if compress:
                packed = [part[2] or b"" for part in parts]
                result = b"".join(packed) + gzip.compress(small, GZIP_LEVEL)
            else:
                result = body
            self.last_duration = time.perf_counter() - started
            return result


class _Collect:
    """A collect function as a collector."""

    def __init__(self, collect: Callable[[], Iterable[Any]]) -> None:
        self.collect = collect


def _compressed(part: _Part) -> _Part:
    """``part`` with its gzip member (made once)."""
    if part[2] is not None:
        return part
    return (part[0], part[1], gzip.compress(part[1], GZIP_LEVEL), part[3])


def _samples(text: bytes) -> int:
    return sum(1 for line in text.split(b"\n") if line and not line.startswith(b"#"))


def accepts_gzip(header: str | None) -> bool:
    """True when an ``Accept-Encoding`` header allows gzip (``q=0`` refuses it)."""
    if not header:
        return False
    for part in header.split(","):
        token, _, params = part.strip().partition(";")
        if token.strip().lower() in ("gzip", "*"):
            q = params.strip().lower()
            if q.startswith("q="):
                try:
                    return float(q[2:]) > 0
                except ValueError:
                    return False
            return True
    return False


def exposition_text(
    statuses: Sequence[BrokerStatus],
    views: Sequence[SeriesView],
    labels: Mapping[str, str] | None = None,
    config: ExporterConfig | None = None,
) -> str:
    """One snapshot as text (``mqtop metrics --format prometheus``)."""
    body = Exposition(labels, config).render(statuses, lambda: views, 0)
    return body.decode("utf-8")
