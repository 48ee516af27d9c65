"""RabbitMQ collector: the management HTTP API, with an AMQP fallback.

What RabbitMQ exposes and how it maps (details and formulas in docs/rabbitmq.md):

* ``/api/queues`` is read with ``columns=`` and ``page``/``page_size`` (never one unpaged
  request), all pages after the first fetched concurrently, through one long-lived
  ``httpx.AsyncClient``. Queues of a non-default vhost are named ``vhost/name``.
* queue_length = ``messages_ready`` (= consumer_lag_messages), in_flight =
  ``messages_unacknowledged``, consumers; latency_seconds (= consumer_lag_seconds) from
  ``head_message_timestamp`` when the broker reports it (0 for an empty queue, else null).
* ``message_stats`` counters: ``publish`` -> published_total, ``ack + deliver_no_ack +
  get_no_ack`` -> processed_total; the store turns them into rates.
* Dead-letter mapping: ``x-dead-letter-exchange`` / ``-routing-key`` queue arguments (they win)
  or the policy keys in ``effective_policy_definition``, resolved through the exchange's type
  and bindings (exchange-to-exchange bindings followed) to the queue(s) that really receive.
* Dead-lettering is not a publish anywhere on RabbitMQ 3.x (the DLQ's ``publish`` stays 0, the
  DLX has no stats), so error_rate is derived over ``error_window``:
  - a DLQ fed by this source only:  dead = increase of (DLQ messages + DLQ acks/no-ack gets
    - DLQ publishes);
  - otherwise (shared DLQ, no DLQ):  dead = increase of (deliver_get - redeliver - acks -
    no-ack deliveries - unacked), i.e. deliveries that left without an ack or a requeue;
  error_rate = dead / (dead + processed); null when there was no traffic or no stats.
  A queue that receives dead letters reports publish_rate as its inflow (increase of messages
  + acks), since its publish counter misses them.
* Without ``management_url`` or when it does not answer (within two thirds of the poll's
  budget): queues named literally in
  ``include`` are read with passive ``queue.declare`` over AMQP (length and consumers only)
  and a warning says so.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any, Literal

from collectors.base import (
    Collected,
    CollectorPlugin,
    MessageActions,
    compile_globs,
    dlq_candidates,
    dlq_index,
)
from collectors.rabbitmq.amqp import PassiveProbe, pika_parameters
from collectors.rabbitmq.api import QUEUE_COLUMNS, ManagementApi
from collectors.rabbitmq.deadletters import (
    DeadLetterTarget,
    dead_letter_target,
    effective_delivery_limit,
)
from collectors.rabbitmq.management import ManagementUnavailable
from collectors.rabbitmq.mapping import (
    History,
    Point,
    counter,
    dead_level,
    error_ratio,
    inflow_rate,
    num,
    prefer_conventional,
    queue_info,
    queue_levels,
    stats_of,
)
from collectors.rabbitmq.options import (
    RabbitMQMoveOptions,
    RabbitMQOptions,
    amqp_target,
    failure_text,
    poll_budget,
    qualify,
    split_name,
)
from mqtop.kernel.errors import BrokerUnreachable, ConfigError, MqtopError
from mqtop.kernel.model import SeriesKey, SeriesSample
from mqtop.kernel.secrets import redact, strip_url_credentials

GLOB_CHARS = frozenset("*?[")
Targets = dict[str, tuple[str, str, DeadLetterTarget]]


class _Made:
    """What a queue's last sample was made of, to reuse it while nothing of it changed."""

    __slots__ = ("inputs", "point", "sample")

    def __init__(self, inputs: tuple[Any, ...], point: Point | None, sample: SeriesSample) -> None:
        self.inputs = inputs  # item, DLQ, DLQ item, DLX sources of both, DLQs, rates mode
        self.point = point  # the error-rate window's point (None: rates off)
        self.sample = sample


