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

import math
import operator
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import compress, groupby, repeat

from alerts.config import SEVERITY_ORDER, AlertingSettings, AlertRule
from alerts.lifecycle import AlertLifecycle
from alerts.model import Alert, AlertEvent, AlertState
from alerts.rules import (
    BACKFILL_GAP,
    BROKER_DOWN,
    BUILTIN_RULES,
    DEFAULT_SUMMARY,
    GROUP_STALLED,
    OPS,
    SERIES_STALE,
    STALE_POLLS,
    CompiledRule,
    Identity,
    builtin_rules,
    loosest_thresholds,
)
from alerts.silences import Silence, SilenceStore
from alerts.state import CheckResult, Cycle, RuleState, RuleTrack, alert_sort_key
from alerts.statements import RULE_REMOVED, SERIES_REMOVED
from alerts.summaries import Template, format_number, render_summary, series_label
from alerts.windows import apply_function, window_points
from mqtop.kernel.model import BrokerStatus, SeriesKey, SeriesView
from mqtop.kernel.secrets import redact
from mqtop.kernel.store import TimeSeriesStore

__all__ = [
    "BACKFILL_GAP",
    "BROKER_DOWN",
    "BUILTIN_RULES",
    "DEFAULT_SUMMARY",
    "GROUP_STALLED",
    "OPS",
    "SERIES_STALE",
    "STALE_POLLS",
    "AlertEvaluator",
    "CheckResult",
    "Identity",
    "Template",
    "alert_sort_key",
    "apply_function",
    "format_number",
    "render_summary",
    "series_label",
    "window_points",
]

NAN = math.nan
_CLEAN: set[Identity] = set()  # "not touched" in _dirty (never filled)


def _label_order(key: Identity) -> tuple[str, str, str]:
    return (key[0] or "", key[1] or "", key[2] or "")


def _severity_of(alerts: RuleAlerts) -> int:
    return -SEVERITY_ORDER.get(alerts.rule.severity, 0)


class RuleAlerts:
    """The pending and firing alerts of one rule, in label order (internal)."""

    __slots__ = ("by_key", "firing", "pairs", "pending", "rule")

    def __init__(self, rule: CompiledRule) -> None:
        self.rule = rule
        self.by_key: dict[Identity, Alert] = {}
        self.pairs: list[tuple[tuple[str, str, str], Identity]] = []
        self.firing: list[Alert] = []
        self.pending: list[Alert] = []

    def order(self) -> tuple[int, str]:
        """Where the rule's alerts go among those of its state: severity, then name."""
        return (-SEVERITY_ORDER.get(self.rule.severity, 0), self.rule.name)

    def rebuild(
        self,
        make: Callable[[CompiledRule, Identity, RuleState], Alert],
        states: Mapping[Identity, RuleState],
    ) -> bool:
        """Every alert read again; True when any is not the one kept."""
        rule = self.rule
        by_key = {key: make(rule, key, st) for key, st in states.items()}
        old = self.by_key
        same = len(by_key) == len(old) and all(
            old.get(key) is alert for key, alert in by_key.items()
        )
        self.by_key = by_key
        if same:
            return False
        if by_key.keys() != old.keys():
            self.pairs = sorted((_label_order(key), key) for key in by_key)
        self._split()
        return True

    def update(
        self,
        make: Callable[[CompiledRule, Identity, RuleState], Alert],
        states: Mapping[Identity, RuleState],
        touched: set[Identity],
    ) -> bool:
        """The touched identities read again; True when any alert changed."""
        rule = self.rule
        by_key = self.by_key
        added: list[Identity] = []
        removed = False
        changed = False
        for key in touched:
            st = states.get(key)
            if st is None:
                if by_key.pop(key, None) is not None:
                    removed = changed = True
                continue
            alert = make(rule, key, st)
            old = by_key.get(key)
            if old is alert:
                continue
            if old is None:
                added.append(key)
            by_key[key] = alert
            changed = True
        if not changed:
            return False
        if removed:
            self.pairs = [pair for pair in self.pairs if pair[1] in by_key]
        if added:
            added.sort(key=_label_order)
            self.pairs += [(_label_order(key), key) for key in added]
            self.pairs.sort()  # two sorted runs: merged
        self._split()
        return True

    def _split(self) -> None:
        alerts = list(map(self.by_key.__getitem__, [key for _, key in self.pairs]))
        firing = AlertState.FIRING
        self.firing = [a for a in alerts if a.state is firing]
        self.pending = [a for a in alerts if a.state is not firing]


