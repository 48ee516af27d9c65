"""Alert evaluation: rules x series through a state machine, producing events to notify.

Evaluation reads only the time-series store and the engine's broker statuses; it never talks
to a broker and does no I/O beyond noticing silence-file changes, so the dashboard, ``mqtop
check`` and ``mqtop serve`` share it.

Per rule and series: ``inactive -> pending`` (condition true, ``for`` not yet elapsed) ``->
firing -> resolved``. A null value never makes a condition true. When a condition first turns
true, the stored points are walked back to find since when it has been true, so persisted
history counts towards ``for`` (``mqtop check --once`` relies on it). Series of a broker that
is down are frozen (the built-in ``BrokerDown`` alert covers them), and so are series its
broker did not list in its last poll; once the store removes such a series (after a few polls
without it) its alerts resolve at once, with that reason. Flapping is damped: a firing alert
resolves only after its condition stayed false for ``alerting.resolve_after``, and an alert
that fired ``flap_threshold`` times within ``flap_window`` is held firing until it stayed
false for the whole window. A held alert says so (``held_until``, ``reason``, a summary stating
the condition as false) and a flapping hold is notified once (a ``held`` event).

Speed: values of each metric are read once per cycle into a flat column; rules without a
label match are tested with C-level ``map``/``compress``; only series whose condition holds
(or that already have a state) reach Python-level work. Label matches are cached until the
set of series changes.
"""

from __future__ import annotations

import fnmatch
import math
import operator
import re
import threading
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import compress, repeat
from types import MappingProxyType
from typing import Any

from alerts.config import SEVERITY_ORDER, AlertingSettings, AlertRule
from alerts.model import Alert, AlertEvent, AlertState
from alerts.silences import Silence, SilenceStore
from alerts.statements import (
    CONDITION_FALSE,
    HELD_FLAPPING,
    HELD_RESOLVE_AFTER,
    RULE_REMOVED,
    SERIES_REMOVED,
    below,
    expression,
    held,
    removed,
)
from mqtop.kernel.model import BrokerStatus, SeriesKey, SeriesView, group_status_name
from mqtop.kernel.secrets import redact
from mqtop.kernel.store import DERIVED_RATES, REMOVE_AFTER_POLLS, TimeSeriesStore

NAN = math.nan
_STALE = operator.attrgetter("stale")
_METRICS = operator.attrgetter("metrics")
_KEY = operator.attrgetter("key")
BROKER_DOWN = "BrokerDown"
GROUP_STALLED = "GroupStalled"
SERIES_STALE = "SeriesStale"
BUILTIN_RULES: tuple[str, ...] = (BROKER_DOWN, GROUP_STALLED, SERIES_STALE)
STALE_POLLS = 3.0  # default stale_after, in poll intervals
BACKFILL_GAP = 300.0  # a longer gap between stored points breaks a `for:` chain

Identity = tuple[str | None, str | None, str | None]  # broker, queue, group

OPS: Mapping[str, Callable[[Any, Any], bool]] = MappingProxyType(
    {
        ">": operator.gt,
        ">=": operator.ge,
        "<": operator.lt,
        "<=": operator.le,
        "==": operator.eq,
        "!=": operator.ne,
    }
)

DEFAULT_SUMMARY = "{series}: {metric} {value} {op} {threshold}"
_FUNCTION_SUMMARY = "{series}: {function}({metric}[{window}]) {value} {op} {threshold}"
_BUILTIN_SUMMARY = {
    BROKER_DOWN: "broker {broker} is unreachable: {error}",
    GROUP_STALLED: "{series}: {consumer} is {status}",
    SERIES_STALE: "broker {broker}: no poll has stored data for {value}s (stale after "
    "{threshold}s); its numbers are that old",
}
_BUILTIN_RESOLVED = {
    BROKER_DOWN: "broker {broker} is reachable again",
    SERIES_STALE: "broker {broker}: polled again",
}
_FIELD = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)(?::([^{}]*))?\}")


def format_number(value: float | None) -> str:
    """Compact text for a metric value (``n/a`` when unknown)."""
    if value is None or value != value:
        return "n/a"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}"


def _format_field(name: str, value: Any, spec: str | None) -> str:
    if spec and isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return format(value, spec)
        except (ValueError, TypeError):
            pass
    if isinstance(value, float) or value is None:
        return format_number(value) if name in ("value", "threshold") else str(value or "-")
    return str(value)


class Template:
    """A summary template parsed once: ``{name}`` / ``{name:spec}`` fields, ``{{``/``}}``
    for literal braces; unknown names stay as written."""

    __slots__ = ("names", "parts")

    def __init__(self, text: str) -> None:
        parts: list[tuple[str, str | None, str | None, str]] = []
        literal = ""
        pos = 0
        for match in _FIELD.finditer(text):
            literal += text[pos : match.start()]
            pos = match.end()
            token = match.group(0)
            if token in ("{{", "}}"):
                literal += token[0]
                continue
            parts.append((literal, match.group(1), match.group(2), token))
            literal = ""
        literal += text[pos:]
        if literal:
            parts.append((literal, None, None, ""))
        self.parts = tuple(parts)
        self.names = frozenset(name for _, name, _, _ in parts if name)

    def render(self, fields: Mapping[str, Any]) -> str:
        """The text with every known field filled in."""
        out = []
        for literal, name, spec, raw in self.parts:
            out.append(literal)
            if name is None:
                continue
            if name in fields:
                out.append(_format_field(name, fields[name], spec))
            else:
                out.append(raw)
        return "".join(out)


