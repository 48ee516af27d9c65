"""ActiveMQ polls reuse the sample of a queue whose raw values are unchanged since the last
poll, and build a new one when anything that goes into it changed."""

from __future__ import annotations

import copy
from typing import Any

from collectors.activemq.decode import RowCache, decode_artemis, decode_classic
from collectors.activemq.series import samples
from mqtop.kernel.model import SeriesSample
from tests.unit.test_activemq_decode import artemis_queue, options


def artemis_poll(value: dict[str, Any], cache: RowCache) -> dict[str, SeriesSample]:
    # a deep copy: each poll decodes a fresh JSON answer, never the last poll's objects
    rows, _ = decode_artemis(copy.deepcopy(value), options(), cache)
    return {s.key.queue: s for s in samples(rows, rows, "amq")}


def test_artemis_unchanged_queue_reuses_its_sample_changed_one_gets_a_new_one() -> None:
    value: dict[str, Any] = {
        "q1": artemis_queue("orders", "orders"),
        "q2": artemis_queue("DLQ.orders", "DLA", Filter="_AMQ_ORIG_ADDRESS = 'orders'",
                            MessageCount=4, DeliveringCount=0, FirstMessageAge=None),
        "q3": artemis_queue("billing", "billing", DeadLetterAddress=None),
    }  # fmt: skip
    cache = RowCache()
    first = artemis_poll(value, cache)
    assert len(cache) == 3
    second = artemis_poll(value, cache)
    assert all(second[q] is first[q] for q in first)  # nothing changed: the same samples

    value["q1"]["MessagesAdded"] = 10  # a counter moved
    third = artemis_poll(value, cache)
    assert third["orders"] is not second["orders"]
    assert third["orders"].values["published_total"] == 10
    assert third["billing"] is second["billing"]
    assert third["DLA/DLQ.orders"] is second["DLA/DLQ.orders"]

    value["q2"]["MessageCount"] = 7  # the DLQ grew: its queue's dlq_length changes too
    fourth = artemis_poll(value, cache)
    assert fourth["DLA/DLQ.orders"].values["queue_length"] == 7
    assert fourth["orders"] is not third["orders"]
    assert fourth["orders"].values["dlq_length"] == 7
    assert fourth["orders"].values["published_total"] == 10
    assert fourth["billing"] is third["billing"]

    del value["q3"]  # a vanished queue leaves the cache at the next poll
    fifth = artemis_poll(value, cache)
    assert set(fifth) == {"orders", "DLA/DLQ.orders"} and len(cache) == 2
    value["q3"] = artemis_queue("billing", "billing", DeadLetterAddress=None)
    assert artemis_poll(value, cache)["billing"] is not fourth["billing"]


def test_classic_dead_lettered_count_is_part_of_what_is_compared() -> None:
    base = "org.apache.activemq:type=Broker,brokerName=b,destinationType="
    queues = {
        f"{base}Queue,destinationName=orders": {"Name": "orders", "QueueSize": 6,
            "InFlightCount": 1, "EnqueueCount": 20, "DequeueCount": 14, "ExpiredCount": 2,
            "ConsumerCount": 2, "DLQ": False},
    }  # fmt: skip
    advisory = f"{base}Topic,destinationName=ActiveMQ.Advisory.MessageDLQd.Queue.orders"
    answers: list[dict[str, Any]] = [
        {"status": 200, "value": queues},
        {"status": 200, "value": {advisory: {"EnqueueCount": 3}}},
        {"status": 200, "value": [f"{base}Topic,destinationName=ActiveMQ.Advisory.Queue"]},
        {"status": 200, "value": {}},
    ]
    cache = RowCache()

    def poll() -> SeriesSample:
        rows, _ = decode_classic(copy.deepcopy(answers), options(), cache)
        (sample,) = samples(rows, rows, "amq")
        return sample

    first = poll()
    assert poll() is first
    answers[1]["value"][advisory]["EnqueueCount"] = 4  # only the advisory moved
    changed = poll()
    assert changed is not first
    assert changed.values["dead_lettered_total"] == 4 and changed.values["processed_total"] == 8
    cache.drop()
    assert len(cache) == 0 and poll() is not changed


def test_classic_dlq_is_looked_up_again_when_the_queue_names_change() -> None:
    base = "org.apache.activemq:type=Broker,brokerName=b,destinationType=Queue,destinationName="
    attrs = {"QueueSize": 1, "InFlightCount": 0, "EnqueueCount": 1, "DequeueCount": 0,
             "ExpiredCount": 0, "ConsumerCount": 0, "DLQ": False}  # fmt: skip
    queues: dict[str, Any] = {f"{base}orders": {"Name": "orders", **attrs}}
    answers: list[dict[str, Any]] = [
        {"status": 200, "value": queues},
        {"status": 200, "value": {}},
        {"status": 200, "value": []},
        {"status": 200, "value": {}},
    ]
    cache = RowCache()

    def orders() -> SeriesSample:
        rows, _ = decode_classic(copy.deepcopy(answers), options(), cache)
        return next(s for s in samples(rows, rows, "amq") if s.key.queue == "orders")

    first = orders()
    assert first.dlq is None and orders() is first
    queues[f"{base}DLQ.orders"] = {"Name": "DLQ.orders", **attrs, "QueueSize": 2}
    found = orders()  # its attributes are unchanged, but a DLQ of its own appeared
    assert found.dlq == "DLQ.orders" and found.info["dlq_source"] == "individual"
    assert found.values["dlq_length"] == 2
    del queues[f"{base}DLQ.orders"]
    assert orders().dlq is None


