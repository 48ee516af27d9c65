"""The sidekiq broker plugin (Sidekiq; entry point ``collectors.jobs.sidekiq:PLUGIN``)."""

from collectors.jobs.sidekiq.collector import PLUGIN

__all__ = ["PLUGIN"]
