"""ActiveMQ (Artemis and Classic) through Jolokia: collector and message actions."""

from __future__ import annotations

from collectors.activemq.collector import ActiveMQCollector
from collectors.activemq.options import ActiveMQMoveOptions, ActiveMQOptions
from collectors.base import CollectorPlugin


def _create(options: ActiveMQOptions) -> ActiveMQCollector:
    return ActiveMQCollector(options)


PLUGIN: CollectorPlugin[ActiveMQOptions] = CollectorPlugin(
    type="activemq",
    options_model=ActiveMQOptions,
    factory=_create,
    move_options=ActiveMQMoveOptions,
    description="ActiveMQ Artemis and Classic queues through Jolokia",
)

__all__ = ["PLUGIN", "ActiveMQCollector", "ActiveMQOptions"]