class RabbitMQCollector:
    """Reads every visible queue from the management API (paged), or a few over AMQP."""

    def __init__(self, options: RabbitMQOptions) -> None:
        self.options = options
        self.api = ManagementApi(options)
        self._probe: PassiveProbe | None = None
        self._history: dict[str, History] = {}
        # per queue, the inputs and result of its last sample (only when they do not depend
        # on the time of the poll): a queue whose management item and DLQ did not change
        # since costs a comparison, not a rebuild (most queues of a big cluster are idle)
        self._made: dict[str, _Made] = {}
        self._actions: MessageActions | None = None
        self.mode: Literal["management", "amqp"] | None = None
        self.dead_letter_sources: dict[str, list[str]] = {}  # DLQ -> sources (last poll)
        self.dead_letter_queues: dict[str, list[str]] = {}  # source -> DLQs (last poll)
        self._include = compile_globs(options.include)
        self._exclude = compile_globs(options.exclude)

    def _wants(self, name: str) -> bool:
        """include/exclude globs, compiled once (called for every queue of every poll)."""
        if self._include is not None and self._include.match(name) is None:
            return False
        return self._exclude is None or self._exclude.match(name) is None

    # -- lifecycle -------------------------------------------------------------------

    async def connect(self) -> None:
        self.api.open()

    async def close(self) -> None:
        await self.api.close()
        probe, self._probe = self._probe, None
        if probe is not None:
            await asyncio.to_thread(probe.close)
        actions, self._actions = self._actions, None
        if actions is not None:
            try:
                await actions.close()
            except Exception:  # noqa: S110
                pass

    def actions(self) -> MessageActions | None:
        try:
            from collectors.rabbitmq.actions import RabbitMQActions
        except ImportError:
            return None
        if self._actions is None:
            self._actions = RabbitMQActions(self.options, self.api)
        return self._actions

    # -- collection ------------------------------------------------------------------

    async def collect(self) -> Collected:
        # end well before the engine's own timeout (which also covers connect and the thread
        # hand-offs, late on a loaded machine), so the error says what failed
        budget = poll_budget(self.options) * 0.75
        end = time.monotonic() + budget
        if self.api.base is None:
            return await self._collect_amqp("no management_url is configured", end)
        started = time.time()  # the engine stamps the snapshot with the poll's start too
        # the management API may use two thirds of the budget: the AMQP fallback gets the rest
        self.api.deadline = end - budget / 3
        try:
            await self.api.overview()
            items = await self.api.fetch_queues()
            self.mode = "management"
            self.api.deadline = end
            return await self._build(items, started)
        except ManagementUnavailable as exc:
            reason = redact(str(exc))
        finally:
            self.api.deadline = None
        base = self.api.base
        try:
            return await self._collect_amqp(
                f"management API at {base} is unavailable ({reason})", end
            )
        except ConfigError:
            raise
        except Exception as exc:
            # both failed: say why each did (the management API's own error first)
            raise BrokerUnreachable(
                f"management API at {base}: {reason}; AMQP fallback at "
                f"{strip_url_credentials(self.options.url.get_secret_value())}: "
                f"{redact(str(exc) if isinstance(exc, MqtopError) else failure_text(exc))}"
            ) from None

    async def _build(self, items: list[dict[str, Any]], started: float) -> Collected:
        now = time.time()
        by_name: dict[str, dict[str, Any]] = {}
        targets: Targets = {}
        for item in items:
            vhost, name = item["vhost"], item["name"]  # checked when the pages were read
            qname = qualify(vhost, name)
            by_name[qname] = item
            target = dead_letter_target(item)
            if target is not None:
                targets[qname] = (vhost, name, target)
        warnings = await self._resolve_dead_letters(targets)
        wanted = [qname for qname in by_name if self._wants(qname)]
        made, self._made = self._made, {}
        conventional = dlq_index(by_name)
        series = [
            self._sample(
                q,
                by_name=by_name,
                conventional=conventional,
                targets=targets,
                started=started,
                now=now,
                made=made,
            )
            for q in wanted
        ]
        kept = set(wanted)
        for gone in [k for k in self._history if k not in kept]:
            del self._history[gone]
        skipped = self.api.skipped_entries
        if skipped:
            warnings.append(
                f"{skipped} entr{'y' if skipped == 1 else 'ies'} of the management API's "
                "queue list skipped: not a queue object (with a vhost and a name)"
            )
        if self.api.rates_mode == "none":
            warnings.append(
                "management statistics are off (rates_mode: none): rates and error_rate are null"
            )
        return Collected(series=tuple(series), warnings=tuple(warnings))

    async def _resolve_dead_letters(self, targets: Targets) -> list[str]:
        """Refresh the DLX bindings; map sources to the DLQs that receive their dead letters."""
        warnings: list[str] = []
        try:
            warnings.extend(
                await self.api.refresh_topology(
                    {(v, t.exchange) for v, _, t in targets.values() if t.exchange}
                )
            )
        except ManagementUnavailable as exc:
            warnings.append(f"dead-letter bindings not refreshed: {redact(str(exc))}")
        dlqs_of: dict[str, list[str]] = {}
        for qname, (vhost, name, target) in targets.items():
            resolved = [qualify(vhost, q) for q in self.api.topology.resolve(vhost, name, target)]
            if resolved:
                dlqs_of[qname] = resolved
        sources_of: dict[str, list[str]] = {}
        for src, dlqs in dlqs_of.items():
            for d in dlqs:
                sources_of.setdefault(d, []).append(src)
        self.dead_letter_sources = sources_of
        self.dead_letter_queues = dlqs_of
        return warnings

    def _dlq_of(self, qname: str, conventional: Mapping[str, str]) -> str | None:
        """This queue's DLQ: explicit config, discovered binding, naming convention
        (``conventional``: :func:`dlq_index` of the queues listed)."""
        dlq: str | None = self.options.dlq.get(qname)
        if dlq is None:
            all_dlqs = self.dead_letter_queues.get(qname)
            if all_dlqs:
                dlq = prefer_conventional(qname, all_dlqs)
        if dlq is None:
            dlq = conventional.get(qname)
        return dlq

    def _sample(
        self,
        qname: str,
        *,
        by_name: Mapping[str, dict[str, Any]],
        conventional: Mapping[str, str],
        targets: Targets,
        started: float,
        now: float,
        made: Mapping[str, _Made],
    ) -> SeriesSample:
        item = by_name[qname]
        dlq = self._dlq_of(qname, conventional)
        dlq_item = by_name.get(dlq) if dlq else None
        sources = self.dead_letter_sources.get(qname)
        inputs = (
            item,
            dlq,
            dlq_item,
            sources,
            self.dead_letter_sources.get(dlq) if dlq else None,
            self.dead_letter_queues.get(qname),
            self.api.rates_mode,
        )
        last = made.get(qname)
        if last is not None and last.inputs == inputs:
            return self._again(qname, last, started)
        kind = str(item.get("type") or "classic")
        values = queue_levels(item, kind, now)
        values["dlq_length"] = num(dlq_item.get("messages_ready")) if dlq_item else None
        method: str | None = None
        point: Point | None = None
        if self.api.rates_mode != "none":
            stats = stats_of(item)
            processed = (
                counter(stats, "ack")
                + counter(stats, "deliver_no_ack")
                + counter(stats, "get_no_ack")
            )
            values["processed_total"] = processed
            if sources is None:
                values["published_total"] = counter(stats, "publish")
            method, point = self._rates(
                qname,
                kind=kind,
                item=item,
                dlq=dlq,
                dlq_item=dlq_item,
                processed=processed,
                started=started,
                values=values,
            )
        info = queue_info(
            item,
            kind,
            targets[qname][2] if qname in targets else None,
            self.dead_letter_queues.get(qname, []),
            sources,
        )
        if method:
            info["error_rate_method"] = method
        sample = SeriesSample(
            key=SeriesKey(self.options.name, qname, None),
            kind=kind,
            values=values,
            dlq=dlq,
            info=info,
        )
        ready, head = num(item.get("messages_ready")), num(item.get("head_message_timestamp"))
        if kind == "stream" or not ready or head is None:  # no age that grows with the clock
            self._made[qname] = _Made(inputs, point, sample)
        return sample

    def _again(self, qname: str, last: _Made, started: float) -> SeriesSample:
        """The sample of a queue whose inputs are those of its last one: the same sample, its
        error-rate window moved on with the same levels (the rates may change as old points
        leave the window, and then only they are new)."""
        sample = last.sample
        point = last.point
        if point is not None:
            point = Point(
                started, point.processed, point.dead_level, point.method, point.inflow_level
            )
            rates: dict[str, float | None] = {}
            self._windowed(qname, point, qname in self.dead_letter_sources, rates)
            old = sample.values
            if any(
                old.get(k) != v or (old.get(k) is None) is not (v is None) for k, v in rates.items()
            ):
                values = dict(old)
                values.update(rates)
                sample = SeriesSample(
                    key=sample.key,
                    kind=sample.kind,
                    values=values,
                    dlq=sample.dlq,
                    info=dict(sample.info),
                )
        self._made[qname] = _Made(last.inputs, point, sample)
        return sample

    def _rates(
        self,
        qname: str,
        *,
        kind: str,
        item: Mapping[str, Any],
        dlq: str | None,
        dlq_item: Mapping[str, Any] | None,
        processed: float,
        started: float,
        values: dict[str, float | None],
    ) -> tuple[str | None, Point]:
        """error_rate (and a DLQ's inflow as its publish_rate) over ``error_window``."""
        method, level = dead_level(
            qname,
            kind=kind,
            dlq=dlq,
            dlq_item=dlq_item,
            dlx_sources=self.dead_letter_sources.get(dlq) if dlq else None,
            explicit_sources=[s for s, d in self.options.dlq.items() if d == dlq],
            processed=processed,
            unacked=values.get("in_flight"),
            stats=stats_of(item),
        )
        is_target = qname in self.dead_letter_sources
        total = num(item.get("messages"))
        inflow = total + processed if is_target and total is not None else None
        point = Point(started, processed, level, method, inflow)
        self._windowed(qname, point, is_target, values)
        return method, point

    def _windowed(
        self, qname: str, point: Point, is_target: bool, values: dict[str, float | None]
    ) -> None:
        """Add the poll's point to the queue's window; error_rate (and a DLQ's inflow as its
        publish_rate) over it."""
        history = self._history.get(qname)
        if history is None:
            history = self._history[qname] = History()
        base = history.add(point, self.options.error_window)
        values["error_rate"] = error_ratio(base, point)
        if is_target:
            values["publish_rate"] = inflow_rate(base, point)

    # -- AMQP fallback -----------------------------------------------------------------

    async def _collect_amqp(self, reason: str, end: float) -> Collected:
        self.mode = "amqp"
        options = self.options
        known = [*options.vhosts, amqp_target(options.url.get_secret_value()).vhost]
        names: dict[str, None] = {}
        for pattern in options.include:
            if not (GLOB_CHARS & set(pattern)):
                names[pattern] = None
        dlq_names = {d: None for src, d in options.dlq.items() if src in names}
        wanted = [n for n in names if options.wants(n)]
        probe_names = list(dict.fromkeys([*wanted, *dlq_names]))
        if self._probe is None:
            self._probe = PassiveProbe(options)
        probe = self._probe
        probe.timeout = max(0.1, end - time.monotonic())
        if not probe_names:
            # nothing to declare, but a broker answering neither the management API nor AMQP
            # is unreachable, not "up with no queues" (SPEC §4 exit 3, §7)
            try:
                await asyncio.to_thread(probe.ping, known[-1])
            except Exception:
                await asyncio.to_thread(probe.close)
                raise
            return Collected(
                series=(),
                warnings=(
                    f"{reason}: AMQP fallback reads only queues named literally in include "
                    "(none are): no queues shown",
                ),
            )
        pairs = [split_name(n, known) for n in probe_names]
        try:
            found = await asyncio.to_thread(probe.declare, pairs)
        except Exception:
            await asyncio.to_thread(probe.close)
            raise
        warnings = [
            f"{reason}: degraded AMQP mode, queue length and consumers of "
            f"{len(wanted)} queue(s) named in include; rates, in-flight, latency, error rate "
            "and dead-letter discovery need the management plugin"
        ]
        lengths = {qualify(*pair): value for pair, value in found.items()}
        series: list[SeriesSample] = []
        for name in wanted:
            qname = qualify(*split_name(name, known))
            if qname not in lengths:
                warnings.append(f"queue {qname!r} does not exist")
                continue
            ready, consumers = lengths[qname]
            dlq = options.dlq.get(name) or next(
                (c for c in dlq_candidates(qname) if c in lengths), None
            )
            dlq_len = lengths[dlq][0] if dlq and dlq in lengths else None
            series.append(
                SeriesSample(
                    key=SeriesKey(options.name, qname, None),
                    kind="queue",
                    values={
                        "queue_length": float(ready),
                        "consumer_lag_messages": float(ready),
                        "consumers": float(consumers),
                        "dlq_length": None if dlq_len is None else float(dlq_len),
                    },
                    dlq=dlq,
                    info={"mode": "amqp"},
                )
            )
        return Collected(series=tuple(series), warnings=tuple(warnings))


def _create(options: RabbitMQOptions) -> RabbitMQCollector:
    return RabbitMQCollector(options)


PLUGIN: CollectorPlugin[RabbitMQOptions] = CollectorPlugin(
    type="rabbitmq",
    options_model=RabbitMQOptions,
    factory=_create,
    move_options=RabbitMQMoveOptions,
    description="RabbitMQ queues from the management API; AMQP for message actions",
)

__all__ = [
    "PLUGIN",
    "QUEUE_COLUMNS",
    "RabbitMQCollector",
    "RabbitMQOptions",
    "amqp_target",
    "effective_delivery_limit",
    "pika_parameters",
    "qualify",
    "split_name",
]
