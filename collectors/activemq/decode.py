"""Decoding the one bulk Jolokia answer of a poll per flavor, mapped to SPEC §3.

Artemis (one ``read`` of every queue MBean with an attribute list):
  queue_length = MessageCount - DeliveringCount, in_flight = DeliveringCount, consumers =
  ConsumerCount, latency_seconds = FirstMessageAge / 1000 (0 when empty), published_total =
  MessagesAdded, processed_total = MessagesAcknowledged, dead_lettered_total = MessagesKilled.
  Queues are named ``queue`` (``address/queue`` when they differ); durable multicast queues are
  subscriptions: series ``(address, group=queue)``. DLQ: the queue's DeadLetterAddress
  (address settings), its auto-created ``DLQ.<address>`` queue (filter ``_AMQ_ORIG_ADDRESS``)
  or its only queue.
Classic (one POST: queues, dead-letter advisories, durable subscriptions):
  queue_length = QueueSize - InFlightCount, in_flight = InFlightCount, consumers =
  ConsumerCount, latency null (not exposed), published_total = EnqueueCount,
  dead_lettered_total = EnqueueCount of ``ActiveMQ.Advisory.MessageDLQd.Queue.<name>`` (0
  while advisories are on and it does not exist yet), processed_total = DequeueCount -
  ExpiredCount - dead_lettered_total. DLQ: ``DLQ.<queue>``, a conventional name, or the
  shared ``ActiveMQ.DLQ``.
Formulas and their limits: docs/activemq.md.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from collectors.activemq.jolokia import MBeanError, quote, value_of
from collectors.activemq.options import ActiveMQOptions, Flavor
from collectors.base import dlq_index

ARTEMIS = "org.apache.activemq.artemis"
CLASSIC = "org.apache.activemq"
# what the DLQ index and the kind of an Artemis row are made of (besides the DLA set)
ARTEMIS_STRUCTURE = (
    "Name",
    "Address",
    "RoutingType",
    "Durable",
    "Temporary",
    "InternalQueue",
    "Filter",
    "DeadLetterAddress",
)
ARTEMIS_ATTRIBUTES = (
    *ARTEMIS_STRUCTURE,
    "MessageCount",
    "DeliveringCount",
    "MessagesAdded",
    "MessagesAcknowledged",
    "MessagesKilled",
    "ConsumerCount",
    "FirstMessageAge",
)
CLASSIC_ATTRIBUTES = (
    "Name",
    "QueueSize",
    "InFlightCount",
    "EnqueueCount",
    "DequeueCount",
    "ExpiredCount",
    "ConsumerCount",
    "DLQ",
)
CLASSIC_SUBSCRIPTION_ATTRIBUTES = (
    "DestinationName",
    "ClientId",
    "SubscriptionName",
    "PendingQueueSize",
    "DispatchedQueueSize",
    "Active",
    "EnqueueCounter",
    "DequeueCounter",
)
CLASSIC_SHARED_DLQ = "ActiveMQ.DLQ"
DLQ_ADVISORY = "ActiveMQ.Advisory.MessageDLQd.Queue."
INTERNAL = ("$sys.*", "activemq.management*", "activemq.notifications*", "ActiveMQ.Advisory.*")
INTERNAL_PREFIXES = tuple(pattern.rstrip("*") for pattern in INTERNAL)  # each is "prefix*"


@dataclass(slots=True)
class Row:
    """One queue or durable subscription, decoded from either flavor."""

    queue: str  # the broker's queue name (Artemis) or destination name (Classic)
    name: str  # the series' queue label
    mbean: str
    group: str | None = None
    kind: str = "queue"
    waiting: int | None = None
    in_flight: int | None = None
    consumers: int | None = None
    published: int | None = None
    processed: int | None = None
    dead: int | None = None
    latency: float | None = None
    dlq: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    # (dlq, dlq_source, dlq_length, sample) of the last sample built from this row
    made: tuple[Any, ...] | None = None
    found_by: object = None  # the DLQ index that set dlq (Classic: reused while it holds)


class RowCache:
    """What the last poll decoded, by MBean name: the attribute dict each row came from (and
    what else went into it), so that a queue whose values are equal to the last poll's gets
    the same Row back, and ``samples`` the same sample while its DLQ and the DLQ's length are
    unchanged too: an idle queue costs a dict look-up and a dict comparison per poll. Only the
    MBeans of the latest poll are kept, so a vanished queue is dropped at the next poll.

    The DLQ index of each flavor is kept too, and rebuilt only when what it is made of
    changed: Classic's from the set of queue names; Artemis' from every queue MBean's name,
    address, routing type, durability, filter and dead-letter address (address settings),
    so a queue, address or dead-letter address appearing, vanishing or changing is seen at
    the next poll."""

    __slots__ = ("_dlqs", "_names", "artemis", "dlas", "last")

    def __init__(self) -> None:
        # MBean -> (attribute dict, extra value compared with it, its row or None)
        self.last: dict[str, tuple[Any, Any, Row | None]] = {}
        self._names: set[str] | None = None
        self._dlqs: ClassicDlqs | None = None
        self.artemis: ArtemisDlqs | None = None
        self.dlas: set[str] | None = None  # Artemis: the last poll's dead-letter addresses

    def classic_dlqs(self, names: set[str]) -> ClassicDlqs:
        """The DLQ index of these queue names: the last poll's while the names are the same."""
        if self._dlqs is None or self._names != names:
            self._names, self._dlqs = names, ClassicDlqs(names)
        return self._dlqs

    def __len__(self) -> int:
        return sum(1 for hit in self.last.values() if hit[2] is not None)

    def drop(self) -> None:
        """Forget every row and index (a poll that failed half-way)."""
        self.last = {}
        self._names = self._dlqs = self.artemis = None
        self.dlas = None


