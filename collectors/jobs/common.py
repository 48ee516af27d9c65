"""What every job-library broker shares: options, the Redis client, decoding helpers."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from collectors.base import BrokerOptions, ClientCertificate
from collectors.redis.options import redis_url
from mqtop.kernel.durations import iso_epoch
from mqtop.kernel.secrets import Password, SecretUrl, strip_url_credentials

if TYPE_CHECKING:
    from redis.asyncio import Redis

KIND = "jobs"
FAILED_SUFFIX = ":failed"  # ``<queue>:failed`` names a queue's failed set (RQ, BullMQ) in mqtop
MAX_QUEUES = 5000  # job queues listed per broker (more is a misconfiguration worth a warning)


class JobsOptions(ClientCertificate, BrokerOptions):
    """A job library on one Redis server: where it is and what it calls its keys."""

    url: SecretUrl = Field(
        default_factory=lambda: SecretUrl("redis://localhost:6379/0"),
        description="redis:// or rediss:// (TLS) URL of the library's Redis; user and password "
        "may be inside.",
    )
    username: str | None = Field(None, description="ACL user (instead of putting it in the URL).")
    password: Password | None = Field(
        None, description="Password (instead of putting it in the URL)."
    )
    tls_verify: bool = Field(True, description="Verify the server certificate (rediss://).")
    ca_file: str | None = Field(None, description="CA bundle for TLS.")

    prefix: str = Field(
        "", description="Key prefix or namespace of the library (each library's default if empty)."
    )
    queues: list[str] = Field(
        default_factory=list,
        description="Job queues always shown (they show 0 when drained), besides discovered ones.",
    )

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: SecretUrl) -> SecretUrl:
        return redis_url(value)

    def address(self) -> str:
        return strip_url_credentials(self.url.get_secret_value())


def client_for(options: JobsOptions) -> Redis:
    """A redis.asyncio client for a job-library broker (the Redis broker's connection code)."""
    from collectors.redis.client import make_client
    from collectors.redis.options import RedisOptions

    connection = RedisOptions(
        name=options.name,
        url=options.url,
        username=options.username,
        password=options.password,
        tls_verify=options.tls_verify,
        ca_file=options.ca_file,
        cert_file=options.cert_file,
        key_file=options.key_file,
        key_password=options.key_password,
    )
    return make_client(connection)


def failed_name(queue: str) -> str:
    """mqtop's name of a queue's failed set."""
    return queue + FAILED_SUFFIX


def queue_of_failed(name: str) -> str | None:
    """The queue a failed-set name belongs to."""
    if name.endswith(FAILED_SUFFIX) and len(name) > len(FAILED_SUFFIX):
        return name[: -len(FAILED_SUFFIX)]
    return None


def text(raw: Any) -> str | None:
    """UTF-8 text of a Redis reply (None for nil or invalid UTF-8)."""
    if raw is None:
        return None
    if isinstance(raw, str):
        return raw
    if isinstance(raw, bytes):
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return str(raw)


def number(raw: Any) -> float | None:
    """A finite number from a Redis reply, or None."""
    if raw is None or isinstance(raw, bool):
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if value == value and abs(value) != float("inf") else None


def integer(raw: Any) -> int | None:
    """An integer from a Redis reply, or None."""
    value = number(raw)
    return None if value is None else int(value)


def epoch_seconds(value: Any) -> float | None:
    """Epoch seconds from a library timestamp: seconds, milliseconds or ISO 8601 text."""
    if isinstance(value, bytes):
        value = text(value)
    if isinstance(value, str) and value and not value.replace(".", "", 1).isdigit():
        return iso_epoch(value)
    seconds = number(value)
    if seconds is None or seconds <= 0:
        return None
    return seconds / 1000 if seconds > 1e11 else seconds  # milliseconds (Sidekiq 8, BullMQ)


def json_object(raw: Any) -> dict[str, Any] | None:
    """A JSON object from a Redis value, or None when it is not one."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except (ValueError, TypeError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def iso_now() -> str:
    """Now in UTC, ISO 8601 with milliseconds."""
    return dt.datetime.now(tz=dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_seconds(seconds: float | None) -> str | None:
    """Epoch seconds as ISO 8601 in UTC with milliseconds (None stays None)."""
    if seconds is None:
        return None
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC).isoformat(timespec="milliseconds")
