"""ActiveMQ Artemis and Sidekiq lint rules over hand-made topologies: each rule broken and
satisfied, and what the rules must not judge."""

from __future__ import annotations

from alerts.config import AlertRule
from collectors.activemq.decode import Row
from collectors.activemq.topology import artemis_queue, decode_settings
from collectors.jobs.bullmq.topology import failed_set
from collectors.topology import Binding, DeadLetter, Exchange, QueueTopology, Topology
from mqtop.lint.config import LintConfig
from mqtop.lint.runner import lint_topology

EVERYTHING = [AlertRule(name="all", metric="queue_length", threshold=1)]


def rules_of(topology: Topology) -> set[tuple[str, str]]:
    findings, _ = lint_topology(topology, EVERYTHING, LintConfig())
    return {(f.rule, f.queue) for f in findings}


def messages_of(topology: Topology) -> dict[tuple[str, str], str]:
    findings, _ = lint_topology(topology, EVERYTHING, LintConfig())
    return {(f.rule, f.queue): f.message for f in findings}


def aq(name: str, dla: str | None = "DLA", **kw) -> QueueTopology:  # type: ignore[no-untyped-def]
    kw.setdefault("kind", "queue")
    kw.setdefault("delivery_limit", 10)
    kw.setdefault("auto_create_dlq", False)
    link = DeadLetter(dla, None, "address-settings") if dla else None
    return QueueTopology(name=name, local_name=name, dead_letter=link, **kw)


def artemis(*queues: QueueTopology, on_addresses: dict[str, list[str]] | None = None) -> Topology:
    """Every queue on its own address, plus ``on_addresses`` (address -> queue names)."""
    addresses = {q.short: [q.short] for q in queues}
    addresses.update(on_addresses or {})
    return Topology(
        "amq",
        "activemq",
        tuple(queues),
        exchanges=tuple(Exchange(a, "address") for a in addresses),
        bindings=tuple(Binding(a, q, "queue", "") for a, names in addresses.items() for q in names),
    )


DLA = {"DLA": ["DLQ"]}


def test_no_dla_broken_and_satisfied() -> None:
    topology = artemis(
        aq("orders", dla=None, delivery_limit=5),
        aq("unknown", dla=None, delivery_limit=None, auto_create_dlq=None),
        aq("safe"),
        aq("DLQ", kind="dlq"),
        on_addresses=DLA,
    )
    found = messages_of(topology)
    assert set(found) == {("activemq-no-dla", "orders"), ("activemq-no-dla", "unknown")}
    assert found[("activemq-no-dla", "orders")].endswith("removed after 5 delivery attempts")
    assert found[("activemq-no-dla", "unknown")].endswith("after max-delivery-attempts")


def test_no_dla_not_judged_on_dead_letter_queues_or_infinite_redelivery() -> None:
    topology = artemis(
        aq("DLQ", dla=None, kind="dlq"),  # a dead-letter queue without a DLA of its own
        aq("orders.dlq", dla=None),  # named like one
        aq("forever", dla=None, delivery_limit=-1),  # nothing removed: the other rule says
    )
    assert rules_of(topology) == {("activemq-max-delivery-attempts", "forever")}


def test_dla_without_queue_broken_and_satisfied() -> None:
    topology = artemis(
        aq("lost", dla="nowhere"),
        aq("auto", dla="nowhere", auto_create_dlq=True),
        aq("unread", dla="nowhere", auto_create_dlq=None, delivery_limit=None),
        aq("bound"),
        aq("DLQ", kind="dlq"),
        on_addresses=DLA,
    )
    found = messages_of(topology)
    assert set(found) == {("activemq-dla-no-queue", "lost")}
    assert "'nowhere' has no queue" in found[("activemq-dla-no-queue", "lost")]


