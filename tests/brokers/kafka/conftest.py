"""Kafka fixtures: a client tool on the shared Kafka broker."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.harness import KafkaBroker
from tests.support.kafka import KafkaTool


@pytest.fixture
async def kafka(kafka_broker: KafkaBroker) -> AsyncIterator[KafkaTool]:
    """A started KafkaTool (admin, producer, offsets) on the shared broker."""
    tool = KafkaTool(kafka_broker.bootstrap)
    await tool.start()
    yield tool
    await tool.stop()