def test_artemis_dlq_index_is_kept_across_polls_and_rebuilt_when_queues_change() -> None:
    value: dict[str, Any] = {
        "q1": artemis_queue("orders", "orders"),
        "q3": artemis_queue("billing", "billing", DeadLetterAddress=None),
    }
    cache = RowCache()
    first = artemis_poll(value, cache)
    assert first["orders"].dlq is None and first["billing"].dlq is None
    index = cache.artemis
    assert index is not None
    value["q1"]["MessagesAdded"] = 10  # a busy queue: new values, the same structure
    assert artemis_poll(value, cache)["orders"].values["published_total"] == 10
    assert cache.artemis is index  # not rebuilt

    # a DLQ appears on the dead-letter address: the unchanged queue finds it at the next poll
    value["q2"] = artemis_queue("DLQ.orders", "DLA", Filter="_AMQ_ORIG_ADDRESS = 'orders'",
                                MessageCount=4, DeliveringCount=0)  # fmt: skip
    found = artemis_poll(value, cache)
    assert found["orders"].dlq == "DLA/DLQ.orders"
    assert found["orders"].info["dlq_source"] == "address_settings"
    assert found["orders"].values["dlq_length"] == 4
    assert found["DLA/DLQ.orders"].kind == "dlq"
    assert cache.artemis is not index

    # a conventional-name DLQ of billing appears, then vanishes
    value["q4"] = artemis_queue("billing.dlq", "billing.dlq", DeadLetterAddress=None,
                                MessageCount=2, DeliveringCount=0)  # fmt: skip
    assert artemis_poll(value, cache)["billing"].dlq == "billing.dlq"
    del value["q4"]
    assert artemis_poll(value, cache)["billing"].dlq is None

    # the address settings change: orders' dead-letter address is no longer DLA
    value["q1"]["DeadLetterAddress"] = "ELSEWHERE"
    moved = artemis_poll(value, cache)
    assert moved["orders"].dlq is None
    # DLA has no queue pointing at it now: its queue is an ordinary queue
    assert moved["DLA/DLQ.orders"].kind == "queue"
    value["q1"]["DeadLetterAddress"] = "DLA"
    back = artemis_poll(value, cache)
    assert back["orders"].dlq == "DLA/DLQ.orders" and back["DLA/DLQ.orders"].kind == "dlq"

    del value["q2"]  # the DLQ disappears
    gone = artemis_poll(value, cache)
    assert gone["orders"].dlq is None and gone["orders"].values["dlq_length"] is None


def test_artemis_decode_with_a_cache_equals_decode_without_one() -> None:
    value: dict[str, Any] = {
        "q1": artemis_queue("orders", "orders"),
        "q2": artemis_queue("DLQ.orders", "DLA", Filter="_AMQ_ORIG_ADDRESS = 'orders'"),
        "q3": artemis_queue("app.sub", "events", RoutingType="MULTICAST"),
        "q4": artemis_queue("tmp", "tmp", Temporary=True),
        "q5": artemis_queue("$sys.x", "$sys.x", InternalQueue=True),
        "q6": {"Name": None, "Address": 5},
        "q7": artemis_queue("plain", "plain", DeadLetterAddress="DLA2"),
        "q8": artemis_queue("DLA2", "DLA2", DeadLetterAddress=None),
    }
    cache = RowCache()

    def view(rows: list[Any]) -> list[tuple[Any, ...]]:
        return [(r.name, r.group, r.kind, r.dlq, r.info.get("dlq_source"), r.waiting)
                for r in rows]  # fmt: skip

    for change in (None, ("q1", "MessageCount", 9), ("q8", "Address", "other"),
                   ("q2", "Filter", None), ("q7", "DeadLetterAddress", None)):  # fmt: skip
        if change is not None:
            value[change[0]][change[1]] = change[2]
        cached, warned = decode_artemis(copy.deepcopy(value), options(), cache)
        plain, warned_plain = decode_artemis(copy.deepcopy(value), options())
        assert view(cached) == view(plain) and warned == warned_plain


def test_artemis_hostile_entry_with_a_dead_letter_address_is_skipped_not_fatal() -> None:
    value: dict[str, Any] = {
        "q1": artemis_queue("orders", "orders"),
        "bad": {"Name": "x", "Address": 7, "DeadLetterAddress": "ELSEWHERE"},
        "bad2": {"Name": None, "Address": "a", "DeadLetterAddress": "OTHER"},
    }
    cache = RowCache()
    for _ in range(2):
        rows, warnings = decode_artemis(copy.deepcopy(value), options(), cache)
        assert [r.name for r in rows] == ["orders"] and len(warnings) == 2
