"""How the RabbitMQ mover sizes its window (pure logic; the moves are in test_rabbitmq_actions)."""

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
