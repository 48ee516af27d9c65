"""Collector plugin discovery through the ``mqtop.collectors`` entry-point group."""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from collectors.base import CollectorPlugin, MoveOptions
from collectors.kit.options import OptionSpec, option_specs
from mqtop.kernel.errors import UsageError

GROUP = "mqtop.collectors"
# Used when the package runs from a source tree without installed metadata.
BUILTIN: dict[str, str] = {
    "redis": "collectors.redis:PLUGIN",
    "rabbitmq": "collectors.rabbitmq:PLUGIN",
    "kafka": "collectors.kafka:PLUGIN",
    "sqs": "collectors.sqs:PLUGIN",
    "activemq": "collectors.activemq:PLUGIN",
    "sidekiq": "collectors.jobs.sidekiq:PLUGIN",
    "bullmq": "collectors.jobs.bullmq:PLUGIN",
    "rq": "collectors.jobs.rq:PLUGIN",
    "celery": "collectors.jobs.celery:PLUGIN",
}


@cache
def available_types() -> dict[str, str]:
    """Map of broker type -> ``module:attr`` without importing any collector."""
    found = dict(BUILTIN)
    for ep in entry_points(group=GROUP):
        found[ep.name] = ep.value
    return found


def _load(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attr) if attr else module


@cache
def get_plugin(broker_type: str) -> CollectorPlugin[Any]:
    """Load the plugin for a broker type, or raise a UsageError naming the known types."""
    types = available_types()
    target = types.get(broker_type)
    if target is None:
        known = ", ".join(sorted(types))
        raise UsageError(f"unknown broker type {broker_type!r} (installed: {known})")
    try:
        plugin = _load(target)
    except ImportError as exc:
        raise UsageError(
            f"broker type {broker_type!r} is registered but cannot be loaded: {exc}"
        ) from exc
    if not isinstance(plugin, CollectorPlugin):
        raise UsageError(f"broker type {broker_type!r}: {target} is not a CollectorPlugin")
    return plugin


def move_option_models() -> dict[str, type[MoveOptions]]:
    """The declared move options of every installed broker type that loads."""
    models: dict[str, type[MoveOptions]] = {}
    for broker_type in available_types():
        try:
            models[broker_type] = get_plugin(broker_type).move_options
        except UsageError:
            continue  # a plugin that cannot load has no flags to offer
    return models


def move_option_specs() -> list[OptionSpec]:
    """The union of every broker's move options, one per flag (for the CLI and the dashboard)."""
    return option_specs(move_option_models())
