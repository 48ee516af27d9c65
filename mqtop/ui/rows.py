"""The overview's row model: what each column shows, how rows sort, filter and group.

Pure Python (no Textual): rows are built off the event loop from the store's views, the broker
statuses and the current alerts; the table widget only formats the rows that are on screen.
"""

from __future__ import annotations

import fnmatch
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import compress

from alerts.model import Alert, AlertState
from alerts.state import alert_sort_key
from collectors.base import is_dlq_name
from mqtop.kernel.durations import humanize_seconds
from mqtop.kernel.model import BrokerStatus, SeriesKey, SeriesView, group_status_name
from mqtop.kernel.safe import safe_text
from mqtop.ui.formats import fmt_count, fmt_pct, fmt_rate
from mqtop.ui.layout import Col, fit

GLOB_CHARS = frozenset("*?[")
SPARK_CHARS = "▁▂▃▄▅▆▇█"

# alert ranks shown in the overview (higher is worse); stale and down outrank nothing,
# they are a separate flag so an operator still sees the alert on the alerts screen
RANK_NONE = 0
RANK_PENDING = 1
RANK_INFO = 2
RANK_WARNING = 3
RANK_CRITICAL = 4
RANK_SILENCED = -1


@dataclass(frozen=True, slots=True)
class Column:
    """One overview column: key, title, width, alignment and how readily it is hidden.

    A value column is ``width`` wide (its widest value; never cut). A name column's width
    comes from the names shown, cut in the middle when the terminal is narrow (never below
    ``minimum``); ``flex`` takes what is left of the line.
    """

    key: str
    title: str
    width: int
    align: str = "right"  # "left" | "right"
    priority: int = 5  # columns with the lowest priority are hidden first on narrow screens
    flex: bool = False  # takes the remaining width
    help: str = ""
    name: bool = False  # its width comes from the names shown
    minimum: int = 6

    @property
    def natural(self) -> int:
        """The width of its values, or of its title and the sort arrow if wider."""
        return max(self.width, len(self.title) + 1)


COLUMNS: tuple[Column, ...] = (
    Column("broker", "Broker", 6, "left", 9, help="broker name from the config", name=True),
    Column(
        "queue",
        "Queue",
        12,
        "left",
        10,
        flex=True,
        help="queue, topic, key or channel",
        name=True,
        minimum=14,
    ),
    Column("group", "Group", 5, "left", 2, help="consumer group (Kafka, Redis streams)", name=True),
    Column("kind", "Kind", 4, "left", 1, help="queue kind", name=True, minimum=4),
    Column("backlog", "Backlog", 8, priority=9, help="messages waiting (queue_length)"),
    Column("inflight", "InFlt", 6, priority=4, help="delivered, not yet acknowledged"),
    Column(
        "stuck",
        "Stuck",
        5,
        priority=4,
        help="Redis stream entries pending longer than stuck_idle (shown when any exist)",
    ),
    Column("rate_in", "In/s", 6, priority=7, help="messages/s published"),
    Column("rate_out", "Out/s", 6, priority=7, help="messages/s acknowledged"),
    Column("error", "Err%", 6, priority=6, help="dead-lettered share of processed"),
    Column("age", "Age/Lag", 7, priority=8, help="oldest waiting message or group lag"),
    Column("consumers", "Cons", 4, priority=5, help="active consumers or group members"),
    Column(
        "health",
        "Health",
        5,
        "left",
        6,
        help="group or queue status (group_status): OK WARN STALL STOP ERROR, - undecided",
    ),
    Column("trend", "Trend", 10, "left", 3, help="backlog over the last 5 minutes"),
    Column("alert", "Alert", 7, "left", 9, help="worst alert on this series"),
)
COLUMN_BY_KEY: Mapping[str, Column] = {c.key: c for c in COLUMNS}
SORTABLE: tuple[str, ...] = tuple(c.key for c in COLUMNS if c.key != "trend")


