"""The rabbitmq broker plugin (entry point ``collectors.rabbitmq:PLUGIN``)."""

from collectors.rabbitmq.collector import PLUGIN

__all__ = ["PLUGIN"]
