"""Options of a Redis broker and of its replay / move (no Redis client library needed)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from collectors.base import BrokerOptions, ClientCertificate
from collectors.kit.options import BatchMoveOptions
from mqtop.kernel.durations import Duration
from mqtop.kernel.secrets import Password, SecretUrl, strip_url_credentials

GLOB_CHARS = frozenset("*?[")


def is_glob(pattern: str) -> bool:
    """True when ``pattern`` has glob characters (a plain name is always reported)."""
    return bool(GLOB_CHARS & set(pattern))


def redis_url(value: SecretUrl) -> SecretUrl:
    """The URL of a Redis server, checked: redis://, rediss:// (TLS) or unix:// (ValueError)."""
    scheme = value.get_secret_value().split("://", 1)[0].lower()
    if scheme not in ("redis", "rediss", "unix"):
        raise ValueError("url must start with redis://, rediss:// or unix://")
    return value


class RedisOptions(ClientCertificate, BrokerOptions):
    """A Redis server (or cluster) holding list queues, streams and pub/sub channels."""

    type: Literal["redis"] = "redis"
    url: SecretUrl = Field(
        default_factory=lambda: SecretUrl("redis://localhost:6379/0"),
        description="redis:// or rediss:// (TLS) URL; user and password may be inside.",
    )
    username: str | None = Field(None, description="ACL user (instead of putting it in the URL).")
    password: Password | None = Field(
        None, description="Password (instead of putting it in the URL)."
    )
    lists: list[str] = Field(
        default_factory=lambda: ["*"],
        description="Glob patterns of list keys used as queues (a plain name is always shown).",
    )
    streams: list[str] = Field(
        default_factory=lambda: ["*"],
        description="Glob patterns of stream keys (a plain name is always shown).",
    )
    channels: list[str] = Field(
        default_factory=list, description="Glob patterns of pub/sub channels."
    )
    list_head: Literal["left", "right"] = Field(
        "right",
        description=(
            "End consumers pop from: right for LPUSH/BRPOP (Celery, Sidekiq, Bull), "
            "left for RPUSH/BLPOP (RQ, Resque, Laravel)."
        ),
    )
    cluster: bool = Field(False, description="Connect to a Redis Cluster.")
    tls_verify: bool = Field(True, description="Verify the server certificate (rediss://).")
    ca_file: str | None = Field(None, description="CA bundle for TLS.")
    scan_count: int = Field(1000, ge=10, le=100_000, description="COUNT hint for SCAN.")
    discover_every: Duration = Field(30.0, description="How often the keyspace is re-scanned.")
    forget_after: Duration = Field(
        3600.0,
        description=(
            "A discovered list that no longer exists is shown empty for this long, then "
            "forgotten (Redis deletes a list when it drains). A discovered stream that no longer "
            "exists was deleted (a drained stream keeps its key) and is dropped at once. Plain "
            "names in lists/streams and dlq are never forgotten."
        ),
    )
    group_status_window: Duration = Field(
        300.0, description="Sliding window of the stream group status evaluator."
    )
    stuck_idle: Duration = Field(
        300.0,
        description=(
            "Pending stream entries idle longer than this count as stuck "
            "(shown per group; see `mqtop dlq reclaim`)."
        ),
    )

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: SecretUrl) -> SecretUrl:
        return redis_url(value)

    def address(self) -> str:
        return strip_url_credentials(self.url.get_secret_value())

    def named_lists(self) -> list[str]:
        """Plain (non-glob) names in ``lists``: known queues, shown empty while absent."""
        return [p for p in self.lists if not is_glob(p)]

    def named_streams(self) -> list[str]:
        """Plain (non-glob) names in ``streams``."""
        return [p for p in self.streams if not is_glob(p)]

    def named_keys(self) -> set[str]:
        """Every key the config names: plain list/stream names and both sides of ``dlq``."""
        return {
            *self.named_lists(),
            *self.named_streams(),
            *self.dlq.keys(),
            *self.dlq.values(),
        }


class RedisMoveOptions(BatchMoveOptions):
    """Options of a Redis replay / move."""


__all__ = ["GLOB_CHARS", "RedisMoveOptions", "RedisOptions", "is_glob", "redis_url"]
