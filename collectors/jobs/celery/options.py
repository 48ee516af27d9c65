"""Celery's options: its broker URL (Redis or RabbitMQ) and what kombu calls its keys."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from collectors.jobs.common import JobsOptions
from mqtop.kernel.durations import Duration
from mqtop.kernel.secrets import SecretUrl

REDIS_SCHEMES = ("redis", "rediss", "unix")
AMQP_SCHEMES = ("amqp", "amqps")


class CeleryOptions(JobsOptions):
    """Celery with kombu's Redis transport, or on RabbitMQ (AMQP)."""

    type: Literal["celery"] = "celery"
    url: SecretUrl = Field(
        default_factory=lambda: SecretUrl("redis://localhost:6379/0"),
        description="Celery's broker_url: redis:// or rediss:// (kombu's Redis transport), or "
        "amqp:// or amqps:// (RabbitMQ); user and password may be inside.",
    )
    management_url: SecretUrl | None = Field(
        None,
        description="RabbitMQ only: http(s):// URL of the management plugin (as for the rabbitmq "
        "broker type: without it only queues named literally in include are read).",
    )
    show_internal: bool = Field(
        False,
        description="RabbitMQ only: also show Celery's transient queues (celeryev.*, *.pidbox, "
        "result reply queues named by a UUID).",
    )
    priority_steps: list[int] = Field(
        default_factory=lambda: [0, 3, 6, 9],
        description="Redis only: kombu's priority_steps (broker_transport_options).",
    )
    discover_every: Duration = Field(30.0, description="How often queues are looked for.")

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: SecretUrl) -> SecretUrl:
        scheme = value.get_secret_value().split("://", 1)[0].lower()
        if scheme not in (*REDIS_SCHEMES, *AMQP_SCHEMES):
            raise ValueError(
                "url must start with redis://, rediss://, unix://, amqp:// or amqps://"
            )
        return value

    @model_validator(mode="after")
    def _amqp_credentials(self) -> CeleryOptions:
        if self.on_rabbitmq and (self.username is not None or self.password is not None):
            raise ValueError("on RabbitMQ the user and password go in the amqp:// URL")
        return self

    @property
    def on_rabbitmq(self) -> bool:
        """True when Celery's broker is RabbitMQ (an AMQP URL)."""
        return self.url.get_secret_value().split("://", 1)[0].lower() in AMQP_SCHEMES


__all__ = ["CeleryOptions"]
