"""The kafka broker plugin (entry point ``collectors.kafka:PLUGIN``)."""

from collectors.kafka.plugin import PLUGIN

__all__ = ["PLUGIN"]
