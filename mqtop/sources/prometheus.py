"""Reading the series ``mqtop serve`` exported back from a Prometheus-compatible HTTP API.

One poll is one instant query (``/api/v1/query``) for every ``mqtop_*`` family under the
source's selector; the answer becomes one snapshot per remote broker, so the store, the alert
evaluator, ``mqtop metrics`` / ``check`` and the dashboard use it like a poll of a broker. The
first successful poll also reads the recent past with ``/api/v1/query_range`` (server-side
step) for the rules that have a ``for:`` or a window: per metric and ``match``, its own span,
only the series the ``match`` selects, so ``for:`` counts from Prometheus' history. Charts
ask :meth:`SourceReader.history` for any range.

A remote broker is named after the ``name_labels`` values of its series and its ``broker``
label (``eu-1/rabbit``). Series of a broker that the local config also has (same name, same
target ``labels:``) are skipped: the local broker is polled directly and keeps its actions;
every other remote broker is read-only. Answers are untrusted: a malformed entry is skipped
and counted in a warning, an answer larger than ``max_bytes`` is refused, every request has a
deadline, and parsing runs in a worker thread so a large answer never stalls the event loop.
"""

from __future__ import annotations

import asyncio
import json
import math
import ssl
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from alerts.promrules import INFO_ONLY_LABELS, matchers
from mqtop.kernel.model import (
    PUBLIC_METRIC_NAMES,
    BrokerSnapshot,
    SeriesKey,
    SeriesSample,
)
from mqtop.kernel.secrets import mask_url, redact, strip_url_credentials
from mqtop.kernel.tls import client_context
from mqtop.sources.config import PrometheusSource

if TYPE_CHECKING:
    import httpx

INFO = "queue_info"
FAMILIES: tuple[str, ...] = (*PUBLIC_METRIC_NAMES, INFO, "up", "broker_up")
MAX_POINTS = 11_000  # Prometheus refuses ranges of more points per series
BATCH_WINDOW = 0.003  # seconds a chart's history requests wait for each other (one query)
UNKNOWN_TYPE = "remote"


class SourceError(Exception):
    """The source answered with an error, or with something that is not an API answer."""


def promql_string(value: str) -> str:
    """A PromQL double-quoted string literal."""
    return json.dumps(value, ensure_ascii=False)


def _finite(raw: Any) -> float | None:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


@dataclass(frozen=True, slots=True)
class Remote:
    """Where a remote broker's series come from: its scope labels and ``broker`` label."""

    name: str  # display name, e.g. "eu-1/rabbit"
    broker: str
    scope: tuple[tuple[str, str], ...]
    type: str = UNKNOWN_TYPE


@dataclass(slots=True)
class Parsed:
    """One instant answer grouped by remote broker (internal)."""

    series: dict[str, dict[SeriesKey, dict[str, float | None]]] = field(default_factory=dict)
    info: dict[SeriesKey, tuple[str, str | None]] = field(default_factory=dict)
    up: dict[str, float | None] = field(default_factory=dict)
    remotes: dict[str, Remote] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)
    skipped: int = 0
    local: int = 0


@dataclass(frozen=True, slots=True)
class PollResult:
    """What one poll of a source produced."""

    snapshots: tuple[BrokerSnapshot, ...]
    history: tuple[tuple[SeriesKey, str, str | None, float, dict[str, float | None]], ...] = ()
    warnings: tuple[str, ...] = ()


