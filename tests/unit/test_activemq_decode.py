"""ActiveMQ decoding of Jolokia answers: pure logic, hostile values included."""

from __future__ import annotations

import pytest

from collectors.activemq.decode import decode_artemis, decode_classic, number
from collectors.activemq.jolokia import Jolokia, JolokiaRefused, JolokiaUnavailable, quote
from collectors.activemq.messages import artemis_message, classic_message
from collectors.activemq.options import ActiveMQOptions
from collectors.activemq.series import samples


def options(**extra: object) -> ActiveMQOptions:
    return ActiveMQOptions.model_validate(
        {"name": "amq", "type": "activemq", "jolokia_url": "http://h:8161/console/jolokia",
         **extra}
    )  # fmt: skip


def artemis_queue(name: str, address: str, **attrs: object) -> dict[str, object]:
    base: dict[str, object] = {
        "Name": name,
        "Address": address,
        "RoutingType": "ANYCAST",
        "Durable": True,
        "Temporary": False,
        "InternalQueue": False,
        "Filter": None,
        "DeadLetterAddress": "DLA",
        "MessageCount": 5,
        "DeliveringCount": 2,
        "MessagesAdded": 9,
        "MessagesAcknowledged": 3,
        "MessagesKilled": 1,
        "ConsumerCount": 1,
        "FirstMessageAge": 1500,
    }
    base.update(attrs)
    return base


def test_numbers_are_never_guessed() -> None:
    assert number(3) == 3 and number("7") == 7 and number(2.0) == 2
    for bad in (None, True, "x", float("nan"), float("inf"), [1], {"a": 1}, "ERROR: boom"):
        assert number(bad) is None


def test_artemis_rows_dlq_mapping_and_hostile_entries() -> None:
    value = {
        "q1": artemis_queue("orders", "orders"),
        "q2": artemis_queue(
            "DLQ.orders",
            "DLA",
            Filter="_AMQ_ORIG_ADDRESS = 'orders'",
            MessageCount=4,
            DeliveringCount=0,
            FirstMessageAge=None,
        ),
        "q3": artemis_queue(
            "app.sub", "events", RoutingType="MULTICAST", MessageCount=2, DeliveringCount=0
        ),
        "q4": artemis_queue("tmp", "tmp", Temporary=True),
        "q5": artemis_queue("$sys.mqtt.sessions", "$sys.mqtt.sessions", InternalQueue=True),
        "q6": {"Name": None, "Address": 5},  # hostile: skipped with a warning
        "q7": artemis_queue("weird", "weird", MessageCount="lots", MessagesAdded={"x": 1}),
        "q8": "not a dict",
    }
    rows, warnings = decode_artemis(value, options())
    assert len(warnings) == 1 and "without a name" in warnings[0]
    by = {(r.name, r.group): r for r in rows}
    assert set(by) == {("orders", None), ("DLA/DLQ.orders", None), ("events", "app.sub"),
                       ("weird", None)}  # fmt: skip
    orders = by[("orders", None)]
    assert (orders.waiting, orders.in_flight, orders.latency) == (3, 2, 1.5)
    assert orders.dlq == "DLA/DLQ.orders" and orders.info["dlq_source"] == "address_settings"
    assert by[("DLA/DLQ.orders", None)].kind == "dlq"
    assert by[("events", "app.sub")].kind == "subscription"
    weird = by[("weird", None)]
    assert weird.waiting is None and weird.published is None  # malformed: null, not 0
    series = {(s.key.queue, s.key.group): s for s in samples(rows, rows, "amq")}
    assert series[("orders", None)].values["dlq_length"] == 4
    assert series[("orders", None)].values["dead_lettered_total"] == 1
    shown, _ = decode_artemis(value, options(show_internal=True))
    assert any(r.queue == "$sys.mqtt.sessions" for r in shown)