_TEMPLATES: dict[str, Template] = {}


def render_summary(template: str, fields: Mapping[str, Any]) -> str:
    """Fill ``{name}`` / ``{name:spec}`` fields; unknown names stay as written."""
    compiled = _TEMPLATES.get(template)
    if compiled is None:
        if len(_TEMPLATES) > 1024:
            _TEMPLATES.clear()
        compiled = _TEMPLATES[template] = Template(template)
    return compiled.render(fields)


def _consumer_of(key: tuple[str | None, str | None, str | None]) -> str:
    """What a health status judges: a consumer group, or a queue's consumers."""
    return "queue" if key[2] is None else f"consumer group {key[2]}"


def series_label(broker: str | None, queue: str | None, group: str | None) -> str:
    """``broker/queue`` or ``broker/queue [group]`` (``broker`` alone for broker alerts)."""
    if queue is None:
        return broker or "-"
    base = f"{broker}/{queue}"
    return f"{base} [{group}]" if group else base


class _Compiled:
    """A rule prepared for fast evaluation."""

    __slots__ = (
        "builtin",
        "for_",
        "function",
        "kind_match",
        "labels",
        "match",
        "metric",
        "name",
        "op",
        "opfn",
        "predicate",
        "rule",
        "severity",
        "summary",
        "template",
        "threshold",
        "window",
        "window_text",
    )

    def __init__(self, rule: AlertRule, builtin: bool = False) -> None:
        self.rule = rule
        self.name = rule.name
        self.metric = rule.metric
        self.op = rule.op
        self.opfn = OPS[rule.op]
        self.threshold = float(rule.threshold)
        self.for_ = float(rule.for_)
        self.severity = rule.severity
        self.function = rule.function
        self.window = rule.window
        self.builtin = builtin
        self.predicate: Callable[[float], bool] | None = None
        self.match: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
            (label, re.compile(fnmatch.translate(pattern), re.DOTALL))
            for label, pattern in sorted(rule.match.items())
        )
        self.kind_match = any(label == "kind" for label, _ in self.match)
        if rule.summary:
            self.summary = rule.summary
        elif builtin:
            self.summary = _BUILTIN_SUMMARY.get(rule.name, DEFAULT_SUMMARY)
        else:
            self.summary = _FUNCTION_SUMMARY if rule.function else DEFAULT_SUMMARY
        self.template = Template(self.summary)
        self.labels: Mapping[str, str] = MappingProxyType(dict(rule.labels))
        self.window_text = _fmt_window(rule.window)

    def matches(self, view: SeriesView) -> bool:
        """True when every label glob matches the series (a null label matches as empty)."""
        key = view.key
        for label, pattern in self.match:
            if label == "broker":
                text = key.broker
            elif label == "queue":
                text = key.queue
            elif label == "group":
                text = key.group or ""
            else:
                text = view.kind or ""
            if not pattern.match(text):
                return False
        return True

    def holds(self, value: float | None) -> bool:
        """The condition for one value (null never holds)."""
        if value is None or value != value:
            return False
        if self.predicate is not None:
            return self.predicate(value)
        return self.opfn(value, self.threshold)


