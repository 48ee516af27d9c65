"""The sqs broker plugin (entry point ``collectors.sqs:PLUGIN``)."""

from collectors.sqs.collector import PLUGIN

__all__ = ["PLUGIN"]