def number(value: Any) -> int | None:
    """An integer attribute value; None for a missing or malformed one (never a guess)."""
    if type(value) is int:  # the common case first: this runs ~10 times per queue per poll
        return value
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value == value and abs(value) < 1e18:
        return int(value)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return int(value)
    return None


def is_internal(name: str) -> bool:
    """True for the brokers' own addresses and queues (hidden unless show_internal)."""
    return name.startswith(INTERNAL_PREFIXES)


def artemis_name(address: str, queue: str) -> str:
    """The series name of an Artemis queue: ``queue``, or ``address/queue`` when they differ."""
    return queue if address == queue else f"{address}/{queue}"


def broker_key(flavor: Flavor, name: str | None) -> str:
    """The ``broker=`` (Artemis) or ``brokerName=`` (Classic) part of an MBean pattern."""
    if flavor == "artemis":
        return f"broker={quote(name) if name else '*'}"
    return f"type=Broker,brokerName={name or '*'}"


# ---------------------------------------------------------------- requests


def artemis_requests(options: ActiveMQOptions) -> list[dict[str, Any]]:
    """The one read of every Artemis queue."""
    pattern = (
        f"{ARTEMIS}:{broker_key('artemis', options.broker_name)},component=addresses,address=*,"
        "subcomponent=queues,routing-type=*,queue=*"
    )
    return [_read(pattern, ARTEMIS_ATTRIBUTES)]


def classic_requests(options: ActiveMQOptions) -> list[dict[str, Any]]:
    """Queues, dead-letter advisories, advisory support, durable subscriptions (one POST)."""
    base = f"{CLASSIC}:{broker_key('classic', options.broker_name)}"
    return [
        _read(f"{base},destinationType=Queue,destinationName=*", CLASSIC_ATTRIBUTES),
        _read(f"{base},destinationType=Topic,destinationName={DLQ_ADVISORY}*", ("EnqueueCount",)),
        {"type": "search", "mbean": f"{base},destinationType=Topic,destinationName=*"},
        _read(
            f"{base},destinationType=Topic,destinationName=*,endpoint=Consumer,clientId=*,"
            "consumerId=Durable(*)",
            CLASSIC_SUBSCRIPTION_ATTRIBUTES,
        ),
    ]


def _read(pattern: str, attributes: Iterable[str]) -> dict[str, Any]:
    return {
        "type": "read",
        "mbean": pattern,
        "attribute": list(attributes),
        "config": {"ignoreErrors": True},
    }


def matched(answer: Mapping[str, Any]) -> Any:
    """The value of a pattern request; empty when nothing matched."""
    try:
        return value_of(answer)
    except MBeanError as exc:
        if exc.not_found:
            return {}
        raise


def _mbeans(value: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, dict)}


# ---------------------------------------------------------------- Artemis


