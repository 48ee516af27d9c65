"""The rq broker plugin (RQ; entry point ``collectors.jobs.rq:PLUGIN``)."""

from dataclasses import replace
from typing import Any

from collectors.jobs.rq.collector import PLUGIN as _COLLECTOR_PLUGIN
from collectors.topology import TopologyReader


def _topology(options: Any) -> TopologyReader:
    from collectors.jobs.rq.topology import create_reader

    return create_reader(options)


PLUGIN = replace(_COLLECTOR_PLUGIN, topology=_topology)

__all__ = ["PLUGIN"]