def test_classic_rows_advisories_and_shared_dlq() -> None:
    base = "org.apache.activemq:type=Broker,brokerName=b,destinationType="
    queues = {
        f"{base}Queue,destinationName=orders": {"Name": "orders", "QueueSize": 6,
            "InFlightCount": 1, "EnqueueCount": 20, "DequeueCount": 14, "ExpiredCount": 2,
            "ConsumerCount": 2, "DLQ": False},
        f"{base}Queue,destinationName=ActiveMQ.DLQ": {"Name": "ActiveMQ.DLQ", "QueueSize": 3,
            "InFlightCount": 0, "EnqueueCount": 3, "DequeueCount": 0, "ExpiredCount": 0,
            "ConsumerCount": 0, "DLQ": True},
    }  # fmt: skip
    advisories = {
        f"{base}Topic,destinationName=ActiveMQ.Advisory.MessageDLQd.Queue.orders": {
            "EnqueueCount": 3
        }
    }
    answers = [
        {"status": 200, "value": queues},
        {"status": 200, "value": advisories},
        {"status": 200, "value": [f"{base}Topic,destinationName=ActiveMQ.Advisory.Queue"]},
        {"status": 404, "error_type": "javax.management.InstanceNotFoundException"},
    ]
    rows, warnings = decode_classic(answers, options())
    assert warnings == []
    by = {r.name: r for r in rows}
    orders = by["orders"]
    assert (orders.waiting, orders.in_flight, orders.dead, orders.processed) == (5, 1, 3, 9)
    assert orders.latency is None  # Classic has no message age
    assert orders.dlq == "ActiveMQ.DLQ" and orders.info["dlq_source"] == "shared"
    assert by["ActiveMQ.DLQ"].kind == "dlq"
    answers[2] = {"status": 200, "value": []}  # advisories off: dead-lettered is unknown
    answers[1] = {"status": 404, "error_type": "javax.management.InstanceNotFoundException"}
    rows, _ = decode_classic(answers, options())
    orders = next(r for r in rows if r.name == "orders")
    assert orders.dead is None and orders.processed == 12


def test_browsed_messages_decode() -> None:
    message = artemis_message(
        {"messageID": "42", "type": 4, "BodyPreview": [104, -61, -68],
         "StringProperties": {"color": "red", "_AMQ_ORIG_QUEUE": "orders"},
         "IntProperties": {"n": 3}, "timestamp": 1_700_000_000_000}
    )  # fmt: skip
    assert message.body == "hü".encode() and message.headers == {"color": "red", "n": 3}
    assert message.death is not None and message.death.original_queue == "orders"
    assert message.properties["type"] == "bytes" and message.timestamp == 1_700_000_000
    classic = classic_message(
        {"JMSMessageID": "ID:1", "Text": "x" * 10, "BodyLength": 10,
         "OriginalDestination": "queue://orders",
         "StringProperties": {"dlqDeliveryFailureCause": "poison"},
         "JMSTimestamp": "2026-01-01T00:00:00Z"}
    )  # fmt: skip
    assert classic.death is not None and classic.death.reason == "poison"
    assert classic.death.original_queue == "orders" and classic.timestamp is not None
    cut = classic_message({"JMSMessageID": "ID:2", "BodyPreview": [1] * 255, "BodyLength": 900})
    assert cut.body_complete is False and cut.body_size == 900 and len(cut.body) == 255
    assert classic.body_complete is True and classic.body_size is None


def test_artemis_cut_bodies() -> None:
    """Artemis appends ', + N more' to a text cut at the limit and reports no body size."""
    text = artemis_message({"messageID": "1", "type": 3, "text": "é" + "t" * 255 + ", + 747 more"})
    assert text.body == ("é" + "t" * 255).encode() and text.body_complete is False
    assert text.body_size is None  # characters are not bytes: no size is made up
    short = artemis_message({"messageID": "2", "type": 3, "text": "ok, + 3 more"})
    assert short.body == b"ok, + 3 more" and short.body_complete is True
    wide = artemis_message({"messageID": "3", "type": 3, "text": "a" * 300}, limit=1000)
    assert wide.body_complete is True
    full = artemis_message({"messageID": "4", "type": 4, "BodyPreview": [1] * 255})
    assert full.body_complete is True
    edge = artemis_message({"messageID": "5", "type": 4, "BodyPreview": [1] * 256})
    assert edge.body_complete is False  # as long as the limit: maybe cut
    large = artemis_message({"messageID": "6", "type": 4, "largeMessage": True})
    assert large.body_complete is False


def test_artemis_bodies_are_matched_only_when_unambiguous() -> None:
    from collectors.activemq.amqp import Whole
    from collectors.activemq.bodies import match

    dead = artemis_message({"messageID": "9", "type": 4, "BodyPreview": list(b"ab"),
                            "LongProperties": {"_AMQ_ORIG_MESSAGE_ID": 7},
                            "timestamp": 5, "priority": 4})  # fmt: skip
    wholes = [Whole(b"abXX", 6, 5, 4), Whole(b"abYY", 7, 5, 4), None]
    assert match(dead, wholes) == b"abYY"  # the dead letter's original id decides
    plain = artemis_message({"messageID": "10", "type": 4, "BodyPreview": list(b"ab"),
                             "timestamp": 5, "priority": 4})  # fmt: skip
    assert match(plain, wholes) is None  # two bodies fit: none is guessed
    assert match(plain, [Whole(b"abZ", None, 5, 4), Whole(b"zz", None, 5, 4)]) == b"abZ"
    assert match(plain, [Whole(b"abZ", None, 6, 4)]) is None  # another timestamp