def _same_structure(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """True when the two attribute dicts agree on everything but the queue's figures."""
    for key in ARTEMIS_STRUCTURE:  # noqa: SIM110 - no generator per busy queue
        if old.get(key) != new.get(key):
            return False
    return True


def decode_artemis(
    value: Any, options: ActiveMQOptions, cache: RowCache | None = None
) -> tuple[list[Row], list[str]]:
    """Rows of every Artemis queue and subscription (before include/exclude); a queue whose
    attributes are those of the last poll gets its row from ``cache`` (while the set of
    dead-letter addresses is the last poll's too), and the DLQ index is the last poll's while
    no queue appeared, vanished or changed its name, address, routing, filter or dead-letter
    address."""
    if cache is None:
        cache = RowCache()
    items = value.items() if isinstance(value, dict) else ()
    known = cache.dlas
    if known is not None:
        rows, warnings, found = _artemis_rows(items, options, cache, known)
        if found == known:
            return rows, warnings
        known = found
    else:
        known = _dead_letter_addresses(items)  # the first poll
    # the dead-letter addresses changed (or the first poll): every row is decoded with this
    # answer's own, which the same answer gives again
    cache.last, cache.artemis = {}, None
    rows, warnings, _ = _artemis_rows(items, options, cache, known)
    return rows, warnings


def _dead_letter_addresses(items: Iterable[tuple[str, Any]]) -> set[str]:
    """The dead-letter addresses of the queues ``_artemis_rows`` decodes (the same test)."""
    found: set[str] = set()
    for _, attrs in items:
        if type(attrs) is dict:
            address, dla = attrs.get("Address"), attrs.get("DeadLetterAddress")
            valid = type(address) is str and type(attrs.get("Name")) is str
            if valid and type(dla) is str and dla != address:
                found.add(dla)
    return found


def _artemis_rows(
    items: Iterable[tuple[str, Any]], options: ActiveMQOptions, cache: RowCache, known: set[str]
) -> tuple[list[Row], list[str], set[str]]:
    """Rows decoded with ``known`` as the dead-letter addresses (those that make a queue a
    DLQ), the warnings, and this answer's dead-letter addresses: the rows are right only if
    these are ``known`` (``cache`` is updated only then)."""
    warnings: list[str] = []
    entries: list[tuple[str, dict[str, Any]]] = []
    dlas: set[str] = set()
    show_internal = options.show_internal
    last = cache.last
    fresh: dict[str, tuple[Any, Any, Row | None]] = {}
    rows: list[Row] = []
    changed, hits = False, 0
    for mbean, attrs in items:
        if type(attrs) is not dict:
            continue
        hit = last.get(mbean)
        if hit is not None and hit[0] == attrs:  # its row, and what it adds to dlas
            hits += 1
            fresh[mbean] = hit
            entries.append((mbean, attrs))
            if hit[1] is not None:
                dlas.add(hit[1])
            if hit[2] is not None:
                rows.append(hit[2])
            continue
        address, dla = attrs.get("Address"), attrs.get("DeadLetterAddress")
        if type(address) is not str or type(attrs.get("Name")) is not str:
            warnings.append(f"skipped a queue MBean without a name: {str(mbean)[:200]}")
            continue
        entries.append((mbean, attrs))
        if type(dla) is str and dla != address:
            dlas.add(dla)
        else:
            dla = None
        if hit is None:
            changed = True
        else:
            hits += 1
            changed = changed or not _same_structure(hit[0], attrs)
        row = None
        if show_internal or attrs.get("InternalQueue") is not True:
            row = artemis_row(mbean, attrs, known)
            if row is not None:
                rows.append(row)
        fresh[mbean] = (attrs, dla, row)
    if dlas != known:
        return rows, warnings, dlas
    cache.last, cache.dlas = fresh, dlas
    index = cache.artemis
    if index is None or changed or hits != len(last):
        index = cache.artemis = ArtemisDlqs(entries, dlas, rows)
    for row in rows:
        if row.found_by is not index and row.group is None and row.kind != "dlq":
            row.dlq, row.info["dlq_source"] = index.find(row, options)
            row.found_by = index
    return rows, warnings, dlas


def _int(value: Any) -> int | None:
    return value if type(value) is int else number(value)


def artemis_row(mbean: str, attrs: Mapping[str, Any], dlas: set[str]) -> Row | None:
    """One Artemis queue (None for temporary queues and non-durable subscriptions)."""
    if attrs.get("Temporary") is True:
        return None
    name, address = str(attrs["Name"]), str(attrs["Address"])
    routing = str(attrs.get("RoutingType", ""))
    get = attrs.get
    count, delivering = _int(get("MessageCount")), _int(get("DeliveringCount"))
    age = _int(get("FirstMessageAge"))
    row = Row(
        name,
        name if address == name else f"{address}/{name}",
        mbean,
        None,
        "queue",
        None if count is None or delivering is None else max(0, count - delivering),
        delivering,
        _int(get("ConsumerCount")),
        _int(get("MessagesAdded")),
        _int(get("MessagesAcknowledged")),
        _int(get("MessagesKilled")),
        age / 1000 if age is not None else (0.0 if count == 0 else None),
        None,
        {
            "flavor": "artemis",
            "address": address,
            "routing_type": routing.lower() or None,
            "dead_letter_address": get("DeadLetterAddress"),
        },
    )
    if address in dlas:
        row.kind = "dlq"
    elif routing.upper() == "MULTICAST":
        if get("Durable") is not True:
            return None
        row.name, row.group, row.kind = address, name, "subscription"
    return row


class ArtemisDlqs:
    """Where the DLQ of each Artemis queue is, indexed once per poll: the queues of each
    dead-letter address (by filter, and its only unfiltered queue) and the conventional
    names (``dlq_index``)."""

    def __init__(
        self, entries: Iterable[tuple[str, Mapping[str, Any]]], dlas: set[str], rows: list[Row]
    ) -> None:
        # per dead-letter address: (first queue per filter, the queue if it is the only
        # unfiltered one)
        filtered: dict[str, dict[str, tuple[int, str]]] = {}
        plain: dict[str, list[str]] = {}
        for at, (_, attrs) in enumerate(entries):
            address = attrs["Address"]
            if address not in dlas:
                continue
            name = artemis_name(address, str(attrs["Name"]))
            queue_filter = attrs.get("Filter")
            by_filter = filtered.setdefault(address, {})
            if queue_filter:
                if isinstance(queue_filter, str):
                    by_filter.setdefault(queue_filter, (at, name))
            else:
                plain.setdefault(address, []).append(name)
        self.filtered = filtered
        self.only = {a: names[0] for a, names in plain.items() if len(names) == 1}
        names = {r.queue: r.name for r in rows if r.group is None}
        self.conventional = {q: names[d] for q, d in dlq_index(names).items()}

    def find(self, row: Row, options: ActiveMQOptions) -> tuple[str | None, str | None]:
        """(DLQ series name, how it was found) of an Artemis queue."""
        if options.dlq:
            explicit = options.dlq.get(row.name) or options.dlq.get(row.queue)
            if explicit:
                return explicit, "config"
        address = row.info["address"]
        dla = row.info["dead_letter_address"]
        if isinstance(dla, str) and dla and dla != address:
            by_filter = self.filtered.get(dla)
            if by_filter:
                found = [
                    by_filter[f]
                    for f in (f"_AMQ_ORIG_ADDRESS = '{address}'",
                              f"_AMQ_ORIG_ADDRESS = '{_sql(address)}'")
                    if f in by_filter
                ]  # fmt: skip
                if found:
                    return min(found)[1], "address_settings"
            only = self.only.get(dla)
            if only is not None:
                return only, "address_settings"
        conventional = self.conventional.get(row.queue)
        return (conventional, "name") if conventional is not None else (None, None)


def _sql(text: str) -> str:
    return text.replace("'", "''")


# ---------------------------------------------------------------- Classic


def decode_classic(
    answers: list[dict[str, Any]], options: ActiveMQOptions, cache: RowCache | None = None
) -> tuple[list[Row], list[str]]:
    """Rows of every Classic queue and durable subscription (before include/exclude); a queue
    whose attributes and dead-lettered count are those of the last poll gets its row from
    ``cache``."""
    queues = matched(answers[0])
    advisories = _mbeans(matched(answers[1]))
    topics = matched(answers[2])
    subscriptions = _mbeans(matched(answers[3]))
    advisory_on = isinstance(topics, list) and any("ActiveMQ.Advisory." in str(t) for t in topics)
    dead_by_queue: dict[str, int | None] = {}
    for mbean, attrs in advisories.items():
        destination = _key(mbean, "destinationName")
        if destination and destination.startswith(DLQ_ADVISORY):
            dead_by_queue[destination[len(DLQ_ADVISORY) :]] = number(attrs.get("EnqueueCount"))
    warnings: list[str] = []
    rows: list[Row] = []
    names: set[str] = set()
    show_internal = options.show_internal
    no_dead = 0 if advisory_on else None
    if cache is None:
        cache = RowCache()
    last = cache.last
    fresh: dict[str, tuple[Any, Any, Row | None]] = {}
    for mbean, attrs in queues.items() if isinstance(queues, dict) else ():
        if type(attrs) is not dict:
            continue
        name = attrs.get("Name")
        if type(name) is not str:
            warnings.append(f"skipped a queue MBean without a name: {mbean[:200]}")
            continue
        names.add(name)
        if not show_internal and name.startswith(INTERNAL_PREFIXES):
            continue
        dead = dead_by_queue.get(name, no_dead)
        hit = last.get(mbean)
        if hit is not None and hit[1] == dead and hit[0] == attrs and hit[2] is not None:
            fresh[mbean] = hit
            rows.append(hit[2])
        else:
            row = classic_row(name, mbean, attrs, dead)
            fresh[mbean] = (attrs, dead, row)
            rows.append(row)
    cache.last = fresh
    dlqs = cache.classic_dlqs(names)
    for row in rows:
        if row.kind != "dlq" and row.found_by is not dlqs:  # a reused row under the same index
            row.dlq, row.info["dlq_source"] = dlqs.find(row.queue, options)
            row.found_by = dlqs
    rows.extend(classic_subscriptions(subscriptions))
    return rows, warnings


def classic_row(name: str, mbean: str, attrs: Mapping[str, Any], dead: int | None) -> Row:
    """One Classic queue; ``dead`` its dead-lettered count (from the advisory topic)."""
    get = attrs.get
    dequeued, expired = _int(get("DequeueCount")), _int(get("ExpiredCount"))
    if dequeued is not None and expired is not None:
        dequeued = max(0, dequeued - expired)
        if dead is not None:
            dequeued = max(0, dequeued - dead)
    else:
        dequeued = None
    size, flight = _int(get("QueueSize")), _int(get("InFlightCount"))
    return Row(
        name,
        name,
        mbean,
        None,
        "dlq" if get("DLQ") is True else "queue",
        None if size is None or flight is None else max(0, size - flight),
        flight,
        _int(get("ConsumerCount")),
        _int(get("EnqueueCount")),
        dequeued,
        dead,
        None,  # Classic does not expose a message age
        None,
        {"flavor": "classic"},
    )


class ClassicDlqs:
    """Where the DLQ of each Classic queue is, indexed once per poll from every queue name."""

    def __init__(self, names: set[str]) -> None:
        self.individual = {n[4:]: n for n in names if n.startswith("DLQ.")}
        self.conventional = dlq_index(names)
        self.shared = CLASSIC_SHARED_DLQ if CLASSIC_SHARED_DLQ in names else None

    def find(self, queue: str, options: ActiveMQOptions) -> tuple[str | None, str | None]:
        """(DLQ, how found): config, ``DLQ.<queue>``, a conventional name, the shared DLQ."""
        explicit = options.dlq.get(queue) if options.dlq else None
        if explicit:
            return explicit, "config"
        found = self.individual.get(queue)
        if found is not None:
            return found, "individual"
        found = self.conventional.get(queue)
        if found is not None:
            return found, "name"
        return (self.shared, "shared") if self.shared is not None else (None, None)


def classic_subscriptions(subscriptions: Mapping[str, dict[str, Any]]) -> list[Row]:
    """Durable topic subscriptions as groups of their topic."""
    rows: list[Row] = []
    for mbean, attrs in subscriptions.items():
        topic = attrs.get("DestinationName")
        client, sub = attrs.get("ClientId"), attrs.get("SubscriptionName")
        if not isinstance(topic, str) or not isinstance(sub, str):
            continue
        group = f"{client}.{sub}" if isinstance(client, str) and client else sub
        active = attrs.get("Active")
        rows.append(
            Row(
                queue=topic,
                name=topic,
                mbean=mbean,
                group=group,
                kind="subscription",
                waiting=number(attrs.get("PendingQueueSize")),
                in_flight=number(attrs.get("DispatchedQueueSize")),
                consumers=(1 if active else 0) if isinstance(active, bool) else None,
                published=number(attrs.get("EnqueueCounter")),
                processed=number(attrs.get("DequeueCounter")),
                info={"flavor": "classic", "client_id": client, "subscription": sub},
            )
        )
    return rows


def _key(mbean: str, key: str) -> str | None:
    """The value of ``key`` in an unquoted ObjectName (Classic names are not quoted)."""
    _, _, props = mbean.partition(":")
    for part in props.split(","):
        k, _, v = part.partition("=")
        if k == key:
            return v
    return None
