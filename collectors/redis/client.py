"""The redis-py client of a Redis broker, and the plumbing every action shares.

Only the collector and actions paths load this module (and with it redis-py): loading the
plugin to validate a config does not.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

from redis import exceptions as rex
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot as _crc_slot

from collectors.base import matches_globs
from collectors.redis.codecs import key_candidates, text
from collectors.redis.options import RedisOptions
from collectors.redis.scripts import SCRIPTS
from mqtop.kernel.errors import (
    ActionFailed,
    BrokerUnreachable,
    MqtopError,
    UnsupportedAction,
    UsageError,
)
from mqtop.kernel.secrets import redact

Kind = Literal["list", "stream", "none"]
RedisError = rex.RedisError


def make_client(options: RedisOptions) -> Redis:
    """A redis.asyncio client (or cluster client) for the options; secrets never logged."""
    kwargs: dict[str, Any] = {"socket_timeout": 10.0, "socket_connect_timeout": 5.0}
    if options.username:
        kwargs["username"] = options.username
    if options.password is not None:
        kwargs["password"] = options.password.get_secret_value()
    url = options.url.get_secret_value()
    if url.startswith("rediss://"):
        kwargs["ssl_cert_reqs"] = "required" if options.tls_verify else "none"
        if options.ca_file:
            kwargs["ssl_ca_certs"] = options.ca_file
        if options.cert_file:  # mutual TLS (redis-server's tls-auth-clients)
            kwargs["ssl_certfile"] = options.cert_file
            kwargs["ssl_keyfile"] = options.key_file
            kwargs["ssl_password"] = options.key_password_value()
    if options.cluster:
        return RedisCluster.from_url(url, **kwargs)  # type: ignore[return-value]
    return Redis.from_url(url, **kwargs)


def hash_tag(key: bytes) -> bytes:
    """The part of ``key`` Redis Cluster hashes (the ``{tag}`` when there is one)."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


def key_slot(key: bytes) -> int:
    """Redis Cluster hash slot of a key."""
    return int(_crc_slot(key))


USAGE_REPLIES = ("NOGROUP", "WRONGTYPE")  # replies that mean the operator named the wrong key


def redis_error(
    exc: Exception, what: str, where: str, usage: tuple[str, ...] = USAGE_REPLIES
) -> MqtopError:
    """A redis-py error as one line with the contract's exit code, secrets masked.

    ``where`` names the broker; a reply starting with one of ``usage`` is a usage error (the
    key is not what the command needs), any other failure of the command an action failure.
    """
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    message = redact(first)
    if isinstance(exc, rex.AuthenticationError | rex.AuthorizationError):
        return BrokerUnreachable(f"{where}: {what}: authentication failed: {message}")
    if isinstance(exc, rex.ConnectionError | rex.TimeoutError | OSError):
        return BrokerUnreachable(f"{where} unreachable: {what}: {message}")
    if isinstance(exc, rex.ResponseError):
        if message.startswith(usage):
            return UsageError(f"{what}: {message}")
        if message.startswith("NOPERM"):
            return ActionFailed(f"{where}: {what}: permission denied by ACL: {message}")
    return ActionFailed(f"{where}: {what}: {type(exc).__name__}: {message}")


async def guarded(
    call: Awaitable[Any], what: str, error: Callable[[Exception, str], MqtopError]
) -> Any:
    """Await ``call``; a redis-py (or socket) error becomes ``error(exc, what)``, raised."""
    try:
        return await call
    except MqtopError:
        raise
    except (RedisError, OSError) as exc:
        raise error(exc, what) from None


class RedisSession:
    """One long-lived client (opened on first use), its scripts and the error mapping."""

    def __init__(self, options: RedisOptions) -> None:
        self.options = options
        self._client: Redis | None = None
        self._scripts: dict[str, Any] = {}

    @property
    def r(self) -> Any:
        """The client, untyped: redis-py's reply types are unions of awaitables and values."""
        if self._client is None:
            self._client = make_client(self.options)
        return self._client

    async def close(self) -> None:
        """Close the client (a later call opens a new one)."""
        client, self._client = self._client, None
        self._scripts.clear()
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()

    async def run(self, name: str, keys: Sequence[bytes | str], args: Sequence[Any]) -> Any:
        """Run one of :data:`SCRIPTS` (EVALSHA, loaded on first use)."""
        script = self._scripts.get(name)
        if script is None:
            script = self.r.register_script(SCRIPTS[name])
            self._scripts[name] = script
        return await script(keys=list(keys), args=list(args))

    def cross_slot(self, source: bytes, destination: bytes) -> bool:
        """True when a script cannot touch both keys (a cluster, two hash slots)."""
        return self.options.cluster and key_slot(source) != key_slot(destination)

    def error(self, exc: Exception, what: str) -> MqtopError:
        """Map a redis-py error to the contract's exit codes, secrets masked."""
        return redis_error(exc, what, f"broker {self.options.name!r} ({self.options.address()})")

    async def guard(self, what: str, call: Awaitable[Any]) -> Any:
        """Await ``call``; a redis-py error becomes one clear MqtopError."""
        return await guarded(call, what, self.error)

    async def resolve(self, name: str) -> bytes:
        """The key a typed name means.

        A name mqtop printed escaped (a control character as ``\\x06``, a byte that is not
        UTF-8 as ``\\xff``) typed back names that key: the first reading that exists is meant.
        When none exists, the name with mqtop's escapes read back is meant (a new key is named
        as it was printed).
        """
        candidates = key_candidates(name)
        if len(candidates) == 1:
            return candidates[0]
        pipe = self.r.pipeline(transaction=False)
        for key in candidates:
            pipe.exists(key)
        found = await pipe.execute()
        for key, exists in zip(candidates, found, strict=True):
            if exists:
                return key
        return candidates[1]

    async def lrange_head(self, key: bytes, offset: int, count: int) -> list[bytes]:
        """``count`` items of a list starting ``offset`` items from the head, head first."""
        if count <= 0:
            return []
        if self.options.list_head == "left":
            items: list[bytes] = await self.r.lrange(key, offset, offset + count - 1)
            return items
        items = await self.r.lrange(key, -(offset + count), -(offset + 1))
        items.reverse()
        return items

    async def _is_channel(self, key: bytes) -> bool:
        if self.options.channels and matches_globs(text(key), self.options.channels, []):
            return True
        try:
            counts = await self.r.pubsub_numsub(key)
        except RedisError:
            return False
        return any(int(n) > 0 for _, n in counts)

    async def kind(self, key: bytes, label: str, action: str) -> Kind:
        """``list``, ``stream`` or ``none``; refuse channels and other key types clearly."""
        kind = text(await self.r.type(key))
        if kind in ("list", "stream"):
            return kind  # type: ignore[return-value]
        if kind == "none":
            if await self._is_channel(key):
                raise UnsupportedAction(
                    f"{label} is a pub/sub channel: Redis stores no pub/sub messages, so it "
                    "cannot be peeked, replayed, moved, purged or reclaimed"
                )
            return "none"
        raise UnsupportedAction(
            f"{label} is a Redis {kind}, not a list or stream: {action} works on lists "
            "and streams only"
        )


__all__ = ["Kind", "RedisError", "RedisSession", "hash_tag", "key_slot", "make_client"]
