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
import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from collectors.activemq.jolokia import MBeanError, quote, value_of
from collectors.activemq.options import ActiveMQOptions, Flavor
from collectors.base import dlq_candidates
from mqtop.kernel.model import SeriesKey, SeriesSample

ARTEMIS = "org.apache.activemq.artemis"
CLASSIC = "org.apache.activemq"
ARTEMIS_ATTRIBUTES = (
    "Name",
    "Address",
    "RoutingType",
    "Durable",
    "Temporary",
    "InternalQueue",
    "Filter",
    "DeadLetterAddress",
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


def difference(total: int | None, part: int | None) -> int | None:
    """``total - part`` (never below 0), None when either is unknown."""
    if total is None or part is None:
        return None
    return max(0, total - part)


def is_internal(name: str) -> bool:
    """True for the brokers' own addresses and queues (hidden unless show_internal)."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in INTERNAL)


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


def decode_artemis(value: Any, options: ActiveMQOptions) -> tuple[list[Row], list[str]]:
    """Rows of every Artemis queue and subscription (before include/exclude)."""
    raw = _mbeans(value)
    warnings: list[str] = []
    by_address: dict[str, list[dict[str, Any]]] = {}
    entries: list[tuple[str, dict[str, Any]]] = []
    for mbean, attrs in raw.items():
        name, address = attrs.get("Name"), attrs.get("Address")
        if not isinstance(name, str) or not isinstance(address, str):
            warnings.append(f"skipped a queue MBean without a name: {mbean[:200]}")
            continue
        by_address.setdefault(address, []).append(attrs)
        entries.append((mbean, attrs))
    dead_letter_addresses = {
        a["DeadLetterAddress"]
        for _, a in entries
        if isinstance(a.get("DeadLetterAddress"), str) and a["DeadLetterAddress"] != a["Address"]
    }
    rows: list[Row] = []
    for mbean, attrs in entries:
        row = artemis_row(mbean, attrs, dead_letter_addresses)
        if row is None:
            continue
        if attrs.get("InternalQueue") is True and not options.show_internal:
            continue
        rows.append(row)
    names = {r.queue: r.name for r in rows if r.group is None}
    for row in rows:
        if row.group is None and row.kind != "dlq":
            row.dlq, how = artemis_dlq(row, by_address, names, options)
            row.info["dlq_source"] = how
    return rows, warnings


def artemis_row(mbean: str, attrs: Mapping[str, Any], dlas: set[str]) -> Row | None:
    """One Artemis queue (None for temporary queues and non-durable subscriptions)."""
    name, address = str(attrs["Name"]), str(attrs["Address"])
    if attrs.get("Temporary") is True:
        return None
    multicast = str(attrs.get("RoutingType", "")).upper() == "MULTICAST"
    count, delivering = number(attrs.get("MessageCount")), number(attrs.get("DeliveringCount"))
    waiting = difference(count, delivering)
    age = number(attrs.get("FirstMessageAge"))
    latency = age / 1000 if age is not None else (0.0 if count == 0 else None)
    row = Row(
        queue=name,
        name=artemis_name(address, name),
        mbean=mbean,
        waiting=waiting,
        in_flight=delivering,
        consumers=number(attrs.get("ConsumerCount")),
        published=number(attrs.get("MessagesAdded")),
        processed=number(attrs.get("MessagesAcknowledged")),
        dead=number(attrs.get("MessagesKilled")),
        latency=latency,
        info={
            "flavor": "artemis",
            "address": address,
            "routing_type": str(attrs.get("RoutingType", "")).lower() or None,
            "dead_letter_address": attrs.get("DeadLetterAddress"),
        },
    )
    if address in dlas:
        row.kind = "dlq"
    elif multicast:
        if attrs.get("Durable") is not True:
            return None
        row.name, row.group, row.kind = address, name, "subscription"
    return row


def artemis_dlq(
    row: Row,
    by_address: Mapping[str, list[dict[str, Any]]],
    names: Mapping[str, str],
    options: ActiveMQOptions,
) -> tuple[str | None, str | None]:
    """(DLQ series name, how it was found) of an Artemis queue."""
    explicit = options.dlq.get(row.name) or options.dlq.get(row.queue)
    if explicit:
        return explicit, "config"
    address = str(row.info.get("address"))
    dla = row.info.get("dead_letter_address")
    if isinstance(dla, str) and dla and dla != address:
        queues = by_address.get(dla, [])
        wanted = {f"_AMQ_ORIG_ADDRESS = '{address}'", f"_AMQ_ORIG_ADDRESS = '{_sql(address)}'"}
        for attrs in queues:
            if attrs.get("Filter") in wanted:
                return artemis_name(dla, str(attrs["Name"])), "address_settings"
        plain = [a for a in queues if not a.get("Filter")]
        if len(plain) == 1:
            return artemis_name(dla, str(plain[0]["Name"])), "address_settings"
    for candidate in dlq_candidates(row.queue):
        if candidate in names:
            return names[candidate], "name"
    return None, None


def _sql(text: str) -> str:
    return text.replace("'", "''")


# ---------------------------------------------------------------- Classic


def decode_classic(
    answers: list[dict[str, Any]], options: ActiveMQOptions
) -> tuple[list[Row], list[str]]:
    """Rows of every Classic queue and durable subscription (before include/exclude)."""
    queues = _mbeans(matched(answers[0]))
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
    for mbean, attrs in queues.items():
        name = attrs.get("Name")
        if not isinstance(name, str):
            warnings.append(f"skipped a queue MBean without a name: {mbean[:200]}")
            continue
        if is_internal(name) and not options.show_internal:
            continue
        dead = dead_by_queue.get(name, 0 if advisory_on else None)
        dequeued = difference(number(attrs.get("DequeueCount")), number(attrs.get("ExpiredCount")))
        size, flight = number(attrs.get("QueueSize")), number(attrs.get("InFlightCount"))
        rows.append(
            Row(
                queue=name,
                name=name,
                mbean=mbean,
                kind="dlq" if attrs.get("DLQ") is True else "queue",
                waiting=difference(size, flight),
                in_flight=flight,
                consumers=number(attrs.get("ConsumerCount")),
                published=number(attrs.get("EnqueueCount")),
                processed=dequeued if dead is None else difference(dequeued, dead),
                dead=dead,
                latency=None,
                info={"flavor": "classic"},
            )
        )
    names = {r.queue for r in rows} | {
        str(a.get("Name")) for a in queues.values() if isinstance(a.get("Name"), str)
    }
    for row in rows:
        if row.kind != "dlq":
            row.dlq, row.info["dlq_source"] = classic_dlq(row.queue, names, options)
    rows.extend(classic_subscriptions(subscriptions))
    return rows, warnings


def classic_dlq(
    queue: str, names: set[str], options: ActiveMQOptions
) -> tuple[str | None, str | None]:
    """(DLQ, how found): config, ``DLQ.<queue>``, a conventional name, the shared DLQ."""
    explicit = options.dlq.get(queue)
    if explicit:
        return explicit, "config"
    if f"DLQ.{queue}" in names:
        return f"DLQ.{queue}", "individual"
    for candidate in dlq_candidates(queue):
        if candidate in names:
            return candidate, "name"
    if CLASSIC_SHARED_DLQ in names:
        return CLASSIC_SHARED_DLQ, "shared"
    return None, None


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


# ---------------------------------------------------------------- samples


def samples(wanted: Iterable[Row], everything: Iterable[Row], broker: str) -> list[SeriesSample]:
    """SeriesSamples of the wanted rows; dlq_length from the DLQ's own row (wanted or not)."""
    lengths = {r.name: r for r in everything if r.group is None}
    out: list[SeriesSample] = []
    for row in wanted:
        dlq_row = lengths.get(row.dlq) if row.dlq else None
        dlq_len = None
        if dlq_row is not None and dlq_row.waiting is not None:
            dlq_len = float(dlq_row.waiting + (dlq_row.in_flight or 0))
        values: dict[str, float | None] = {
            "queue_length": _f(row.waiting),
            "consumer_lag_messages": _f(row.waiting),
            "in_flight": _f(row.in_flight),
            "consumers": _f(row.consumers),
            "latency_seconds": row.latency,
            "consumer_lag_seconds": row.latency,
            "dlq_length": dlq_len,
            "published_total": _f(row.published),
            "processed_total": _f(row.processed),
            "dead_lettered_total": _f(row.dead),
        }
        out.append(
            SeriesSample(
                key=SeriesKey(broker, row.name, row.group),
                kind=row.kind,
                values=values,
                dlq=row.dlq,
                info={k: v for k, v in row.info.items() if v is not None},
            )
        )
    return out


def _f(value: int | None) -> float | None:
    return None if value is None else float(value)
