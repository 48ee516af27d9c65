"""Pure logic of RabbitMQ actions: window sizing, delivery limits, re-published properties."""

from __future__ import annotations

from collectors.rabbitmq.collector import RabbitMQOptions
from collectors.rabbitmq.movespec import UNKNOWN_SIZE_PREFETCH, MoveSpec

MIB = 1024 * 1024


def _spec(window: int, window_bytes: int, average: float | None) -> MoveSpec:
    return MoveSpec(
        source=("/", "a"),
        destination=("/", "b"),
        source_label="a",
        destination_label="b",
        mode="move",
        window=window,
        bound=10,
        limit=None,
        filter=None,
        dry_run=False,
        run="r",
        username="guest",
        window_bytes=window_bytes,
        average_bytes=average,
    )


def test_small_messages_get_the_whole_window():
    assert _spec(5000, 32 * MIB, 1024).fit(1024) == 5000
    assert _spec(5000, 32 * MIB, 0).fit(0) == 5000  # empty bodies


def test_large_messages_shrink_the_window_to_the_byte_budget():
    assert _spec(5000, 32 * MIB, None).fit(64 * 1024) == 512
    assert _spec(5000, 32 * MIB, None).fit(1.5 * MIB) == 21
    # a message larger than the whole budget still moves, one at a time
    assert _spec(5000, 1 * MIB, None).fit(100 * MIB) == 1


def test_unknown_sizes_start_small():
    assert _spec(5000, 32 * MIB, None).fit(None) == UNKNOWN_SIZE_PREFETCH
    assert _spec(10, 32 * MIB, None).fit(None) == 10


def test_defaults_bound_memory_and_duplicates():
    options = RabbitMQOptions.model_validate(
        {"name": "r", "type": "rabbitmq", "url": "amqp://localhost"}
    )
    assert options.move_window == 5000
    assert options.move_window_bytes == 32 * MIB


def test_quorum_delivery_limit_from_arguments_policy_and_version():
    from collectors.rabbitmq.deadletters import effective_delivery_limit

    assert effective_delivery_limit({"x-delivery-limit": 5}, {}, "3.10.8") == 5
    assert effective_delivery_limit({}, {"delivery-limit": 3}, "3.10.8") == 3
    assert effective_delivery_limit({"x-delivery-limit": 5}, {"delivery-limit": 3}, "3.13.0") == 3
    assert effective_delivery_limit({}, {}, "3.10.8") is None  # no default before 4.0
    assert effective_delivery_limit({}, {}, "4.0.5") == 20  # RabbitMQ 4's default
    assert effective_delivery_limit({"x-delivery-limit": -1}, {}, "4.1.0") is None  # disabled
    assert effective_delivery_limit({"x-delivery-limit": -1}, {"delivery-limit": 7}, "4.1.0") == 7
    assert effective_delivery_limit(None, None, None) is None


def test_republished_properties_lose_what_the_broker_would_misuse():
    """Both re-publishing paths (a move's decoded path, peek's kept copy) strip the same."""
    import threading

    from pika import spec as pika_spec

    from collectors.rabbitmq.collector import RabbitMQOptions
    from collectors.rabbitmq.messages import REPLAY_HEADER, kept_copy
    from collectors.rabbitmq.mover import Mover

    def props() -> object:
        return pika_spec.BasicProperties(
            message_id="m1",
            user_id="someone-else",
            headers={
                "x-delivery-count": 3,
                "CC": ["audit"],
                "tenant": "acme",
                REPLAY_HEADER: {"count": 2},
            },
        )

    options = RabbitMQOptions.model_validate(
        {"name": "r", "type": "rabbitmq", "url": "amqp://localhost"}
    )
    mover = Mover(options, _spec(10, MIB, None), lambda _p: None, threading.Event())
    encoded = mover.editor.edit_decoded(props())
    moved = pika_spec.BasicProperties()
    moved.decode(encoded)
    assert moved.user_id is None and moved.message_id == "m1"
    assert set(moved.headers) == {"tenant", REPLAY_HEADER}
    replay = moved.headers[REPLAY_HEADER]
    assert (replay["count"], replay["cc"], replay["user_id"]) == (3, ["audit"], "someone-else")
    assert (mover.out.stripped_cc, mover.out.stripped_user_id) == (1, 1)

    copy = kept_copy(props(), "guest", 3, 3)
    assert copy.user_id is None and copy.message_id == "m1"
    assert set(copy.headers) == {"tenant", REPLAY_HEADER, "x-mqtop-kept"}
    kept = copy.headers["x-mqtop-kept"]
    assert (kept["cc"], kept["user_id"], kept["delivery_limit"]) == (["audit"], "someone-else", 3)
    assert copy.headers[REPLAY_HEADER] == {"count": 2}  # a kept copy is not a replay


def test_delivery_count_read_from_raw_properties_like_decoded_ones():
    from pika import spec as pika_spec

    from collectors.rabbitmq.messages import delivery_count
    from collectors.rabbitmq.protocol import RawContent, _used_deliveries

    for headers in ({"x-delivery-count": 7, "a": "b"}, {"a": "x-delivery-count"}, None):
        props = pika_spec.BasicProperties(message_id="m", headers=headers)
        raw = b"".join(props.encode())
        decoded = pika_spec.BasicProperties()
        decoded.decode(raw)
        assert _used_deliveries(RawContent(raw)) == delivery_count(decoded)
    assert (
        _used_deliveries(
            RawContent(
                b"".join(pika_spec.BasicProperties(headers={"x-delivery-count": 7}).encode())
            )
        )
        == 7
    )
