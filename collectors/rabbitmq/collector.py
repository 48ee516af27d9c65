"""RabbitMQ collector: the management HTTP API, with an AMQP fallback.

What RabbitMQ exposes and how it maps (details and formulas in docs/rabbitmq.md):

* ``/api/queues`` is read with ``columns=`` and ``page``/``page_size`` (never one unpaged
  request), all pages after the first fetched concurrently, through one long-lived
  ``httpx.AsyncClient``. Queues of a non-default vhost are named ``vhost/name``.
* queue_length = ``messages_ready`` (= consumer_lag_messages), in_flight =
  ``messages_unacknowledged``, consumers; latency_seconds (= consumer_lag_seconds) from
  ``head_message_timestamp`` when the broker reports it (0 for an empty queue, else null).
* ``message_stats`` counters: ``publish`` -> published_total, ``ack + deliver_no_ack +
  get_no_ack`` -> processed_total; the store turns them into rates.
* Dead-letter mapping: ``x-dead-letter-exchange`` / ``-routing-key`` queue arguments (they win)
  or the policy keys in ``effective_policy_definition``, resolved through the exchange's type
  and bindings (exchange-to-exchange bindings followed) to the queue(s) that really receive.
* Dead-lettering is not a publish anywhere on RabbitMQ 3.x (the DLQ's ``publish`` stays 0, the
  DLX has no stats), so error_rate is derived over ``error_window``:
  - a DLQ fed by this source only:  dead = increase of (DLQ messages + DLQ acks/no-ack gets
    - DLQ publishes);
  - otherwise (shared DLQ, no DLQ):  dead = increase of (deliver_get - redeliver - acks -
    no-ack deliveries - unacked), i.e. deliveries that left without an ack or a requeue;
  error_rate = dead / (dead + processed); null when there was no traffic or no stats.
  A queue that receives dead letters reports publish_rate as its inflow (increase of messages
  + acks), since its publish counter misses them.
* Without ``management_url`` or when it does not answer: queues named literally in
  ``include`` are read with passive ``queue.declare`` over AMQP (length and consumers only)
  and a warning says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import ssl
import threading
import time
from collections import deque
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from pydantic import Field, field_validator, model_validator

from collectors.base import (
    BrokerOptions,
    ClientCertificate,
    Collected,
    CollectorPlugin,
    MessageActions,
    MoveOptions,
    compile_globs,
    dlq_candidates,
)
from collectors.rabbitmq.management import (
    DEFAULT_MAX_RESPONSE_MB,
    ManagementHttp,
    ManagementRefused,
    ManagementUnavailable,
)
from mqtop.kernel.durations import Duration
from mqtop.kernel.errors import BrokerUnreachable, ConfigError, MqtopError
from mqtop.kernel.model import SeriesKey, SeriesSample
from mqtop.kernel.secrets import SecretUrl, redact, strip_url_credentials

if TYPE_CHECKING:
    import pika

GLOB_CHARS = frozenset("*?[")
QUEUE_COLUMNS = (
    "name",
    "vhost",
    "type",
    "state",
    "messages",
    "messages_ready",
    "messages_unacknowledged",
    "consumers",
    "arguments",
    "effective_policy_definition",
    "policy",
    "head_message_timestamp",
    "message_stats",
)
PAGE_CONCURRENCY = 4
MAX_QUEUES = 1_000_000  # a page_count claiming more queues than this is refused
DEFAULT_POLL_TIMEOUT = 5.0  # the engine's default timeout of a poll (interval, at least 5 s)
TOPOLOGY_CONCURRENCY = 8
MAX_E2E_DEPTH = 4


class RabbitMQOptions(ClientCertificate, BrokerOptions):
    """A RabbitMQ node or cluster: metrics from the management API, actions over AMQP."""

    type: Literal["rabbitmq"] = "rabbitmq"
    url: SecretUrl = Field(
        default_factory=lambda: SecretUrl("amqp://guest:guest@localhost:5672/"),
        description="amqp:// or amqps:// (TLS) URL used for message actions and the fallback.",
    )
    management_url: SecretUrl | None = Field(
        None,
        description=(
            "http(s):// URL of the management plugin; credentials default to the AMQP URL's. "
            "Without it only queues named literally in include are read, over AMQP."
        ),
    )
    vhosts: list[str] = Field(
        default_factory=list,
        description="Virtual hosts to read (all the user can see when empty).",
    )
    page_size: int = Field(500, ge=1, le=500, description="Queues per management API page.")
    tls_verify: bool = Field(True, description="Verify server certificates (amqps://, https://).")
    ca_file: str | None = Field(None, description="CA bundle (PEM) for TLS verification.")
    discover_every: Duration = Field(
        30.0, description="How often dead-letter exchanges and their bindings are re-read."
    )
    error_window: Duration = Field(
        60.0, description="Window over which error_rate and dead-letter inflow are computed."
    )
    move_window: int = Field(
        5000,
        ge=1,
        le=65_535,
        description=(
            "Messages in flight (received and not yet confirmed) during replay/move; also "
            "the most a killed move can leave in both queues."
        ),
    )
    move_window_bytes: int = Field(
        32 * 1024 * 1024,
        ge=64 * 1024,
        description=(
            "Bytes of message bodies in flight during replay/move: with large messages the "
            "window shrinks to fit (at least one message)."
        ),
    )
    http_timeout: Duration = Field(
        30.0,
        description=(
            "Total time limit of one management API request (connect, headers and body); "
            "within a poll or before an action also bounded by the broker's timeout."
        ),
    )
    max_response_mb: int = Field(
        DEFAULT_MAX_RESPONSE_MB,
        ge=1,
        le=4096,
        description=(
            "Largest management API answer read (MB); a larger one is refused with an error "
            "instead of being parsed."
        ),
    )
    auth_mechanism: Literal["plain", "external"] = Field(
        "plain",
        description=(
            "SASL mechanism on AMQP: plain (the URL's user and password) or external (the "
            "client certificate is the identity; needs amqps://, cert_file and the broker's "
            "rabbitmq_auth_mechanism_ssl plugin). The management API always uses a password."
        ),
    )

    @model_validator(mode="after")
    def _external_needs_a_certificate(self) -> RabbitMQOptions:
        if self.auth_mechanism == "external":
            if not self.url.get_secret_value().lower().startswith("amqps://"):
                raise ValueError("auth_mechanism external needs an amqps:// url")
            if self.cert_file is None:
                raise ValueError("auth_mechanism external needs cert_file (and key_file)")
        return self

    @field_validator("url")
    @classmethod
    def _amqp_scheme(cls, value: SecretUrl) -> SecretUrl:
        scheme = value.get_secret_value().split("://", 1)[0].lower()
        if scheme not in ("amqp", "amqps"):
            raise ValueError("url must start with amqp:// or amqps://")
        return value

    @field_validator("management_url")
    @classmethod
    def _http_scheme(cls, value: SecretUrl | None) -> SecretUrl | None:
        if value is None:
            return None
        scheme = value.get_secret_value().split("://", 1)[0].lower()
        if scheme not in ("http", "https"):
            raise ValueError("management_url must start with http:// or https://")
        return value

    def address(self) -> str:
        amqp = strip_url_credentials(self.url.get_secret_value())
        if self.management_url is None:
            return amqp
        return (
            f"{amqp} (management {strip_url_credentials(self.management_url.get_secret_value())})"
        )


# ---------------------------------------------------------------- URLs and names


RABBITMQ4_DELIVERY_LIMIT = 20  # quorum queues' default delivery limit from RabbitMQ 4.0


@dataclass(frozen=True, slots=True)
class AmqpTarget:
    """Where and as whom to connect over AMQP (parsed from the URL)."""

    host: str
    port: int
    vhost: str
    username: str
    password: str
    tls: bool


def amqp_target(url: str) -> AmqpTarget:
    """Parse an amqp(s) URL the way RabbitMQ clients do (empty path = vhost ``/``)."""
    parts = urlsplit(url)
    tls = parts.scheme.lower() == "amqps"
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    vhost = unquote(path) if path else "/"
    return AmqpTarget(
        host=parts.hostname or "localhost",
        port=parts.port or (5671 if tls else 5672),
        vhost=vhost,
        username=unquote(parts.username) if parts.username is not None else "guest",
        password=unquote(parts.password) if parts.password is not None else "guest",
        tls=tls,
    )


def management_endpoint(options: RabbitMQOptions) -> tuple[str, tuple[str, str]] | None:
    """Base URL (without credentials) and basic-auth pair of the management API."""
    if options.management_url is None:
        return None
    parts = urlsplit(options.management_url.get_secret_value())
    amqp = amqp_target(options.url.get_secret_value())
    user = unquote(parts.username) if parts.username is not None else amqp.username
    password = unquote(parts.password) if parts.password is not None else amqp.password
    netloc = parts.hostname or "localhost"
    if ":" in netloc:  # IPv6 literal
        netloc = f"[{netloc}]"
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    base = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    return base, (user, password)


def ssl_context(options: RabbitMQOptions) -> ssl.SSLContext:
    """TLS context: verification on unless ``tls_verify: false``; a client certificate when
    ``cert_file`` is set (mutual TLS)."""
    context = ssl.create_default_context(cafile=options.ca_file)
    if not options.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if options.cert_file is not None:
        try:
            context.load_cert_chain(
                options.cert_file, options.key_file, options.key_password_value()
            )
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError([certificate_load_error(options, exc)]) from None
    return context


def certificate_load_error(options: RabbitMQOptions, exc: BaseException) -> str:
    """Why the client certificate or its key could not be loaded, naming the files."""
    key = options.key_file or options.cert_file
    detail = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
    if isinstance(exc, ssl.SSLError) and options.key_password is not None:
        hint = "wrong key_password, or the key does not match the certificate"
    elif isinstance(exc, ssl.SSLError):
        hint = "an encrypted key needs key_password; the key must match the certificate"
    else:
        hint = "cannot read the file"
    return (
        f"broker {options.name!r}: cannot load the client certificate {options.cert_file} "
        f"with key {key}: {hint} ({detail})"
    )


def poll_budget(options: BrokerOptions) -> float:
    """Seconds one poll may take: the broker's ``timeout``, else the engine's default for it
    (its ``interval``, at least 5 s; a top-level ``timeout`` is not visible to a broker)."""
    if options.timeout:
        return float(options.timeout)
    return max(float(options.interval or DEFAULT_POLL_TIMEOUT), DEFAULT_POLL_TIMEOUT)


def failure_text(exc: BaseException, depth: int = 0) -> str:
    """``Type: message`` of an error, looking inside wrappers whose own message is empty
    (pika's AMQPConnectionError holds the connector error that holds the OSError)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    if text or depth >= 4:
        return f"{name}: {text}" if text else name
    inner = [a for a in exc.args if isinstance(a, BaseException)]
    wrapped = getattr(exc, "exception", None)
    if isinstance(wrapped, BaseException):
        inner.append(wrapped)
    cause = exc.__cause__ or exc.__context__
    if cause is not None:
        inner.append(cause)
    return next((failure_text(e, depth + 1) for e in inner), name)


def certificate_failure(exc: BaseException) -> str | None:
    """The certificate verification error behind ``exc`` (httpx, urllib), if any."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return str(current)
        for linked in (current.__cause__, current.__context__, getattr(current, "reason", None)):
            if isinstance(linked, BaseException):
                pending.append(linked)
    return None


def pika_parameters(
    options: RabbitMQOptions,
    vhost: str | None = None,
    heartbeat: int = 60,
    timeout: float | None = None,
) -> pika.ConnectionParameters:
    """pika connection parameters for a vhost (the URL's by default). Opening the connection
    (TCP, TLS and the AMQP handshake together) takes at most ``timeout`` seconds, the broker's
    poll budget by default."""
    import pika

    if timeout is None:
        timeout = poll_budget(options)
    timeout = max(timeout, 0.1)

    quiet_pika()
    target = amqp_target(options.url.get_secret_value())
    extra: dict[str, Any] = {}
    if target.tls:
        extra["ssl_options"] = pika.SSLOptions(ssl_context(options), server_hostname=target.host)
    return pika.ConnectionParameters(
        host=target.host,
        port=target.port,
        virtual_host=vhost if vhost is not None else target.vhost,
        credentials=(
            pika.credentials.ExternalCredentials()
            if options.auth_mechanism == "external"
            else pika.PlainCredentials(target.username, target.password)
        ),
        **extra,
        heartbeat=heartbeat,
        connection_attempts=1,
        socket_timeout=timeout,
        stack_timeout=timeout,
        blocked_connection_timeout=max(timeout * 6, 30.0),
        client_properties={"connection_name": f"mqtop ({options.name})"},
    )


def open_connection(
    options: RabbitMQOptions, vhost: str | None = None, timeout: float | None = None
) -> Any:
    """A pika ``BlockingConnection``, opened within ``timeout`` (the poll budget by default);
    one that is not opened in time is reported with its address and the deadline."""
    import pika

    params = pika_parameters(options, vhost, timeout=timeout)
    try:
        return pika.BlockingConnection(params)
    except Exception as exc:
        # pika raises (or wraps) a connection_workflow error whose class names the deadline
        timed_out = any(
            "timeout" in type(inner).__name__.lower()
            for inner in (exc, *exc.args)
            if isinstance(inner, BaseException)
        )
        refusal = tls_refusal(exc) if params.ssl_options is not None else None
        if refusal is not None:
            hint = (
                "the listener may require a client certificate (cert_file, key_file)"
                if options.cert_file is None
                else f"the server may not accept the client certificate {options.cert_file}"
            )
            raise BrokerUnreachable(
                f"AMQP at {params.host}:{params.port} refused the TLS connection "
                f"({refusal}): {hint}"
            ) from None
        if not timed_out:
            raise
        raise BrokerUnreachable(
            f"AMQP at {params.host}:{params.port}: no connection within "
            f"{params.stack_timeout:.2g}s (TCP, TLS and the AMQP handshake)"
        ) from None


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps (args, pika's ``exception``, cause, context)."""
    pending, seen = [exc], set[int]()
    while pending and len(seen) < 16:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [*current.args, getattr(current, "exception", None)]
        linked += [current.__cause__, current.__context__]
        pending.extend(e for e in linked if isinstance(e, BaseException))


def tls_refusal(exc: BaseException) -> str | None:
    """How a TLS server refused the connection, if it did. A server that requires a client
    certificate says so with a CERTIFICATE_REQUIRED alert, or (TLS 1.3: the client's
    handshake is over before the server checks) closes the connection: EOF or a reset."""
    causes = list(_causes(exc))
    text = " ".join(f"{type(e).__name__} {e}" for e in causes)
    if "CERTIFICATE_REQUIRED" in text.upper() or "certificate required" in text.lower():
        return "CERTIFICATE_REQUIRED alert"
    closed = ssl.SSLEOFError | ssl.SSLZeroReturnError | ConnectionResetError | EOFError
    if any(isinstance(e, closed) for e in causes) or "EOF" in text:
        return "connection closed during the handshake: EOF"
    return None


def quiet_pika() -> None:
    """pika logs expected events (a 404 on a passive declare) as warnings and every failed
    connection as several ERROR lines: mqtop reports the failure itself, once. ``-vv`` (debug
    logging) lets pika speak."""
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        logging.getLogger("pika").setLevel(logging.CRITICAL)


def qualify(vhost: str, name: str) -> str:
    """mqtop's queue name: ``name`` in vhost ``/``, ``vhost/name`` elsewhere."""
    return name if vhost == "/" else f"{vhost}/{name}"


def split_name(qualified: str, vhosts: Collection[str]) -> tuple[str, str]:
    """(vhost, queue) of a mqtop queue name; a known vhost prefix wins over ``/``."""
    for vhost in sorted((v for v in vhosts if v != "/"), key=len, reverse=True):
        prefix = vhost + "/"
        if qualified.startswith(prefix) and len(qualified) > len(prefix):
            return vhost, qualified[len(prefix) :]
    return "/", qualified


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def topic_matches(pattern: str, key: str) -> bool:
    """AMQP topic matching: ``*`` is one word, ``#`` zero or more words."""
    pat = pattern.split(".") if pattern else []
    words = key.split(".") if key else []

    def match(i: int, j: int) -> bool:
        while i < len(pat):
            if pat[i] == "#":
                if i == len(pat) - 1:
                    return True
                return any(match(i + 1, k) for k in range(j, len(words) + 1))
            if j >= len(words) or (pat[i] != "*" and pat[i] != words[j]):
                return False
            i += 1
            j += 1
        return j == len(words)

    return match(0, 0)


# ---------------------------------------------------------------- dead-letter topology


def effective_delivery_limit(arguments: Any, policy: Any, version: str | None) -> int | None:
    """A quorum queue's delivery limit: the smaller of ``x-delivery-limit`` and the policy's
    ``delivery-limit``; without either, 20 from RabbitMQ 4.0 on (none before). A negative
    value (4.0+) means no limit from that setting."""
    found = [
        value
        for value in (
            arguments.get("x-delivery-limit") if isinstance(arguments, dict) else None,
            policy.get("delivery-limit") if isinstance(policy, dict) else None,
        )
        if isinstance(value, int) and not isinstance(value, bool)
    ]
    if found:
        bounded = [value for value in found if value >= 0]
        return min(bounded) if bounded else None
    major = (version or "").split(".", 1)[0]
    return RABBITMQ4_DELIVERY_LIMIT if major.isdigit() and int(major) >= 4 else None


@dataclass(frozen=True, slots=True)
class QueueDetails:
    """What the management API says about one queue, for the message actions."""

    type: str  # classic, quorum or stream
    average_bytes: float | None  # mean size of a ready message; None when empty or unknown
    delivery_limit: int | None = None  # quorum queues: x-delivery-limit / delivery-limit policy


@dataclass(frozen=True, slots=True)
class DeadLetterTarget:
    """Where a queue's dead letters go: exchange and routing key (None = message's own)."""

    exchange: str
    routing_key: str | None


def dead_letter_target(item: Mapping[str, Any]) -> DeadLetterTarget | None:
    """The DLX of a queue: queue arguments win over the effective policy."""
    args = item.get("arguments") or {}
    policy = item.get("effective_policy_definition") or {}
    if not isinstance(args, Mapping):
        args = {}
    if not isinstance(policy, Mapping):
        policy = {}
    exchange = args.get("x-dead-letter-exchange")
    key = args.get("x-dead-letter-routing-key")
    if exchange is None:
        exchange = policy.get("dead-letter-exchange")
    if key is None:
        key = policy.get("dead-letter-routing-key")
    if not isinstance(exchange, str):
        return None
    return DeadLetterTarget(exchange, key if isinstance(key, str) else None)


@dataclass(slots=True)
class ExchangeInfo:
    """Type and outgoing bindings of one exchange (cached)."""

    type: str | None  # None: the exchange does not exist
    bindings: list[tuple[str, str, str, Mapping[str, Any]]]  # (dest type, dest, key, args)
    fetched: float


class Topology:
    """Resolves dead-letter exchanges to queues through cached exchange bindings."""

    def __init__(self) -> None:
        self.exchanges: dict[tuple[str, str], ExchangeInfo] = {}
        self._resolved: dict[tuple[str, str, DeadLetterTarget], list[str]] = {}

    def store(self, vhost: str, exchange: str, info: ExchangeInfo) -> None:
        """Cache an exchange's type and bindings (forgets resolutions made before)."""
        self.exchanges[(vhost, exchange)] = info
        self._resolved.clear()

    def resolve(self, vhost: str, source_queue: str, target: DeadLetterTarget) -> list[str]:
        """Queue names (in ``vhost``) that receive the dead letters of ``source_queue``."""
        key = (vhost, source_queue, target)
        found = self._resolved.get(key)
        if found is None:
            found = self._resolved[key] = self._resolve(vhost, source_queue, target)
        return found

    def _resolve(self, vhost: str, source_queue: str, target: DeadLetterTarget) -> list[str]:
        if target.exchange == "":
            # default exchange: the routing key is the queue name
            key = target.routing_key
            return [key] if key and key != source_queue else []
        found: dict[str, None] = {}
        # without a dead-letter routing key messages keep their own keys; the usual one is
        # the source queue's name (published through the default exchange)
        guessed = target.routing_key is None
        key = source_queue if guessed else (target.routing_key or "")
        self._route(vhost, target.exchange, key=key, guessed=guessed, found=found, seen=set())
        found.pop(source_queue, None)
        return sorted(found)

    def _route(
        self,
        vhost: str,
        exchange: str,
        *,
        key: str,
        guessed: bool,
        found: dict[str, None],
        seen: set[str],
        depth: int = 0,
    ) -> None:
        if exchange in seen or depth > MAX_E2E_DEPTH:
            return
        seen.add(exchange)
        info = self.exchanges.get((vhost, exchange))
        if info is None or info.type is None:
            return
        matched: list[tuple[str, str]] = []
        for dest_type, dest, bkey, _args in info.bindings:
            if info.type in {"fanout", "headers"}:
                ok = True  # headers: routing depends on message headers; every binding may
            elif info.type == "topic":
                ok = topic_matches(bkey, key)
            else:  # direct (and other exchange types keyed on equality)
                ok = bkey == key
            if ok:
                matched.append((dest_type, dest))
        if not matched and guessed and info.type not in {"fanout", "headers"}:
            # unknown original keys: an exchange bound to a single queue is that queue
            queues = {d for t, d, _, _ in info.bindings if t == "queue"}
            if len(queues) == 1 and not any(t == "exchange" for t, _, _, _ in info.bindings):
                matched = [("queue", next(iter(queues)))]
        for dest_type, dest in matched:
            if dest_type == "queue":
                found[dest] = None
            else:
                self._route(
                    vhost, dest, key=key, guessed=guessed, found=found, seen=seen, depth=depth + 1
                )

    def exchanges_to_fetch(
        self, vhost: str, exchange: str, now: float, every: float
    ) -> list[tuple[str, str]]:
        """The exchange and any bound exchanges not cached (or stale)."""
        out = []
        stack = [(exchange, 0)]
        seen: set[str] = set()
        while stack:
            name, depth = stack.pop()
            if name in seen or depth > MAX_E2E_DEPTH:
                continue
            seen.add(name)
            info = self.exchanges.get((vhost, name))
            if info is None or now - info.fetched >= every:
                out.append((vhost, name))
                continue
            for dest_type, dest, _, _ in info.bindings:
                if dest_type == "exchange":
                    stack.append((dest, depth + 1))
        return out


# ---------------------------------------------------------------- windowed derivations


@dataclass(slots=True)
class _Point:
    t: float
    processed: float
    dead_level: float | None
    method: str | None
    inflow_level: float | None


@dataclass(slots=True)
class _History:
    points: deque[_Point] = field(default_factory=deque)

    def add(self, point: _Point, window: float) -> _Point | None:
        """Append ``point``; return the baseline: the oldest point inside the window."""
        pts = self.points
        if pts:
            last = pts[-1]
            if point.processed < last.processed or point.method != last.method:
                pts.clear()  # counters restarted (node restart) or the formula changed
        # keep at most one point at or before the window start: it is the baseline
        horizon = point.t - window
        while len(pts) > 1 and pts[1].t <= horizon:
            pts.popleft()
        base = pts[0] if pts else None
        pts.append(point)
        return base


def _error_ratio(base: _Point | None, now: _Point) -> float | None:
    if base is None or base.dead_level is None or now.dead_level is None:
        return None
    dead = max(0.0, now.dead_level - base.dead_level)
    processed = now.processed - base.processed
    if processed < 0 or dead + processed <= 0:
        return None
    return dead / (dead + processed)


def _inflow_rate(base: _Point | None, now: _Point) -> float | None:
    if base is None or base.inflow_level is None or now.inflow_level is None:
        return None
    span = now.t - base.t
    if span <= 0:
        return None
    return max(0.0, now.inflow_level - base.inflow_level) / span


# ---------------------------------------------------------------- AMQP fallback


class PassiveProbe:
    """Passive ``queue.declare`` over long-lived blocking pika connections (one per vhost).

    Used from worker threads only, one call at a time (a lock serialises callers).
    """

    def __init__(self, options: RabbitMQOptions) -> None:
        self.options = options
        self._lock = threading.Lock()
        self._conns: dict[str, Any] = {}
        self._channels: dict[str, Any] = {}
        self.timeout: float | None = None  # opening a connection (None: the poll budget)

    def _channel(self, vhost: str) -> Any:

        conn = self._conns.get(vhost)
        if conn is None or not conn.is_open:
            conn = open_connection(self.options, vhost, timeout=self.timeout)
            self._conns[vhost] = conn
            self._channels.pop(vhost, None)
        channel = self._channels.get(vhost)
        if channel is None or not channel.is_open:
            channel = conn.channel()
            self._channels[vhost] = channel
        return channel

    def declare(self, names: Iterable[tuple[str, str]]) -> dict[tuple[str, str], tuple[int, int]]:
        """(ready, consumers) of existing queues; missing queues are left out."""
        import pika.exceptions

        out: dict[tuple[str, str], tuple[int, int]] = {}
        with self._lock:
            for vhost, name in names:
                channel = self._channel(vhost)
                try:
                    ok = channel.queue_declare(name, passive=True)
                except pika.exceptions.ChannelClosedByBroker as exc:
                    if exc.reply_code == 404:
                        continue
                    raise
                out[(vhost, name)] = (
                    int(ok.method.message_count),
                    int(ok.method.consumer_count),
                )
            for conn in self._conns.values():
                if conn.is_open:
                    conn.process_data_events(0)  # heartbeats
        return out

    def ping(self, vhost: str) -> None:
        """Open (or keep) the connection to ``vhost``; raises when the broker does not answer."""
        with self._lock:
            self._channel(vhost)
            self._conns[vhost].process_data_events(0)  # heartbeats

    def close(self) -> None:
        """Close every connection (never raises)."""
        with self._lock:
            for conn in self._conns.values():
                try:
                    if conn.is_open:
                        conn.close()
                except Exception:  # noqa: S110 - closing is best effort
                    pass
            self._conns.clear()
            self._channels.clear()


# ---------------------------------------------------------------- collector


class RabbitMQCollector:
    """Reads every visible queue from the management API (paged), or a few over AMQP."""

    def __init__(self, options: RabbitMQOptions) -> None:
        self.options = options
        self._endpoint = management_endpoint(options)
        self._mgmt = (
            None
            if self._endpoint is None
            else ManagementHttp(
                self._endpoint[0],
                self._endpoint[1],
                lambda: ssl_context(options),
                options.max_response_mb * 1024 * 1024,
            )
        )
        self._deadline: float | None = None  # end of the management API's share of a poll
        self._failed: tuple[float, str] | None = None  # last one-off failure: (when, why)
        self.skipped_entries = 0  # entries of the last listing that were not queue objects
        self._probe: PassiveProbe | None = None
        self._topology = Topology()
        self._history: dict[str, _History] = {}
        self._rates_mode: str | None = None
        self.server_version: str | None = None  # rabbitmq_version from /api/overview
        self._overview_at = -1e18
        self._vhosts: list[str] = []
        self._vhosts_at = -1e18
        self._actions: MessageActions | None = None
        self.mode: Literal["management", "amqp"] | None = None
        self.dead_letter_sources: dict[str, list[str]] = {}  # DLQ -> sources (last poll)
        self.dead_letter_queues: dict[str, list[str]] = {}  # source -> DLQs (last poll)
        self._include = compile_globs(options.include)
        self._exclude = compile_globs(options.exclude)

    def _wants(self, name: str) -> bool:
        """include/exclude globs, compiled once (called for every queue of every poll)."""
        if self._include is not None and self._include.match(name) is None:
            return False
        return self._exclude is None or self._exclude.match(name) is None

    # -- lifecycle -------------------------------------------------------------------

    async def connect(self) -> None:
        if self._mgmt is not None:
            self._mgmt.open(TOPOLOGY_CONCURRENCY, self.options.http_timeout)

    async def close(self) -> None:
        if self._mgmt is not None:
            await self._mgmt.close()
        probe, self._probe = self._probe, None
        if probe is not None:
            await asyncio.to_thread(probe.close)
        actions, self._actions = self._actions, None
        if actions is not None:
            try:
                await actions.close()
            except Exception:  # noqa: S110
                pass

    def actions(self) -> MessageActions | None:
        try:
            from collectors.rabbitmq.actions import RabbitMQActions
        except ImportError:
            return None
        if self._actions is None:
            self._actions = RabbitMQActions(self.options, self)
        return self._actions

    # -- management API ----------------------------------------------------------------

    async def _get(self, path: str, params: Mapping[str, str | int] | None = None) -> Any:
        """GET ``/api/{path}``: JSON, None for 404; raises ManagementUnavailable/Refused.

        Each request has a total deadline: ``http_timeout``, and within a poll what is left
        of the poll's share for the management API; before an action (no poll running) the
        broker's timeout. An API that failed a one-off call is not asked again for
        ``discover_every`` (an action makes several lookups, each would wait again).
        """
        assert self._mgmt is not None
        now = time.monotonic()
        if self._deadline is not None:
            timeout = min(self.options.http_timeout, self._deadline - now)
        else:
            if self._failed is not None and now - self._failed[0] < self.options.discover_every:
                raise ManagementUnavailable(self._failed[1])
            timeout = min(self.options.http_timeout, poll_budget(self.options))
        try:
            return await self._mgmt.get(path, params, timeout)
        except ManagementUnavailable as exc:
            if self._deadline is None:
                self._failed = (time.monotonic(), str(exc))
            raise
        except (ManagementRefused, MqtopError):
            raise
        except Exception as exc:  # httpx.TransportError, OSError, ssl errors
            self._refuse_unverified(exc)
            reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
            if self._deadline is None:
                self._failed = (time.monotonic(), reason)
            raise ManagementUnavailable(reason) from None

    def _refuse_unverified(self, exc: BaseException) -> None:
        """A certificate that fails verification is an error, never a reason to fall back."""
        failure = certificate_failure(exc)
        if failure is not None:
            assert self._endpoint is not None
            raise ManagementRefused(
                f"TLS certificate of the management API at {self._endpoint[0]} not verified: "
                f"{failure} (ca_file: the CA to trust; tls_verify: false turns verification off)"
            ) from exc

    async def known_vhosts(self) -> list[str]:
        """Vhosts for name splitting: configured ones, the API's list, the URL's."""
        found: dict[str, None] = dict.fromkeys(self.options.vhosts)
        found[amqp_target(self.options.url.get_secret_value()).vhost] = None
        if self._endpoint is not None:
            try:
                await self._refresh_vhosts(force=not self._vhosts)
            except (ManagementUnavailable, ManagementRefused):
                pass
        for vhost in self._vhosts:
            found[vhost] = None
        return list(found)

    async def _refresh_vhosts(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._vhosts_at < self.options.discover_every:
            return
        data = await self._get("vhosts", {"columns": "name"})
        if isinstance(data, list):
            self._vhosts = [v["name"] for v in data if isinstance(v, dict) and "name" in v]
            self._vhosts_at = now

    async def _overview(self) -> None:
        now = time.monotonic()
        if now - self._overview_at < self.options.discover_every and self._rates_mode:
            return
        data = await self._get(
            "overview", {"columns": "rates_mode,management_version,rabbitmq_version"}
        )
        if data is None:
            raise ManagementUnavailable("no management API at this URL (/api/overview: 404)")
        self._rates_mode = str(data.get("rates_mode") or "basic")
        self.server_version = str(data.get("rabbitmq_version") or "") or None
        self._overview_at = now

    async def fetch_queues(self, columns: Iterable[str] = QUEUE_COLUMNS) -> list[dict[str, Any]]:
        """Every visible queue, page by page (pages after the first concurrently)."""
        cols = ",".join(columns)
        self.skipped_entries = 0
        paths = (
            [f"queues/{quote(v, safe='')}" for v in self.options.vhosts]
            if self.options.vhosts
            else ["queues"]
        )
        items: list[dict[str, Any]] = []
        for path in paths:
            items.extend(await self._fetch_paged(path, cols))
        return items

    async def _fetch_paged(self, path: str, cols: str) -> list[dict[str, Any]]:
        size = self.options.page_size

        async def page(number: int) -> dict[str, Any] | None:
            # no "sort": the listing comes ordered by name already, and an explicit sort
            # makes the broker re-sort every queue for every page (3x slower at 5,000)
            data = await self._get(path, {"columns": cols, "page": number, "page_size": size})
            if data is None:
                return None
            if not isinstance(data, dict) or not isinstance(data.get("items"), list):
                raise ManagementUnavailable(f"/api/{path}: unexpected answer (no pagination)")
            return data

        first = await page(1)
        if first is None:
            return []  # e.g. a configured vhost that does not exist
        pages = page_count(path, first, size)
        items: list[dict[str, Any]] = []
        seen: set[tuple[str, str]] = set()
        self._take(first["items"], items, seen)
        if pages > 1:
            numbers = iter(range(2, pages + 1))

            async def worker() -> None:
                # pages are asked for as workers free up, never all at once
                for number in numbers:
                    data = await page(number)
                    if data is not None:
                        self._take(data["items"], items, seen)

            await asyncio.gather(*(worker() for _ in range(min(PAGE_CONCURRENCY, pages - 1))))
        return items

    def _take(
        self, entries: list[Any], items: list[dict[str, Any]], seen: set[tuple[str, str]]
    ) -> None:
        """Keep the queue objects of a page; count the entries that are not one."""
        for item in entries:
            if (
                not isinstance(item, dict)
                or not isinstance(item.get("vhost"), str)
                or not isinstance(item.get("name"), str)
            ):
                self.skipped_entries += 1
                continue
            ident = (item["vhost"], item["name"])
            if ident not in seen:  # a queue created meanwhile shifts pages
                seen.add(ident)
                items.append(item)

    async def dead_letter_sources_of(self, dlq: str) -> list[str] | None:
        """Queues whose dead letters reach ``dlq`` (None when the management API is unknown)."""
        if self._endpoint is None:
            return None
        try:
            items = await self.fetch_queues(
                ("name", "vhost", "arguments", "effective_policy_definition")
            )
            targets: dict[str, tuple[str, str, DeadLetterTarget]] = {}
            for item in items:
                vhost, name = item.get("vhost"), item.get("name")
                if isinstance(vhost, str) and isinstance(name, str):
                    target = dead_letter_target(item)
                    if target is not None:
                        targets[qualify(vhost, name)] = (vhost, name, target)
            await self._refresh_topology(
                {(v, t.exchange) for v, _, t in targets.values() if t.exchange}
            )
        except (ManagementUnavailable, ManagementRefused):
            return None
        sources = []
        for qname, (vhost, name, target) in targets.items():
            if dlq in (qualify(vhost, q) for q in self._topology.resolve(vhost, name, target)):
                sources.append(qname)
        return sorted(sources)

    async def queue_details(self, vhost: str, name: str) -> QueueDetails | None:
        """Type and average ready message size (None when the management API cannot say)."""
        if self._endpoint is None:
            return None
        try:
            data = await self._get(
                f"queues/{quote(vhost, safe='')}/{quote(name, safe='')}",
                {
                    "columns": "type,messages_ready,message_bytes_ready,arguments,"
                    "effective_policy_definition"
                },
            )
        except (ManagementUnavailable, ManagementRefused):
            return None
        if not isinstance(data, dict):
            return None
        ready, size = data.get("messages_ready"), data.get("message_bytes_ready")
        average: float | None = None
        if isinstance(ready, int) and isinstance(size, int) and ready > 0 and size >= 0:
            average = size / ready
        kind = str(data.get("type") or "classic")
        limit: int | None = None
        if kind == "quorum":
            if self.server_version is None:
                with contextlib.suppress(ManagementUnavailable, ManagementRefused):
                    await self._overview()
            limit = effective_delivery_limit(
                data.get("arguments"), data.get("effective_policy_definition"), self.server_version
            )
        return QueueDetails(type=kind, average_bytes=average, delivery_limit=limit)

    async def queue_type(self, vhost: str, name: str) -> str | None:
        """classic, quorum or stream (None when the management API cannot say)."""
        details = await self.queue_details(vhost, name)
        return None if details is None else details.type

    async def _refresh_topology(self, targets: set[tuple[str, str]]) -> list[str]:
        """Fetch type and bindings of the DLX exchanges (and bound exchanges) when stale."""
        warnings: list[str] = []
        now = time.monotonic()
        every = self.options.discover_every
        semaphore = asyncio.Semaphore(TOPOLOGY_CONCURRENCY)

        async def fetch(vhost: str, exchange: str) -> None:
            vh = quote(vhost, safe="")
            ex = quote(exchange, safe="")
            async with semaphore:
                meta = await self._get(f"exchanges/{vh}/{ex}", {"columns": "name,type"})
                bindings = (
                    await self._get(f"exchanges/{vh}/{ex}/bindings/source")
                    if meta is not None
                    else None
                )
            if meta is None:
                warnings.append(
                    f"dead-letter exchange {qualify(vhost, exchange)!r} does not exist: "
                    "dead letters are dropped"
                )
            rows = [
                (
                    str(b.get("destination_type", "queue")),
                    str(b.get("destination", "")),
                    str(b.get("routing_key", "")),
                    b.get("arguments") or {},
                )
                for b in (bindings or [])
                if isinstance(b, dict)
            ]
            self._topology.store(
                vhost,
                exchange,
                ExchangeInfo(
                    type=None if meta is None else str(meta.get("type", "direct")),
                    bindings=rows,
                    fetched=time.monotonic(),
                ),
            )

        for _ in range(MAX_E2E_DEPTH + 1):
            wanted: set[tuple[str, str]] = set()
            for vhost, exchange in targets:
                wanted.update(self._topology.exchanges_to_fetch(vhost, exchange, now, every))
            if not wanted:
                break
            await asyncio.gather(*(fetch(v, e) for v, e in sorted(wanted)))
        return warnings

    # -- collection ------------------------------------------------------------------

    async def collect(self) -> Collected:
        # end a little before the engine's own timeout, so the error says what failed
        budget = poll_budget(self.options) * 0.9
        end = time.monotonic() + budget
        if self._endpoint is None:
            return await self._collect_amqp("no management_url is configured", end)
        started = time.time()  # the engine stamps the snapshot with the poll's start too
        # the management API may use two thirds of the budget: the AMQP fallback gets the rest
        self._deadline = end - budget / 3
        try:
            await self._overview()
            items = await self.fetch_queues()
            self.mode = "management"
            self._deadline = end
            return await self._build(items, started)
        except ManagementUnavailable as exc:
            reason = redact(str(exc))
        finally:
            self._deadline = None
        base = self._endpoint[0]
        try:
            return await self._collect_amqp(
                f"management API at {base} is unavailable ({reason})", end
            )
        except ConfigError:
            raise
        except Exception as exc:
            # both failed: say why each did (the management API's own error first)
            raise BrokerUnreachable(
                f"management API at {base}: {reason}; AMQP fallback at "
                f"{strip_url_credentials(self.options.url.get_secret_value())}: "
                f"{redact(str(exc) if isinstance(exc, MqtopError) else failure_text(exc))}"
            ) from None

    async def _build(self, items: list[dict[str, Any]], started: float) -> Collected:
        options = self.options
        broker = options.name
        now = time.time()
        warnings: list[str] = []
        by_name: dict[str, dict[str, Any]] = {}
        dl_targets: dict[str, tuple[str, str, DeadLetterTarget]] = {}
        for item in items:
            vhost = item.get("vhost")
            name = item.get("name")
            if not isinstance(vhost, str) or not isinstance(name, str):
                continue
            qname = qualify(vhost, name)
            by_name[qname] = item
            target = dead_letter_target(item)
            if target is not None:
                dl_targets[qname] = (vhost, name, target)

        try:
            warnings.extend(
                await self._refresh_topology(
                    {(v, t.exchange) for v, _, t in dl_targets.values() if t.exchange}
                )
            )
        except ManagementUnavailable as exc:
            warnings.append(f"dead-letter bindings not refreshed: {redact(str(exc))}")

        dlqs_of: dict[str, list[str]] = {}
        for qname, (vhost, name, target) in dl_targets.items():
            resolved = [qualify(vhost, q) for q in self._topology.resolve(vhost, name, target)]
            if resolved:
                dlqs_of[qname] = resolved
        explicit = options.dlq
        sources_of: dict[str, list[str]] = {}
        for src, dlqs in dlqs_of.items():
            for d in dlqs:
                sources_of.setdefault(d, []).append(src)
        self.dead_letter_sources = sources_of
        self.dead_letter_queues = dlqs_of

        window = options.error_window
        counters_known = self._rates_mode != "none"
        series: list[SeriesSample] = []
        wanted_names: set[str] = set()
        for qname, item in by_name.items():
            if not self._wants(qname):
                continue
            wanted_names.add(qname)
            kind = str(item.get("type") or "classic")
            ready = _num(item.get("messages_ready"))
            unacked = _num(item.get("messages_unacknowledged"))
            total = _num(item.get("messages"))
            consumers = _num(item.get("consumers"))
            stats_raw = item.get("message_stats")
            stats: Mapping[str, Any] = stats_raw if isinstance(stats_raw, Mapping) else {}

            def counter(key: str, st: Mapping[str, Any] = stats) -> float:
                # the management plugin omits counters that never moved
                return _num(st.get(key)) or 0.0

            values: dict[str, float | None] = {}
            if kind == "stream":
                # a stream keeps its log: "messages" is retained, not waiting
                values["queue_length"] = None
                values["in_flight"] = None
                values["consumer_lag_messages"] = None
                latency: float | None = None
            else:
                values["queue_length"] = ready
                values["in_flight"] = unacked
                values["consumer_lag_messages"] = ready
                head = _num(item.get("head_message_timestamp"))
                if ready == 0:
                    latency = 0.0
                elif head is not None and ready is not None:
                    latency = max(0.0, now - head)
                else:
                    latency = None
            values["latency_seconds"] = latency
            values["consumer_lag_seconds"] = latency
            values["consumers"] = consumers

            # DLQ of this queue: explicit config, discovered binding, naming convention
            dlq: str | None = explicit.get(qname)
            all_dlqs = dlqs_of.get(qname, [])
            if dlq is None and all_dlqs:
                dlq = _prefer_conventional(qname, all_dlqs)
            if dlq is None:
                dlq = next((c for c in dlq_candidates(qname) if c in by_name), None)
            dlq_item = by_name.get(dlq) if dlq else None
            values["dlq_length"] = (
                _num(dlq_item.get("messages_ready")) if dlq_item is not None else None
            )

            is_dead_letter_target = qname in sources_of
            processed = (
                counter("ack") + counter("deliver_no_ack") + counter("get_no_ack")
                if counters_known
                else None
            )
            if counters_known:
                values["processed_total"] = processed
                if not is_dead_letter_target:
                    values["published_total"] = counter("publish")

            if counters_known and processed is not None:
                method, dead_level = self._dead_level(
                    qname,
                    kind=kind,
                    dlq=dlq,
                    dlq_item=dlq_item,
                    sources_of=sources_of,
                    processed=processed,
                    unacked=unacked,
                    stats=stats,
                )
                inflow_level = (
                    total + processed if is_dead_letter_target and total is not None else None
                )
                point = _Point(started, processed, dead_level, method, inflow_level)
                history = self._history.get(qname)
                if history is None:
                    history = self._history[qname] = _History()
                base = history.add(point, window)
                values["error_rate"] = _error_ratio(base, point)
                if is_dead_letter_target:
                    values["publish_rate"] = _inflow_rate(base, point)
            else:
                method = None
            info: dict[str, Any] = {
                "vhost": item.get("vhost"),
                "name": item.get("name"),
                "type": kind,
                "state": item.get("state"),
                "policy": item.get("policy"),
                "messages": total,
            }
            if qname in dl_targets:
                target = dl_targets[qname][2]
                info["dead_letter_exchange"] = target.exchange
                info["dead_letter_routing_key"] = target.routing_key
            if all_dlqs:
                info["dlqs"] = list(all_dlqs)
            if is_dead_letter_target:
                info["dead_letter_sources"] = list(sources_of[qname])
            if method:
                info["error_rate_method"] = method
            series.append(
                SeriesSample(
                    key=SeriesKey(broker, qname, None),
                    kind=kind,
                    values=values,
                    dlq=dlq,
                    info=info,
                )
            )
        for gone in [k for k in self._history if k not in wanted_names]:
            del self._history[gone]
        if self.skipped_entries:
            warnings.append(
                f"{self.skipped_entries} entr{'y' if self.skipped_entries == 1 else 'ies'} of "
                "the management API's queue list skipped: not a queue object (with a vhost "
                "and a name)"
            )
        if not counters_known:
            warnings.append(
                "management statistics are off (rates_mode: none): rates and error_rate are null"
            )
        return Collected(series=tuple(series), warnings=tuple(warnings))

    def _dead_level(
        self,
        qname: str,
        *,
        kind: str,
        dlq: str | None,
        dlq_item: Mapping[str, Any] | None,
        sources_of: Mapping[str, list[str]],
        processed: float,
        unacked: float | None,
        stats: Mapping[str, Any],
    ) -> tuple[str | None, float | None]:
        """A level whose increase over a window is the number of messages dead-lettered.

        * the DLQ receives from this queue only: DLQ messages + DLQ acks (and no-ack gets);
          when the DLQ is fed by a dead-letter exchange its publishes are not dead letters
          (someone moved messages in), so they are subtracted;
        * otherwise: deliveries that left without an ack and were not requeued
          (deliver_get - redeliver - acks - no-ack deliveries - unacked).
        """

        def counter(source: Mapping[str, Any], key: str) -> float:
            return _num(source.get(key)) or 0.0

        if dlq is not None and dlq != qname and dlq_item is not None:
            dlx_sources = sources_of.get(dlq)
            explicit_sources = [s for s, d in self.options.dlq.items() if d == dlq]
            dedicated = (dlx_sources == [qname] or dlx_sources is None) and (
                not explicit_sources or explicit_sources == [qname]
            )
            dmessages = _num(dlq_item.get("messages"))
            if dedicated and dmessages is not None:
                raw = dlq_item.get("message_stats")
                dstats: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
                level = (
                    dmessages
                    + counter(dstats, "ack")
                    + counter(dstats, "deliver_no_ack")
                    + counter(dstats, "get_no_ack")
                )
                if dlx_sources is not None:
                    return "dlx-inflow", level - counter(dstats, "publish")
                return "dlq-inflow", level
        if kind != "stream" and unacked is not None:
            level = (
                counter(stats, "deliver_get") - counter(stats, "redeliver") - processed - unacked
            )
            return "deliveries", level
        return None, None

    # -- AMQP fallback -----------------------------------------------------------------

    async def _collect_amqp(self, reason: str, end: float) -> Collected:
        self.mode = "amqp"
        options = self.options
        known = [*options.vhosts, amqp_target(options.url.get_secret_value()).vhost]
        names: dict[str, None] = {}
        for pattern in options.include:
            if not (GLOB_CHARS & set(pattern)):
                names[pattern] = None
        dlq_names = {d: None for src, d in options.dlq.items() if src in names}
        wanted = [n for n in names if options.wants(n)]
        probe_names = list(dict.fromkeys([*wanted, *dlq_names]))
        if self._probe is None:
            self._probe = PassiveProbe(options)
        probe = self._probe
        probe.timeout = max(0.1, end - time.monotonic())
        if not probe_names:
            # nothing to declare, but a broker answering neither the management API nor AMQP
            # is unreachable, not "up with no queues" (SPEC §4 exit 3, §7)
            try:
                await asyncio.to_thread(probe.ping, known[-1])
            except Exception:
                await asyncio.to_thread(probe.close)
                raise
            return Collected(
                series=(),
                warnings=(
                    f"{reason}: AMQP fallback reads only queues named literally in include "
                    "(none are): no queues shown",
                ),
            )
        pairs = [split_name(n, known) for n in probe_names]
        try:
            found = await asyncio.to_thread(probe.declare, pairs)
        except Exception:
            await asyncio.to_thread(probe.close)
            raise
        warnings = [
            f"{reason}: degraded AMQP mode, queue length and consumers of "
            f"{len(wanted)} queue(s) named in include; rates, in-flight, latency, error rate "
            "and dead-letter discovery need the management plugin"
        ]
        lengths = {qualify(*pair): value for pair, value in found.items()}
        series: list[SeriesSample] = []
        for name in wanted:
            qname = qualify(*split_name(name, known))
            if qname not in lengths:
                warnings.append(f"queue {qname!r} does not exist")
                continue
            ready, consumers = lengths[qname]
            dlq = options.dlq.get(name) or next(
                (c for c in dlq_candidates(qname) if c in lengths), None
            )
            dlq_len = lengths[dlq][0] if dlq and dlq in lengths else None
            series.append(
                SeriesSample(
                    key=SeriesKey(options.name, qname, None),
                    kind="queue",
                    values={
                        "queue_length": float(ready),
                        "consumer_lag_messages": float(ready),
                        "consumers": float(consumers),
                        "dlq_length": None if dlq_len is None else float(dlq_len),
                    },
                    dlq=dlq,
                    info={"mode": "amqp"},
                )
            )
        return Collected(series=tuple(series), warnings=tuple(warnings))


def page_count(path: str, first: Mapping[str, Any], size: int) -> int:
    """How many pages to read: ``page_count``, checked against ``filtered_count``."""
    raw = first.get("page_count", 1)
    if raw is None:
        return 1
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise ManagementUnavailable(f"/api/{path}: page_count {raw!r} is not a page count")
    pages = max(raw, 1)
    counted = first.get("filtered_count")
    if isinstance(counted, int) and not isinstance(counted, bool) and counted >= 0:
        bound = -(-counted // size)  # ceil
        if pages > bound + 1:
            raise ManagementUnavailable(
                f"/api/{path}: page_count {raw} does not fit filtered_count {counted} at "
                f"page_size {size} (at most {bound} pages): refusing to read it"
            )
    elif pages * size > MAX_QUEUES:
        raise ManagementUnavailable(
            f"/api/{path}: page_count {raw} at page_size {size} claims more than "
            f"{MAX_QUEUES:,} queues without a filtered_count: refusing to read it"
        )
    return pages


def _prefer_conventional(queue: str, dlqs: list[str]) -> str:
    """Of several receiving queues, prefer one named like a DLQ of ``queue``."""
    candidates = dlq_candidates(queue)
    for c in candidates:
        if c in dlqs:
            return c
    lowered = [d for d in dlqs if any(fnmatchcase(d.lower(), p) for p in ("*dlq*", "*dead*"))]
    return (lowered or dlqs)[0]


def _create(options: RabbitMQOptions) -> RabbitMQCollector:
    return RabbitMQCollector(options)


class RabbitMQMoveOptions(MoveOptions):
    """Options of a RabbitMQ replay / move."""

    batch: int | None = Field(
        None,
        ge=1,
        description="messages per batch / confirm window",
        json_schema_extra={"metavar": "N"},
    )


PLUGIN: CollectorPlugin[RabbitMQOptions] = CollectorPlugin(
    type="rabbitmq",
    options_model=RabbitMQOptions,
    factory=_create,
    move_options=RabbitMQMoveOptions,
    description="RabbitMQ queues from the management API; AMQP for message actions",
)

__all__ = [
    "PLUGIN",
    "RabbitMQCollector",
    "RabbitMQOptions",
    "amqp_target",
    "pika_parameters",
    "qualify",
    "split_name",
]
