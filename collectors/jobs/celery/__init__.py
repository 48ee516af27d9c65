"""The celery broker plugin (entry point ``collectors.jobs.celery:PLUGIN``): kombu's Redis
transport (``collector``) or RabbitMQ (``rabbitmq``), chosen by the URL's scheme."""

from __future__ import annotations

from collectors.base import Collector, CollectorPlugin
from collectors.jobs.celery.options import CeleryOptions


def _create(options: CeleryOptions) -> Collector:
    if options.on_rabbitmq:
        from collectors.jobs.celery.rabbitmq import CeleryOnRabbitMQ

        return CeleryOnRabbitMQ(options)
    from collectors.jobs.celery.collector import CeleryCollector

    return CeleryCollector(options)


PLUGIN: CollectorPlugin[CeleryOptions] = CollectorPlugin(
    type="celery",
    options_model=CeleryOptions,
    factory=_create,
    description="Celery task queues on Redis (kombu) or RabbitMQ",
)

__all__ = ["PLUGIN"]
