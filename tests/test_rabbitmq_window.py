"""How the RabbitMQ mover sizes its window and peek finds a delivery limit (pure logic)."""

from __future__ import annotations

from collectors.rabbitmq import RabbitMQOptions
from collectors.rabbitmq_actions import UNKNOWN_SIZE_PREFETCH, MoveSpec

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
    from collectors.rabbitmq import effective_delivery_limit

    assert effective_delivery_limit({"x-delivery-limit": 5}, {}, "3.10.8") == 5
    assert effective_delivery_limit({}, {"delivery-limit": 3}, "3.10.8") == 3
    assert effective_delivery_limit({"x-delivery-limit": 5}, {"delivery-limit": 3}, "3.13.0") == 3
    assert effective_delivery_limit({}, {}, "3.10.8") is None  # no default before 4.0
    assert effective_delivery_limit({}, {}, "4.0.5") == 20  # RabbitMQ 4's default
    assert effective_delivery_limit({"x-delivery-limit": -1}, {}, "4.1.0") is None  # disabled
    assert effective_delivery_limit({"x-delivery-limit": -1}, {"delivery-limit": 7}, "4.1.0") == 7
    assert effective_delivery_limit(None, None, None) is None
