"""Fixtures: each ActiveMQ flavor in turn (the brokers themselves are in tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.support import activemq as support_activemq


@pytest.fixture(params=["artemis", "classic"])
def amq(request: pytest.FixtureRequest) -> support_activemq.ActiveMQBroker:
    """Each flavor in turn."""
    name = "artemis_broker" if request.param == "artemis" else "activemq_classic_broker"
    broker = request.getfixturevalue(name)
    assert isinstance(broker, support_activemq.ActiveMQBroker)
    return broker
