"""The bullmq broker plugin (BullMQ; entry point ``collectors.jobs.bullmq:PLUGIN``)."""

from collectors.jobs.bullmq.collector import PLUGIN

__all__ = ["PLUGIN"]
