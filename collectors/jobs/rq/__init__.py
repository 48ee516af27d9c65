"""The rq broker plugin (RQ; entry point ``collectors.jobs.rq:PLUGIN``)."""

from collectors.jobs.rq.collector import PLUGIN

__all__ = ["PLUGIN"]
