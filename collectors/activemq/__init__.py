"""ActiveMQ (Artemis and Classic) through Jolokia: collector and message actions."""

from __future__ import annotations

from collectors.activemq.collector import ActiveMQCollector
from collectors.activemq.options import ActiveMQOptions
from collectors.base import CollectorPlugin


def _create(options: ActiveMQOptions) -> ActiveMQCollector:
    return ActiveMQCollector(options)


PLUGIN: CollectorPlugin[ActiveMQOptions] = CollectorPlugin(
    type="activemq",
    options_model=ActiveMQOptions,
    factory=_create,
    description="ActiveMQ Artemis and Classic queues through Jolokia",
)

__all__ = ["PLUGIN", "ActiveMQCollector", "ActiveMQOptions"]
