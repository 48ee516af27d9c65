"""ActiveMQ (Artemis and Classic) through Jolokia: collector and message actions."""

from __future__ import annotations

from collectors.activemq.collector import ActiveMQCollector
from collectors.activemq.options import ActiveMQMoveOptions, ActiveMQOptions
from collectors.base import CollectorPlugin
from collectors.topology import TopologyReader


def _create(options: ActiveMQOptions) -> ActiveMQCollector:
    return ActiveMQCollector(options)


def _topology(options: ActiveMQOptions) -> TopologyReader:
    from collectors.activemq.topology import create_reader

    return create_reader(options)


PLUGIN: CollectorPlugin[ActiveMQOptions] = CollectorPlugin(
    type="activemq",
    options_model=ActiveMQOptions,
    factory=_create,
    move_options=ActiveMQMoveOptions,
    topology=_topology,
    description="ActiveMQ Artemis and Classic queues through Jolokia",
)

__all__ = ["PLUGIN", "ActiveMQCollector", "ActiveMQOptions"]