class Row:
    """One series as the overview shows it (raw values; formatting happens on render)."""

    __slots__ = (
        "_made",
        "age",
        "alert_held",
        "alert_rank",
        "alert_rule",
        "backlog",
        "broker",
        "consumers",
        "dlq",
        "down",
        "error",
        "group",
        "header",
        "health",
        "inflight",
        "key",
        "kind",
        "queue",
        "rate_in",
        "rate_out",
        "stale",
        "stuck",
    )

    def __init__(
        self,
        key: SeriesKey,
        kind: str,
        *,
        backlog: float | None = None,
        inflight: float | None = None,
        rate_in: float | None = None,
        rate_out: float | None = None,
        error: float | None = None,
        age: float | None = None,
        consumers: float | None = None,
        health: float | None = None,
        stuck: float | None = None,
        dlq: str | None = None,
        stale: bool = False,
        down: bool = False,
        alert_rank: int = RANK_NONE,
        alert_rule: str | None = None,
        header: str | None = None,
        alert_held: bool = False,
    ) -> None:
        self.key = key
        self.broker = key.broker
        self.queue = key.queue
        self.group = key.group
        self.kind = kind
        self.backlog = backlog
        self.inflight = inflight
        self.rate_in = rate_in
        self.rate_out = rate_out
        self.error = error
        self.age = age
        self.consumers = consumers
        self.health = health  # group_status: 0 OK .. 4 ERROR (None: undecided or unknown)
        self.stuck = stuck  # stream entries pending past stuck_idle (None: not a stream group)
        self.dlq = dlq
        self.stale = stale
        self.down = down
        self.alert_rank = alert_rank
        self.alert_rule = alert_rule
        self.alert_held = alert_held  # firing while its condition is false (flap damping)
        self.header = header  # set on group-by-broker separator rows (text to show)
        # what the row was built from (metrics, info, alert), for reuse by the next build
        self._made: tuple[object, object, object] | None = None

    @property
    def is_header(self) -> bool:
        """True for a group-by-broker separator row."""
        return self.header is not None

    def value(self, column: str) -> object:
        """Raw value of a column (for sorting)."""
        if column == "alert":
            return self.alert_rank
        if column == "trend":
            return None
        return getattr(self, column)

    def __repr__(self) -> str:
        return f"Row({self.key.label()!r}, backlog={self.backlog!r})"


def worst_alerts(
    alerts: Iterable[Alert],
) -> dict[tuple[str | None, str | None, str | None], tuple[int, Alert]]:
    """The worst pending/firing alert per (broker, queue, group), with its rank."""
    out: dict[tuple[str | None, str | None, str | None], tuple[int, Alert]] = {}
    live = (AlertState.PENDING, AlertState.FIRING)
    for alert in alerts:
        if alert.state not in live:
            continue
        rank = alert_rank(alert)
        ident = (alert.broker, alert.queue, alert.group)
        best = out.get(ident)
        if best is None or rank > best[0]:
            out[ident] = (rank, alert)
    return out


def alert_rank(alert: Alert | None) -> int:
    """Order alerts for display: critical > warning > info > pending > silenced > none."""
    if alert is None:
        return RANK_NONE
    if alert.silenced:
        return RANK_SILENCED
    if alert.state == AlertState.PENDING:
        return RANK_PENDING
    if alert.state != AlertState.FIRING:
        return RANK_NONE
    return {"critical": RANK_CRITICAL, "warning": RANK_WARNING}.get(alert.severity, RANK_INFO)


Ident = tuple[str | None, str | None, str | None]

_KEY = operator.attrgetter("key")
_METRICS = operator.attrgetter("metrics")
_INFO = operator.attrgetter("info")
_STALE = operator.attrgetter("stale")
_DLQ = operator.attrgetter("dlq")
_KIND = operator.attrgetter("kind")


