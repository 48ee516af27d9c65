"""The sqs plugin: its options and a factory that loads the collector (and boto3) when used.

Loading the plugin (every ``dlq`` command reads each broker's move options) imports neither
boto3 nor the collector.
"""

from __future__ import annotations

from typing import Any

from collectors.base import Collector, CollectorPlugin
from collectors.sqs.options import SQSMoveOptions, SQSOptions
from collectors.topology import TopologyReader


def _create(options: SQSOptions) -> Collector:
    from collectors.sqs import collector  # boto3 is loaded when a collector is made

    return collector.SQSCollector(options)


def _topology(options: Any) -> TopologyReader:
    from collectors.sqs.topology import create_reader  # the client library loads when used

    return create_reader(options)


PLUGIN: CollectorPlugin[SQSOptions] = CollectorPlugin(
    type="sqs",
    options_model=SQSOptions,
    factory=_create,
    topology=_topology,
    move_options=SQSMoveOptions,
    description="Amazon SQS queues (and SQS-compatible endpoints)",
)