class _State:
    """Mutable state of one rule x identity (internal)."""

    __slots__ = (
        "active_since",
        "clear_since",
        "extra",
        "fired_at",
        "flapping",
        "held_notified",
        "held_until",
        "hold_reason",
        "last_notified",
        "notified",
        "rendered",
        "silenced",
        "state",
        "value",
    )

    def __init__(self, active_since: float) -> None:
        self.state = AlertState.PENDING
        self.value: float | None = None
        self.active_since = active_since
        self.fired_at: float | None = None
        self.clear_since: float | None = None
        self.last_notified: float | None = None
        self.notified = False  # receivers were told it is firing
        self.silenced = False
        self.flapping = False
        self.held_until: float | None = None  # condition false, still firing until then
        self.hold_reason: str | None = None
        self.held_notified = False  # a flapping hold was notified (once per episode)
        self.extra: dict[str, Any] | None = None
        # the alert last built from this state, its rule and extra: reused while they hold
        self.rendered: tuple[Alert, object, dict[str, Any] | None] | None = None

    def unhold(self) -> None:
        """The condition holds again: not held any more."""
        self.clear_since = None
        self.held_until = None
        self.hold_reason = None


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One rule x series as evaluated (for reports with one entry per pair)."""

    rule: str
    severity: str
    broker: str | None
    queue: str | None
    group: str | None
    value: float | None
    threshold: float | None
    state: AlertState
    alert: Alert | None


def _builtin_rules() -> list[_Compiled]:
    down = _Compiled(
        AlertRule.model_validate(
            {"name": BROKER_DOWN, "metric": "queue_length", "threshold": 0, "severity": "critical"}
        ),
        builtin=True,
    )
    stalled = _Compiled(
        AlertRule.model_validate(
            {
                "name": GROUP_STALLED,
                "metric": "group_status",
                "op": ">=",
                "threshold": 2,
                "severity": "critical",
            }
        ),
        builtin=True,
    )
    stalled.predicate = lambda v: v in (2.0, 3.0)  # STALL or STOP
    stale = _Compiled(
        AlertRule.model_validate(
            {"name": SERIES_STALE, "metric": "queue_length", "threshold": 0, "severity": "info"}
        ),
        builtin=True,
    )
    return [down, stalled, stale]


class AlertEvaluator:
    """Evaluates rules (and the built-in ones) against the store; keeps every alert's state."""

    def __init__(
        self,
        rules: Sequence[AlertRule],
        settings: AlertingSettings,
        silences: SilenceStore | None = None,
        builtin: bool = True,
    ) -> None:
        self._lock = threading.RLock()
        self._silences = silences if silences is not None else SilenceStore(None)
        self._builtin_enabled = builtin
        self._states: dict[str, dict[Identity, _State]] = {}
        self._rules: list[_Compiled] = []
        self._by_name: dict[str, _Compiled] = {}
        self._resolved: deque[Alert] = deque(maxlen=500)
        self._fires: dict[tuple[str, Identity], list[float]] = {}
        self._queued: list[AlertEvent] = []
        self._keys: list[SeriesKey] = []
        self._kinds: list[str] = []
        self._index: dict[Identity, int] = {}
        self._match_cache: dict[str, list[int] | None] = {}
        self._match_sets: dict[str, frozenset[int]] = {}
        self._loosest: dict[tuple[str, str], float] = {}
        self._fn_cache: dict[tuple[SeriesKey, str, str, float], tuple[float, float | None]] = {}
        self._points_cache: dict[
            tuple[SeriesKey, str, float], tuple[float, list[tuple[float, float]]]
        ] = {}
        self._last_prune = 0.0
        self.last_duration = 0.0  # seconds the last evaluate() took (for self-monitoring)
        self.cycles = 0
        self.settings = settings
        self.update_rules(rules, settings)

    # -- configuration ---------------------------------------------------------------

    @property
    def rules(self) -> list[AlertRule]:
        """Every rule evaluated (configured ones, then the built-in ones)."""
        with self._lock:
            return [c.rule for c in self._rules]

    @property
    def silence_store(self) -> SilenceStore:
        """Where silences are kept."""
        return self._silences

    def update_rules(self, rules: Sequence[AlertRule], settings: AlertingSettings) -> None:
        """Replace the rules (config reload). State of rules kept by name is preserved;
        firing alerts of removed rules resolve at the next evaluation."""
        with self._lock:
            compiled = [_Compiled(r) for r in rules]
            names = {c.name for c in compiled}
            if self._builtin_enabled:
                # a configured rule with a built-in's name replaces it
                compiled += [b for b in _builtin_rules() if b.name not in names]
            self.settings = settings
            self._rules = compiled
            self._loosest = _loosest_thresholds(compiled)
            self._by_name = {c.name: c for c in compiled}
            self._match_cache = {}
            self._fn_cache = {}
            self._points_cache = {}
            for name in [n for n in self._states if n not in self._by_name]:
                for identity, st in self._states.pop(name).items():
                    if st.state is AlertState.FIRING:
                        alert = self._resolved_alert(
                            name, identity, st, time.time(), None, reason=RULE_REMOVED
                        )
                        if st.notified:
                            self._queued.append(
                                AlertEvent("resolved", alert, alert.resolved_at or 0.0)
                            )

    # -- evaluation ------------------------------------------------------------------

    def evaluate(
        self, store: TimeSeriesStore, statuses: Mapping[str, BrokerStatus], now: float
    ) -> list[AlertEvent]:
        """Evaluate every rule at ``now``; return the transitions to notify."""
        started = time.perf_counter()
        with self._lock:
            events, self._queued = self._queued, []
            self._silences.refresh()
            if now - self._last_prune > 30.0:
                self._silences.prune(now)
                self._prune_fires(now)
                self._last_prune = now
            has_silences = bool(self._silences.active(now))
            views = store.views()
            self._refresh_keys(views)
            down = {name for name, s in statuses.items() if s.up is False}
            stale_set = set(compress(range(len(views)), map(_STALE, views)))
            columns = self._columns(views, {r.metric for r in self._rules if r.function is None})

            ctx = _Cycle(
                store=store,
                statuses=statuses,
                now=now,
                views=views,
                down=down,
                stale=stale_set,
                events=events,
                has_silences=has_silences,
            )
            for rule in self._rules:
                if rule.builtin and rule.name == BROKER_DOWN:
                    self._eval_broker_down(rule, ctx)
                elif rule.builtin and rule.name == SERIES_STALE:
                    self._eval_stale(rule, ctx)
                elif rule.function is not None:
                    self._eval_function_rule(rule, ctx)
                else:
                    self._eval_threshold_rule(rule, ctx, columns[rule.metric])
            self.cycles += 1
            self.last_duration = time.perf_counter() - started
            return events

    @staticmethod
    def _columns(views: Sequence[SeriesView], metrics: set[str]) -> dict[str, list[float]]:
        """One flat list per metric, aligned with ``views``; null is NaN (never holds)."""
        names = sorted(metrics)
        if not names:
            return {}
        if not views:
            return {name: [] for name in names}
        maps = list(map(_METRICS, views))
        try:
            rows = list(map(operator.itemgetter(*names), maps))
        except KeyError:  # a view without some metric: the slower, forgiving way
            rows = [tuple(m.get(n) for n in names) for m in maps]
        if len(names) == 1:
            rows = [(row,) for row in rows]
        out: dict[str, list[float]] = {}
        for name, raw in zip(names, zip(*rows, strict=True), strict=True):
            out[name] = [NAN if x is None else x for x in raw]
        return out

    def _refresh_keys(self, views: Sequence[SeriesView]) -> None:
        keys = list(map(_KEY, views))
        if keys != self._keys:
            self._keys = keys
            self._index = {k: i for i, k in enumerate(keys)}
            self._match_cache = {}
            self._fn_cache = {k: v for k, v in self._fn_cache.items() if k[0] in self._index}
            self._points_cache = {
                k: v for k, v in self._points_cache.items() if k[0] in self._index
            }
        if any(r.kind_match for r in self._rules):
            kinds = [v.kind for v in views]
            if kinds != self._kinds:
                self._kinds = kinds
                self._match_cache = {}

    def _matching(self, rule: _Compiled, views: Sequence[SeriesView]) -> list[int] | None:
        """Indexes of the series a rule applies to (None: every series)."""
        if not rule.match:
            return None
        if rule.name in self._match_cache:
            return self._match_cache[rule.name]
        idx = [i for i, v in enumerate(views) if rule.matches(v)]
        self._match_cache[rule.name] = idx
        self._match_sets[rule.name] = frozenset(idx)
        return idx

    def _eval_threshold_rule(self, rule: _Compiled, ctx: _Cycle, col: list[float]) -> None:
        true = self._holding(rule, ctx, col)
        if ctx.stale:
            true = [i for i in true if i not in ctx.stale]
        states = self._states.setdefault(rule.name, {})
        active = self._hold_true(rule, ctx, col, true, states)
        if len(states) > len(active):
            self._release_threshold(rule, ctx, col, states, active)

    def _holding(self, rule: _Compiled, ctx: _Cycle, col: list[float]) -> list[int]:
        """Indexes of the matching series whose value makes the rule's condition true."""
        idx = self._matching(rule, ctx.views)
        if rule.predicate is not None:
            pred = rule.predicate
            if idx is None:
                return list(compress(range(len(col)), map(pred, col)))
            return [i for i in idx if pred(col[i])]
        true = self._compare(rule, ctx, col, idx)
        if rule.op == "!=":
            true = [i for i in true if col[i] == col[i]]  # NaN (null) never holds
        return true

    def _compare(
        self, rule: _Compiled, ctx: _Cycle, col: list[float], idx: list[int] | None
    ) -> list[int]:
        """The comparison of a plain threshold rule, sharing scans between related rules."""
        n = len(col)
        opfn, thr = rule.opfn, rule.threshold
        group = (rule.metric, rule.op)
        loosest = self._loosest.get(group)
        if loosest is not None and loosest != thr:
            # rules sharing a metric and direction: scan once with the loosest threshold,
            # then each rule filters that (small) candidate list
            base = ctx.bases.get(group)
            if base is None:
                base = list(compress(range(n), map(opfn, col, repeat(loosest, n))))
                ctx.bases[group] = base
            if idx is None:
                return [i for i in base if opfn(col[i], thr)]
            members = self._match_sets[rule.name]
            return [i for i in base if i in members and opfn(col[i], thr)]
        if idx is None:
            true = list(compress(range(n), map(opfn, col, repeat(thr, n))))
            if loosest is not None:
                ctx.bases[group] = true
            return true
        return [i for i in idx if opfn(col[i], thr)]

    def _hold_true(
        self,
        rule: _Compiled,
        ctx: _Cycle,
        col: list[float],
        true: list[int],
        states: dict[Identity, _State],
    ) -> set[Identity]:
        """Advance the state of every series the condition holds for; their identities."""
        keys = self._keys
        active: set[Identity] = set()
        firing = AlertState.FIRING
        quiet = not ctx.has_silences
        every = self.settings.repeat_interval
        now = ctx.now
        for i in true:
            key = keys[i]
            active.add(key)
            st = states.get(key)
            if st is None:
                since = now
                if rule.for_ > 0:
                    since = self._backfill(rule, key, ctx)
                st = _State(since)
                states[key] = st
            st.value = col[i]
            if (
                quiet
                and st.state is firing
                and st.notified
                and not st.silenced
                and (every <= 0 or now - (st.last_notified or now) < every)
            ):
                if st.clear_since is not None:
                    st.unhold()
                continue  # still firing, nothing to tell: the common case
            self._on_true(rule, key, st, ctx)
        return active

    def _release_threshold(
        self,
        rule: _Compiled,
        ctx: _Cycle,
        col: list[float],
        states: dict[Identity, _State],
        active: set[Identity],
    ) -> None:
        """The series with a state whose condition no longer holds (or that went away)."""
        index = self._index
        for gone in [k for k in states if k not in active]:
            if gone[0] in ctx.down:
                continue  # frozen while the broker is down
            i_ = index.get(gone)
            if i_ is None:
                self._on_false(rule, gone, states, None, ctx, reason=SERIES_REMOVED)
                continue
            if i_ in ctx.stale:
                continue  # not in its broker's last poll: frozen until back or removed
            value = col[i_]
            self._on_false(rule, gone, states, None if value != value else value, ctx)

    def _eval_function_rule(self, rule: _Compiled, ctx: _Cycle) -> None:
        views = ctx.views
        idx = self._matching(rule, views)
        indexes: Iterable[int] = range(len(views)) if idx is None else idx
        states = self._states.setdefault(rule.name, {})
        values: dict[Identity, float | None] = {}
        active: set[Identity] = set()
        for i in indexes:
            if i in ctx.stale:
                continue
            view = views[i]
            value = self._function_value(rule, ctx.store, view)
            values[view.key] = value
            if not rule.holds(value):
                continue
            key = view.key
            active.add(key)
            st = states.get(key)
            if st is None:
                since = ctx.now
                if rule.for_ > 0:
                    since = self._backfill_function(rule, view, ctx)
                st = _State(since)
                states[key] = st
            st.value = value
            self._on_true(rule, key, st, ctx)
        if len(states) > len(active):
            for gone in [k for k in states if k not in active]:
                if gone[0] in ctx.down:
                    continue
                i_ = self._index.get(gone)
                if i_ is None:
                    self._on_false(rule, gone, states, None, ctx, reason=SERIES_REMOVED)
                elif i_ not in ctx.stale:
                    self._on_false(rule, gone, states, values.get(gone), ctx)

    def _eval_broker_down(self, rule: _Compiled, ctx: _Cycle) -> None:
        states = self._states.setdefault(rule.name, {})
        active: set[Identity] = set()
        for name, status in ctx.statuses.items():
            if status.up is not False:
                continue
            key: Identity = (name, None, None)
            active.add(key)
            st = states.get(key)
            if st is None:
                st = _State(status.last_success or status.last_poll or ctx.now)
                st.active_since = min(st.active_since, ctx.now)
                states[key] = st
            st.value = None
            st.extra = {
                "error": redact(status.error or "no answer"),
                "address": status.address,
                "failures": status.consecutive_failures,
            }
            self._on_true(rule, key, st, ctx)
        for key in [k for k in states if k not in active]:
            self._on_false(rule, key, states, None, ctx)

    def _eval_stale(self, rule: _Compiled, ctx: _Cycle) -> None:
        """One alert per broker that is up but whose last successful poll stored its data
        longer ago than the limit: judged from when that poll finished, not from series
        timestamps (stamped at poll start), so a slow poll or a busy machine is not "stale"."""
        states = self._states.setdefault(rule.name, {})
        active: set[Identity] = set()
        for name, status in ctx.statuses.items():
            if status.up is not True:
                continue  # down: BrokerDown covers it; never polled: nothing is old yet
            age = status.staleness(ctx.now)
            if age is None:
                continue
            limit = self.settings.stale_after or status.stale_limit(STALE_POLLS)
            if age <= limit:
                continue
            key: Identity = (name, None, None)
            active.add(key)
            st = states.get(key)
            if st is None:
                st = _State(ctx.now - age + limit)
                states[key] = st
            st.value = float(round(age))
            st.extra = {"threshold": limit}
            self._on_true(rule, key, st, ctx)
        for gone in [k for k in states if k not in active]:
            self._on_false(rule, gone, states, None, ctx)

    # -- the state machine -----------------------------------------------------------

    def _on_true(self, rule: _Compiled, key: Identity, st: _State, ctx: _Cycle) -> None:
        now = ctx.now
        if st.clear_since is not None:
            st.unhold()
        if st.state is AlertState.PENDING:
            if now - st.active_since < rule.for_:
                if ctx.has_silences:
                    st.silenced = self._silenced(rule, key, now)
                return
            st.state = AlertState.FIRING
            st.fired_at = now
            fires = self._fires.setdefault((rule.name, key), [])
            fires.append(now)
            st.silenced = self._silenced(rule, key, now) if ctx.has_silences else False
            if not st.silenced:
                self._notify_firing(rule, key, st, ctx, repeat=False)
            return
        # already firing
        if ctx.has_silences:
            st.silenced = self._silenced(rule, key, now)
        elif st.silenced:
            st.silenced = False
        if st.silenced:
            return
        if not st.notified:
            self._notify_firing(rule, key, st, ctx, repeat=False)  # a silence ended
        elif (
            st.last_notified is not None
            and self.settings.repeat_interval > 0
            and now - st.last_notified >= self.settings.repeat_interval
        ):
            self._notify_firing(rule, key, st, ctx, repeat=True)

    def _on_false(
        self,
        rule: _Compiled,
        key: Identity,
        states: dict[Identity, _State],
        value: float | None,
        ctx: _Cycle,
        *,
        reason: str | None = None,
    ) -> None:
        """The condition is false (or, with a ``reason``, the series is gone: resolve now)."""
        st = states[key]
        if st.state is AlertState.PENDING:
            del states[key]
            return
        now = ctx.now
        st.value = value
        if reason is None:
            if st.clear_since is None:
                st.clear_since = now
            if self._hold(rule, key, st, ctx):
                return
        del states[key]
        alert = self._resolved_alert(
            rule.name, key, st, now, value, reason=reason or CONDITION_FALSE
        )
        if st.notified:
            ctx.events.append(AlertEvent("resolved", alert, now))

    def _hold(self, rule: _Compiled, key: Identity, st: _State, ctx: _Cycle) -> bool:
        """Keep a firing alert whose condition is false firing (``resolve_after``, flapping);
        True while it is held. A flapping hold is notified once per episode."""
        assert st.clear_since is not None
        now = ctx.now
        hold = self.settings.resolve_after
        if st.flapping or self._flapping(rule.name, key, now):
            st.flapping = True  # sticky until it resolves
            hold = max(hold, self.settings.flap_window)
        if now - st.clear_since >= hold:
            return False
        st.held_until = st.clear_since + hold
        st.hold_reason = HELD_FLAPPING if st.flapping else HELD_RESOLVE_AFTER
        if st.flapping and not st.held_notified and st.notified and not st.silenced:
            st.held_notified = True
            ctx.events.append(AlertEvent("held", self._alert(rule, key, st), now))
        return True

    def _notify_firing(
        self, rule: _Compiled, key: Identity, st: _State, ctx: _Cycle, repeat: bool
    ) -> None:
        st.notified = True
        st.last_notified = ctx.now
        ctx.events.append(AlertEvent("firing", self._alert(rule, key, st), ctx.now, repeat=repeat))

    def _flapping(self, name: str, key: Identity, now: float) -> bool:
        threshold = self.settings.flap_threshold
        if threshold <= 0:
            return False
        fires = self._fires.get((name, key))
        if not fires:
            return False
        horizon = now - self.settings.flap_window
        recent = [t for t in fires if t >= horizon]
        if len(recent) != len(fires):
            self._fires[(name, key)] = recent
        return len(recent) >= threshold

    def _prune_fires(self, now: float) -> None:
        horizon = now - self.settings.flap_window
        for k in [k for k, v in self._fires.items() if not v or v[-1] < horizon]:
            del self._fires[k]

    def _silenced(self, rule: _Compiled, key: Identity, now: float) -> bool:
        return self._silences.match(rule.name, self._labels(rule, key), now) is not None

    @staticmethod
    def _labels(rule: _Compiled, key: Identity) -> dict[str, str | None]:
        labels: dict[str, str | None] = dict(rule.rule.labels)
        labels.update(
            {
                "broker": key[0],
                "queue": key[1],
                "group": key[2],
                "severity": rule.severity,
                "rule": rule.name,
            }
        )
        return labels

    # -- history ---------------------------------------------------------------------

    def _backfill(self, rule: _Compiled, key: Identity, ctx: _Cycle) -> float:
        """Since when stored points show the condition true without a gap (``now`` if not)."""
        if not isinstance(key, SeriesKey):
            return ctx.now
        store = ctx.store
        status = ctx.statuses.get(key.broker)
        interval = status.interval if status is not None else store.interval
        tolerance = max(STALE_POLLS * interval, BACKFILL_GAP)
        if rule.for_ > store.recent:
            tolerance = max(tolerance, 1.5 * store.rollup.bucket)
        start = ctx.now - rule.for_ - tolerance
        points = store.range(key, rule.metric, start, ctx.now, points=1_000_000)
        since = ctx.now
        previous: float | None = None
        for t, value in reversed(points):
            if not rule.holds(value):
                break
            if previous is not None and previous - t > tolerance:
                break
            since = t
            previous = t
        return min(since, ctx.now)

    def _backfill_function(self, rule: _Compiled, view: SeriesView, ctx: _Cycle) -> float:
        """Since when ``function(metric[window])``, evaluated at each stored point, has held.

        The same walk as :meth:`_backfill`, with the function applied to the window ending
        at each point: stored history counts towards ``for`` for function rules too.
        """
        assert rule.function is not None and rule.window is not None
        store = ctx.store
        status = ctx.statuses.get(view.key.broker)
        interval = status.interval if status is not None else store.interval
        tolerance = max(STALE_POLLS * interval, BACKFILL_GAP)
        if rule.for_ > store.recent:
            tolerance = max(tolerance, 1.5 * store.rollup.bucket)
        span = rule.for_ + tolerance + rule.window
        points = window_points(store, view, rule.metric, span)
        if len(points) < 2:
            return ctx.now
        times = [t for t, _ in points]
        start = ctx.now - rule.for_ - tolerance
        since = ctx.now
        previous: float | None = None
        for end in range(len(points) - 1, -1, -1):
            t = times[end]
            if t < start:
                break
            if previous is not None and previous - t > tolerance:
                break
            first = bisect_right(times, t - rule.window, 0, end)
            if not rule.holds(apply_function(rule.function, points[first : end + 1])):
                break
            since = t
            previous = t
        return min(since, ctx.now)

    def _function_value(
        self, rule: _Compiled, store: TimeSeriesStore, view: SeriesView
    ) -> float | None:
        """``function(metric[window])`` for one series, cached until the series changes."""
        assert rule.function is not None and rule.window is not None
        cache_key = (view.key, rule.metric, rule.function, rule.window)
        cached = self._fn_cache.get(cache_key)
        if cached is not None and cached[0] == view.updated:
            return cached[1]
        points_key = (view.key, rule.metric, rule.window)
        cached_points = self._points_cache.get(points_key)
        if cached_points is not None and cached_points[0] == view.updated:
            points = cached_points[1]
        else:
            points = window_points(store, view, rule.metric, rule.window)
            self._points_cache[points_key] = (view.updated, points)
        value = apply_function(rule.function, points)
        self._fn_cache[cache_key] = (view.updated, value)
        return value

    # -- reading ---------------------------------------------------------------------

    def _alert(self, rule: _Compiled, key: Identity, st: _State) -> Alert:
        """The alert of one firing state; the one built last time while nothing it is made
        of changed (a quiet series keeps firing with the same value: no new summary)."""
        rendered = st.rendered
        if rendered is not None and st.held_until is None:
            alert, of_rule, extra = rendered
            if (
                of_rule is rule
                and alert.state is st.state
                and alert.value == st.value
                and (alert.value is None) is (st.value is None)
                and alert.active_since == st.active_since
                and alert.fired_at == st.fired_at
                and alert.silenced == st.silenced
                and alert.held_until is None
                and extra == st.extra
            ):
                return alert
        alert = self._build_alert(rule, key, st)
        st.rendered = (alert, rule, st.extra)
        return alert

    def _build_alert(self, rule: _Compiled, key: Identity, st: _State) -> Alert:
        threshold: float | None = rule.threshold
        fields: dict[str, Any] = {
            "rule": rule.name,
            "metric": rule.metric,
            "op": rule.op,
            "severity": rule.severity,
            "broker": key[0],
            "queue": key[1],
            "group": key[2],
            "value": st.value,
            "threshold": threshold,
            "function": rule.function or "",
            "window": rule.window_text,
        }
        if "series" in rule.template.names:
            fields["series"] = series_label(*key)
        if rule.builtin:
            if rule.name == BROKER_DOWN:
                threshold = None
            elif rule.name == GROUP_STALLED:
                fields["status"] = group_status_name(st.value) or format_number(st.value)
                fields["consumer"] = _consumer_of(key)
            elif rule.name == SERIES_STALE and st.extra:
                threshold = float(st.extra["threshold"])
                fields["threshold"] = threshold
        if st.extra:
            fields.update({k: v for k, v in st.extra.items() if k not in fields})
        held_until = st.held_until if st.state is AlertState.FIRING else None
        if held_until is not None:
            summary = held(
                self._statement(rule, key, st, fields),
                st.hold_reason or HELD_RESOLVE_AFTER,
                held_until,
                self._hold_detail(rule.name, key, st),
            )
        else:
            summary = rule.template.render(fields)
        return Alert(
            rule=rule.name,
            severity=rule.severity,
            state=st.state,
            broker=key[0],
            queue=key[1],
            group=key[2],
            value=st.value,
            threshold=threshold,
            summary=summary,
            labels=rule.labels,
            active_since=st.active_since,
            fired_at=st.fired_at,
            silenced=st.silenced,
            held_until=held_until,
            reason=st.hold_reason if held_until is not None else None,
        )

    def _statement(
        self, rule: _Compiled, key: Identity, st: _State, fields: Mapping[str, Any]
    ) -> str:
        """What is true now that the condition is false (resolutions, held alerts)."""
        if rule.builtin and rule.name in _BUILTIN_RESOLVED:
            return render_summary(_BUILTIN_RESOLVED[rule.name], fields)
        series = series_label(*key)
        if rule.builtin and rule.name == GROUP_STALLED:
            status = group_status_name(st.value)
            consumer = _consumer_of(key)
            if status is None:
                return f"{series}: {consumer} has no status"
            return f"{series}: {consumer} is {status}"
        value = None if st.value is None else format_number(st.value)
        expr = expression(rule.metric, rule.function, rule.window_text)
        return below(series, expr, value, rule.op, format_number(rule.threshold))

    def _hold_detail(self, name: str, key: Identity, st: _State) -> str:
        if st.hold_reason != HELD_FLAPPING:
            return _fmt_window(self.settings.resolve_after)
        fires = self._fires.get((name, key), [])
        window = _fmt_window(self.settings.flap_window)
        return f"fired {len(fires)} times in {window}"

    def _resolved_alert(
        self,
        name: str,
        key: Identity,
        st: _State,
        now: float | None,
        value: float | None,
        *,
        reason: str = CONDITION_FALSE,
    ) -> Alert:
        rule = self._by_name.get(name)
        resolved_at = now or st.clear_since or 0.0
        if rule is None or reason == RULE_REMOVED:
            severity = rule.severity if rule is not None else "info"
            summary = f"rule {name} was removed"
            threshold = None
            labels = rule.labels if rule is not None else MappingProxyType({})
        else:
            severity, labels = rule.severity, rule.labels
            threshold = None if name == BROKER_DOWN else rule.threshold
            if name == SERIES_STALE and st.extra:
                threshold = float(st.extra["threshold"])
            if reason == SERIES_REMOVED:
                summary = removed(series_label(*key), REMOVE_AFTER_POLLS)
            else:
                fields = {
                    "broker": key[0],
                    "queue": key[1],
                    "group": key[2],
                    "value": st.value,
                    "threshold": threshold,
                }
                summary = self._statement(rule, key, st, fields)
        alert = Alert(
            rule=name,
            severity=severity,
            state=AlertState.RESOLVED,
            broker=key[0],
            queue=key[1],
            group=key[2],
            value=value,
            threshold=threshold,
            summary=summary,
            labels=labels,
            active_since=st.active_since,
            fired_at=st.fired_at,
            resolved_at=resolved_at,
            silenced=st.silenced,
            reason=reason,
        )
        self._resolved.append(alert)
        return alert

    def alerts(self) -> list[Alert]:
        """Pending and firing alerts, most severe first (firing before pending)."""
        with self._lock:
            out = [
                self._alert(self._by_name[name], key, st)
                for name, states in self._states.items()
                if name in self._by_name
                for key, st in states.items()
            ]
        out.sort(key=alert_sort_key)
        return out

    def recent_resolved(self, limit: int = 50) -> list[Alert]:
        """The most recently resolved alerts, newest first."""
        with self._lock:
            items = list(self._resolved)
        return items[::-1][:limit]

    def results(self, store: TimeSeriesStore) -> Iterator[CheckResult]:
        """Every rule x series the last evaluation looked at, with its value and state.

        Used by reports that need one entry per pair (JUnit). Built-in rules report only the
        brokers/series they apply to (every broker for BrokerDown, groups for GroupStalled,
        alerts only for SeriesStale).
        """
        with self._lock:
            views = store.views()
            rules = list(self._rules)
            states = {name: dict(s) for name, s in self._states.items()}
        for rule in rules:
            rule_states = states.get(rule.name, {})
            if rule.builtin and rule.name in (BROKER_DOWN, SERIES_STALE):
                for key, st in rule_states.items():
                    yield self._result(rule, key, st.value, st)
                continue
            for view in views:
                if view.stale or not rule.matches(view):
                    continue
                if rule.function is not None:
                    with self._lock:
                        value = self._function_value(rule, store, view)
                else:
                    value = view.metrics.get(rule.metric)
                if rule.builtin and value is None:
                    continue  # GroupStalled: only series that have a group status
                yield self._result(rule, view.key, value, rule_states.get(view.key))

    def _result(
        self, rule: _Compiled, key: Identity, value: float | None, st: _State | None
    ) -> CheckResult:
        alert = None
        if st is not None:
            with self._lock:
                alert = self._alert(rule, key, st)
        return CheckResult(
            rule=rule.name,
            severity=rule.severity,
            broker=key[0],
            queue=key[1],
            group=key[2],
            value=value,
            threshold=None if rule.name == BROKER_DOWN else rule.threshold,
            state=st.state if st is not None else AlertState.INACTIVE,
            alert=alert,
        )

    # -- silences --------------------------------------------------------------------

    def silence(
        self, rule: str, matchers: Mapping[str, str], until: float, comment: str = ""
    ) -> Silence:
        """Mute matching alerts until ``until``; persisted. Takes effect immediately."""
        silence = self._silences.add(rule, matchers, until, comment)
        self._remark_silenced()
        return silence

    def silences(self) -> list[Silence]:
        """Silences in force, soonest to expire first."""
        return self._silences.active()

    def unsilence(self, silence_id: str) -> None:
        """Remove a silence (firing alerts it muted are notified at the next evaluation)."""
        if not self._silences.remove(silence_id):
            raise KeyError(silence_id)
        self._remark_silenced()

    def _remark_silenced(self) -> None:
        now = time.time()
        with self._lock:
            for name, states in self._states.items():
                rule = self._by_name.get(name)
                if rule is None:
                    continue
                for key, st in states.items():
                    st.silenced = self._silenced(rule, key, now)