class RowCache:
    """What the last build was made of, so the next one does only what changed (internal).

    ``rows``: the last rows by series; a series whose view metrics, info and worst alert are
    the very objects its row was built from (and whose flags are unchanged) keeps its row.
    Rows are never modified after they are built, so sharing them is safe. The worst alert
    per series is kept too, with the alerts it was chosen from, and only the series whose
    alerts came or went are judged again. While the series are the same (same keys, same
    stale and down brokers), the last list of rows is copied and only the positions whose
    view parts or worst alert changed are built again."""

    __slots__ = (
        "alerts",
        "brokers",
        "columns",
        "index",
        "keys",
        "members",
        "out",
        "position",
        "rows",
    )

    def __init__(self) -> None:
        self.rows: dict[SeriesKey, Row] = {}
        self.alerts: list[Alert] = []
        self.members: dict[Ident, dict[str, Alert]] = {}  # live alerts per series, by rule
        self.index: dict[Ident, tuple[int, Alert]] = {}
        self.keys: list[SeriesKey] = []
        self.position: dict[Ident, int] = {}
        self.columns: tuple[list[object], ...] = ()
        self.out: list[Row] = []
        self.brokers: tuple[set[str], set[str]] | None = None

    def worst(self, alerts: Sequence[Alert]) -> tuple[dict[Ident, tuple[int, Alert]], set[Ident]]:
        """:func:`worst_alerts` of ``alerts``, and the series whose worst alert changed
        since the last call (judged again only where alerts came or went)."""
        # the last list keeps its alerts alive, so their ids are not reused meanwhile
        old = self.alerts
        now_ids = set(map(id, alerts))
        old_ids = set(map(id, old))
        gone = list(compress(old, map(operator.not_, map(now_ids.__contains__, map(id, old)))))
        came = list(
            compress(alerts, map(operator.not_, map(old_ids.__contains__, map(id, alerts))))
        )
        del now_ids, old_ids
        self.alerts = list(alerts)
        members = self.members
        live = (AlertState.PENDING, AlertState.FIRING)
        touched: set[Ident] = set()
        add = touched.add
        for alert in gone:
            ident = (alert.broker, alert.queue, alert.group)
            each = members.get(ident)
            if each is not None and each.get(alert.rule) is alert:
                del each[alert.rule]
                add(ident)
        for alert in came:
            if alert.state in live:
                ident = (alert.broker, alert.queue, alert.group)
                each = members.get(ident)
                if each is None:
                    each = members[ident] = {}
                each[alert.rule] = alert
                add(ident)
        index = self.index
        changed: set[Ident] = set()
        for ident in touched:
            each = members.get(ident)
            old_worst = index.get(ident)
            if not each:
                members.pop(ident, None)
                if index.pop(ident, None) is not None:
                    changed.add(ident)
                continue
            # the first in alert order among the highest rank, as worst_alerts picks
            if len(each) == 1:
                (best,) = each.values()
            else:
                alerts_ = list(each.values())
                ranks = list(map(alert_rank, alerts_))
                top = max(ranks)
                tied = [a for a, r in zip(alerts_, ranks, strict=True) if r == top]
                best = tied[0] if len(tied) == 1 else min(tied, key=alert_sort_key)
            if old_worst is None or old_worst[1] is not best:
                index[ident] = (alert_rank(best), best)
                changed.add(ident)
        return index, changed


def build_rows(
    views: Sequence[SeriesView],
    statuses: Mapping[str, BrokerStatus],
    alerts: Iterable[Alert],
    now: float,
    cache: RowCache | None = None,
) -> list[Row]:
    """One row per series. Rows of a down or silent broker are flagged stale. With a
    ``cache``, rows of series that did not change since the last build are reused."""
    stale_brokers = {
        name
        for name, status in statuses.items()
        if status.up is False or (status.up is not None and status.is_stale(now))
    }
    down_brokers = {name for name, status in statuses.items() if status.up is False}
    if cache is None:
        index = worst_alerts(alerts)
        return [_row(v, index, stale_brokers, down_brokers) for v in views]
    index, moved = cache.worst(alerts if isinstance(alerts, Sequence) else list(alerts))
    patched = _patched(cache, views, index, moved, (stale_brokers, down_brokers))
    if patched is not None:
        return patched
    rows: list[Row] = []
    append = rows.append
    old = cache.rows
    kept: dict[SeriesKey, Row] = {}
    for view in views:
        key = view.key
        worst = index.get(key)
        stale = view.stale or key.broker in stale_brokers
        down = key.broker in down_brokers
        row = old.get(key)
        if row is not None:
            made = row._made
            if (
                made is not None
                and made[0] is view.metrics
                and made[1] is view.info
                and made[2] is (worst[1] if worst is not None else None)
                and row.stale is stale
                and row.down is down
                and row.dlq == view.dlq
                and row.kind == view.kind
            ):
                append(row)
                kept[key] = row
                continue
        row = _row(view, index, stale_brokers, down_brokers)
        append(row)
        kept[key] = row
    cache.rows = kept
    cache.keys = list(map(_KEY, views))
    cache.position = {key: i for i, key in enumerate(cache.keys)}
    cache.columns = _columns(views)
    cache.out = rows
    cache.brokers = (stale_brokers, down_brokers)
    return list(rows)