_STALE = operator.attrgetter("stale")
_METRICS = operator.attrgetter("metrics")
_KEY = operator.attrgetter("key")


class AlertEvaluator(AlertLifecycle):
    """Evaluates rules (and the built-in ones) against the store; keeps every alert's state."""

    def __init__(
        self,
        rules: Sequence[AlertRule],
        settings: AlertingSettings,
        silences: SilenceStore | None = None,
        builtin: bool = True,
    ) -> None:
        super().__init__(settings, silences if silences is not None else SilenceStore(None))
        self._lock = threading.RLock()
        self._builtin_enabled = builtin
        self._states: dict[str, dict[Identity, RuleState]] = {}
        self._rules: list[CompiledRule] = []
        self._queued: list[AlertEvent] = []
        self._keys: list[SeriesKey] = []
        self._kinds: list[str] = []
        self._index: dict[Identity, int] = {}
        self._match_cache: dict[str, list[int] | None] = {}
        self._match_sets: dict[str, frozenset[int]] = {}
        self._loosest: dict[tuple[str, str], float] = {}
        self._last_prune = 0.0
        self.last_duration = 0.0  # seconds the last evaluate() took (for self-monitoring)
        # the last alerts() answer, in order: reused while no rule's alerts changed
        self._ordered: list[Alert] = []
        # per rule: its alerts, kept between alerts() calls; the identities whose state an
        # evaluation touched since (None: every one of the rule's)
        self._rule_alerts: dict[str, RuleAlerts] = {}
        self._dirty: dict[str, set[Identity] | None] = {}
        # the last cycle's metric columns (see _columns) and whether the series changed
        # (a new list of keys is made whenever the series change, so the columns line up
        # with the views while it is the same list)
        self._columns_memo: tuple[
            list[Mapping[str, float | None]], list[str], dict[str, list[float]], list[SeriesKey]
        ] = ([], [], {}, [])
        # what incremental cycles of threshold rules build on (see _incremental_basis)
        self.incremental = True
        self._tracks: dict[str, RuleTrack] = {}
        self._basis_memo: tuple[object, object, set[int], bool] | None = None
        self.cycles = 0
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
            compiled = [CompiledRule(r) for r in rules]
            names = {c.name for c in compiled}
            if self._builtin_enabled:
                # a configured rule with a built-in's name replaces it
                compiled += [b for b in builtin_rules() if b.name not in names]
            self.settings = settings
            self._rules = compiled
            self._loosest = loosest_thresholds(compiled)
            self._by_name = {c.name: c for c in compiled}
            self._match_cache = {}
            self._fn_cache = {}
            self._points_cache = {}
            self._tracks = {}
            self._rule_alerts = {}
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
            columns, changed = self._columns(
                views, {r.metric for r in self._rules if r.function is None}
            )
            basis = self._incremental_basis(changed, stale_set, has_silences)

            ctx = Cycle(
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
                if rule.function is None and not (
                    rule.builtin and rule.name in (BROKER_DOWN, SERIES_STALE)
                ):
                    self._eval_threshold_rule(rule, ctx, columns[rule.metric], basis)
                    continue
                self._dirty[rule.name] = None
                if rule.builtin and rule.name == BROKER_DOWN:
                    self._eval_broker_down(rule, ctx)
                elif rule.builtin and rule.name == SERIES_STALE:
                    self._eval_stale(rule, ctx)
                else:
                    self._eval_function_rule(rule, ctx)
            self.cycles += 1
            self.last_duration = time.perf_counter() - started
            return events

    def _columns(
        self, views: Sequence[SeriesView], metrics: set[str]
    ) -> tuple[dict[str, list[float]], dict[str, list[int]] | None]:
        """One flat list per metric, aligned with ``views``; null is NaN (never holds). With
        them, per metric, the positions whose value changed (None: the series are not those
        of the last cycle).

        The columns of the last cycle are kept: while the series are the same, only the
        positions whose metrics mapping is not the very object of the last cycle are read
        again (a quiet series keeps its mapping from poll to poll)."""
        names = sorted(metrics)
        if not names:
            return {}, None
        if not views:
            return {name: [] for name in names}, None
        maps = list(map(_METRICS, views))
        last_maps, last_names, last, last_keys = self._columns_memo
        n = len(maps)
        keys = self._keys
        if last_names == names and len(last_maps) == n and last_keys is keys and n == len(keys):
            changed = list(compress(range(n), map(operator.is_not, maps, last_maps)))
            if len(changed) <= n // 2:
                moved: dict[str, list[int]] = {name: [] for name in names}
                if not changed:
                    self._columns_memo = (maps, names, last, keys)
                    return last, moved
                now_rows = self._rows_of(list(map(maps.__getitem__, changed)), names)
                # per metric, C-level: the changed mappings' values against the column (a
                # null there is NaN: a null that stays null is told apart below)
                for name, now_values in zip(names, zip(*now_rows, strict=True), strict=True):
                    col = last[name]
                    flags = list(map(operator.ne, now_values, map(col.__getitem__, changed)))
                    where = moved[name]
                    for i, v in zip(
                        compress(changed, flags), compress(now_values, flags), strict=True
                    ):
                        if v is not None:
                            col[i] = v
                        elif col[i] == col[i]:
                            col[i] = NAN
                        else:
                            continue  # null to null
                        where.append(i)
                self._columns_memo = (maps, names, last, keys)
                return last, moved
            # most series changed: every column read afresh, and compared with the last one
            # (a null is NaN, never equal to itself: it counts as changed, judged again)
            out = self._columns_full(maps, names)
            self._columns_memo = (maps, names, out, keys)
            return out, {
                name: list(compress(range(n), map(operator.ne, out[name], last[name])))
                for name in names
            }
        out = self._columns_full(maps, names)
        self._columns_memo = (maps, names, out, keys)
        return out, None

    @staticmethod
    def _rows_of(
        maps: list[Mapping[str, float | None]], names: list[str]
    ) -> list[tuple[float | None, ...]]:
        """Each mapping's values of ``names``, as a tuple (null and missing: None)."""
        try:
            rows = list(map(operator.itemgetter(*names), maps))
        except KeyError:  # a view without some metric: the slower, forgiving way
            rows = [tuple(m.get(n) for n in names) for m in maps]
        if len(names) == 1:
            rows = [(row,) for row in rows]
        return rows

    @classmethod
    def _columns_full(
        cls, maps: list[Mapping[str, float | None]], names: list[str]
    ) -> dict[str, list[float]]:
        rows = cls._rows_of(maps, names)
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

    def _matching(self, rule: CompiledRule, views: Sequence[SeriesView]) -> list[int] | None:
        """Indexes of the series a rule applies to (None: every series)."""
        if not rule.match:
            return None
        if rule.name in self._match_cache:
            return self._match_cache[rule.name]
        idx = [i for i, v in enumerate(views) if rule.matches(v)]
        self._match_cache[rule.name] = idx
        self._match_sets[rule.name] = frozenset(idx)
        return idx

    def _incremental_basis(
        self, changed: dict[str, list[int]] | None, stale: set[int], has_silences: bool
    ) -> dict[str, set[int]] | None:
        """Per metric, the positions to judge again when this cycle can build on the last
        one: those whose value changed, and those whose staleness changed. None (judge every
        position) when the series, their label matches or the silences are not those of the
        last cycle, or the last cycle was not judged in full or incrementally."""
        memo = self._basis_memo
        self._basis_memo = (self._keys, self._match_cache, stale, has_silences)
        if (
            not self.incremental
            or changed is None
            or has_silences
            or memo is None
            or memo[0] is not self._keys
            or memo[1] is not self._match_cache
            or memo[3]
        ):
            self._tracks = {}
            return None
        flipped = stale.symmetric_difference(memo[2])
        return {name: flipped.union(where) for name, where in changed.items()}

    def _eval_threshold_rule(
        self,
        rule: CompiledRule,
        ctx: Cycle,
        col: list[float],
        basis: dict[str, set[int]] | None,
    ) -> None:
        states = self._states.setdefault(rule.name, {})
        track = self._tracks.get(rule.name)
        if basis is not None and track is not None and ctx.now < track.due:
            self._threshold_incremental(
                rule, ctx, col, basis[rule.metric], states=states, track=track
            )
            return
        self._dirty[rule.name] = None
        true = self._holding(rule, ctx, col)
        if ctx.stale:
            true = [i for i in true if i not in ctx.stale]
        attention: set[Identity] = set()
        active = self._hold_true(rule, ctx, col, true, states, attention=attention)
        false: set[Identity] = set()
        if len(states) > len(active):
            index = self._index
            gone = sorted((k for k in states if k not in active), key=lambda k: index.get(k, -1))
            self._release_threshold(rule, ctx, col, states, gone)
            false = {k for k in gone if k in states}
        self._tracks[rule.name] = RuleTrack(set(true), false, attention, self._due(states))

    def _due(self, states: Mapping[Identity, RuleState]) -> float:
        """The earliest time a notified state of these may be due for a repeat notification
        (a bound: never later than the first one due)."""
        every = self.settings.repeat_interval
        if every <= 0:
            return math.inf
        last = [
            st.last_notified
            for st in states.values()
            if st.last_notified is not None and st.clear_since is None
        ]
        return min(last) + every if last else math.inf

    def _threshold_incremental(
        self,
        rule: CompiledRule,
        ctx: Cycle,
        col: list[float],
        basis: set[int],
        *,
        states: dict[Identity, RuleState],
        track: RuleTrack,
    ) -> None:
        """One threshold rule judged again only at the changed positions (``basis``); the
        other true states are visited only while they need it (pending, silenced, not yet
        notified), and states whose condition is false (held, frozen) at every cycle. The
        same transitions as the full pass, in less time when few series changed."""
        keys = self._keys
        hits = self._changed_holding(rule, ctx, col, basis)
        true = track.true
        newly_false = true.intersection(basis)
        newly_false -= hits
        true -= newly_false
        true |= hits
        index = self._index
        visit = hits.union(index[k] for k in track.attention)
        visit -= newly_false
        attention: set[Identity] = set()
        visited = sorted(visit)
        self._hold_true(rule, ctx, col, visited, states, attention=attention)
        track.attention = attention
        touched = self._dirty.get(rule.name, _CLEAN)
        if touched is _CLEAN:
            touched = self._dirty[rule.name] = set()
        if touched is not None:
            touched.update(map(keys.__getitem__, visited))
        every = self.settings.repeat_interval
        if every > 0:
            for i in visited:
                st = states.get(keys[i])
                if st is not None and st.last_notified is not None:
                    track.due = min(track.due, st.last_notified + every)
        false = track.false
        if hits and false:
            false.difference_update([keys[i] for i in hits])
        if newly_false:
            false.update(k for k in map(keys.__getitem__, sorted(newly_false)) if k in states)
        if false:
            gone = sorted((k for k in false if k in states), key=lambda k: index.get(k, -1))
            if touched is not None:
                touched.update(gone)
            self._release_threshold(rule, ctx, col, states, gone)
            track.false = {k for k in gone if k in states}

    def _changed_holding(
        self, rule: CompiledRule, ctx: Cycle, col: list[float], basis: set[int]
    ) -> set[int]:
        """The changed positions whose condition holds (matching, not stale)."""
        shared = ctx.changed_values.get(rule.metric)
        if shared is None:
            where = sorted(basis)
            shared = (where, [col[i] for i in where])
            ctx.changed_values[rule.metric] = shared
        where, values = shared
        if rule.predicate is not None:
            hits = set(compress(where, map(rule.predicate, values)))
        else:
            hits = set(compress(where, map(rule.opfn, values, repeat(rule.threshold))))
            if rule.op == "!=":
                hits = {i for i in hits if col[i] == col[i]}  # NaN (null) never holds
        if rule.match:
            self._matching(rule, ctx.views)
            hits &= self._match_sets[rule.name]
        if ctx.stale:
            hits -= ctx.stale
        return hits

    def _holding(self, rule: CompiledRule, ctx: Cycle, col: list[float]) -> list[int]:
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
        self, rule: CompiledRule, ctx: Cycle, col: list[float], idx: list[int] | None
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
        rule: CompiledRule,
        ctx: Cycle,
        col: list[float],
        true: list[int],
        states: dict[Identity, RuleState],
        *,
        attention: set[Identity],
    ) -> set[Identity]:
        """Advance the state of every series the condition holds for; their identities.
        Those left other than firing and notified (pending, silenced) go into ``attention``."""
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
                st = RuleState(since)
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
            if st.state is not firing or not st.notified or st.silenced:
                attention.add(key)
        return active

    def _release_threshold(
        self,
        rule: CompiledRule,
        ctx: Cycle,
        col: list[float],
        states: dict[Identity, RuleState],
        gone: list[Identity],
    ) -> None:
        """The series with a state whose condition no longer holds (or that went away)."""
        index = self._index
        for key in gone:
            if key[0] in ctx.down:
                continue  # frozen while the broker is down
            i_ = index.get(key)
            if i_ is None:
                self._on_false(rule, key, states, None, ctx, reason=SERIES_REMOVED)
                continue
            if i_ in ctx.stale:
                continue  # not in its broker's last poll: frozen until back or removed
            value = col[i_]
            self._on_false(rule, key, states, None if value != value else value, ctx)

    def _eval_function_rule(self, rule: CompiledRule, ctx: Cycle) -> None:
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
                st = RuleState(since)
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

    def _eval_broker_down(self, rule: CompiledRule, ctx: Cycle) -> None:
        states = self._states.setdefault(rule.name, {})
        active: set[Identity] = set()
        for name, status in ctx.statuses.items():
            if status.up is not False:
                continue
            key: Identity = (name, None, None)
            active.add(key)
            st = states.get(key)
            if st is None:
                st = RuleState(status.last_success or status.last_poll or ctx.now)
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

    def _eval_stale(self, rule: CompiledRule, ctx: Cycle) -> None:
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
                st = RuleState(ctx.now - age + limit)
                states[key] = st
            st.value = float(round(age))
            st.extra = {"threshold": limit}
            self._on_true(rule, key, st, ctx)
        for gone in [k for k in states if k not in active]:
            self._on_false(rule, gone, states, None, ctx)

    def alerts(self) -> list[Alert]:
        """Pending and firing alerts, most severe first (firing before pending), then by
        rule and labels.

        Each rule keeps its alerts between calls, in label order, and only the states an
        evaluation touched since the last call are read again; a rule whose alerts are all
        the same objects keeps its lists, and when no rule changed the answer is reused."""
        with self._lock:
            changed = False
            kept: dict[str, RuleAlerts] = {}
            for name, states in self._states.items():
                rule = self._by_name.get(name)
                if rule is None:
                    continue
                alerts = self._rule_alerts.get(name)
                touched = self._dirty.get(name, _CLEAN)
                if alerts is None:
                    alerts = RuleAlerts(rule)
                    touched = None
                if touched is None:
                    changed |= alerts.rebuild(self._alert, states)
                elif touched is not _CLEAN:
                    changed |= alerts.update(self._alert, states, touched)
                kept[name] = alerts
            self._dirty = {}
            if kept.keys() != self._rule_alerts.keys():
                changed = True
            self._rule_alerts = kept
            if changed:
                # alert_sort_key's order without a sort: severity, firing before pending,
                # rule, labels (each rule's lists are in label order)
                ordered: list[Alert] = []
                ranked = sorted(kept.values(), key=RuleAlerts.order)
                for _, same in groupby(ranked, key=_severity_of):
                    rules = list(same)
                    for alerts in rules:
                        ordered += alerts.firing
                    for alerts in rules:
                        ordered += alerts.pending
                self._ordered = ordered
            return list(self._ordered)

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
        self, rule: CompiledRule, key: Identity, value: float | None, st: RuleState | None
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
            self._tracks = {}
            self._rule_alerts = {}
            for name, states in self._states.items():
                rule = self._by_name.get(name)
                if rule is None:
                    continue
                for key, st in states.items():
                    st.silenced = self._silenced(rule, key, now)