@dataclass(slots=True)
class _Cycle:
    """What one evaluation cycle shares between rules (internal)."""

    store: TimeSeriesStore
    statuses: Mapping[str, BrokerStatus]
    now: float
    views: Sequence[SeriesView]
    down: set[str]
    stale: set[int]
    events: list[AlertEvent]
    has_silences: bool
    bases: dict[tuple[str, str], list[int]] = field(default_factory=dict)


def _loosest_thresholds(rules: Sequence[_Compiled]) -> dict[tuple[str, str], float]:
    """Per (metric, direction) shared by several threshold rules: the threshold whose
    true set contains every other's (lowest for > and >=, highest for < and <=)."""
    groups: dict[tuple[str, str], list[float]] = {}
    for rule in rules:
        plain = rule.function is None and rule.predicate is None and not rule.builtin
        if plain and rule.op in (">", ">=", "<", "<="):
            groups.setdefault((rule.metric, rule.op), []).append(rule.threshold)
    out = {}
    for (metric, op), thresholds in groups.items():
        if len(thresholds) > 1:
            out[(metric, op)] = min(thresholds) if op in (">", ">=") else max(thresholds)
    return out


def alert_sort_key(alert: Alert) -> tuple[int, int, str, str, str, str]:
    """Most severe first, firing before pending, then by rule and labels."""
    state_rank = 0 if alert.state is AlertState.FIRING else 1
    return (
        -SEVERITY_ORDER.get(alert.severity, 0),
        state_rank,
        alert.rule,
        alert.broker or "",
        alert.queue or "",
        alert.group or "",
    )