def _columns(views: Sequence[SeriesView]) -> tuple[list[object], ...]:
    """What a row is made of, per view: metrics, info, stale, dlq, kind."""
    return tuple(list(map(get, views)) for get in (_METRICS, _INFO, _STALE, _DLQ, _KIND))


def _patched(
    cache: RowCache,
    views: Sequence[SeriesView],
    index: Mapping[Ident, tuple[int, Alert]],
    moved: set[Ident],
    brokers: tuple[set[str], set[str]],
) -> list[Row] | None:
    """The last rows with only the changed positions built again; None when the series or
    the brokers' flags are not those of the last build."""
    if cache.brokers != brokers or len(views) != len(cache.keys):
        return None
    keys = list(map(_KEY, views))
    if keys != cache.keys:
        return None
    columns = _columns(views)
    n = len(keys)
    where: set[int] = set()
    for now_, last in zip(columns[:2], cache.columns[:2], strict=True):
        where.update(compress(range(n), map(operator.is_not, now_, last)))
    for now_, last in zip(columns[2:], cache.columns[2:], strict=True):
        where.update(compress(range(n), map(operator.ne, now_, last)))
    position = cache.position
    where.update(i for i in map(position.get, moved) if i is not None)
    rows = list(cache.out)
    made = cache.rows
    stale_brokers, down_brokers = brokers
    for i in where:
        view = views[i]
        row = _row(view, index, stale_brokers, down_brokers)
        rows[i] = made[view.key] = row
    cache.columns = columns
    cache.out = rows
    return list(rows)


def _row(
    view: SeriesView,
    index: Mapping[Ident, tuple[int, Alert]],
    stale_brokers: set[str],
    down_brokers: set[str],
) -> Row:
    key = view.key
    metrics = view.metrics
    worst = index.get(key)
    alert = worst[1] if worst is not None else None
    lag = metrics.get("consumer_lag_seconds")
    row = Row(
        key,
        view.kind,
        backlog=metrics.get("queue_length"),
        inflight=metrics.get("in_flight"),
        rate_in=metrics.get("publish_rate"),
        rate_out=metrics.get("processing_rate"),
        error=metrics.get("error_rate"),
        age=lag if lag is not None else metrics.get("latency_seconds"),
        consumers=metrics.get("consumers"),
        health=metrics.get("group_status"),
        stuck=_stuck(view),
        dlq=view.dlq,
        stale=view.stale or key.broker in stale_brokers,
        down=key.broker in down_brokers,
        alert_rank=worst[0] if worst is not None else RANK_NONE,
        alert_rule=alert.rule if alert is not None else None,
        alert_held=alert is not None and alert.held_until is not None,
    )
    row._made = (metrics, view.info, alert)
    return row


def _stuck(view: SeriesView) -> float | None:
    """The stuck count a Redis stream group series carries in its info, else None."""
    value = view.info.get("stuck") if view.info else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


# ---------------------------------------------------------------- filter, sort, group


def row_filter(text: str) -> Callable[[Row], bool] | None:
    """Compile the ``/`` filter: a glob when it has ``*?[``, else a case-insensitive substring.

    Globs match ``broker/queue`` or the queue alone; substrings look in broker, queue, group
    and kind. An empty filter returns None (show everything).
    """
    text = text.strip().lower()
    if not text:
        return None
    if GLOB_CHARS & set(text):
        regex = re.compile(fnmatch.translate(text))

        def glob(row: Row) -> bool:
            queue = row.queue.lower()
            return bool(
                regex.match(queue)
                or regex.match(f"{row.broker.lower()}/{queue}")
                or (row.group is not None and regex.match(row.group.lower()))
            )

        return glob

    def substring(row: Row) -> bool:
        return (
            text in f"{row.broker}/{row.queue}".lower()
            or (row.group is not None and text in row.group.lower())
            or text in row.kind.lower()
        )

    return substring


TEXT_COLUMNS = frozenset({"broker", "queue", "group", "kind"})