def test_max_delivery_attempts_broken_and_satisfied() -> None:
    topology = artemis(
        aq("forever", delivery_limit=-1),
        aq("once", delivery_limit=1),
        aq("once-no-dla", dla=None, delivery_limit=1),
        aq("fine", delivery_limit=10),
        aq("DLQ", kind="dlq", delivery_limit=1),  # a DLQ with 1: not judged
        on_addresses=DLA,
    )
    found = messages_of(topology)
    assert set(found) == {
        ("activemq-max-delivery-attempts", "forever"),
        ("activemq-max-delivery-attempts", "once"),
        ("activemq-max-delivery-attempts", "once-no-dla"),
        ("activemq-no-dla", "once-no-dla"),
    }
    assert "redelivered forever" in found[("activemq-max-delivery-attempts", "forever")]
    assert "dead-letters" in found[("activemq-max-delivery-attempts", "once")]
    assert "removes" in found[("activemq-max-delivery-attempts", "once-no-dla")]


def test_classic_topology_gets_no_activemq_rule() -> None:
    # Classic exposes no dead-letter links: no address, no link, no rule (coverage only)
    topology = Topology("amq", "activemq", (QueueTopology("orders", "queue", consumers=0),))
    assert rules_of(topology) == set()


def test_address_settings_decoded_with_artemis_defaults() -> None:
    row = Row(queue="q", name="q", mbean="m", waiting=3, in_flight=1, consumers=2)
    row.info = {"address": "q", "dead_letter_address": "DLA"}
    # Artemis omits maxDeliveryAttempts and autoCreateDeadLetterResources at their defaults
    plain = artemis_queue(row, decode_settings('{"deadLetterAddress": "DLA"}'))
    assert plain.delivery_limit == 10 and plain.auto_create_dlq is False
    assert plain.messages == 4 and plain.dead_letter == DeadLetter("DLA", None, "address-settings")
    raw = '{"maxDeliveryAttempts": -1, "autoCreateDeadLetterResources": true}'
    set_ = artemis_queue(row, decode_settings(raw))
    assert set_.delivery_limit == -1 and set_.auto_create_dlq is True
    unread = artemis_queue(row, None)  # refused or malformed: unknown, never guessed
    assert unread.delivery_limit is None and unread.auto_create_dlq is None
    assert decode_settings("not json") is None and decode_settings("[1]") is None
    row.info["dead_letter_address"] = ""
    assert artemis_queue(row, None).dead_letter is None


def dead_set(size: int | None, cap: int | None) -> Topology:
    queues = (
        QueueTopology("default", "queue", messages=0),
        QueueTopology("dead", "dead-set", messages=size, max_length=cap),
    )
    return Topology("sk", "sidekiq", queues)


def test_sidekiq_dead_set_full_broken_and_satisfied() -> None:
    full = messages_of(dead_set(9_999, 9_999))
    assert set(full) == {("sidekiq-dead-set-full", "dead")}
    assert (
        "9,999 dead jobs of a cap of 9,999 (100%), full" in full[("sidekiq-dead-set-full", "dead")]
    )
    near = messages_of(dead_set(36, 39))
    assert "near full" in near[("sidekiq-dead-set-full", "dead")]
    assert rules_of(dead_set(35, 39)) == set()  # below 90%
    assert rules_of(dead_set(None, 9_999)) == set()  # size unknown: nothing judged
    assert rules_of(dead_set(5, None)) == set()


def bullmq(*sets: QueueTopology) -> Topology:
    return Topology("bq", "bullmq", sets)


def test_bullmq_failed_set_bound_decoded_from_the_newest_failed_job() -> None:
    assert failed_set("q", 3, b'{"attempts":0}').unbounded_retention is True
    assert failed_set("q", 3, '{"removeOnFail":false}').unbounded_retention is True
    counted = failed_set("q", 3, '{"removeOnFail":50,"attempts":0}')
    assert counted.max_length == 50 and not counted.unbounded_retention
    assert counted.name == "q:failed" and counted.messages == 3
    assert failed_set("q", 3, '{"removeOnFail":true}').max_length == 0
    both = failed_set("q", 3, '{"removeOnFail":{"count":7,"age":3600}}')
    assert both.max_length == 7 and both.retention_seconds == 3600.0
    aged = failed_set("q", 3, '{"removeOnFail":{"age":60}}')
    assert aged.max_length is None and aged.retention_seconds == 60.0
    assert not aged.unbounded_retention
    for unknown in (None, "not json", "[]"):  # no failed job, or unreadable: unknown
        got = failed_set("q", 0, unknown)
        assert got.max_length is None and not got.unbounded_retention