def _fmt_window(window: float | None) -> str:
    if window is None:
        return ""
    from mqtop.kernel.durations import format_duration

    return format_duration(window)


def window_points(
    store: TimeSeriesStore, view: SeriesView, metric: str, window: float
) -> list[tuple[float, float]]:
    """Known (non-null) points of ``metric`` over the window ending at the last update."""
    key = view.key
    points: Sequence[tuple[float, float | None]] = store.window_values(key, metric, window)
    if not points and metric in DERIVED_RATES:
        points = store.range(key, metric, view.updated - window, view.updated, points=1_000_000)
    elif not points and metric == "error_rate":
        dead = store.window_values(key, "dead_lettered_total", window)
        done = store.window_values(key, "processed_total", window)
        points = _ratio_points(dead, done)
    return [(t, v) for t, v in points if v is not None and v == v]


def _ratio_points(
    dead: Sequence[tuple[float, float | None]], done: Sequence[tuple[float, float | None]]
) -> list[tuple[float, float | None]]:
    """Per-interval dead / (dead + done) from two counters sampled at the same times."""
    out: list[tuple[float, float | None]] = []
    by_time = dict(done)
    prev: tuple[float, float, float] | None = None
    for t, d in dead:
        p = by_time.get(t)
        if d is None or p is None:
            prev = None
            continue
        if prev is not None:
            dd = d - prev[1] if d >= prev[1] else d
            dp = p - prev[2] if p >= prev[2] else p
            out.append((t, dd / (dd + dp) if dd + dp > 0 else None))
        prev = (t, d, p)
    return out


def apply_function(function: str, points: Sequence[tuple[float, float]]) -> float | None:
    """``avg``/``max`` of the values; ``increase`` = last - first; ``rate`` = increase/s."""
    if not points:
        return None
    if function == "avg":
        return math.fsum(v for _, v in points) / len(points)
    if function == "max":
        return max(v for _, v in points)
    if len(points) < 2:
        return None
    delta = points[-1][1] - points[0][1]
    if function == "increase":
        return delta
    span = points[-1][0] - points[0][0]
    return delta / span if span > 0 else None