def sort_rows(rows: Sequence[Row], column: str, descending: bool) -> list[Row]:
    """Sort by a column; unknown values (null) go last whatever the direction.

    Ties keep the input order, which is label order (broker, queue, group) for rows built from
    ``store.views()``: the sort is stable in both directions. Keys are plain attributes read
    with ``attrgetter`` (C speed: a few milliseconds for 10,000 rows).
    """
    attr = "alert_rank" if column == "alert" else column
    if column == "trend" or not hasattr(Row, attr):
        return list(rows)
    get = operator.attrgetter(attr)
    known = [r for r in rows if get(r) is not None]
    unknown = [r for r in rows if get(r) is None]
    if column in TEXT_COLUMNS:
        known.sort(key=lambda r: get(r).lower(), reverse=descending)
    else:
        known.sort(key=get, reverse=descending)
    return known + unknown


def arrange(
    rows: Sequence[Row],
    *,
    sort: str,
    descending: bool,
    filter_text: str = "",
    group_by_broker: bool = False,
    statuses: Mapping[str, BrokerStatus] | None = None,
    describe: Callable[[Sequence[Row]], str] | None = None,
) -> list[Row]:
    """Filter, sort and optionally group rows under one separator row per broker
    (``describe`` adds to each separator, the broker's totals say)."""
    match = row_filter(filter_text)
    kept = [r for r in rows if match(r)] if match is not None else list(rows)
    ordered = sort_rows(kept, sort, descending)
    if not group_by_broker:
        return ordered
    by_broker: dict[str, list[Row]] = {}
    for row in ordered:
        by_broker.setdefault(row.broker, []).append(row)
    out: list[Row] = []
    for broker in sorted(by_broker):
        members = by_broker[broker]
        status = (statuses or {}).get(broker)
        state = "up" if status is None or status.up else "DOWN"
        if status is not None and status.up is None:
            state = "connecting"
        worst = max((r.alert_rank for r in members), default=RANK_NONE)
        label = f"▾ {safe_text(broker, 40)} · {state} · {len(members)} series"
        if describe is not None:
            label += f" · {describe(members)}"
        out.append(
            Row(
                SeriesKey(broker, "", None),
                "",
                header=label,
                alert_rank=worst,
                down=status is not None and status.up is False,
            )
        )
        out.extend(members)
    return out


# ---------------------------------------------------------------- formatting


ALERT_LABELS: Mapping[int, str] = {
    RANK_CRITICAL: "✖ crit",
    RANK_WARNING: "▲ warn",
    RANK_INFO: "ℹ info",  # noqa: RUF001 - the information sign, as on every screen
    RANK_PENDING: "◔ pend",
    RANK_SILENCED: "⊘ muted",
    RANK_NONE: "✓ ok",
}
STALE_LABEL = "◇ stale"
HELD_LABEL = "⏸ held"
DOWN_LABEL = "✗ down"


def alert_label(row: Row) -> str:
    """The alert cell: a symbol and a word (never colour alone)."""
    if row.down:
        return DOWN_LABEL
    if row.stale:
        return STALE_LABEL
    if row.alert_held and row.alert_rank > RANK_PENDING:
        return HELD_LABEL
    return ALERT_LABELS.get(row.alert_rank, "✓ ok")


def cell_text(row: Row, column: str) -> str:
    """Display text of one cell (names escaped; numbers humanised; null shown as ``-``)."""
    if column == "broker":
        return safe_text(row.broker, 64)
    if column == "queue":
        return safe_text(row.queue, 200)
    if column == "group":
        return safe_text(row.group, 64) if row.group is not None else "-"
    if column == "kind":
        return safe_text(row.kind, 16) or "-"
    if column == "backlog":
        return fmt_count(row.backlog)
    if column == "inflight":
        return fmt_count(row.inflight)
    if column == "rate_in":
        return fmt_rate(row.rate_in)
    if column == "rate_out":
        return fmt_rate(row.rate_out)
    if column == "error":
        return fmt_pct(row.error)
    if column == "age":
        return humanize_seconds(row.age) if row.age is not None else "-"
    if column == "consumers":
        return fmt_count(row.consumers)
    if column == "health":
        return group_status_name(row.health) or "-"
    if column == "stuck":
        return fmt_count(row.stuck)
    if column == "alert":
        return alert_label(row)
    return ""