def test_stomp_frames() -> None:
    import asyncio

    from collectors.activemq import stomp

    assert stomp.escape("a:b\\n\n") == "a\\cb\\\\n\\n"
    assert stomp.unescape(stomp.escape("q:1\n\\x")) == "q:1\n\\x"
    assert stomp.selector(["ID:a'b", "ID:c"]) == "JMSMessageID IN ('ID:a''b', 'ID:c')"

    async def read(data: bytes) -> list[tuple[str, dict[str, str], bytes]]:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        return [await stomp.read_frame(reader), await stomp.read_frame(reader)]

    frames = asyncio.run(read(b"\n\nMESSAGE\ncontent-length:3\nmessage-id:ID\\c1\n\na\x00b\x00"
                              b"\nMESSAGE\nbrowser:end\nbrowser:x\n\n\x00"))  # fmt: skip
    assert frames[0] == ("MESSAGE", {"content-length": "3", "message-id": "ID:1"}, b"a\x00b")
    assert frames[1] == ("MESSAGE", {"browser": "end"}, b"")


def test_jolokia_refusals_and_quoting() -> None:
    client = Jolokia(options(user="u", password="p"))
    with pytest.raises(JolokiaRefused, match="refused the credentials"):
        client._decode(403, b"")
    with pytest.raises(JolokiaRefused, match="refused the Origin header 'http://h:8161'"):
        client._decode(200, b'{"status":403,"error":"java.lang.Exception : Origin null is '
                            b'not allowed to call this agent"}')  # fmt: skip
    with pytest.raises(JolokiaUnavailable, match="HTTP 404"):
        client._decode(404, b"<html>")
    with pytest.raises(JolokiaUnavailable, match="did not answer JSON"):
        client._decode(200, b"<html>console</html>")
    assert quote('a"b*c') == '"a\\"b\\*c"'
    assert options(origin="https://x:1/").origin_header() == "https://x:1"
    assert options().origin_header() == "http://h:8161"
    with_creds = options(jolokia_url="https://u:secret@h:8443/console/jolokia")
    assert with_creds.credentials() == ("u", "secret")
    assert "secret" not in with_creds.address() and "secret" not in with_creds.endpoint()


def test_peek_json_of_a_cut_body() -> None:
    """A preview is `truncated` with the broker's size, or null when it reports none."""
    from mqtop.commands.dlq import peek_json

    cut = classic_message({"JMSMessageID": "ID:2", "BodyPreview": [65] * 255, "BodyLength": 900})
    shown = peek_json(cut, 4096)
    assert shown["truncated"] is True and shown["size"] == 900 and shown["body"] == "A" * 255
    text = artemis_message({"messageID": "1", "type": 3, "text": "t" * 256 + ", + 9 more"})
    shown = peek_json(text, 4096)
    assert shown["truncated"] is True and shown["size"] is None and shown["body"] == "t" * 256
    whole = peek_json(artemis_message({"messageID": "2", "type": 3, "text": "ok"}), 4096)
    assert whole["size"] == 2 and "truncated" not in whole


def test_move_batches_grow_to_about_a_second() -> None:
    from collectors.activemq.mover import MAX_BATCH, grown

    assert grown(1000, 0.02) == 16_000  # at most 16 times the last
    assert grown(16_000, 0.5) == 32_000  # a second's worth at the last call's rate
    assert grown(32_000, 2.0) == 32_000  # never smaller than the last
    assert grown(90_000, 0.1) == MAX_BATCH


def test_first_move_batch_per_flavor() -> None:
    from collectors.activemq.mover import first_batch

    assert first_batch(None) == first_batch(None, "classic") == 1000
    assert first_batch(1024.0) == 24_576  # 24 MiB of 1 KB messages
    # 128 MiB of Classic's AverageMessageSize (2 KiB for a 1 KB body): 50,000 is one call
    assert first_batch(2048.0, "classic") == 65_536
    assert first_batch(10.0) == 25_000 and first_batch(10.0, "classic") == 75_000
    assert first_batch(1024 * 1024.0, "classic") == 1000
