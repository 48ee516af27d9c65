"""The alert state machine of one rule x series (pending, firing, held, resolved), flapping,
``for:`` backfilled from stored history, window functions' values, and the alerts built from
the states. :class:`alerts.evaluator.AlertEvaluator` builds on it."""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from alerts.config import AlertingSettings
from alerts.model import Alert, AlertEvent, AlertState
from alerts.rules import (
    BACKFILL_GAP,
    BROKER_DOWN,
    BUILTIN_RESOLVED,
    GROUP_STALLED,
    SERIES_STALE,
    STALE_POLLS,
    CompiledRule,
    Identity,
)
from alerts.silences import SilenceStore
from alerts.state import Cycle, RuleState
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
from alerts.summaries import consumer_of, format_number, format_window, render_summary, series_label
from alerts.windows import apply_function, window_points
from mqtop.kernel.model import SeriesKey, SeriesView, group_status_name
from mqtop.kernel.store import REMOVE_AFTER_POLLS, TimeSeriesStore


class AlertLifecycle:
    """Alert states and their transitions; the alerts (and events) they make."""

    def __init__(self, settings: AlertingSettings, silences: SilenceStore) -> None:
        self.settings = settings
        self._silences = silences
        self._by_name: dict[str, CompiledRule] = {}
        self._resolved: deque[Alert] = deque(maxlen=500)
        self._fires: dict[tuple[str, Identity], list[float]] = {}
        self._fn_cache: dict[tuple[SeriesKey, str, str, float], tuple[float, float | None]] = {}
        self._points_cache: dict[
            tuple[SeriesKey, str, float], tuple[float, list[tuple[float, float]]]
        ] = {}

    # -- the state machine -----------------------------------------------------------

    def _on_true(self, rule: CompiledRule, key: Identity, st: RuleState, ctx: Cycle) -> None:
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
        rule: CompiledRule,
        key: Identity,
        states: dict[Identity, RuleState],
        value: float | None,
        ctx: Cycle,
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

    def _hold(self, rule: CompiledRule, key: Identity, st: RuleState, ctx: Cycle) -> bool:
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
        self, rule: CompiledRule, key: Identity, st: RuleState, ctx: Cycle, repeat: bool
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

    def _silenced(self, rule: CompiledRule, key: Identity, now: float) -> bool:
        return self._silences.match(rule.name, self._labels(rule, key), now) is not None

    @staticmethod
    def _labels(rule: CompiledRule, key: Identity) -> dict[str, str | None]:
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

    def _backfill(self, rule: CompiledRule, key: Identity, ctx: Cycle) -> float:
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

    def _backfill_function(self, rule: CompiledRule, view: SeriesView, ctx: Cycle) -> float:
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
        self, rule: CompiledRule, store: TimeSeriesStore, view: SeriesView
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

    def _alert(self, rule: CompiledRule, key: Identity, st: RuleState) -> Alert:
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

    def _build_alert(self, rule: CompiledRule, key: Identity, st: RuleState) -> Alert:
        threshold: float | None
        held_until: float | None
        if rule.plain_summary and not st.extra and st.held_until is None:
            # the default summary of a configured threshold rule, without the template's
            # field dictionary: the same text as Template.render gives it
            summary = (
                f"{series_label(*key)}: {rule.metric} {format_number(st.value)} "
                f"{rule.op} {rule.threshold_text}"
            )
            threshold, held_until = rule.threshold, None
        else:
            summary, threshold, held_until = self._rendered(rule, key, st)
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

    def _rendered(
        self, rule: CompiledRule, key: Identity, st: RuleState
    ) -> tuple[str, float | None, float | None]:
        """The summary through the rule's template (or the held statement), with the
        threshold and hold the alert reports."""
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
                fields["consumer"] = consumer_of(key)
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
        return summary, threshold, held_until

    def _statement(
        self, rule: CompiledRule, key: Identity, st: RuleState, fields: Mapping[str, Any]
    ) -> str:
        """What is true now that the condition is false (resolutions, held alerts)."""
        if rule.builtin and rule.name in BUILTIN_RESOLVED:
            return render_summary(BUILTIN_RESOLVED[rule.name], fields)
        series = series_label(*key)
        if rule.builtin and rule.name == GROUP_STALLED:
            status = group_status_name(st.value)
            consumer = consumer_of(key)
            if status is None:
                return f"{series}: {consumer} has no status"
            return f"{series}: {consumer} is {status}"
        value = None if st.value is None else format_number(st.value)
        expr = expression(rule.metric, rule.function, rule.window_text)
        return below(series, expr, value, rule.op, format_number(rule.threshold))

    def _hold_detail(self, name: str, key: Identity, st: RuleState) -> str:
        if st.hold_reason != HELD_FLAPPING:
            return format_window(self.settings.resolve_after)
        fires = self._fires.get((name, key), [])
        window = format_window(self.settings.flap_window)
        return f"fired {len(fires)} times in {window}"

    def _resolved_alert(
        self,
        name: str,
        key: Identity,
        st: RuleState,
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