def sparkline(values: Sequence[float | None], width: int) -> str:
    """Unicode block sparkline of the last ``width`` values (gaps for unknown values)."""
    if width <= 0:
        return ""
    tail = list(values)[-width:]
    known = [v for v in tail if v is not None and not math.isnan(v)]
    if not known:
        return " " * width if tail else ""
    low, high = min(known), max(known)
    span = high - low
    chars: list[str] = []
    for v in tail:
        if v is None or math.isnan(v):
            chars.append(" ")
        elif span <= 0:
            chars.append(SPARK_CHARS[0] if high == 0 else SPARK_CHARS[3])
        else:
            level = round((v - low) / span * (len(SPARK_CHARS) - 1))
            chars.append(SPARK_CHARS[level])
    return "".join(chars)


DEFAULT_ORDER: tuple[str, ...] = tuple(c.key for c in COLUMNS)
TREND_MAX = 40


def name_widths(rows: Sequence[Row]) -> dict[str, int]:
    """How wide the names of ``rows`` are, per name column (C-speed over 10,000 rows)."""
    real = [r for r in rows if r.header is None]
    if not real:
        return {}
    out = {key: max(map(len, map(operator.attrgetter(key), real))) for key in ("broker", "kind")}
    groups = [len(g) for g in map(operator.attrgetter("group"), real) if g is not None]
    out["group"] = max(groups, default=1)
    out["queue"] = max(map(len, map(operator.attrgetter("queue"), real)))
    # the queue with its group in brackets, for when the group column is hidden
    out["queue+group"] = max(
        len(r.queue) + (len(r.group) + 3 if r.group is not None else 0) for r in real
    )
    return out


def visible_columns(
    width: int,
    has_groups: bool = True,
    has_stuck: bool = False,
    names: Mapping[str, int] | None = None,
    order: Sequence[str] = DEFAULT_ORDER,
) -> list[tuple[Column, int]]:
    """The columns that fit ``width`` cells (one space apart) with their widths.

    ``order`` is the operator's choice of columns; the group column only when some series
    has a group, the stuck column only when some series (a Redis stream group) has stuck
    entries. Values are never cut: names shrink in the middle first, then the columns of
    lowest priority are hidden; the queue takes what is left.
    """
    names = names or {}
    columns = [
        COLUMN_BY_KEY[k]
        for k in order
        if k in COLUMN_BY_KEY and (has_groups or k != "group") and (has_stuck or k != "stuck")
    ]
    if not columns:
        columns = [COLUMN_BY_KEY["queue"]]
    grouped = any(c.key == "group" for c in columns)
    specs = []
    for c in columns:
        natural = c.natural
        if c.name:
            asked = names.get("queue" if grouped or c.key != "queue" else "queue+group", 0)
            natural = max(natural, names.get(c.key, 0) if c.key != "queue" else asked)
        specs.append(
            Col(
                c.key,
                c.title,
                natural,
                c.priority,
                name=c.name,
                minimum=min(c.minimum, natural),
                hide=c.key in ("group", "kind"),  # hidden before any value; group folds
            )
        )
    fitted = fit(specs, width)
    if not any(spec.key == "group" for spec, _ in fitted) and grouped and has_groups:
        # the group column was dropped for room: the queue shows "queue [group]"
        return visible_columns(
            width, has_groups, has_stuck, names, [k for k in order if k != "group"]
        )
    out = [(COLUMN_BY_KEY[spec.key], w) for spec, w in fitted]
    spare = width - sum(w for _, w in out) - max(0, len(out) - 1)
    # a wide terminal: a longer trend (up to TREND_MAX), the rest to the queue's names
    for i, (column, w) in enumerate(out):
        if column.key == "trend" and spare > 0:
            grow = min(spare // 2, TREND_MAX - w)
            out[i] = (column, w + max(0, grow))
            spare -= max(0, grow)
    if spare > 0:
        flex = next((i for i, (c, _) in enumerate(out) if c.flex), len(out) - 1)
        column, w = out[flex]
        out[flex] = (column, w + spare)
    return out


def dlq_target(row: Row, views: Iterable[SeriesView]) -> str | None:
    """Which queue the DLQ browser should open for a row."""
    if row.kind in ("dlq", "dead-letter") or is_dlq_name(row.queue):
        return row.queue
    for view in views:
        if view.key.broker == row.broker and view.dlq == row.queue:
            return row.queue  # something dead-letters into this queue
    return row.dlq