def test_bullmq_rules_broken_and_satisfied() -> None:
    topology = bullmq(
        failed_set("full", 3, '{"removeOnFail":3}'),
        failed_set("roomy", 3, '{"removeOnFail":100}'),
        failed_set("gone", 0, '{"removeOnFail":true}'),
        failed_set("none", 0, '{"removeOnFail":{"count":0}}'),
        failed_set("forever", 12, "{}"),
        failed_set("aged", 500, '{"removeOnFail":{"age":86400}}'),
        failed_set("empty", 0, None),
    )
    found = messages_of(topology)
    assert set(found) == {
        ("bullmq-failed-evicting", "full:failed"),
        ("bullmq-failed-evicting", "gone:failed"),
        ("bullmq-failed-evicting", "none:failed"),
        ("bullmq-failed-unbounded", "forever:failed"),
    }
    assert (
        "3 failed jobs of removeOnFail's 3 (100%), full"
        in found[("bullmq-failed-evicting", "full:failed")]
    )
    assert "keeps none" in found[("bullmq-failed-evicting", "gone:failed")]
    assert "12 failed jobs" in found[("bullmq-failed-unbounded", "forever:failed")]
    findings, _ = lint_topology(topology, EVERYTHING, LintConfig())
    severity = {f.rule: f.severity for f in findings}
    assert severity == {"bullmq-failed-evicting": "warning", "bullmq-failed-unbounded": "info"}


def test_artemis_reader_skips_delivery_rules_when_address_settings_are_refused() -> None:
    import asyncio

    from collectors.activemq.jolokia import JolokiaRefused
    from collectors.activemq.options import ActiveMQOptions
    from collectors.activemq.topology import create_reader

    reader = create_reader(ActiveMQOptions(name="amq", flavor="artemis"))
    orders = Row(queue="orders", name="orders", mbean="m", waiting=0, in_flight=0, consumers=1)
    orders.info = {"address": "orders", "dead_letter_address": "nowhere"}
    sub = Row(queue="app.audit", name="events", mbean="m2", group="app.audit", kind="subscription")
    sub.info = {"address": "events", "dead_letter_address": ""}

    async def rows() -> tuple[list[Row], list[str]]:
        return [orders, sub], []

    async def search(pattern: str) -> list[str]:
        return ['org.apache.activemq.artemis:broker="b"']

    async def refuse(requests: object) -> object:
        raise JolokiaRefused("403: the access policy refused it")

    reader.collector.rows = rows  # type: ignore[method-assign]
    reader.collector.jolokia.search = search  # type: ignore[method-assign]
    reader.collector.jolokia.bulk = refuse  # type: ignore[method-assign]
    topology = asyncio.run(reader.read())
    assert [q.name for q in topology.queues] == ["orders", "events/app.audit"]
    assert all(q.delivery_limit is None and q.auto_create_dlq is None for q in topology.queues)
    assert any("could not be read" in w for w in topology.warnings)
    # the dead-letter address is known, its auto-creation is not: only the missing DLA is judged
    assert rules_of(topology) == {("activemq-no-dla", "events/app.audit")}


def test_rq_failed_jobs_without_expiry_broken_and_satisfied() -> None:
    def registry(name: str, size: int, never: bool) -> QueueTopology:
        return QueueTopology(
            name + ":failed", "failed-registry", messages=size, unbounded_retention=never
        )

    topology = Topology(
        "rq",
        "rq",
        (registry("forever", 3, True), registry("yearly", 3, False), registry("empty", 0, True)),
    )
    findings, _ = lint_topology(topology, EVERYTHING, LintConfig())
    assert [(f.rule, f.queue, f.severity) for f in findings] == [
        ("rq-failed-no-ttl", "forever:failed", "info")
    ]
    assert findings[0].message.startswith("3 failed jobs, some with no expiry")