class SourceReader:
    """One ``sources:`` entry of type prometheus: HTTP client, naming and parsing."""

    def __init__(
        self,
        options: PrometheusSource,
        local_brokers: Collection[str] = (),
        local_labels: Mapping[str, str] | None = None,
        interval: float = 5.0,
    ) -> None:
        self.options = options
        self.name = options.name
        self.interval = options.interval or interval
        self._base = options.url.get_secret_value().rstrip("/")
        self._local = frozenset(local_brokers)
        self._local_labels = dict(local_labels or {})
        self._client: httpx.AsyncClient | None = None
        self.remotes: dict[str, Remote] = {}
        self.backfilled = False
        # history asked for the same series and range at the same time: one query_range
        self._batches: dict[tuple[SeriesKey, float, float, float], _Batch] = {}
        self.history_queries = 0  # query_range requests made for charts (tests, benchmarks)

    @property
    def address(self) -> str:
        """The source's URL for messages (credentials and query removed)."""
        try:
            return strip_url_credentials(self._base)
        except ValueError:
            return mask_url(self._base)

    # -- HTTP ---------------------------------------------------------------------------

    def _get_client(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx

            opts = self.options
            headers = {"Accept": "application/json", **opts.headers}
            if opts.bearer_token is not None:
                headers["Authorization"] = f"Bearer {opts.bearer_token.get_secret_value()}"
            auth = None
            if opts.basic_auth is not None:
                auth = httpx.BasicAuth(
                    opts.basic_auth.username, opts.basic_auth.password.get_secret_value()
                )
            # a plain-HTTP server never uses TLS (redirects are not followed): no CA bundle
            # to load, which costs 0.1-0.4 s of CPU per client on a busy machine
            verify: ssl.SSLContext | bool = False
            if self._base.lower().startswith("https://") and opts.tls_verify:
                verify = True
                if opts.ca_file or opts.cert_file:
                    verify = client_context(
                        ca_file=opts.ca_file,
                        cert_file=opts.cert_file or None,
                        key_file=opts.key_file,
                    )
            self._client = httpx.AsyncClient(
                headers=headers,
                auth=auth,
                verify=verify,
                timeout=httpx.Timeout(opts.timeout),
                follow_redirects=False,
            )
        return self._client

    async def _api(self, path: str, params: Mapping[str, str]) -> Any:
        """GET ``/api/v1/<path>``; the parsed answer's ``data`` (SourceError otherwise)."""
        import httpx

        try:
            return await self._request(path, params)
        except httpx.TimeoutException:
            raise SourceError(f"timed out after {self.options.timeout:g}s") from None

    async def _request(self, path: str, params: Mapping[str, str]) -> Any:
        client = self._get_client()
        limit = self.options.max_bytes
        async with client.stream("GET", f"{self._base}/api/v1/{path}", params=params) as answer:
            chunks: list[bytes] = []
            size = 0
            async for chunk in answer.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise SourceError(f"answer larger than max_bytes ({limit} bytes)")
                chunks.append(chunk)
            status = answer.status_code
        body = b"".join(chunks)
        doc = await asyncio.to_thread(_decode, body) if size > 1_000_000 else _decode(body)
        if not isinstance(doc, dict):
            raise SourceError(f"HTTP {status}: not a Prometheus API answer")
        if doc.get("status") != "success":
            error = str(doc.get("error") or f"HTTP {status}")[:300]
            raise SourceError(redact(f"HTTP {status}: {error}"))
        return doc.get("data")

    async def aclose(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    # -- queries ------------------------------------------------------------------------

    def selector(self, names: Iterable[str], extra: Sequence[str] = ()) -> str:
        """``{__name__=~"mqtop_(?:a|b)", <the source's matchers>, <extra>}``."""
        alternatives = "|".join(names)
        parts = [f'__name__=~"mqtop_(?:{alternatives})"']
        if self.options.matchers():
            parts.append(self.options.matchers())
        parts.extend(extra)
        return "{" + ", ".join(parts) + "}"

    async def poll(self, now: float, backfill: Sequence[Backfill] = ()) -> PollResult:
        """Current values (and, the first time, the history ``backfill`` asks for)."""
        data = await self._api("query", {"query": self.selector(FAMILIES)})
        parsed = await asyncio.to_thread(self._parse_instant, data)
        history: tuple[Any, ...] = ()
        warnings: list[str] = []
        if backfill and not self.backfilled:
            history = await self._backfill(backfill, now, parsed)
        self.backfilled = True
        if parsed.skipped:
            warnings.append(f"{parsed.skipped} malformed entries in the answer were skipped")
        return PollResult(self._snapshots(parsed, now), history, tuple(warnings))

    async def _backfill(
        self, plan: Sequence[Backfill], now: float, parsed: Parsed
    ) -> tuple[Any, ...]:
        """History for ``for:`` and windows, read per rule need (a metric, its span, the
        rules' ``match`` as label matchers): the whole span at a step of at most 1/240 of
        it, and the last 240 poll intervals at the poll interval, so short ``for:`` durations
        are exact and long ones are never more than 0.5 % off (late, never early)."""
        rows: dict[tuple[SeriesKey, float], dict[str, float | None]] = {}
        for need in plan:
            for seconds, step in self._tiers(need.span):
                data = await self._api(
                    "query_range",
                    {
                        "query": self._backfill_query(need),
                        "start": f"{now - seconds:.3f}",
                        "end": f"{now - 0.001:.3f}",
                        "step": f"{step:g}",
                    },
                )
                await asyncio.to_thread(self._parse_history, data, rows)
        out = []
        for (key, t), row in sorted(rows.items(), key=lambda item: item[0][1]):
            kind, dlq = parsed.info.get(key, ("queue", None))
            out.append((key, kind, dlq, t, row))
        return tuple(out)

    def _tiers(self, span: float) -> list[tuple[float, float]]:
        """(seconds, step) of the range queries reading ``span`` seconds of history."""
        tiers = [(span, max(self.interval, span / 240.0, 1.0))]
        recent = min(span, 240 * self.interval)
        if tiers[0][1] > self.interval and recent > 0:
            tiers.append((recent, max(self.interval, 1.0)))
        return tiers

    def _backfill_query(self, need: Backfill) -> str:
        """The series of one history need: its metric under the source's selector and the
        rules' ``match`` (``kind`` through ``mqtop_queue_info``, as exported rules do)."""
        value = self.selector([need.metric], [need.series] if need.series else [])
        if not need.info:
            return value
        info = self.selector([INFO], [need.info])
        return f"{value} and ignoring({', '.join(INFO_ONLY_LABELS)}) {info}"

    async def history(
        self, key: SeriesKey, metric: str, start: float, end: float, points: int
    ) -> list[tuple[float, float | None]]:
        """Points of one remote series over [start, end], at most about ``points`` of them
        (the server picks the points: ``step`` = span / points). Requests for other metrics
        of the same series and range made at the same moment (a chart view asks for each of
        its metrics at once) share one ``query_range``."""
        remote = self.remotes.get(key.broker)
        if remote is None or metric not in PUBLIC_METRIC_NAMES:
            return []
        step = max((end - start) / max(points, 1), (end - start) / MAX_POINTS, 1.0)
        batch_key = (key, start, end, step)
        batch = self._batches.get(batch_key)
        if batch is None:
            batch = _Batch()
            self._batches[batch_key] = batch
            batch.task = asyncio.ensure_future(self._history_batch(batch_key, batch, remote))
            # retrieved even when every caller gave up (no "never retrieved" warning)
            batch.task.add_done_callback(lambda t: t.cancelled() or t.exception())
        batch.metrics.add(metric)
        assert batch.task is not None
        # shielded: one caller giving up (a closed chart) never cancels the others' answer
        found = await asyncio.shield(batch.task)
        return list(found.get(metric, ()))

    async def _history_batch(
        self, batch_key: tuple[SeriesKey, float, float, float], batch: _Batch, remote: Remote
    ) -> dict[str, list[tuple[float, float | None]]]:
        key, start, end, step = batch_key
        try:
            await asyncio.sleep(BATCH_WINDOW)  # the other metrics' requests join meanwhile
        finally:
            self._batches.pop(batch_key, None)
        matchers = [
            f"broker={promql_string(remote.broker)}",
            f"queue={promql_string(key.queue)}",
            f"group={promql_string(key.group or '')}",
            *(f"{label}={promql_string(value)}" for label, value in remote.scope),
        ]
        self.history_queries += 1
        data = await self._api(
            "query_range",
            {
                "query": self.selector(sorted(batch.metrics), matchers),
                "start": f"{start:.3f}",
                "end": f"{end:.3f}",
                "step": f"{step:g}",
            },
        )
        return _range_points(data)

    # -- parsing ------------------------------------------------------------------------

    def _identity(self, labels: Mapping[str, str]) -> Remote | None:
        """The remote broker of a series (None when it belongs to a local broker)."""
        broker = labels.get("broker")
        if not broker:
            return None
        scope = tuple(
            (label, labels[label]) for label in self.options.name_labels if labels.get(label)
        )
        if broker in self._local and all(
            labels.get(label, "") == self._local_labels.get(label, "")
            for label in self.options.name_labels
        ):
            return None
        name = "/".join([value for _, value in scope] + [broker])
        if name in self._local or name == self.name:
            name = f"{self.name}/{name}"
        return Remote(name=name, broker=broker, scope=scope)

    def _parse_instant(self, data: Any) -> Parsed:
        out = Parsed()
        result = data.get("result") if isinstance(data, dict) else None
        if not isinstance(result, list):
            raise SourceError("the answer has no result vector")
        for entry in result:
            labels = entry.get("metric") if isinstance(entry, dict) else None
            value = entry.get("value") if isinstance(entry, dict) else None
            if not (
                isinstance(labels, dict)
                and all(isinstance(v, str) for v in labels.values())
                and isinstance(value, list)
                and len(value) == 2
            ):
                out.skipped += 1
                continue
            family = str(labels.get("__name__", ""))[len("mqtop_") :]
            remote = self._identity(labels)
            if remote is None:
                out.local += 1 if labels.get("broker") else 0
                out.skipped += 0 if labels.get("broker") else 1
                continue
            out.remotes.setdefault(remote.name, remote)
            number = _finite(value[1])
            if family == "up":
                out.up[remote.name] = number
                continue
            if family == "broker_up":
                out.up.setdefault(remote.name, number)
                if labels.get("type"):
                    out.types[remote.name] = labels["type"]
                continue
            queue = labels.get("queue")
            if queue is None:
                out.skipped += 1
                continue
            key = SeriesKey(remote.name, queue, labels.get("group") or None)
            if family == INFO:
                out.info[key] = (labels.get("kind") or "queue", labels.get("dlq") or None)
            elif family in PUBLIC_METRIC_NAMES:
                out.series.setdefault(remote.name, {}).setdefault(key, {})[family] = number
            else:
                out.skipped += 1
        return out

    def _snapshots(self, parsed: Parsed, now: float) -> tuple[BrokerSnapshot, ...]:
        snapshots = []
        for name, found in parsed.remotes.items():
            known = self.remotes.get(name)
            kind = parsed.types.get(name) or (known.type if known else UNKNOWN_TYPE)
            remote = Remote(found.name, found.broker, found.scope, kind)
            self.remotes[name] = remote
            up = parsed.up.get(name)
            series = parsed.series.get(name, {})
            if up == 0.0:
                why = f"down according to source {self.name!r} (mqtop_up 0: the last poll of "
                snapshots.append(_down(name, remote.type, now, why + "its mqtop serve failed)"))
                continue
            samples = tuple(
                SeriesSample(
                    key=key,
                    kind=parsed.info.get(key, ("queue", None))[0],
                    values=values,
                    dlq=parsed.info.get(key, ("queue", None))[1],
                    info={"source": self.name, "read_only": self.read_only_reason(name)},
                )
                for key, values in series.items()
            )
            snapshots.append(
                BrokerSnapshot(
                    broker=name, type=remote.type, time=now, up=True, duration=0.0, series=samples
                )
            )
        for name, remote in self.remotes.items():
            if name not in parsed.remotes:
                why = f"no longer in source {self.name!r} (is its mqtop serve running and scraped?)"
                snapshots.append(_down(name, remote.type, now, why))
        return tuple(snapshots)

    def _parse_history(
        self, data: Any, rows: dict[tuple[SeriesKey, float], dict[str, float | None]]
    ) -> None:
        """Add a range answer's points to ``rows`` (by series and time)."""
        result = data.get("result") if isinstance(data, dict) else None
        for entry in result if isinstance(result, list) else ():
            labels = entry.get("metric") if isinstance(entry, dict) else None
            values = entry.get("values") if isinstance(entry, dict) else None
            if not isinstance(labels, dict) or not isinstance(values, list):
                continue
            remote = self._identity(labels)
            family = str(labels.get("__name__", ""))[len("mqtop_") :]
            queue = labels.get("queue")
            if remote is None or not isinstance(queue, str) or family not in PUBLIC_METRIC_NAMES:
                continue
            key = SeriesKey(remote.name, queue, labels.get("group") or None)
            for pair in values:
                if isinstance(pair, list) and len(pair) == 2:
                    t = _finite(pair[0])
                    if t is not None:
                        rows.setdefault((key, t), {})[family] = _finite(pair[1])

    def read_only_reason(self, broker: str) -> str:
        """Why actions on a remote broker are refused (shown by the dashboard)."""
        return (
            f"read-only: {broker} is read from Prometheus source {self.name!r}; add it to "
            "`brokers:` (same name and target labels as its mqtop serve) to act on it"
        )


@dataclass(slots=True)
class _Batch:
    """History requests answered by one query_range (internal)."""

    metrics: set[str] = field(default_factory=set)
    task: asyncio.Future[dict[str, list[tuple[float, float | None]]]] | None = None


def _range_points(data: Any) -> dict[str, list[tuple[float, float | None]]]:
    """A range answer's points by metric: one series each (duplicates from HA pairs carry
    the same values); malformed entries and points are skipped."""
    out: dict[str, list[tuple[float, float | None]]] = {}
    result = data.get("result") if isinstance(data, dict) else None
    for entry in result if isinstance(result, list) else ():
        labels = entry.get("metric") if isinstance(entry, dict) else None
        values = entry.get("values") if isinstance(entry, dict) else None
        if not isinstance(labels, dict) or not isinstance(values, list):
            continue
        metric = str(labels.get("__name__", ""))[len("mqtop_") :]
        if metric in out or metric not in PUBLIC_METRIC_NAMES:
            continue
        points: list[tuple[float, float | None]] = []
        for pair in values:
            if isinstance(pair, list) and len(pair) == 2:
                t = _finite(pair[0])
                if t is not None:
                    points.append((t, _finite(pair[1])))
        out[metric] = points
    return out


def _decode(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


@dataclass(frozen=True, slots=True)
class Backfill:
    """History one or more rules need: a metric over ``span`` seconds, only of the series
    their ``match`` selects (``series``: label matchers of the value series; ``info``: of
    ``mqtop_queue_info``, for ``kind``, joined in the query)."""

    metric: str
    span: float
    series: str = ""
    info: str = ""


def backfill_plan(rules: Iterable[Any], interval: float) -> tuple[Backfill, ...]:
    """What history the rules need for ``for:`` and windows: per metric and ``match``, the
    longest ``for`` + ``window`` of those rules (plus two poll intervals); empty: none."""
    spans: dict[tuple[str, str, str], float] = {}
    for rule in rules:
        need = float(rule.for_) + float(rule.window or 0.0)
        if need > 0 and rule.metric in PUBLIC_METRIC_NAMES:
            series, info = matchers(rule.match)
            ident = (rule.metric, series, info)
            spans[ident] = max(spans.get(ident, 0.0), need + 2 * interval)
    # a rule matching every series of a metric makes that metric's narrower reads redundant
    broad = {metric: span for (metric, series, info), span in spans.items() if not (series or info)}
    return tuple(
        Backfill(metric, span, series, info)
        for (metric, series, info), span in sorted(spans.items())
        if series or info
        if span > broad.get(metric, 0.0)
    ) + tuple(Backfill(metric, span) for metric, span in sorted(broad.items()))


def _down(broker: str, broker_type: str, now: float, error: str) -> BrokerSnapshot:
    """A remote broker the source shows as down (or no longer shows), with why."""
    return BrokerSnapshot(
        broker=broker, type=broker_type, time=now, up=False, duration=0.0, error=error
    )
