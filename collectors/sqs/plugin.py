"""The sqs plugin: its options and a factory that loads the collector (and boto3) when used.

Loading the plugin (every ``dlq`` command reads each broker's move options) imports neither
boto3 nor the collector.
"""

from __future__ import annotations

from collectors.base import Collector, CollectorPlugin
from collectors.sqs.options import SQSMoveOptions, SQSOptions


def _create(options: SQSOptions) -> Collector:
    from collectors.sqs import collector  # boto3 is loaded when a collector is made

    return collector.SQSCollector(options)


PLUGIN: CollectorPlugin[SQSOptions] = CollectorPlugin(
    type="sqs",
    options_model=SQSOptions,
    factory=_create,
    move_options=SQSMoveOptions,
    description="Amazon SQS queues (and SQS-compatible endpoints)",
)
