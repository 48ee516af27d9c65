"""The redis broker plugin (entry point ``collectors.redis:PLUGIN``)."""

from collectors.redis.collector import PLUGIN

__all__ = ["PLUGIN"]
