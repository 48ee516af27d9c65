"""The kafka plugin declaration: options, move options and a factory that loads the collector.

Validating a config needs only the options; the collector (and aiokafka with it) is imported
when a collector is first built.
"""

from __future__ import annotations

from typing import Any

from collectors.base import Collector, CollectorPlugin
from collectors.kafka.options import KafkaMoveOptions, KafkaOptions
from collectors.topology import TopologyReader


def _create(options: KafkaOptions) -> Collector:
    from collectors.kafka import collector

    return collector.KafkaCollector(options)


def _topology(options: Any) -> TopologyReader:
    from collectors.kafka.topology import create_reader  # the client library loads when used

    return create_reader(options)


PLUGIN: CollectorPlugin[KafkaOptions] = CollectorPlugin(
    type="kafka",
    options_model=KafkaOptions,
    factory=_create,
    topology=_topology,
    move_options=KafkaMoveOptions,
    move_semantics="copy",
    description="Apache Kafka topics and consumer groups (lag in messages and seconds)",
)
