"""The kafka broker plugin (entry point ``collectors.kafka:PLUGIN``)."""

from collectors.kafka.collector import PLUGIN

__all__ = ["PLUGIN"]
