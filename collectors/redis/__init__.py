"""The redis broker plugin (entry point ``collectors.redis:PLUGIN``).

Loading the plugin (to validate a config, to list move options) reads only the options:
redis-py is loaded when a collector is created.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from collectors.base import CollectorPlugin
from collectors.redis.options import RedisMoveOptions, RedisOptions

if TYPE_CHECKING:
    from collectors.redis.collector import RedisCollector


def _create(options: RedisOptions) -> RedisCollector:
    # a lazy import of a module: plugin loading stays free of redis-py
    from collectors.redis.collector import RedisCollector

    return RedisCollector(options)


PLUGIN: CollectorPlugin[RedisOptions] = CollectorPlugin(
    type="redis",
    options_model=RedisOptions,
    factory=_create,
    move_options=RedisMoveOptions,
    description="Redis lists, streams and pub/sub channels",
)

__all__ = ["PLUGIN"]
