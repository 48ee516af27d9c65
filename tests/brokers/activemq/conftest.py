"""Fixtures: a real ActiveMQ Artemis and a real ActiveMQ Classic, once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import _obtain
from tests.support import activemq as support_activemq


@pytest.fixture(scope="session")
def artemis_broker() -> Iterator[support_activemq.ActiveMQBroker]:
    """Apache ActiveMQ Artemis with its console's Jolokia."""
    broker = _obtain("ActiveMQ Artemis", support_activemq.find_artemis)
    assert isinstance(broker, support_activemq.ActiveMQBroker)
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def activemq_classic_broker() -> Iterator[support_activemq.ActiveMQBroker]:
    """Apache ActiveMQ Classic (embedded) with the Jolokia JVM agent."""
    broker = _obtain("ActiveMQ Classic", support_activemq.find_classic)
    assert isinstance(broker, support_activemq.ActiveMQBroker)
    yield broker
    broker.stop()


@pytest.fixture(params=["artemis", "classic"])
def amq(request: pytest.FixtureRequest) -> support_activemq.ActiveMQBroker:
    """Each flavor in turn."""
    name = "artemis_broker" if request.param == "artemis" else "activemq_classic_broker"
    broker = request.getfixturevalue(name)
    assert isinstance(broker, support_activemq.ActiveMQBroker)
    return broker
