"""The kafka plugin declaration: options, move options and a factory that loads the collector.

Validating a config needs only the options; the collector (and aiokafka with it) is imported
when a collector is first built.
"""

from __future__ import annotations

from collectors.base import Collector, CollectorPlugin
from collectors.kafka.options import KafkaMoveOptions, KafkaOptions


def _create(options: KafkaOptions) -> Collector:
    from collectors.kafka import collector

    return collector.KafkaCollector(options)


PLUGIN: CollectorPlugin[KafkaOptions] = CollectorPlugin(
    type="kafka",
    options_model=KafkaOptions,
    factory=_create,
    move_options=KafkaMoveOptions,
    move_semantics="copy",
    description="Apache Kafka topics and consumer groups (lag in messages and seconds)",
)
